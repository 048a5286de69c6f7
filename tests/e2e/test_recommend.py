"""Recommended for you, end to end: saves, /alert recommend on, a poll, and the DM digest, once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from bot.discord.embeds import escape_text
from tests.e2e.conftest import World, reply_text
from tests.feedserver import load_hf_day

pytestmark = pytest.mark.slow

SAVED = ("2509.24006", "2509.24695", "2509.25161")
"""Three papers on diffusion models (sparse attention in diffusion transformers, video diffusion)."""


def embeds_of(messages) -> list[dict]:
    return [embed for message in messages for embed in message.data.get("embeds", [])]


async def test_saves_then_recommend_on_then_a_poll_bring_one_dm_digest_with_why_lines(world: World) -> None:
    store = load_hf_day("2025-09-30")
    world.feeds.days["2025-03-17"] = store
    await world.start_bot()
    await world.wait(lambda: len(world.feeds.hf_requests()) >= 1)
    user = world.member_id
    await asyncio.sleep(0.5)  # the first poll's papers are stored
    for arxiv_id in SAVED:
        record = await world.command("paper save", user_id=user, id=arxiv_id)
        assert "Saved" in reply_text(record), reply_text(record)
    answer = reply_text(await world.command("alert recommend on", user_id=user))
    assert "on" in answer.lower()
    # The next poll brings the day's papers.
    world.clock.set(datetime(2025, 3, 17, 8, 30, tzinfo=UTC))
    new_day = load_hf_day("2025-03-17")
    world.feeds.days["2025-03-17"] = store + new_day
    assert world.app is not None and world.app.timetable is not None
    await world.app.timetable.poll_huggingface()
    await asyncio.sleep(0.3)
    assert world.fake.dm_messages(user) == []  # nothing before the DM schedule (09:00 UTC)

    world.clock.set(datetime(2025, 3, 17, 9, 0, 1, tzinfo=UTC))
    await world.wait(lambda: len(world.fake.dm_messages(user)) >= 1, timeout=20)
    await asyncio.sleep(0.5)
    dms = world.fake.dm_messages(user)
    assert len(dms) == 1
    assert "Recommended for you" in dms[0].content
    embeds = embeds_of(dms)
    assert 1 <= len(embeds) <= 5  # recommend_per_day defaults to 5
    urls = [e["url"] for e in embeds]
    assert len(set(urls)) == len(urls)
    assert not any(u.endswith(SAVED) for u in urls)  # never a paper they saved
    assert {u.rsplit("/", 1)[1] for u in urls} & {p["paper"]["id"] for p in new_day}  # the poll's papers
    titles = {p["paper"]["id"]: p["paper"]["title"] for p in store}
    saved_titles = [escape_text(" ".join(titles[i].split()))[:40] for i in SAVED]
    for embed in embeds:
        why = [f["value"] for f in embed["fields"] if f["name"] == "Why"]
        assert len(why) == 1 and why[0].startswith("close to ")
        assert any(t in why[0] for t in saved_titles), why[0]
        assert embed["footer"]["text"].startswith("recommended for you")

    # Later checks and the next day's digest send nothing again: no new papers, none twice.
    world.clock.set(datetime(2025, 3, 18, 9, 0, 1, tzinfo=UTC))
    await asyncio.sleep(1.0)
    assert len(world.fake.dm_messages(user)) == 1
