"""Every slash command of docs/commands.md through the real bot and discord.py, with its bad-input paths."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import World, reply_text
from tests.feedserver import load_hf_day

pytestmark = pytest.mark.slow

EPHEMERAL = 64


def flags(record) -> int:
    return int((record.callback.get("data") or {}).get("flags") or 0)


async def test_watch_add_replies_with_recent_matches_and_lists(world: World) -> None:
    await world.start_bot()
    await world.wait(lambda: len(world.feeds.hf_requests()) >= 1)
    # The first poll runs at start; wait for its papers to be stored.
    await world.wait(lambda: "2025-03-17" in str(world.feeds.hf_requests()))
    entries = load_hf_day("2025-03-17")
    expected = [
        e
        for e in entries
        if {"diffusion", "diffusions"}
        & set(re.findall(r"[^\W_]+", (e["paper"]["title"] + " " + e["paper"]["summary"]).lower()))
    ]
    assert expected, "fixture day should contain diffusion papers"
    record = await world.command("watch add", query="diffusion")
    text = reply_text(record)
    assert "added" in text
    assert f"would have matched {len(expected)} papers" in text
    assert flags(record) & EPHEMERAL == 0

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
    await world.wait(lambda: len(world.feeds.hf_requests()) >= 1)
    record = await world.command("watch test", user_id=world.member_id, query="diffusion", days=7)
    assert flags(record) & EPHEMERAL
    assert "matches" in reply_text(record)
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
    assert "Alert" in reply_text(added)
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
    await world.wait(lambda: len(world.feeds.hf_requests()) >= 1)
    first = load_hf_day("2025-03-17")[0]["paper"]
    await world.wait(lambda: True)
    shown = await world.command("paper show", user_id=world.member_id, id=first["id"])
    assert flags(shown) & EPHEMERAL
    embeds = (shown.callback.get("data") or {}).get("embeds") or []
    assert embeds and embeds[0]["url"] == f"https://huggingface.co/papers/{first['id']}"
    unknown = await world.command("paper show", id="2101.00001")
    assert "has not seen" in reply_text(unknown)
    bad = await world.command("paper show", id="not-an-id")
    assert "not an arXiv id" in reply_text(bad)
    search = await world.command("paper search", query="title:diffusion")
    assert flags(search) & EPHEMERAL
    status = await world.command("paperwatch status")
    text = reply_text(status)
    assert "huggingface:2025-03-17" in text
    assert "Papers today" in text
