"""Stored papers: search, the preview of a query, one paper by id.

A search never loads the whole store: the database preselects the papers a query may match
through its full-text index (`bot.db.search`, `bot.db.candidates`), newest first and at most
`limits.search_candidates` of them, with only the columns the query reads; the query
language's own matcher decides among those in a worker thread, so the event loop stays free,
and only the papers shown are read in full. When there were more candidates than that, the
answer says how far back it looked instead of silently leaving papers out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.db.candidates import (
    ORDER_COLUMNS,
    Candidates,
    columns_read,
    fetch_candidates,
    full_papers,
    paper_of,
    with_columns,
)
from bot.db.models import PaperRow
from bot.db.repo import paper_from_row
from bot.domain.matcher import matches, paper_words
from bot.domain.paper import Paper, normalize_arxiv_id
from bot.domain.query import Query, liked_ids
from bot.services.access import NotFound, UserError, parse_user_query
from bot.services.clock import Clock
from bot.services.matching import WatchMatcher
from bot.services.similarity import check_likes

PREVIEW_DAYS = 7
_FIRST_BATCH = 100
"""A search cut by the candidate bound matches its candidates, newest first, in batches of
100, 200, 400, … and stops once it has the papers it shows."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class PaperMatches:
    """What a query matched among the stored papers it was tried on."""

    papers: list[Paper]
    """The matching papers shown, best first: the newest `limit` (a search) or the `limit` most
    upvoted (a preview)."""
    total: int
    """How many papers matched among those examined."""
    examined: int
    """How many stored papers the matcher was run on."""
    complete: bool
    """Every paper the query could match was examined, so `total` is exact."""
    days: int | None = None
    """The time window, for a preview."""

    @property
    def total_text(self) -> str:
        """How many matched, as a reply says it: "at least 57" when the bound cut the search."""
        return f"{self.total:,}" if self.complete else f"at least {self.total:,}"

    @property
    def bound(self) -> str | None:
        """Why the answer may miss older papers, or None when nothing was left out."""
        if self.complete:
            return None
        window = f" of the last {self.days} days" if self.days else ""
        return (
            f"Only the newest {self.examined:,} papers{window} that could match were searched; "
            "a narrower query reaches further back."
        )


class PaperService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        matcher: WatchMatcher,
        clock: Clock,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.matcher = matcher
        self.clock = clock

    async def _matching(
        self,
        session: AsyncSession,
        query: Query,
        *,
        since: datetime | None,
        min_upvotes: int | None = None,
        by_date: bool = False,
        enough: int | None = None,
    ) -> tuple[list[Paper], Candidates, int]:
        """The candidates' exact matches: by upvotes (or newest first, `by_date`), then id; and
        how many candidates were examined.

        `enough`: when there were more candidates than the bound (the answer is not complete
        anyway), stop after the batch of candidates, newest first, that brings this many."""
        liked = liked_ids(query)
        wanted = columns_read(query)
        # a search that may stop early first reads only the candidates' ids and order, and
        # their text batch by batch
        later = enough is not None and not liked and wanted != ORDER_COLUMNS
        found = await fetch_candidates(
            session,
            query,
            since=since,
            limit=self.settings.limits.search_candidates,
            min_upvotes=min_upvotes,
            columns=ORDER_COLUMNS if later else wanted,
        )
        if not found.rows:
            return [], found, 0
        if not liked:
            rows = found.rows
            if found.complete or enough is None:
                if later:
                    rows = await with_columns(session, rows, wanted)
                matched = await asyncio.to_thread(_exact_matches, query, rows, min_upvotes, by_date)
                return matched, found, len(found.rows)
            matched = []
            start, size = 0, _FIRST_BATCH
            while start < len(rows) and len(matched) < enough:
                batch = rows[start : start + size]
                start, size = start + len(batch), size * 2
                if later:
                    batch = await with_columns(session, batch, wanted)
                matched += await asyncio.to_thread(_exact_matches, query, batch, min_upvotes, by_date)
            return _sorted(matched, by_date), found, start
        # `like:` terms: the candidates' cosines to the liked papers, one product in a thread
        papers = await asyncio.to_thread(_decoded, found.rows)
        scores = await self.matcher.like_scores(session, papers, liked)
        likes = scores.bits if scores else None
        matched = await asyncio.to_thread(
            _sorted_matches, self.matcher, query, papers, min_upvotes, by_date, likes
        )
        return matched, found, len(found.rows)

    async def check_likes(self, session: AsyncSession, query: Query) -> None:
        """Refuse a query whose `like:` terms name a paper that is not stored ("unknown paper")."""
        await check_likes(session, query)

    async def recent_matches(
        self, session: AsyncSession, query: Query, floor: int | None, now: datetime, days: int = PREVIEW_DAYS
    ) -> list[Paper]:
        """What `query` matches among the papers first seen in the last `days` days, best first."""
        matched, found, _ = await self._matching(
            session, query, since=now - timedelta(days=days), min_upvotes=floor
        )
        return await full_papers(session, found, matched)

    async def preview(self, query: str, days: int | None = None, limit: int = 10) -> PaperMatches:
        """`/watch test`: what a query would have matched in the last `days` days, the `limit`
        most upvoted and how many in all."""
        parsed = parse_user_query(query, self.settings)
        span = days if days is not None else PREVIEW_DAYS
        if span < 1 or span > 90:
            raise UserError("`days` is a number from 1 to 90.")
        since = self.clock.now() - timedelta(days=span)
        async with self.sessions() as session:
            await self.check_likes(session, parsed)
            matched, found, examined = await self._matching(session, parsed, since=since)
            shown = await full_papers(session, found, matched[:limit])
        return PaperMatches(shown, len(matched), examined, found.complete, span)

    async def search(self, query: str, limit: int = 10) -> PaperMatches:
        """`/paper search`: the newest matching papers and how many matched in all."""
        parsed = parse_user_query(query, self.settings)
        async with self.sessions() as session:
            await self.check_likes(session, parsed)
            matched, found, examined = await self._matching(
                session, parsed, since=None, by_date=True, enough=limit
            )
            shown = await full_papers(session, found, matched[:limit])
        return PaperMatches(shown, len(matched), examined, found.complete)

    async def get(self, raw_id: str) -> Paper:
        arxiv_id = normalize_arxiv_id(raw_id[:100])
        if arxiv_id is None:
            raise UserError("That is not an arXiv id; ids look like `2403.01234` or `hep-th/9901001`.")
        async with self.sessions() as session:
            row = await session.get(PaperRow, arxiv_id)
        if row is None:
            raise NotFound(f"paperwatch has not seen `{arxiv_id}` in its feeds.")
        return paper_from_row(row)


def _exact_matches(
    query: Query, rows: Sequence[Row[object]], floor: int | None, by_date: bool
) -> list[Paper]:
    """Decode the candidates and run the reference matcher on each (CPU work: a worker thread).

    For one query on a thousand candidates this is faster than indexing them as a batch
    (`PaperBatch`), which pays off when many watches share the batch."""
    papers = _decoded(rows)
    return _sorted([p for p in papers if matches(query, p, floor, paper_words(p))], by_date)


def _decoded(rows: Sequence[Row[object]]) -> list[Paper]:
    return [paper_of(row) for row in rows]


def _sorted_matches(
    matcher: WatchMatcher,
    query: Query,
    papers: list[Paper],
    floor: int | None,
    by_date: bool,
    likes: Mapping[str, int] | None = None,
) -> list[Paper]:
    """The exact matches among `papers`, sorted (CPU work: a worker thread)."""
    return _sorted(matcher.preview(query, papers, floor, likes), by_date)


def _sorted(matched: list[Paper], by_date: bool) -> list[Paper]:
    """Newest first (`by_date`) or most upvoted first, then by id."""
    if by_date:
        matched.sort(key=lambda p: (-(p.published_at or p.first_seen_at or _EPOCH).timestamp(), p.arxiv_id))
    else:
        matched.sort(key=lambda p: (-p.upvotes, p.arxiv_id))
    return matched
