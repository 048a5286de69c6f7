"""Digests, instant posts and DMs through the real bot against the local Discord and feeds."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from tests.e2e.conftest import World, reply_text
from tests.feedserver import load_hf_day

pytestmark = pytest.mark.slow

MESSAGES = r"/channels/\d+/messages"


def embed_urls(messages) -> list[str]:
    return [embed["url"] for message in messages for embed in message.data.get("embeds", [])]


async def settle(seconds: float = 0.4) -> None:
    """Let the bot's 0.1 s delivery checks run a few times."""
    await asyncio.sleep(seconds)


async def polled(world: World, count: int = 1) -> None:
    await world.wait(lambda: len(world.feeds.hf_requests()) >= count)
    await settle(0.2)


async def test_digest_posts_at_scheduled_local_time_once_per_paper(world: World) -> None:
    world.feeds.days["2025-03-17"] = load_hf_day("2025-09-30")  # a 50-paper day, served as today
    await world.start_bot()
    await polled(world)
    await world.command("digest set", time="09:00", timezone="Europe/Paris")  # 08:00 UTC in March
    # Two watches that overlap: every paper matches the first, some the second too.
    await world.command("watch add", query="upvotes>=0")
    await world.command("watch add", query="model*")
    world.clock.set(datetime(2025, 3, 17, 7, 59, 30, tzinfo=UTC))
    await settle()
    assert world.posts() == []
    world.clock.set(datetime(2025, 3, 17, 8, 0, 1, tzinfo=UTC))
    await world.wait(lambda: len(world.posts()) >= 3)
    await settle()
    posts = world.posts()
    assert len(posts) == 3  # 25 papers (the cap) in messages of at most 10 embeds
    assert [len(p.data["embeds"]) for p in posts] == [10, 10, 5]
    urls = embed_urls(posts)
    assert len(urls) == len(set(urls)) == 25
    assert "25 new papers" in posts[0].content
    assert "and 25 more" in posts[-1].content
    # Ordered by upvotes, highest first.
    entries = {e["paper"]["id"]: e["paper"]["upvotes"] for e in load_hf_day("2025-09-30")}
    upvotes = [entries[u.rsplit("/", 1)[1]] for u in urls]
    assert upvotes == sorted(upvotes, reverse=True)
    # Nothing is posted twice: later checks, and the next day's digest, bring only the rest.
    await settle()
    assert len(world.posts()) == 3
    world.clock.set(datetime(2025, 3, 18, 8, 0, 1, tzinfo=UTC))
    await world.wait(lambda: len(world.posts()) >= 6)
    await settle()
    later = embed_urls(world.posts()[3:])
    assert len(later) == 25
    assert not set(later) & set(urls)


async def test_instant_posts_after_a_poll_and_dm_alerts(world: World) -> None:
    day = load_hf_day("2025-03-17")
    world.feeds.days["2025-03-17"] = day[:6]
    await world.start_bot()
    await polled(world)
    await world.command("watch add", query="upvotes>=0", mode="instant")
    await world.command("alert add", user_id=world.member_id, query="upvotes>=0", mode="instant")
    await settle()
    assert world.posts() == []  # an instant watch posts only what arrives after it
    world.feeds.days["2025-03-17"] = day
    world.clock.advance(minutes=30)
    assert world.app is not None and world.app.timetable is not None
    await world.app.timetable.poll_huggingface()
    posts = world.posts()
    urls = embed_urls(posts)
    assert sorted(urls) == sorted(f"https://huggingface.co/papers/{e['paper']['id']}" for e in day[6:])
    assert all("New for" in p.content for p in posts)
    dms = world.fake.dm_messages(world.member_id)
    assert sorted(embed_urls(dms)) == sorted(urls)


async def test_paper_crossing_min_upvotes_on_a_repoll_is_delivered_then(world: World) -> None:
    day = load_hf_day("2025-03-17")
    low = min(day, key=lambda e: e["paper"]["upvotes"])
    arxiv_id = low["paper"]["id"]
    threshold = max(e["paper"]["upvotes"] for e in day) + 1
    world.feeds.days["2025-03-17"] = day
    await world.start_bot()
    await world.command("watch add", query="upvotes>=0", mode="instant", min_upvotes=threshold)
    await polled(world)
    assert world.posts() == []
    world.feeds.set_upvotes("2025-03-17", arxiv_id, threshold)
    world.clock.advance(minutes=30)
    assert world.app is not None and world.app.timetable is not None
    await world.app.timetable.poll_huggingface()
    assert embed_urls(world.posts()) == [f"https://huggingface.co/papers/{arxiv_id}"]


async def test_paper_text_never_pings_anyone(world: World) -> None:
    day = load_hf_day("2025-07-15")
    day[0]["paper"]["title"] = "Attention is all @everyone needs <@123> @here"
    day[0]["title"] = day[0]["paper"]["title"]
    day[0]["paper"]["ai_summary"] = "We thank <@&456> and @everyone."
    world.feeds.days["2025-03-17"] = day
    await world.start_bot()
    await polled(world)
    await world.command("watch add", query="attention OR upvotes>=0")
    record = await world.command("digest now")
    await world.wait(lambda: "Posted" in reply_text(record))
    posts = world.posts()
    assert posts
    for request in world.fake.requests_matching("POST", MESSAGES):
        assert request.json["allowed_mentions"] == {"parse": []}
    for post in posts:
        assert post.data["mention_everyone"] is False
        assert post.data["mentions"] == []
        assert post.data["mention_roles"] == []
    titles = [e["title"] for p in posts for e in p.data["embeds"]]
    assert any("everyone" in t for t in titles)
    assert not any("@everyone" in t or "<@" in t for t in titles)


async def test_429_on_the_message_route_delays_and_retries_without_doubling(world: World) -> None:
    world.feeds.days["2025-03-17"] = load_hf_day("2025-07-15")
    await world.start_bot()
    await polled(world)
    await world.command("watch add", query="upvotes>=0")
    world.fake.fail_next("POST", MESSAGES, 429, retry_after=0.3, times=2)
    record = await world.command("digest now")
    await world.wait(lambda: "Posted" in reply_text(record), timeout=10)
    urls = embed_urls(world.posts())
    assert len(urls) == len(set(urls)) == 10
    statuses = [r.status for r in world.fake.requests_matching("POST", MESSAGES)]
    assert statuses.count(429) == 2


async def test_503_is_retried_by_the_next_check_with_the_same_nonce(world: World) -> None:
    world.feeds.days["2025-03-17"] = load_hf_day("2025-07-15")
    await world.start_bot()
    await polled(world)
    await world.command("watch add", query="upvotes>=0")
    world.fake.fail_next("POST", MESSAGES, 503, times=1, after_effect=True)
    await world.command("digest now")
    await world.wait(lambda: len(embed_urls(world.posts())) >= 10, timeout=5)
    await settle()
    urls = embed_urls(world.posts())
    assert len(urls) == len(set(urls)) == 10
    nonces = [r.json["nonce"] for r in world.fake.requests_matching("POST", MESSAGES)]
    assert len(nonces) == 2 and nonces[0] == nonces[1]


async def test_403_pauses_the_channels_watches_and_keeps_the_papers(world: World) -> None:
    world.feeds.days["2025-03-17"] = load_hf_day("2025-07-15")
    await world.start_bot()
    await polled(world)
    await world.command("watch add", query="upvotes>=0")
    world.fake.forbid_channel(world.channel_id)
    record = await world.command("digest now")
    await world.wait(lambda: "paused" in reply_text(record))
    listing = await world.command("watch list")
    assert "paused" in reply_text(listing)
    assert "lost permission" in reply_text(listing)
    # Permission back, a watch resumed: every paper still arrives, once.
    world.fake.allow_channel(world.channel_id)
    await world.command("watch resume", watch=1)
    again = await world.command("digest now")
    await world.wait(lambda: "Posted" in reply_text(again))
    urls = embed_urls(world.posts())
    assert len(urls) == len(set(urls)) == 10


async def test_closed_dms_pause_alerts_and_show_it(world: World) -> None:
    day = load_hf_day("2025-03-17")
    world.feeds.days["2025-03-17"] = day[:2]
    await world.start_bot()
    await polled(world)
    await world.command("alert add", user_id=world.member_id, query="upvotes>=0", mode="instant")
    world.fake.close_dms(world.member_id)
    world.feeds.days["2025-03-17"] = day
    world.clock.advance(minutes=5)
    assert world.app is not None and world.app.timetable is not None
    await world.app.timetable.poll_huggingface()
    listing = await world.command("alert list", user_id=world.member_id)
    assert "DMs are closed" in reply_text(listing)
    assert "paused" in reply_text(listing)


async def test_restart_after_a_missed_digest_posts_it_once(world: World) -> None:
    world.feeds.days["2025-03-17"] = load_hf_day("2025-07-15")
    await world.start_bot()
    await polled(world)
    await world.command("watch add", query="upvotes>=0")
    await world.stop_bot()
    # The bot is down at 09:00 UTC; it comes back at 11:00.
    world.clock.set(datetime(2025, 3, 17, 11, 0, tzinfo=UTC))
    await world.start_bot()
    await world.wait(lambda: len(world.posts()) >= 1)
    await settle()
    assert len(embed_urls(world.posts())) == 10
    await world.stop_bot()
    await world.start_bot()
    await settle()
    assert len(embed_urls(world.posts())) == 10


async def test_a_message_discord_refuses_is_set_aside_not_retried_forever(world: World) -> None:
    world.feeds.days["2025-03-17"] = load_hf_day("2025-09-30")
    await world.start_bot()
    await polled(world)
    await world.command("watch add", query="upvotes>=0")
    world.fake.fail_next("POST", MESSAGES, 400, code=50035, message="Invalid Form Body")
    record = await world.command("digest now")
    await world.wait(lambda: "Posted" in reply_text(record))
    await settle()
    attempts = world.fake.requests_matching("POST", MESSAGES)
    assert [r.status for r in attempts].count(400) == 1
    assert len(attempts) == 3  # the refused first message is not sent again; the other two are
    assert len(embed_urls(world.posts())) == 15
