"""The reading list and recommendation commands through the real bot and the local Discord."""

from __future__ import annotations

import re

import pytest

from tests.conftest import HF_DIR, raw_entries
from tests.e2e.conftest import World, reply_text
from tests.e2e.test_commands import day_stored, flags

pytestmark = pytest.mark.slow

EPHEMERAL = 64
DAY = HF_DIR / "2025-03-17.json"
SAVED_ID = re.compile(r"^• `([^`]+)` ", re.MULTILINE)
"""The id that starts each line of `/paper saved`."""


def saved_ids(text: str) -> list[str]:
    return SAVED_ID.findall(text)


async def test_save_list_and_unsave_a_reading_list(world: World) -> None:
    await world.start_bot()
    await day_stored(world)
    day = [entry.arxiv_id for entry in raw_entries(DAY)]
    assert len(day) > 10  # enough for two pages
    reader = world.member_id

    first = await world.command("paper save", user_id=reader, id=day[0])
    assert flags(first) & EPHEMERAL
    assert "Saved to your reading list" in reply_text(first)
    assert f"/{day[0]}" in reply_text(first)  # the paper's link
    again = await world.command("paper save", user_id=reader, id=f"arXiv:{day[0]}v1")
    assert reply_text(again) == f"`{day[0]}` is already on your reading list."
    unknown = await world.command("paper save", user_id=reader, id="2101.00001")
    assert "has not seen `2101.00001`" in reply_text(unknown)
    for arxiv_id in day[1:]:
        await world.command("paper save", user_id=reader, id=arxiv_id)

    listed = await world.command("paper saved", user_id=reader)
    assert flags(listed) & EPHEMERAL
    text = reply_text(listed)
    newest_first = list(reversed(day))
    assert f"{len(day)} papers" in text and "Page 1/2" in text
    assert saved_ids(text) == newest_first[:10]
    message = await listed.wait_reply()
    turned = await world.fake.click_button(message, "pw:saved:next", reader)
    await turned.wait_response()
    second = turned.callback["data"]["content"]
    assert "Page 2/2" in second
    assert saved_ids(second) == newest_first[10:]
    stranger = await world.fake.click_button(message, "pw:saved:prev", world.admin_id)
    await stranger.wait_response()
    assert "yourself" in (stranger.callback.get("data") or {}).get("content", "")

    removed = await world.command("paper unsave", user_id=reader, id=day[0])
    assert "Removed from your reading list" in reply_text(removed)
    gone = await world.command("paper unsave", user_id=reader, id=day[0])
    assert f"`{day[0]}` is not on your reading list" in reply_text(gone)
    listed = await world.command("paper saved", user_id=reader)
    assert day[0] not in saved_ids(reply_text(listed))
    assert f"{len(day) - 1} papers" in reply_text(listed)
    others = await world.command("paper saved", user_id=world.admin_id)
    assert "Your reading list is empty" in reply_text(others)


async def test_recommend_on_waits_for_three_liked_or_saved_papers(world: World) -> None:
    await world.start_bot()
    await day_stored(world)
    day = [entry.arxiv_id for entry in raw_entries(DAY)]
    reader = world.member_id

    waiting = await world.command("alert recommend on", user_id=reader)
    assert flags(waiting) & EPHEMERAL
    assert "need 3 more liked or saved papers (you have 0)" in reply_text(waiting)
    assert "nothing is sent until then" in reply_text(waiting)
    for arxiv_id in day[:3]:
        await world.command("paper save", user_id=reader, id=arxiv_id)
    on = await world.command("alert recommend on", user_id=reader, per_day=7)
    assert reply_text(on) == (
        "Recommendations are on: up to 7 papers a day, in your DM digest, "
        "learnt from 3 papers you liked or saved."
    )
    listed = await world.command("alert list", user_id=reader)
    assert "You have no alerts" in reply_text(listed)
    assert "Recommendations are on: up to 7 papers a day" in reply_text(listed)

    off = await world.command("alert recommend off", user_id=reader)
    assert "Recommendations are off" in reply_text(off)
    listed = await world.command("alert list", user_id=reader)
    assert "Recommendations are off" in reply_text(listed)
    elsewhere = await world.command("alert list", user_id=world.admin_id)
    assert "Recommendations are off" in reply_text(elsewhere)
