"""The stored papers' text, as the text-similarity vocabulary reads it: id, title, abstract."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import PaperRow
from bot.domain.paper import Paper

CHUNK = 500
"""Ids per `IN (…)` list: well under SQLite's and PostgreSQL's parameter limits."""


class PaperTextRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def count(self) -> int:
        """How many papers are stored."""
        return int((await self.session.execute(select(func.count()).select_from(PaperRow))).scalar_one())

    async def all_texts(self) -> list[Paper]:
        """Every stored paper with only its id, title and abstract, in id order."""
        rows = await self.session.execute(
            select(PaperRow.arxiv_id, PaperRow.title, PaperRow.abstract).order_by(PaperRow.arxiv_id)
        )
        return [Paper(arxiv_id=i, title=t, abstract=a or "") for i, t, a in rows]

    async def texts_of(self, arxiv_ids: Iterable[str]) -> list[Paper]:
        """The stored papers among `arxiv_ids` (id, title, abstract), in id order."""
        wanted = sorted(set(arxiv_ids))
        found: list[Paper] = []
        for start in range(0, len(wanted), CHUNK):
            rows = await self.session.execute(
                select(PaperRow.arxiv_id, PaperRow.title, PaperRow.abstract)
                .where(PaperRow.arxiv_id.in_(wanted[start : start + CHUNK]))
                .order_by(PaperRow.arxiv_id)
            )
            found.extend(Paper(arxiv_id=i, title=t, abstract=a or "") for i, t, a in rows)
        return found

    async def stored(self, arxiv_ids: Iterable[str]) -> set[str]:
        """The ids among `arxiv_ids` that are stored."""
        wanted = sorted(set(arxiv_ids))
        found: set[str] = set()
        for start in range(0, len(wanted), CHUNK):
            rows = await self.session.execute(
                select(PaperRow.arxiv_id).where(PaperRow.arxiv_id.in_(wanted[start : start + CHUNK]))
            )
            found.update(rows.scalars())
        return found
