"""What channel watches and DM alerts share: both are watches of a target.

Adding one checks its options with the same rules, shows what it would have matched in the
last days, and lets a new digest watch catch the papers of the last `lookback_hours`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.db.deliveries import DeliveryRepository
from bot.db.models import MODE_DIGEST, MODE_INSTANT, TargetRow, WatchRow
from bot.db.repo import PaperRepository
from bot.domain.paper import Paper
from bot.domain.query import Query
from bot.services.access import UserError, parse_user_query
from bot.services.clock import Clock
from bot.services.digests import target_schedule
from bot.services.matching import WatchMatcher
from bot.services.papers import PaperService

MODES = (MODE_DIGEST, MODE_INSTANT)


@dataclass(frozen=True, slots=True)
class WatchView:
    id: int
    query: str
    mode: str
    min_upvotes: int | None
    paused: bool
    match_count: int
    channel_id: int
    user_id: int
    created_at: datetime
    paused_reason: str | None = None


@dataclass(frozen=True, slots=True)
class AddedWatch:
    watch: WatchView
    recent: list[Paper]
    """What the watch would have matched among papers first seen in the last 7 days."""


@dataclass(frozen=True, slots=True)
class WatchOptions:
    query: Query
    mode: str
    min_upvotes: int | None


def view_of(watch: WatchRow, target: TargetRow) -> WatchView:
    return WatchView(
        id=watch.id,
        query=watch.query,
        mode=watch.mode,
        min_upvotes=watch.min_upvotes,
        paused=watch.paused or bool(target.paused_reason),
        match_count=watch.match_count,
        channel_id=target.channel_id,
        user_id=target.user_id,
        created_at=watch.created_at,
        paused_reason=target.paused_reason,
    )


def choices_of(views: list[WatchView], typed: str) -> list[tuple[int, str]]:
    """Autocomplete: the views whose id or query contains what was typed, at most 25."""
    wanted = typed.strip().lstrip("#").lower()
    chosen = [v for v in views if not wanted or wanted in str(v.id) or wanted in v.query.lower()]
    return [(v.id, _choice_label(v)) for v in chosen[:25]]


def _choice_label(view: WatchView) -> str:
    label = f"#{view.id} {view.query}"
    return label if len(label) <= 100 else label[:99] + "…"


class Subscriptions:
    def __init__(self, settings: Settings, matcher: WatchMatcher, papers: PaperService, clock: Clock) -> None:
        self.settings = settings
        self.matcher = matcher
        self.papers = papers
        self.clock = clock

    def options(self, query: str, mode: str | None, min_upvotes: int | None) -> WatchOptions:
        chosen = (mode or MODE_DIGEST).strip().lower()
        if chosen not in MODES:
            raise UserError("The mode is `digest` or `instant`.")
        if min_upvotes is not None and not 0 <= min_upvotes <= 1_000_000:
            raise UserError("`min_upvotes` is a number from 0 to 1000000.")
        return WatchOptions(parse_user_query(query, self.settings), chosen, min_upvotes)

    async def add(
        self, session: AsyncSession, target: TargetRow, options: WatchOptions, created_by: int
    ) -> AddedWatch:
        await self.papers.check_likes(session, options.query)
        now = self.clock.now()
        if target.next_digest_at is None:
            target.next_digest_at = target_schedule(target).next_after(now)
        row = WatchRow(
            target_id=target.id,
            query=str(options.query.source),
            mode=options.mode,
            min_upvotes=options.min_upvotes,
            created_by=created_by,
            created_at=now,
        )
        session.add(row)
        await session.flush()
        recent = await self.papers.recent_matches(session, options.query, options.min_upvotes, now)
        await self._catch_up(session, row)
        return AddedWatch(watch=view_of(row, target), recent=recent)

    async def _catch_up(self, session: AsyncSession, watch: WatchRow) -> None:
        """A new digest watch also takes the papers first seen in the last `lookback_hours`."""
        if watch.mode != MODE_DIGEST or self.settings.digest.lookback_hours <= 0:
            return
        since = watch.created_at - timedelta(hours=self.settings.digest.lookback_hours)
        papers = await PaperRepository(session).seen_since(since)
        if papers:
            await self.matcher.record(session, papers, only_watch_ids={watch.id})

    @staticmethod
    async def remove(session: AsyncSession, watch: WatchRow, target: TargetRow) -> WatchView:
        """Delete a watch and the pending papers only it had matched."""
        view = view_of(watch, target)
        await DeliveryRepository(session).forget_watch(target.id, watch.id)
        await session.delete(watch)
        await session.flush()
        return view


class SubscriptionService:
    """What the channel-watch and DM-alert services are made of."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        subscriptions: Subscriptions,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.subscriptions = subscriptions
