"""Stored papers: search, the preview of a query, one paper by id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.db.models import PaperRow
from bot.db.repo import PaperRepository, paper_from_row
from bot.domain.paper import Paper, normalize_arxiv_id
from bot.domain.query import Query
from bot.services.access import NotFound, UserError, parse_user_query
from bot.services.clock import Clock
from bot.services.matching import WatchMatcher

PREVIEW_DAYS = 7
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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

    async def recent_matches(
        self, session: AsyncSession, query: Query, floor: int | None, now: datetime, days: int = PREVIEW_DAYS
    ) -> list[Paper]:
        """What `query` matches among the papers first seen in the last `days` days, best first."""
        papers = await PaperRepository(session).seen_since(now - timedelta(days=days))
        matched = self.matcher.preview(query, papers, floor)
        return sorted(matched, key=lambda p: (-p.upvotes, p.arxiv_id))

    async def preview(self, query: str, days: int | None = None) -> list[Paper]:
        """`/watch test`: what a query would have matched in the last `days` days."""
        parsed = parse_user_query(query, self.settings)
        span = days if days is not None else PREVIEW_DAYS
        if span < 1 or span > 90:
            raise UserError("`days` is a number from 1 to 90.")
        async with self.sessions() as session:
            return await self.recent_matches(session, parsed, None, self.clock.now(), span)

    async def search(self, query: str, limit: int = 10) -> tuple[list[Paper], int]:
        """`/paper search`: the newest matching papers and how many matched in all."""
        parsed = parse_user_query(query, self.settings)
        async with self.sessions() as session:
            papers = await PaperRepository(session).seen_since(_EPOCH)
        matched = self.matcher.preview(parsed, papers)
        matched.sort(key=lambda p: (-(p.published_at or p.first_seen_at or _EPOCH).timestamp(), p.arxiv_id))
        return matched[:limit], len(matched)

    async def get(self, raw_id: str) -> Paper:
        arxiv_id = normalize_arxiv_id(raw_id[:100])
        if arxiv_id is None:
            raise UserError("That is not an arXiv id; ids look like `2403.01234` or `hep-th/9901001`.")
        async with self.sessions() as session:
            row = await session.get(PaperRow, arxiv_id)
        if row is None:
            raise NotFound(f"paperwatch has not seen `{arxiv_id}` in its feeds.")
        return paper_from_row(row)
