"""A digest from stored delivery rows: their papers, the watches that matched and why."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import DeliveryRow, WatchRow
from bot.db.repo import PaperRepository
from bot.domain.digest import Digest, DigestEntry, Match, compose_digest


async def compose_rows(session: AsyncSession, rows: Sequence[DeliveryRow], cap: int) -> Digest:
    """The digest of `rows` (one target's), at most `cap` papers; a removed watch is named so."""
    papers = await PaperRepository(session).get_many(row.paper_id for row in rows)
    watch_ids = {w for row in rows for w in (row.watch_ids or [])}
    queries: dict[int, str] = {}
    if watch_ids:
        found = await session.scalars(select(WatchRow).where(WatchRow.id.in_(watch_ids)))
        queries = {w.id: w.query for w in found}
    entries = []
    for row in rows:
        paper = papers.get(row.paper_id)
        if paper is None:
            continue
        matches = tuple(
            Match(watch_id=w, query=queries.get(w, "(removed watch)"), words=_words_of(row, w))
            for w in (row.watch_ids or [])
        )
        entries.append(DigestEntry(paper=paper, matches=matches, delivery_id=row.id, reason=row.reason))
    digest = compose_digest(entries, cap)
    return replace(digest, target_id=rows[0].target_id) if rows else digest


def _words_of(row: DeliveryRow, watch_id: int) -> tuple[tuple[str, str], ...]:
    """The (query term, paper word) pairs one watch matched, from `[watch id, term, word]` rows."""
    return tuple((term, word) for owner, term, word in (row.matched_terms or []) if owner == str(watch_id))
