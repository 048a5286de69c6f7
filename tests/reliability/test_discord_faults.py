"""Discord misbehaving while the real bot delivers (issue #4, item 2): REST errors and gateway loss.

In every case the papers that should reach a channel or a DM reach it, each exactly once
(paper URLs are counted in the embeds of each channel), and the bot keeps answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections import Counter
from typing import Any

import pytest

from tests.e2e import conftest as e2e
from tests.e2e.conftest import World, reply_text
from tests.feedserver import load_hf_day

pytestmark = pytest.mark.slow

world = e2e.world  # the end-to-end fixture: real bot, FakeDiscord, local feed server

TODAY = "2025-03-17"
MESSAGES = r"/channels/\d+/messages"
HF_PAGE = "https://huggingface.co/papers/"


# --- helpers ---------------------------------------------------------------------------------


def embed_urls(messages: list[Any]) -> list[str]:
    return [embed["url"] for message in messages for embed in message.data.get("embeds", [])]


def urls_of(entries: list[dict[str, Any]]) -> list[str]:
    return sorted(HF_PAGE + e["paper"]["id"] for e in entries)


def assert_each_once(urls: list[str], expected: list[str]) -> None:
    doubled = [url for url, count in Counter(urls).items() if count > 1]
    assert not doubled, f"posted twice: {doubled}"
    assert sorted(urls) == sorted(expected)


def db_rows(world: World, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(world.db, timeout=10)) as conn:
        return conn.execute(sql, params).fetchall()


async def first_poll_done(world: World) -> None:
    def done() -> bool:
        try:
            return bool(db_rows(world, "SELECT 1 FROM feed_state WHERE last_poll_at IS NOT NULL"))
        except sqlite3.OperationalError:
            return False

    await world.wait(done, timeout=10)
    # The harness clock stands still; move it so later papers are "after" later watches.
    world.clock.advance(minutes=1)


async def poll(world: World) -> None:
    assert world.app is not None and world.app.timetable is not None
    world.clock.advance(minutes=1)
    await asyncio.wait_for(world.app.timetable.poll_huggingface(), 20)


async def settle(seconds: float = 0.4) -> None:
    """Let the bot's 0.1 s delivery checks run a few times."""
    await asyncio.sleep(seconds)


async def digest_now(world: World, channel_id: int | None = None, timeout: float = 10) -> str:
    record = await world.command("digest now", channel_id=channel_id)
    await world.wait(lambda: len(record.original_edits) >= 1, timeout=timeout)
    return reply_text(record)


def no_mentions_anywhere(world: World) -> None:
    for request in world.fake.requests_matching("POST", MESSAGES):
        assert request.json.get("allowed_mentions") == {"parse": []}, request.json


# --- REST faults on the message route ------------------------------------------------------


@pytest.mark.parametrize("global_", [False, True], ids=["per-route", "global"])
async def test_429_on_the_message_route_is_waited_out(world: World, global_: bool) -> None:
    day = load_hf_day(TODAY)  # 12 papers: two messages
    world.feeds.days[TODAY] = day
    await world.start_bot()
    await first_poll_done(world)
    await world.command("watch add", query="upvotes>=0")
    world.fake.fail_next("POST", MESSAGES, 429, retry_after=0.3, times=2, global_=global_)
    text = await digest_now(world)
    assert "Posted" in text
    assert_each_once(embed_urls(world.posts()), urls_of(day))
    posts = world.fake.requests_matching("POST", MESSAGES)
    statuses = [r.status for r in posts]
    assert statuses.count(429) == 2
    # The retry waited for the time Discord asked for.
    first_ok = next(i for i, r in enumerate(posts) if r.status == 200)
    assert posts[first_ok].time - posts[first_ok - 1].time >= 0.25
    no_mentions_anywhere(world)
    # Still answering afterwards.
    listing = await world.command("watch list", user_id=world.member_id)
    assert "upvotes>=0" in reply_text(listing)


@pytest.mark.parametrize(
    ("status", "after_effect"),
    [(500, False), (502, True)],
    ids=["500-nothing-stored", "502-stored-but-answer-lost"],
)
async def test_5xx_is_retried_without_doubling(world: World, status: int, after_effect: bool) -> None:
    day = load_hf_day("2025-07-15")
    world.feeds.days[TODAY] = day
    await world.start_bot()
    await first_poll_done(world)
    await world.command("watch add", query="upvotes>=0")
    world.fake.fail_next("POST", MESSAGES, status, times=1, after_effect=after_effect)
    text = await digest_now(world)
    await world.wait(lambda: len(embed_urls(world.posts())) >= len(day), timeout=10)
    await settle()
    assert_each_once(embed_urls(world.posts()), urls_of(day))
    posts = world.fake.requests_matching("POST", MESSAGES)
    assert [r.status for r in posts].count(status) == 1
    # A repeat carries the same nonce, so Discord can answer it with the stored message.
    nonces = [r.json["nonce"] for r in posts]
    assert nonces[0] == nonces[1]
    assert "Something went wrong" not in text


@pytest.mark.parametrize("after_effect", [False, True], ids=["lost-request", "lost-answer"])
async def test_503_on_an_instant_post_is_resent_with_the_same_nonce(world: World, after_effect: bool) -> None:
    day = load_hf_day(TODAY)
    world.feeds.days[TODAY] = day[:4]
    await world.start_bot()
    await first_poll_done(world)
    await world.command("watch add", query="upvotes>=0", mode="instant")
    world.fake.fail_next("POST", MESSAGES, 503, times=1, after_effect=after_effect)
    world.feeds.days[TODAY] = day
    await poll(world)
    await world.wait(lambda: len(embed_urls(world.posts())) >= len(day) - 4, timeout=5)
    await settle()
    assert_each_once(embed_urls(world.posts()), urls_of(day[4:]))
    posts = world.fake.requests_matching("POST", MESSAGES)
    assert posts[0].status == 503
    assert posts[1].json["nonce"] == posts[0].json["nonce"]
    assert not db_rows(world, "SELECT 1 FROM deliveries WHERE status != 'sent'")


# --- the gateway -----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["close-4000", "tcp-drop"])
async def test_lost_gateway_is_resumed_and_nothing_is_missed(world: World, how: str) -> None:
    day = load_hf_day(TODAY)
    world.feeds.days[TODAY] = day[:5]
    await world.start_bot()
    await first_poll_done(world)
    await world.command("watch add", query="upvotes>=0", mode="instant")
    identified = world.fake.identify_count
    if how == "close-4000":
        await world.fake.close_gateway(4000)
    else:
        world.fake.drop_gateway()
    # While the socket is down: a channel is created (an event to replay), papers arrive
    # (REST posts do not need the gateway).
    late = world.fake.add_channel(world.guild_id, "late-papers")
    world.feeds.days[TODAY] = day
    await poll(world)
    await world.fake.wait_resumed(1, timeout=10)
    assert world.fake.identify_count == identified  # resumed, not re-identified
    # The replayed CHANNEL_CREATE is known to the bot: a watch can target the new channel.
    added = await world.command("watch add", query="diffusion", channel=late.id)
    assert "added" in reply_text(added), reply_text(added)
    await settle()
    assert_each_once(embed_urls(world.posts()), urls_of(day[5:]))


async def test_invalid_session_makes_the_bot_identify_again(world: World) -> None:
    day = load_hf_day(TODAY)
    world.feeds.days[TODAY] = day[:5]
    await world.start_bot()
    await first_poll_done(world)
    await world.command("watch add", query="upvotes>=0", mode="instant")
    identified = world.fake.identify_count
    await world.fake.invalidate_session(resumable=False)
    await world.fake.wait_identified(identified + 1, timeout=10)
    await world.fake.wait_connected()
    listing = await world.command("watch list", user_id=world.member_id)
    assert "upvotes>=0" in reply_text(listing)
    world.feeds.days[TODAY] = day
    await poll(world)
    await settle()
    assert_each_once(embed_urls(world.posts()), urls_of(day[5:]))


# --- channels that refuse: paused, told once, nothing lost -----------------------------------


def notices(world: World, about_channel: int) -> list[Any]:
    """Bot messages in the guild's system channel (the first channel) about another channel."""
    return [m for m in world.posts(world.channel_id) if f"<#{about_channel}>" in (m.content or "")]


@pytest.mark.parametrize("how", ["forbid-send", "forbid-view", "delete"])
async def test_refusing_channel_pauses_its_watches_and_tells_the_guild_once(world: World, how: str) -> None:
    day = load_hf_day(TODAY)
    watched = world.other_channel_id  # the system channel is world.channel_id
    world.feeds.days[TODAY] = day[:2]
    await world.start_bot()
    await first_poll_done(world)
    await world.command("watch add", query="upvotes>=0", mode="instant", channel=watched)
    await world.command("watch add", query="model*", mode="instant", channel=watched)
    if how == "forbid-send":
        world.fake.forbid_channel(watched)
    elif how == "forbid-view":
        world.fake.forbid_channel(watched, hide=True)
    else:
        world.fake.delete_channel(watched)

    world.feeds.days[TODAY] = day[:7]
    await poll(world)
    await settle()
    # Two more polls with new papers, and the delivery checks: still one notice.
    world.feeds.days[TODAY] = day
    await poll(world)
    world.feeds.set_upvotes(TODAY, day[0]["paper"]["id"], 10_000)
    await poll(world)
    await settle()
    assert len(notices(world, watched)) == 1
    assert embed_urls(world.posts(watched)) == []

    listing = reply_text(await world.command("watch list", user_id=world.member_id))
    assert listing.count("paused") >= 2, listing  # both watches of the channel
    assert world.fake.identify_count == 1  # no crash, no reconnect
    # Nothing is lost: every new paper waits for the channel.
    waiting = db_rows(
        world,
        "SELECT d.paper_id FROM deliveries d JOIN targets t ON t.id = d.target_id "
        "WHERE t.channel_id = ? AND d.status != 'sent'",
        watched,
    )
    assert sorted(HF_PAGE + row[0] for row in waiting) == urls_of(day[2:])
    no_mentions_anywhere(world)

    if how != "delete":
        # Permission back, the watches resumed: everything arrives, once.
        world.fake.allow_channel(watched)
        resumed = await world.command("watch resume", watch=1)
        assert "Resumed" in reply_text(resumed)
        await world.wait(lambda: len(embed_urls(world.posts(watched))) >= len(day) - 2, timeout=5)
        await settle()
        assert_each_once(embed_urls(world.posts(watched)), urls_of(day[2:]))
        assert len(notices(world, watched)) == 1


async def test_deleted_system_channel_pauses_without_a_notice_or_crash(world: World) -> None:
    day = load_hf_day(TODAY)
    world.feeds.days[TODAY] = day[:2]
    await world.start_bot()
    await first_poll_done(world)
    # The watched channel is the guild's system channel, so there is nowhere to tell.
    await world.command("watch add", query="upvotes>=0", mode="instant")
    world.fake.delete_channel(world.channel_id)
    world.feeds.days[TODAY] = day
    await poll(world)
    await settle()
    listing = await world.command("watch list", channel_id=world.other_channel_id)
    assert "paused" in reply_text(listing)
    assert world.posts(world.other_channel_id) == []
    assert world.fake.identify_count == 1


async def test_closed_dms_pause_alerts_until_resumed_and_nothing_is_lost(world: World) -> None:
    day = load_hf_day(TODAY)
    member = world.member_id
    world.feeds.days[TODAY] = day[:2]
    await world.start_bot()
    await first_poll_done(world)
    await world.command("alert add", user_id=member, query="upvotes>=0", mode="instant")
    world.fake.close_dms(member)
    world.feeds.days[TODAY] = day[:7]
    await poll(world)
    await settle()
    listing = reply_text(await world.command("alert list", user_id=member))
    assert "paused" in listing
    dm_posts = len(world.fake.requests_matching("POST", MESSAGES))
    # Paused means paused: a later poll does not knock on the closed DMs again.
    world.feeds.days[TODAY] = day
    await poll(world)
    await settle()
    assert len(world.fake.requests_matching("POST", MESSAGES)) == dm_posts
    assert world.fake.dm_messages(member) == []

    world.fake.open_dms(member)
    await world.command("alert resume", user_id=member)
    await world.wait(lambda: len(embed_urls(world.fake.dm_messages(member))) >= len(day) - 2, timeout=5)
    await settle()
    assert_each_once(embed_urls(world.fake.dm_messages(member)), urls_of(day[2:]))
    assert "paused" not in reply_text(await world.command("alert list", user_id=member))
