"""`/paper export`: a person's reading list as a file, BibTeX (the default) or CSV.

The papers come newest saved first, as `/paper saved` lists them. BibTeX entries are built by
bot/domain/bibtex.py and written with bibtexparser; CSV has one row a paper with the columns
`id,title,authors,published,url,saved_at` (authors joined with "; ", dates in ISO 8601, UTC).
A cell that a spreadsheet would read as a formula (it starts with `=`, `+`, `-`, `@`, a tab or
a carriage return) gets a leading `'`, so a feed's text is never run when the file is opened.
"""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from bot.domain.bibtex import bibtex_file
from bot.domain.paper import Paper
from bot.services.feedback import FeedbackService

ExportFormat = Literal["bib", "csv"]
FORMATS: tuple[ExportFormat, ...] = ("bib", "csv")
CSV_COLUMNS = ("id", "title", "authors", "published", "url", "saved_at")
AUTHOR_SEPARATOR = "; "
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: str) -> str:
    """The cell as text a spreadsheet shows and never evaluates."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


@dataclass(frozen=True, slots=True)
class ExportFile:
    filename: str
    data: bytes
    papers: int


def reading_list_csv(saved: list[tuple[Paper, datetime]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for paper, saved_at in saved:
        published = paper.published_at.astimezone(UTC).date().isoformat() if paper.published_at else ""
        row = (
            paper.arxiv_id,
            paper.title,
            AUTHOR_SEPARATOR.join(paper.authors),
            published,
            paper.abs_url,
            saved_at.astimezone(UTC).isoformat(timespec="seconds"),
        )
        writer.writerow([spreadsheet_safe(cell) for cell in row])
    return out.getvalue()


class ExportService:
    def __init__(self, feedback: FeedbackService) -> None:
        self.feedback = feedback

    async def reading_list(self, user_id: int, fmt: ExportFormat = "bib") -> ExportFile | None:
        """The person's whole reading list as a file; None when the list is empty."""
        if fmt not in FORMATS:
            raise ValueError(f"unknown export format {fmt!r}")
        limit = self.feedback.settings.limits.saved_per_user
        saved, _ = await self.feedback.saved(user_id, 0, limit)
        if not saved:
            return None
        # TeX-encoding a full reading list takes a second or two: never on the event loop
        if fmt == "csv":
            text = await asyncio.to_thread(reading_list_csv, saved)
        else:
            text = await asyncio.to_thread(bibtex_file, [paper for paper, _ in saved])
        return ExportFile(filename=f"reading-list.{fmt}", data=text.encode("utf-8"), papers=len(saved))
