"""`/paperwatch status`: the feeds' last polls, paper counts, watches, the next digest."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import FeedStateRow
from bot.db.repo import PaperRepository, TargetRepository, WatchRepository
from bot.services.clock import Clock

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class FeedStatus:
    key: str
    last_poll_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None


@dataclass(frozen=True, slots=True)
class Status:
    feeds: list[FeedStatus]
    papers_today: int
    papers_total: int
    watches_here: int
    watches_total: int
    next_digest_at: datetime | None


class StatusService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self.sessions = sessions
        self.clock = clock

    async def status(self, guild_id: int | None, channel_id: int | None) -> Status:
        now = self.clock.now()
        midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        async with self.sessions() as session:
            papers = PaperRepository(session)
            feed_rows = list(await session.scalars(select(FeedStateRow).order_by(FeedStateRow.key)))
            watches = WatchRepository(session)
            here = await watches.count_in_guild(guild_id) if guild_id is not None else 0
            next_at = None
            if channel_id is not None:
                target = await TargetRepository(session).channel(channel_id)
                next_at = target.next_digest_at if target and not target.digest_paused else None
            if next_at is None and guild_id is not None:
                next_at = await TargetRepository(session).next_digest(guild_id)
            return Status(
                feeds=[_feed_status(r) for r in _latest_per_source(feed_rows)],
                papers_today=await papers.count_since(midnight),
                papers_total=await papers.count(),
                watches_here=here,
                watches_total=await watches.count(),
                next_digest_at=next_at,
            )


def _latest_per_source(rows: list[FeedStateRow]) -> list[FeedStateRow]:
    latest: dict[str, FeedStateRow] = {}
    for row in rows:
        seen = latest.get(row.source)
        if seen is None or (row.last_poll_at or _EPOCH) > (seen.last_poll_at or _EPOCH):
            latest[row.source] = row
    errored = [r for r in rows if r.last_error and r not in latest.values()]
    return [*latest.values(), *errored[:3]]


def _feed_status(row: FeedStateRow) -> FeedStatus:
    return FeedStatus(row.key, row.last_poll_at, row.last_success_at, row.last_error, row.last_error_at)
