"""Every slash command of docs/commands.md through the real bot and discord.py, with its bad-input paths."""

from __future__ import annotations

import re
import sqlite3
from datetime import timedelta

import pytest

from tests.conftest import HF_DIR, RawEntry, expected_matches, raw_entries, spec_stem, spec_words
from tests.e2e.conftest import START, World, reply_text

pytestmark = pytest.mark.slow

EPHEMERAL = 64
DAY = HF_DIR / "2025-03-17.json"
"""The fixture day the local feed server serves; the bot's first poll stores it."""
LINKED = re.compile(r"https://huggingface\.co/papers/([\w./-]+)")
INLINE_CODE = re.compile(r"(`+)([\s\S]*?[^`])\1(?!`)")
"""How Discord's Markdown finds inline code: a run of backticks, text, the same run again."""
TRICKY_QUERIES = ["diffusion`", "d``````", "a`b OR ``c``", "`x` ~~strike~~ ||spoil|| **bold** @everyone"]
"""Queries that parse, with a backtick at the end, only backticks after the first letter, runs of them."""


def flags(record) -> int:
    return int((record.callback.get("data") or {}).get("flags") or 0)


def stored_ids(world: World) -> set[str]:
    """The arXiv ids in the bot's database, read with plain sqlite3."""
    if not world.db.exists():
        return set()
    with sqlite3.connect(world.db) as conn:
        try:
            return {row[0] for row in conn.execute("SELECT arxiv_id FROM papers")}
        except sqlite3.OperationalError:  # not migrated yet
            return set()


async def day_stored(world: World) -> None:
    """Wait until every paper of the fixture day is in the database."""
    day = {e.arxiv_id for e in raw_entries(DAY)}
    await world.wait(lambda: day <= stored_ids(world), timeout=10)


def linked_ids(text: str) -> list[str]:
    return LINKED.findall(text)


def by_upvotes(ids: list[str]) -> list[str]:
    entries = {e.arxiv_id: e for e in raw_entries(DAY)}
    return sorted(ids, key=lambda i: (-entries[i].upvotes, i))


def title_has(word: str, entry: RawEntry) -> bool:
    return spec_stem(word) in {spec_stem(w) for w in spec_words(entry.title)}


def shown_query(line: str, template: str) -> str:
    """The one query a reply line quotes, once the line is checked to hold exactly one code span
    and to start as `template` does, with {} where the span is."""
    spans = INLINE_CODE.findall(line)
    assert len(spans) == 1, line
    assert INLINE_CODE.sub("{}", line).startswith(template), line
    return spans[0][1].replace("\u02cb", "`")


async def test_watch_add_replies_with_recent_matches_and_lists(world: World) -> None:
    await world.start_bot()
    await day_stored(world)
    expected = expected_matches("diffusion", DAY)
    assert expected, "the fixture day has diffusion papers"
    record = await world.command("watch add", query="diffusion")
    text = reply_text(record)
    # the default schedule is 09:00 UTC every day, and the bot's clock is 07:00 UTC
    nine = START.replace(hour=9) + timedelta(days=START.hour >= 9)
    first, *listed = text.split("\n")
    assert first == (
        f"Watch #1 `diffusion` added to <#{world.channel_id}> for its digest "
        f"(next <t:{int(nine.timestamp())}:R>); "
        f"in the last 7 days it would have matched {len(expected)} papers:"
    )
    assert len(listed) == min(len(expected), 5)
    assert linked_ids(text) == by_upvotes(expected)[:5]
    assert flags(record) & EPHEMERAL == 0
    nothing = await world.command("watch add", query="zyzzyvaquux", mode="instant")
    assert reply_text(nothing) == (
        f"Watch #2 `zyzzyvaquux` added to <#{world.channel_id}>, posting papers as soon as they appear; "
        "in the last 7 days it would have matched no paper."
    )

    listing = await world.command("watch list", user_id=world.member_id)
    assert "diffusion" in reply_text(listing)
    assert "#1" in reply_text(listing)


async def test_watch_add_bad_query_names_the_position(world: World) -> None:
    await world.start_bot()
    record = await world.command("watch add", query='"knowledge distillation OR x')
    text = reply_text(record)
    assert flags(record) & EPHEMERAL
    assert "position 0" in text


async def test_watch_add_needs_manage_channels(world: World) -> None:
    await world.start_bot()
    record = await world.command("watch add", user_id=world.member_id, query="diffusion")
    assert flags(record) & EPHEMERAL
    assert "Manage Channels" in reply_text(record)
    listing = await world.command("watch list")
    assert "No watches" in reply_text(listing)


async def test_watch_remove_pause_resume_and_autocomplete(world: World) -> None:
    await world.start_bot()
    await world.command("watch add", query="diffusion")
    await world.command("watch add", query="agent*", channel=world.other_channel_id)
    choices = await world.fake.autocomplete(
        world.guild_id, world.channel_id, world.admin_id, "watch remove", options={"watch": ""}
    )
    labels = [c["name"] for c in choices]
    assert labels[0].startswith("#1 diffusion")  # this channel's watch first
    assert any(label.startswith("#2 agent*") for label in labels)

    paused = await world.command("watch pause", watch=1)
    assert "Paused watch #1" in reply_text(paused)
    listing = await world.command("watch list")
    assert "paused" in reply_text(listing)
    resumed = await world.command("watch resume", watch=1)
    assert "Resumed watch #1" in reply_text(resumed)
    removed = await world.command("watch remove", watch=2)
    assert "Removed watch #2" in reply_text(removed)
    missing = await world.command("watch remove", watch=2)
    assert flags(missing) & EPHEMERAL
    assert "no watch #2" in reply_text(missing)


async def test_watch_test_is_ephemeral(world: World) -> None:
    await world.start_bot()
    await day_stored(world)
    expected = expected_matches("diffusion", DAY)
    record = await world.command("watch test", user_id=world.member_id, query="diffusion", days=7)
    assert flags(record) & EPHEMERAL
    text = reply_text(record)
    assert f"matches {len(expected)} papers" in text
    assert linked_ids(text) == by_upvotes(expected)[:10]
    assert expected_matches("zyzzyvaquux", DAY) == []
    none = await world.command("watch test", user_id=world.member_id, query="zyzzyvaquux")
    assert "matches no paper" in reply_text(none)
    assert linked_ids(reply_text(none)) == []
    bad = await world.command("watch test", query="a OR")
    assert "position 4" in reply_text(bad)


async def test_digest_set_show_pause_resume_and_bad_timezone(world: World) -> None:
    await world.start_bot()
    record = await world.command("digest set", time="08:30", timezone="Europe/Paris", days="mon-fri")
    text = reply_text(record)
    assert "08:30 Europe/Paris" in text
    assert "Mon–Fri" in text
    shown = await world.command("digest show", user_id=world.member_id)
    assert "08:30 Europe/Paris" in reply_text(shown)
    bad = await world.command("digest set", time="08:30", timezone="Mars/Olympus")
    assert flags(bad) & EPHEMERAL
    assert "not a known IANA timezone" in reply_text(bad)
    bad_time = await world.command("digest set", time="25:00", timezone="UTC")
    assert "not a time of day" in reply_text(bad_time)
    refused = await world.command("digest pause", user_id=world.member_id)
    assert "Manage Channels" in reply_text(refused)
    paused = await world.command("digest pause")
    assert "paused" in reply_text(paused)
    resumed = await world.command("digest resume")
    assert "Next digest" in reply_text(resumed)
    choices = await world.fake.autocomplete(
        world.guild_id,
        world.channel_id,
        world.admin_id,
        "digest set",
        options={"time": "09:00", "timezone": "paris"},
        focused="timezone",
    )
    assert [c["value"] for c in choices] == ["Europe/Paris"]


async def test_alerts_add_list_schedule_remove(world: World) -> None:
    await world.start_bot()
    added = await world.command("alert add", user_id=world.member_id, query="agent*", mode="instant")
    assert flags(added) & EPHEMERAL
    assert reply_text(added).startswith(
        "Alert #1 `agent*` added by DM as soon as papers appear; in the last 7 days it would have matched"
    )
    listing = await world.command("alert list", user_id=world.member_id)
    assert "agent*" in reply_text(listing)
    # Another user sees nothing of it, and cannot remove it.
    theirs = await world.command("alert list", user_id=world.admin_id)
    assert "no alerts" in reply_text(theirs)
    foreign = await world.command("alert remove", user_id=world.admin_id, alert=1)
    missing = await world.command("alert remove", user_id=world.admin_id, alert=999)
    assert reply_text(foreign) == reply_text(missing).replace("#999", "#1")
    sched = await world.command(
        "alert schedule", user_id=world.member_id, time="07:15", timezone="Asia/Tokyo"
    )
    assert "07:15 Asia/Tokyo" in reply_text(sched)
    removed = await world.command("alert remove", user_id=world.member_id, alert=1)
    assert "Removed alert #1" in reply_text(removed)


async def test_paper_search_show_and_status(world: World) -> None:
    await world.start_bot()
    await day_stored(world)
    first = raw_entries(DAY)[0]
    shown = await world.command("paper show", user_id=world.member_id, id=first.arxiv_id)
    assert flags(shown) & EPHEMERAL
    embeds = (shown.callback.get("data") or {}).get("embeds") or []
    assert embeds and embeds[0]["url"] == f"https://huggingface.co/papers/{first.arxiv_id}"
    assert embeds[0]["title"].startswith(first.title[:40])
    unknown = await world.command("paper show", id="2101.00001")
    assert "has not seen" in reply_text(unknown)
    bad = await world.command("paper show", id="not-an-id")
    assert "not an arXiv id" in reply_text(bad)
    in_titles = [e.arxiv_id for e in raw_entries(DAY) if title_has("diffusion", e)]
    assert 0 < len(in_titles) < len(expected_matches("diffusion", DAY))  # title: narrows the search
    search = await world.command("paper search", query="title:diffusion")
    assert flags(search) & EPHEMERAL
    assert f"{len(in_titles)} papers match" in reply_text(search)
    assert sorted(linked_ids(reply_text(search))) == sorted(in_titles)
    status = await world.command("paperwatch status")
    text = reply_text(status)
    assert "huggingface:2025-03-17" in text
    assert "Papers today" in text


async def test_queries_with_backticks_stay_inside_their_code_span(world: World) -> None:
    await world.start_bot()
    for number, query in enumerate(TRICKY_QUERIES, 1):
        added = reply_text(await world.command("watch add", query=query)).split("\n")[0]
        template = f"Watch #{number} {{}} added to <#{world.channel_id}> for its digest (next <t:"
        assert shown_query(added, template) == query
        tested = reply_text(await world.command("watch test", query=query)).split("\n")[0]
        assert shown_query(tested, "{} matches ") == query
    listing = reply_text(await world.command("watch list")).split("\n")[1:]
    for number, (query, line) in enumerate(zip(TRICKY_QUERIES, listing, strict=True), 1):
        assert shown_query(line, f"**#{number}** {{}} · digest · ") == query
    alert = reply_text(await world.command("alert add", user_id=world.member_id, query=TRICKY_QUERIES[2]))
    assert shown_query(alert.split("\n")[0], "Alert #5 {} added in your DM digest; ") == TRICKY_QUERIES[2]
    gone = reply_text(await world.command("alert remove", user_id=world.member_id, alert=5))
    assert shown_query(gone, "Removed alert #5 {}.") == TRICKY_QUERIES[2]
    removed = reply_text(await world.command("watch remove", watch=4))
    assert shown_query(removed, "Removed watch #4 {}.") == TRICKY_QUERIES[3]


async def test_read_only_commands_are_paced_in_their_own_bucket(world: World) -> None:
    world.extra["PAPERWATCH_LIMITS__LOOKUP_COOLDOWN"] = "30"
    await world.start_bot()
    assert "Slow down" not in reply_text(await world.command("paper search", query="diffusion"))
    again = await world.command("watch test", query="agents")
    assert flags(again) & EPHEMERAL
    assert reply_text(again) == "Slow down a little: you can use `/watch test` again in 30 s."
    # reading does not hold back a change
    assert "added" in reply_text(await world.command("watch add", query="diffusion"))


async def test_cooldown_says_which_command_and_whole_seconds(world: World) -> None:
    world.extra["PAPERWATCH_LIMITS__COMMAND_COOLDOWN"] = "30"
    await world.start_bot()
    assert "added" in reply_text(await world.command("watch add", query="diffusion"))
    again = await world.command("watch add", query="agents")
    assert flags(again) & EPHEMERAL
    assert reply_text(again) == "Slow down a little: you can use `/watch add` again in 30 s."
    pause = await world.command("watch pause", watch=1)
    assert reply_text(pause) == "Slow down a little: you can use `/watch pause` again in 30 s."
