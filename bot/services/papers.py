"""Stored papers: search, the preview of a query, one paper by id.

A search never loads the whole store: the database preselects the papers a query may match
through its full-text index (`bot.db.search`), newest first and at most `limits.search_candidates`
of them, and the query language's own matcher decides among those in a worker thread, so the
event loop stays free. When there were more candidates than that, the answer says how far back
it looked instead of silently leaving papers out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.db.models import PaperRow
from bot.db.repo import paper_from_row
from bot.db.search import Candidates, fetch_candidates, paper_of
from bot.domain.paper import Paper, normalize_arxiv_id
from bot.domain.query import Query, liked_ids
from bot.services.access import NotFound, UserError, parse_user_query
from bot.services.clock import Clock
from bot.services.matching import WatchMatcher
from bot.services.similarity import check_likes

PREVIEW_DAYS = 7
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class PaperMatches:
    """What a query matched among the stored papers it was tried on."""

    papers: list[Paper]
    """The matching papers, best first (a search keeps the newest `limit`)."""
    total: int
    """How many papers matched among those examined."""
    examined: int
    """How many stored papers the matcher was run on."""
    complete: bool
    """Every paper the query could match was examined, so `total` is exact."""
    days: int | None = None
    """The time window, for a preview."""

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
    ) -> tuple[list[Paper], Candidates]:
        """The candidates' exact matches: by upvotes (or newest first, `by_date`), then id."""
        found = await fetch_candidates(
            session,
            query,
            since=since,
            limit=self.settings.limits.search_candidates,
            min_upvotes=min_upvotes,
        )
        if not found.rows:
            return [], found
        liked = liked_ids(query)
        if not liked:
            matched = await asyncio.to_thread(
                _exact_matches, self.matcher, query, found.rows, min_upvotes, by_date
            )
            return matched, found
        # `like:` terms: the candidates' cosines to the liked papers, one product in a thread
        papers = await asyncio.to_thread(_decoded, found.rows)
        scores = await self.matcher.like_scores(session, papers, liked)
        likes = scores.bits if scores else None
        matched = await asyncio.to_thread(
            _sorted_matches, self.matcher, query, papers, min_upvotes, by_date, likes
        )
        return matched, found

    async def check_likes(self, session: AsyncSession, query: Query) -> None:
        """Refuse a query whose `like:` terms name a paper that is not stored ("unknown paper")."""
        await check_likes(session, query)

    async def recent_matches(
        self, session: AsyncSession, query: Query, floor: int | None, now: datetime, days: int = PREVIEW_DAYS
    ) -> list[Paper]:
        """What `query` matches among the papers first seen in the last `days` days, best first."""
        matched, _ = await self._matching(session, query, since=now - timedelta(days=days), min_upvotes=floor)
        return matched

    async def preview(self, query: str, days: int | None = None) -> PaperMatches:
        """`/watch test`: what a query would have matched in the last `days` days."""
        parsed = parse_user_query(query, self.settings)
        span = days if days is not None else PREVIEW_DAYS
        if span < 1 or span > 90:
            raise UserError("`days` is a number from 1 to 90.")
        since = self.clock.now() - timedelta(days=span)
        async with self.sessions() as session:
            await self.check_likes(session, parsed)
            matched, found = await self._matching(session, parsed, since=since)
        return PaperMatches(matched, len(matched), len(found.rows), found.complete, span)

    async def search(self, query: str, limit: int = 10) -> PaperMatches:
        """`/paper search`: the newest matching papers and how many matched in all."""
        parsed = parse_user_query(query, self.settings)
        async with self.sessions() as session:
            await self.check_likes(session, parsed)
            matched, found = await self._matching(session, parsed, since=None, by_date=True)
        return PaperMatches(matched[:limit], len(matched), len(found.rows), found.complete)

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
    matcher: WatchMatcher, query: Query, rows: Sequence[Row[object]], floor: int | None, by_date: bool
) -> list[Paper]:
    """Decode the candidates and run the exact matcher on them (CPU work: a worker thread)."""
    return _sorted_matches(matcher, query, _decoded(rows), floor, by_date)


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
    matched = matcher.preview(query, papers, floor, likes)
    if by_date:
        matched.sort(key=lambda p: (-(p.published_at or p.first_seen_at or _EPOCH).timestamp(), p.arxiv_id))
    else:
        matched.sort(key=lambda p: (-p.upvotes, p.arxiv_id))
    return matched
