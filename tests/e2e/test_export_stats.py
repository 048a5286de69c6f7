"""`/paper export` and `/paperwatch stats` through the real bot and the local Discord's attachments."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import bibtexparser
import numpy as np
import pytest
from matplotlib import image as mpimg
from pylatexenc.latex2text import LatexNodes2Text

from tests.conftest import HF_DIR, expected_matches, raw_entries
from tests.e2e.conftest import World, reply_text
from tests.e2e.test_commands import day_stored, stored_ids
from tests.feedserver import load_hf_day

pytestmark = pytest.mark.slow

DAY = HF_DIR / "2025-03-17.json"
ACCENTED = "2406.13663"
"""A real HF entry (2024-06-21) with an accented author, Raquel Fernández, served on the test day."""


def hf_entry(day: str, arxiv_id: str) -> dict:
    return next(item for item in load_hf_day(day) if item["paper"]["id"] == arxiv_id)


def last_first(name: str) -> str:
    """The BibTeX form of a plain "First Last" name."""
    *first, last = name.split()
    return f"{last}, {' '.join(first)}"


async def test_export_the_reading_list_as_bibtex_and_csv(world: World) -> None:
    accented = hf_entry("2024-06-21", ACCENTED)
    world.feeds.days["2025-03-17"] = [*load_hf_day("2025-03-17"), accented]
    await world.start_bot()
    await day_stored(world)
    await world.wait(lambda: ACCENTED in stored_ids(world))
    reader = world.member_id

    empty = await world.command("paper export", user_id=reader)
    await empty.wait_reply()
    assert "Your reading list is empty" in empty.text
    assert empty.files == [] and empty.ephemeral

    day = [entry.arxiv_id for entry in raw_entries(DAY)][:3]
    for arxiv_id in [*day, ACCENTED]:
        await world.command("paper save", user_id=reader, id=arxiv_id)
    newest_first = [ACCENTED, *reversed(day)]

    record = await world.command("paper export", user_id=reader)
    await record.wait_reply()
    assert record.ephemeral
    assert "Your reading list as BibTeX: 4 papers." in record.text
    (upload,) = record.files
    assert upload.filename == "reading-list.bib"
    assert upload.data.isascii()  # accents written as TeX
    entries = bibtexparser.loads(upload.text).entries
    assert [e["eprint"] for e in entries] == newest_first
    assert len({e["ID"] for e in entries}) == 4
    first = entries[0]
    assert first["ENTRYTYPE"] == "misc" and first["archiveprefix"] == "arXiv"
    assert first["url"] == f"https://arxiv.org/abs/{ACCENTED}"
    decode = LatexNodes2Text().latex_to_text
    authors = [decode(a) for a in first["author"].split(" and ")]
    assert authors == [last_first(a["name"]) for a in accented["paper"]["authors"]]
    assert "Fernández, Raquel" in authors

    as_csv = await world.command("paper export", user_id=reader, format="csv")
    await as_csv.wait_reply()
    (upload,) = as_csv.files
    assert upload.filename == "reading-list.csv"
    rows = list(csv.DictReader(io.StringIO(upload.text)))
    assert list(rows[0]) == ["id", "title", "authors", "published", "url", "saved_at"]
    assert [row["id"] for row in rows] == newest_first
    assert rows[0]["authors"] == "; ".join(a["name"] for a in accented["paper"]["authors"])
    assert rows[0]["published"] == accented["paper"]["publishedAt"][:10]
    assert rows[0]["url"] == f"https://arxiv.org/abs/{ACCENTED}"
    assert all(datetime.fromisoformat(row["saved_at"]).tzinfo is not None for row in rows)

    # another person's list is theirs alone
    other = await world.command("paper export", user_id=world.admin_id)
    await other.wait_reply()
    assert other.files == [] and "empty" in other.text


async def test_stats_attaches_a_chart_and_falls_back_to_text(world: World) -> None:
    await world.start_bot()
    await day_stored(world)
    none_here = await world.command("paperwatch stats", user_id=world.member_id)
    assert "no watches yet" in reply_text(none_here)

    await world.command("watch add", query="diffusion")
    await world.command("watch add", query="video")
    matched = set(expected_matches("diffusion", DAY)) | set(expected_matches("video", DAY))
    assert matched, "the fixture day has papers for these watches"
    # new watches take the day's papers at once; their deliveries are dated by the bot's
    # clock, so they fall in this week

    record = await world.command("paperwatch stats", user_id=world.member_id, weeks=4)
    await record.wait_reply()
    assert record.ephemeral
    assert f"the last 4 weeks: {len(matched)} papers in all" in record.text
    (upload,) = record.files
    assert upload.filename == "paperwatch-stats.png"
    pixels = mpimg.imread(io.BytesIO(upload.data), format="png")
    assert pixels.shape[:2] == (500, 1000)
    colours = np.unique((pixels[:, :, :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 50  # lines, text and anti-aliasing, not a blank image

    elsewhere = await world.command("paperwatch stats", channel_id=world.other_channel_id)
    assert "no watches yet" in reply_text(elsewhere)
