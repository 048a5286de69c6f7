"""Paper components through the real bot and the local Discord: pick a paper, its panel's buttons,
Next papers, after a restart, from another guild, and within Discord's component limits."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import bibtexparser
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.discord.components.ids import UP, panel_id, pick_id
from tests.e2e.conftest import World
from tests.fakediscord import ButtonStyle, ComponentType
from tests.feedserver import load_hf_day

pytestmark = pytest.mark.slow

ACCENTED = ("José Müller-Søgaard", "Ana Núñez", "François Lefèvre")


def components_of(message: Any) -> list[dict[str, Any]]:
    return [c for row in message.data.get("components") or [] for c in row["components"]]


def select_of(message: Any) -> dict[str, Any]:
    (select,) = [c for c in components_of(message) if c["type"] == ComponentType.STRING_SELECT]
    return select


def button(message: Any, label_start: str) -> dict[str, Any]:
    found = [c for c in components_of(message) if c["type"] == 2 and c["label"].startswith(label_start)]
    assert found, f"no button {label_start!r} in {[c.get('label') for c in components_of(message)]}"
    return found[0]


def urls(messages: list[Any]) -> list[str]:
    return [embed["url"] for message in messages for embed in message.data.get("embeds", [])]


async def query_db(world: World, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{world.db}")
    try:
        async with engine.connect() as conn:
            return [tuple(row) for row in (await conn.execute(text(sql), params)).all()]
    finally:
        await engine.dispose()


async def digest(world: World, *, papers: int = 12, day: str = "2025-03-17") -> list[Any]:
    """Start the bot, watch every paper of a day, post the digest; return its messages."""
    entries = load_hf_day(day)[:papers]
    world.feeds.days["2025-03-17"] = entries
    await world.start_bot()
    await world.wait(lambda: len(world.feeds.hf_requests()) >= 1)
    await asyncio.sleep(0.2)
    await world.command("watch add", query="upvotes>=0")
    before = len(world.posts())
    await world.command("digest now")
    await world.wait(lambda: len(world.posts()) > before)
    await asyncio.sleep(0.3)
    return world.posts()[before:]


async def panel(world: World, message: Any, arxiv_id: str, **who: Any) -> Any:
    record = await world.pick(message, select_of(message)["custom_id"], arxiv_id, **who)
    reply = await record.wait_reply()
    assert reply.ephemeral
    return reply


async def test_pick_opens_a_panel_and_save_dms_the_paper_once(world: World) -> None:
    posts = await digest(world, papers=4)
    message = posts[0]
    select = select_of(message)
    assert select["placeholder"] == "Pick a paper…"
    values = [option["value"] for option in select["options"]]
    assert values == [url.rsplit("/", 1)[1] for url in urls([message])]
    paper = values[1]
    shown = await panel(world, message, paper, user_id=world.member_id)
    assert paper in shown.content
    labels = [c["label"] for c in components_of(shown)]
    assert labels == ["Save", "👍 More like this", "👎 Less like this", "BibTeX"]  # not a manager
    save = button(shown, "Save")["custom_id"]
    first = await world.click(shown, save, user_id=world.member_id)
    updated = await first.wait_update()
    assert "sent to your DMs" in updated.content
    assert button(updated, "Saved")["style"] == ButtonStyle.SUCCESS
    dms = world.fake.dm_messages(world.member_id)
    assert len(dms) == 1 and urls(dms)[0].endswith(paper)
    again = await world.click(updated, save, user_id=world.member_id)
    assert "already on your reading list" in (await again.wait_update()).content
    await asyncio.sleep(0.2)
    assert len(world.fake.dm_messages(world.member_id)) == 1
    saved = await query_db(world, "SELECT paper_id FROM saved_papers WHERE user_id = :u", u=world.member_id)
    assert saved == [(paper,)]


async def test_save_pressed_twice_at_once_dms_once(world: World) -> None:
    posts = await digest(world, papers=3)
    paper = select_of(posts[0])["options"][0]["value"]
    shown = await panel(world, posts[0], paper, user_id=world.member_id)
    save = button(shown, "Save")["custom_id"]
    clicks = await asyncio.gather(*(world.click(shown, save, user_id=world.member_id) for _ in range(2)))
    await asyncio.gather(*(click.wait_update() for click in clicks))
    await asyncio.sleep(0.3)
    assert len(world.fake.dm_messages(world.member_id)) == 1


async def save_from_panel(world: World, message: Any, paper: str) -> str:
    """A member saves `paper` from `message`'s panel; the panel's note afterwards."""
    shown = await panel(world, message, paper, user_id=world.member_id)
    click = await world.click(shown, button(shown, "Save")["custom_id"], user_id=world.member_id)
    return str((await click.wait_update()).content)


async def test_a_saved_papers_dm_goes_through_the_outbox_and_is_retried(world: World) -> None:
    posts = await digest(world, papers=3)
    paper = select_of(posts[0])["options"][0]["value"]
    world.fake.fail_next("POST", r"/channels/\d+/messages", 503, times=1)
    note = await save_from_panel(world, posts[0], paper)
    assert "will reach your DMs shortly" in note
    assert world.fake.dm_messages(world.member_id) == []
    rows = await query_db(
        world, "SELECT mode, status FROM deliveries WHERE paper_id = :p AND watch_id IS NULL", p=paper
    )
    assert rows == [("saved", "claimed")]  # kept, under its nonce, for the retry
    assert world.app is not None and world.app.timetable is not None
    await world.app.timetable.check()  # the outbox's regular round
    dms = world.fake.dm_messages(world.member_id)
    assert (len(dms) == 1 and urls(dms) == [f"https://huggingface.co/papers/{paper}"]) or urls(dms)[
        0
    ].endswith(paper)
    assert dms[0].data["content"].startswith("📌 Saved to your reading list")
    assert select_of(dms[0])["options"][0]["value"] == paper  # a paper message like any other
    await world.app.timetable.check()
    assert len(world.fake.dm_messages(world.member_id)) == 1


async def test_saving_again_after_unsave_does_not_send_the_paper_twice(world: World) -> None:
    posts = await digest(world, papers=3)
    paper = select_of(posts[0])["options"][0]["value"]
    assert "sent to your DMs" in await save_from_panel(world, posts[0], paper)
    await world.command("paper unsave", user_id=world.member_id, id=paper)
    note = await save_from_panel(world, posts[0], paper)
    assert "in your DMs already" in note
    await asyncio.sleep(0.2)
    assert len(world.fake.dm_messages(world.member_id)) == 1


async def test_saving_with_closed_dms_keeps_the_paper_and_says_so(world: World) -> None:
    posts = await digest(world, papers=3)
    paper = select_of(posts[0])["options"][0]["value"]
    world.fake.close_dms(world.member_id)
    note = await save_from_panel(world, posts[0], paper)
    assert "they are closed" in note
    saved = await query_db(world, "SELECT paper_id FROM saved_papers WHERE user_id = :u", u=world.member_id)
    assert saved == [(paper,)]
    assert world.fake.dm_messages(world.member_id) == []


async def test_thumbs_up_twice_takes_the_vote_back(world: World) -> None:
    posts = await digest(world, papers=3)
    paper = select_of(posts[0])["options"][0]["value"]
    shown = await panel(world, posts[0], paper)
    up = button(shown, "👍")["custom_id"]
    assert button(shown, "👍")["style"] == ButtonStyle.SECONDARY
    pressed = await (await world.click(shown, up)).wait_update()
    assert button(pressed, "👍")["style"] == ButtonStyle.SUCCESS
    votes = await query_db(
        world, "SELECT value, channel_id FROM feedback WHERE user_id = :u", u=world.admin_id
    )
    assert votes == [(1, world.channel_id)]
    released = await (await world.click(pressed, up)).wait_update()
    assert button(released, "👍")["style"] == ButtonStyle.SECONDARY
    assert "taken back" in released.content
    assert await query_db(world, "SELECT value FROM feedback WHERE user_id = :u", u=world.admin_id) == []
    down = await (await world.click(released, button(released, "👎")["custom_id"])).wait_update()
    assert button(down, "👎")["style"] == ButtonStyle.DANGER
    assert await query_db(world, "SELECT value FROM feedback WHERE user_id = :u", u=world.admin_id) == [(-1,)]


async def test_bibtex_of_a_paper_with_accented_authors_parses_back(world: World) -> None:
    day = copy.deepcopy(load_hf_day("2025-03-17")[:3])
    day[0]["paper"]["authors"] = [{"name": name} for name in ACCENTED]
    world.feeds.days["2025-03-17"] = day
    await world.start_bot()
    await world.wait(lambda: len(world.feeds.hf_requests()) >= 1)
    await asyncio.sleep(0.2)
    await world.command("watch add", query="upvotes>=0")
    await world.command("digest now")
    await world.wait(lambda: len(world.posts()) >= 1)
    paper = day[0]["paper"]["id"]
    shown = await panel(world, world.posts()[0], paper)
    record = await world.click(shown, button(shown, "BibTeX")["custom_id"])
    reply = await record.wait_reply()
    assert reply.ephemeral
    body = reply.content
    assert body.startswith("```bibtex\n") and body.endswith("\n```")
    parsed = bibtexparser.loads(body.removeprefix("```bibtex\n").removesuffix("\n```"))
    (entry,) = parsed.entries
    assert entry["ENTRYTYPE"] == "misc"
    assert entry["eprint"] == paper
    assert entry["archiveprefix"] == "arXiv"
    authors = bibtexparser.customization.convert_to_unicode(dict(entry))["author"]
    for name in ACCENTED:
        assert name.split()[-1] in authors
    assert "\\" in entry["author"]  # the accents are written as TeX


async def test_next_papers_clicked_twice_at_once_posts_the_page_once(world: World) -> None:
    world.extra["PAPERWATCH_DIGEST__MAX_PAPERS"] = "4"
    posts = await digest(world, papers=12)
    assert len(posts) == 1 and "and 8 more" in posts[0].content
    next_button = button(posts[0], "Next papers")
    clicks = await asyncio.gather(
        world.click(posts[0], next_button["custom_id"]),
        world.click(posts[0], next_button["custom_id"], user_id=world.member_id),
    )
    answers = []
    for click in clicks:
        await click.wait_reply()
        await click.wait_for(lambda r: "Posted" in r.text or "already" in r.text)
        answers.append(click.text)
    await asyncio.sleep(0.3)
    later = world.posts()[1:]
    assert len(later) == 1  # one page, posted once
    assert len(urls(later)) == 4 and not set(urls(later)) & set(urls(posts))
    assert sorted("already" in answer for answer in answers) == [False, True]
    link = f"/channels/{world.guild_id}/{world.channel_id}/{later[0].id}"
    assert all(link in answer for answer in answers)
    # the page says what still waits and pages on by itself
    assert "and 4 more" in later[0].content
    third = await world.click(later[0], button(later[0], "Next papers")["custom_id"])
    await third.wait_for(lambda r: "Posted" in r.text)
    await asyncio.sleep(0.2)
    assert len(urls(world.posts())) == 12
    assert "Next papers" not in [c.get("label") for c in components_of(world.posts()[-1])]


async def test_components_of_a_message_posted_before_a_restart_still_answer(world: World) -> None:
    world.extra["PAPERWATCH_DIGEST__MAX_PAPERS"] = "3"
    posts = await digest(world, papers=6)
    await world.stop_bot()
    await world.start_bot()
    paper = select_of(posts[0])["options"][2]["value"]
    shown = await panel(world, posts[0], paper)
    pressed = await (await world.click(shown, button(shown, "👍")["custom_id"])).wait_update()
    assert button(pressed, "👍")["style"] == ButtonStyle.SUCCESS
    record = await world.click(posts[0], button(posts[0], "Next papers")["custom_id"])
    await record.wait_for(lambda r: "Posted the next 3 papers" in r.text)


async def test_watch_similar_papers_for_managers_only(world: World) -> None:
    posts = await digest(world, papers=4)
    paper = select_of(posts[0])["options"][0]["value"]
    shown = await panel(world, posts[0], paper)
    like = button(shown, "Watch similar papers")["custom_id"]
    record = await world.click(shown, like)
    await record.wait_for(lambda r: "added" in r.text)
    rows = await query_db(world, "SELECT query FROM watches ORDER BY id")
    assert rows[-1] == (f"like:{paper}",)
    again = await world.click(shown, like)
    await again.wait_for(lambda r: "already watches" in r.text)
    assert len(await query_db(world, "SELECT id FROM watches")) == 2
    # a member without Manage Channels is not offered the button, and is refused if they forge it
    theirs = await panel(world, posts[0], paper, user_id=world.member_id)
    assert "Watch similar papers" not in [c["label"] for c in components_of(theirs)]
    forged = await world.click(shown, like, user_id=world.member_id)
    await forged.wait_for(lambda r: "Manage Channels" in r.text)
    assert len(await query_db(world, "SELECT id FROM watches")) == 2


async def test_a_click_from_another_guild_or_on_a_deleted_paper_is_refused_plainly(world: World) -> None:
    posts = await digest(world, papers=3)
    paper = select_of(posts[0])["options"][0]["value"]
    target = int(select_of(posts[0])["custom_id"].split(":")[-1])
    other = world.fake.add_guild("Elsewhere", channels=("general",))
    world.fake.add_member(other.id, user_id=world.member_id)
    # the same components in a message of the other guild, as a forged client could send them
    up = {"type": 2, "style": 2, "label": "👍", "custom_id": panel_id(UP, target, paper)}
    copied = await post_as_bot(
        world, other.channel_ids[0], posts[0].data["components"] + [{"type": 1, "components": [up]}]
    )
    record = await world.pick(copied, pick_id(target), paper, user_id=world.member_id)
    reply = await record.wait_reply()
    assert reply.ephemeral and "cannot act on this message" in reply.content
    assert components_of(reply) == []
    forged = await world.click(copied, up["custom_id"], user_id=world.member_id)
    assert "cannot act on this message" in (await forged.wait_reply()).content
    assert await query_db(world, "SELECT value FROM feedback") == []
    # a paper deleted since
    engine = create_async_engine(f"sqlite+aiosqlite:///{world.db}")
    async with engine.begin() as conn:
        await conn.execute(text("PRAGMA foreign_keys = ON"))
        await conn.execute(text("DELETE FROM papers WHERE arxiv_id = :p"), {"p": paper})
    await engine.dispose()
    gone = await world.pick(posts[0], select_of(posts[0])["custom_id"], paper)
    assert "no longer stored" in (await gone.wait_reply()).content


async def post_as_bot(world: World, channel_id: int, components: list[dict[str, Any]]) -> Any:
    async with httpx.AsyncClient(headers={"Authorization": f"Bot {world.fake.token}"}) as http:
        answer = await http.post(
            f"{world.fake.api_base}/channels/{channel_id}/messages",
            json={"content": "copy", "components": components},
        )
    assert answer.status_code == 200, answer.text
    return world.fake.message(int(answer.json()["id"]))


async def test_a_ten_paper_message_stays_within_component_limits(world: World) -> None:
    world.extra["PAPERWATCH_DIGEST__MAX_PAPERS"] = "10"
    day = copy.deepcopy(load_hf_day("2025-09-30")[:12])
    for entry in day:
        entry["paper"]["title"] = (entry["paper"]["title"] + " and more words" * 10)[:104]
    world.feeds.days["2025-03-17"] = day
    await world.start_bot()
    await world.wait(lambda: len(world.feeds.hf_requests()) >= 1)
    await asyncio.sleep(0.2)
    await world.command("watch add", query="upvotes>=0")
    await world.command("digest now")
    await world.wait(lambda: len(world.posts()) >= 1)
    await asyncio.sleep(0.3)
    (message,) = world.posts()
    assert len(message.data["embeds"]) == 10
    assert world.fake.failed_requests == []  # the local Discord refuses what Discord would (400)
    rows = message.data["components"]
    assert len(rows) == 2  # the select, then Next papers
    select = select_of(message)
    assert len(select["options"]) == 10
    assert all(len(option["label"]) <= 100 and option["label"].endswith("…") for option in select["options"])
    assert [option["value"] for option in select["options"]] == [u.rsplit("/", 1)[1] for u in urls([message])]
    assert all(len(c["custom_id"]) <= 100 for c in components_of(message))
    assert [c["label"] for c in rows[1]["components"]] == ["Next papers"]


async def test_a_dm_alert_has_the_picker_and_its_panel_works_in_the_dm(world: World) -> None:
    world.feeds.days["2025-03-17"] = load_hf_day("2025-03-17")[:3]
    await world.start_bot()
    await world.wait(lambda: len(world.feeds.hf_requests()) >= 1)
    await asyncio.sleep(0.2)
    await world.command("alert add", user_id=world.member_id, query="upvotes>=0", mode="instant")
    day = load_hf_day("2025-03-17")
    world.feeds.days["2025-03-17"] = day[:5]
    world.clock.advance(minutes=30)
    assert world.app is not None and world.app.timetable is not None
    await world.app.timetable.poll_huggingface()
    await world.wait(lambda: len(world.fake.dm_messages(world.member_id)) >= 1)
    (alert,) = world.fake.dm_messages(world.member_id)
    paper = select_of(alert)["options"][0]["value"]
    shown = await panel(world, alert, paper, user_id=world.member_id)
    assert "Watch similar papers" not in [c["label"] for c in components_of(shown)]  # no channel here
    pressed = await (
        await world.click(shown, button(shown, "👎")["custom_id"], user_id=world.member_id)
    ).wait_update()
    assert button(pressed, "👎")["style"] == ButtonStyle.DANGER
    votes = await query_db(
        world, "SELECT value, channel_id FROM feedback WHERE user_id = :u", u=world.member_id
    )
    assert votes == [(-1, None)]


async def test_clicks_are_paced_per_person(world: World) -> None:
    world.extra["PAPERWATCH_LIMITS__LOOKUP_COOLDOWN"] = "40"  # clicks: one every 10 s per person
    posts = await digest(world, papers=3)
    paper = select_of(posts[0])["options"][0]["value"]
    shown = await panel(world, posts[0], paper)
    up = button(shown, "👍")["custom_id"]
    refused = await world.click(shown, up)
    assert "Slow down a little" in (await refused.wait_reply()).content
    assert await query_db(world, "SELECT value FROM feedback") == []
    # someone else is not held back by the first person's clicks
    theirs = await panel(world, posts[0], paper, user_id=world.member_id)
    assert button(theirs, "👍")
