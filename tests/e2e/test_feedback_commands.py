"""The reading list and recommendation commands through the real bot and the local Discord."""

from __future__ import annotations

import re
import sqlite3
from typing import Any

import pytest

from tests.conftest import HF_DIR, raw_entries
from tests.e2e.conftest import World, reply_text
from tests.e2e.test_commands import day_stored, flags

pytestmark = pytest.mark.slow

EPHEMERAL = 64
DAY = HF_DIR / "2025-03-17.json"
SAVED_LINE = re.compile(r"^(\d+)\. `([^`]+)` ", re.MULTILINE)
"""The number and the id that start each line of `/paper saved`."""


def saved_ids(text: str) -> list[str]:
    return [arxiv_id for _, arxiv_id in SAVED_LINE.findall(text)]


def line_numbers(text: str) -> list[int]:
    return [int(number) for number, _ in SAVED_LINE.findall(text)]


def button_rows(message: Any) -> list[list[tuple[str, str]]]:
    """(label, custom id) of each button, row by row."""
    return [[(c["label"], c["custom_id"]) for c in row["components"]] for row in message.components]


def saved_in_db(world: World, user_id: int) -> set[str]:
    """The reading list as the database holds it, read with plain sqlite3."""
    with sqlite3.connect(world.db) as conn:
        rows = conn.execute("SELECT paper_id FROM saved_papers WHERE user_id = ?", (user_id,))
        return {row[0] for row in rows}


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
    assert line_numbers(text) == list(range(1, 11))
    message = await listed.wait_reply()
    turned = await world.fake.click_button(message, "pw:saved:next", reader)
    await turned.wait_response()
    second = turned.callback["data"]["content"]
    assert "Page 2/2" in second
    assert saved_ids(second) == newest_first[10:]
    assert line_numbers(second) == [11, 12]  # numbered through the whole list
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


async def test_remove_buttons_take_papers_off_the_reading_list(world: World) -> None:
    await world.start_bot()
    await day_stored(world)
    day = [entry.arxiv_id for entry in raw_entries(DAY)]
    assert len(day) == 12
    reader = world.member_id
    for arxiv_id in day:
        await world.command("paper save", user_id=reader, id=arxiv_id)
    newest_first = list(reversed(day))

    listed = await world.command("paper saved", user_id=reader)
    message = await listed.wait_reply()
    rows = button_rows(message)
    assert len(rows) == 3  # 10 remove buttons in rows of 5, then the paging row
    assert [label for row in rows[:2] for label, _ in row] == [f"✕ {n}" for n in range(1, 11)]
    assert [custom_id for _, custom_id in rows[2]] == ["pw:saved:prev", "pw:saved:next"]
    second = dict(rows[0])["✕ 2"]

    stranger = await world.click(message, second, user_id=world.admin_id)
    assert "yourself" in reply_text(stranger)
    assert saved_in_db(world, reader) == set(day)

    removed = await world.click(message, second, user_id=reader)
    message = await removed.wait_update()
    assert saved_in_db(world, reader) == set(day) - {newest_first[1]}
    page = message.content
    assert f"Removed `{newest_first[1]}`" in page
    assert "11 papers" in page and "Page 1/2" in page
    assert saved_ids(page) == [newest_first[0], *newest_first[2:11]]  # the next ones move up
    assert line_numbers(page) == list(range(1, 11))
    rows = button_rows(message)
    assert [label for row in rows[:2] for label, _ in row] == [f"✕ {n}" for n in range(1, 11)]
    assert dict(rows[0])["✕ 2"] == f"pw:saved:rm:{newest_first[2]}"

    # the last paper of the last page: the page empties, so the one before is shown
    turned = await world.click(message, "pw:saved:next", user_id=reader)
    message = await turned.wait_update()
    assert saved_ids(message.content) == [newest_first[11]]
    assert button_rows(message)[0] == [("✕ 11", f"pw:saved:rm:{newest_first[11]}")]
    emptied = await world.click(message, f"pw:saved:rm:{newest_first[11]}", user_id=reader)
    message = await emptied.wait_update()
    assert newest_first[11] not in saved_in_db(world, reader)
    assert "10 papers" in message.content and "Page" not in message.content
    assert saved_ids(message.content) == [newest_first[0], *newest_first[2:11]]
    rows = button_rows(message)
    assert len(rows) == 2  # one page: no paging row
    assert all(custom_id.startswith("pw:saved:rm:") for row in rows for _, custom_id in row)

    # a paper removed elsewhere: a plain answer, and the page shows the list as it is now
    await world.command("paper unsave", user_id=reader, id=newest_first[0])
    stale = await world.click(message, f"pw:saved:rm:{newest_first[0]}", user_id=reader)
    message = await stale.wait_update()
    (notice,) = await stale.wait_followups()
    assert notice.content == f"`{newest_first[0]}` was no longer on your reading list."
    assert "9 papers" in message.content
    assert saved_ids(message.content) == newest_first[2:11]
    assert saved_in_db(world, reader) == set(newest_first[2:11])


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
