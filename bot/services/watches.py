"""Use-cases behind the slash commands: watches, alerts, digest schedules, papers, status.

Everything here is plain Python: the Discord layer turns an interaction into a `Caller`
and options, calls one method, and renders what comes back. Every id a caller names is
checked against the caller's own guild (watches) or own user (alerts); an id that belongs
to someone else gets exactly the answer of an id that does not exist.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.db.models import (
    DELIVERY_PENDING,
    MODE_DIGEST,
    MODE_INSTANT,
    TARGET_CHANNEL,
    DeliveryRow,
    FeedStateRow,
    PaperRow,
    TargetRow,
    WatchRow,
)
from bot.db.repo import (
    DeliveryRepository,
    PaperRepository,
    TargetRepository,
    WatchRepository,
    paper_from_row,
)
from bot.domain.paper import Paper, normalize_arxiv_id
from bot.domain.query import ParseError, Query, parse_query
from bot.domain.schedule import Schedule, ScheduleError, parse_time, parse_timezone, parse_weekdays
from bot.services.clock import Clock
from bot.services.matching import WatchMatcher

MODES = (MODE_DIGEST, MODE_INSTANT)
PREVIEW_DAYS = 7
_FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn"}


class UserError(Exception):
    """A refusal to show the user as it is: short, without internals."""


class NotFound(UserError):  # noqa: N818 - reads as the answer the user gets
    pass


@dataclass(frozen=True, slots=True)
class Caller:
    user_id: int
    guild_id: int | None
    channel_id: int | None
    can_manage: bool = False
    """Whether the member has Manage Channels in the target channel, as checked by the bot."""


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
class DigestInfo:
    schedule: Schedule
    paused: bool
    paused_reason: str | None
    next_at: datetime | None
    last_at: datetime | None
    pending: int
    watches: int


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


def _view(watch: WatchRow, target: TargetRow) -> WatchView:
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


def clean_text(text: str, *, limit: int, what: str) -> str:
    """Refuse control, format (zero-width, bidi override) and unassigned characters."""
    value = text.strip()
    if not value:
        raise UserError(f"The {what} is empty.")
    if len(value) > limit:
        raise UserError(f"The {what} is {len(value)} characters long; the limit is {limit}.")
    for index, char in enumerate(value):
        if unicodedata.category(char) in _FORBIDDEN_CATEGORIES and char not in "\u200d":
            raise UserError(
                f"The {what} contains an invisible or control character (U+{ord(char):04X}) "
                f"at position {index}; please retype it."
            )
    return value


class WatchService:
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

    # -- queries ---------------------------------------------------------------------------

    def parse(self, text: str) -> Query:
        limit = self.settings.limits.query_length
        value = clean_text(text, limit=limit, what="query")
        try:
            return parse_query(value, max_length=limit)
        except ParseError as exc:
            raise UserError(f"That query does not parse: {exc}") from None

    @staticmethod
    def _mode(mode: str | None) -> str:
        chosen = (mode or MODE_DIGEST).strip().lower()
        if chosen not in MODES:
            raise UserError("The mode is `digest` or `instant`.")
        return chosen

    @staticmethod
    def _min_upvotes(value: int | None) -> int | None:
        if value is None:
            return None
        if value < 0 or value > 1_000_000:
            raise UserError("`min_upvotes` is a number from 0 to 1000000.")
        return value

    def _require_manage(self, caller: Caller) -> None:
        if not caller.can_manage:
            raise UserError("You need the **Manage Channels** permission in that channel to do this.")

    def _schedule_defaults(self) -> dict[str, str]:
        return {"digest_time": self.settings.digest.time, "timezone": self.settings.digest.timezone}

    def _next_digest(self, target: TargetRow) -> datetime:
        return target_schedule(target).next_after(self.clock.now())

    # -- channel watches -------------------------------------------------------------------

    async def add_watch(
        self,
        caller: Caller,
        *,
        channel_id: int,
        query: str,
        mode: str | None = None,
        min_upvotes: int | None = None,
    ) -> AddedWatch:
        if caller.guild_id is None:
            raise UserError("Channel watches are set up in a server; use `/alert add` for DM alerts.")
        self._require_manage(caller)
        parsed = self.parse(query)
        chosen_mode = self._mode(mode)
        floor = self._min_upvotes(min_upvotes)
        limits = self.settings.limits
        now = self.clock.now()
        async with self.sessions.begin() as session:
            targets = TargetRepository(session)
            target = await targets.ensure_channel(caller.guild_id, channel_id, **self._schedule_defaults())
            if target.guild_id != caller.guild_id:
                raise NotFound("That channel is not in this server.")
            watches = WatchRepository(session)
            if await watches.count_for_target(target.id) >= limits.watches_per_channel:
                raise UserError(
                    f"This channel already has {limits.watches_per_channel} watches, the most allowed. "
                    "Remove one with `/watch remove` first."
                )
            if await watches.count_in_guild(caller.guild_id) >= limits.watches_per_guild:
                raise UserError(
                    f"This server already has {limits.watches_per_guild} watches, the most allowed."
                )
            if target.next_digest_at is None:
                target.next_digest_at = self._next_digest(target)
            if target.paused_reason:
                target.paused_reason = None
                target.paused_notice_sent = False
            row = WatchRow(
                target_id=target.id,
                query=str(parsed.source),
                mode=chosen_mode,
                min_upvotes=floor,
                created_by=caller.user_id,
                created_at=now,
            )
            session.add(row)
            await session.flush()
            recent = await self._recent_matches(session, parsed, floor, now)
            await self._catch_up(session, row, target)
            return AddedWatch(watch=_view(row, target), recent=recent)

    async def _recent_matches(
        self, session: AsyncSession, query: Query, floor: int | None, now: datetime, days: int = PREVIEW_DAYS
    ) -> list[Paper]:
        papers = await PaperRepository(session).seen_since(now - timedelta(days=days))
        matched = self.matcher.preview(query, papers, floor)
        return sorted(matched, key=lambda p: (-p.upvotes, p.arxiv_id))

    async def _catch_up(self, session: AsyncSession, watch: WatchRow, target: TargetRow) -> None:
        """A new digest watch also takes the papers first seen in the last `lookback_hours`."""
        if watch.mode != MODE_DIGEST or self.settings.digest.lookback_hours <= 0:
            return
        since = watch.created_at - timedelta(hours=self.settings.digest.lookback_hours)
        papers = await PaperRepository(session).seen_since(since)
        if papers:
            await self.matcher.record(session, papers, only_watch_ids={watch.id})

    async def list_watches(self, guild_id: int, channel_id: int | None = None) -> list[WatchView]:
        async with self.sessions() as session:
            pairs = await WatchRepository(session).in_guild(guild_id)
        views = [_view(w, t) for w, t in pairs]
        if channel_id is not None:
            views = [v for v in views if v.channel_id == channel_id]
        return views

    async def _own_watch(
        self, session: AsyncSession, caller: Caller, watch_id: int
    ) -> tuple[WatchRow, TargetRow]:
        row = await WatchRepository(session).get(watch_id)
        target = await TargetRepository(session).get(row.target_id) if row else None
        if (
            row is None
            or target is None
            or target.kind != TARGET_CHANNEL
            or caller.guild_id is None
            or target.guild_id != caller.guild_id
        ):
            raise NotFound(f"There is no watch #{watch_id} in this server. `/watch list` shows the ids.")
        return row, target

    async def watch_channel(self, caller: Caller, watch_id: int) -> int:
        """The channel of a watch of the caller's guild (for the permission check)."""
        async with self.sessions() as session:
            _, target = await self._own_watch(session, caller, watch_id)
            return target.channel_id

    async def remove_watch(self, caller: Caller, watch_id: int) -> WatchView:
        self._require_manage(caller)
        async with self.sessions.begin() as session:
            row, target = await self._own_watch(session, caller, watch_id)
            view = _view(row, target)
            await DeliveryRepository(session).forget_watch(target.id, row.id)
            await session.delete(row)
            await session.flush()
            if not await WatchRepository(session).count_for_target(target.id):
                target.next_digest_at = None
            return view

    async def set_watch_paused(self, caller: Caller, watch_id: int, paused: bool) -> WatchView:
        self._require_manage(caller)
        async with self.sessions.begin() as session:
            row, target = await self._own_watch(session, caller, watch_id)
            row.paused = paused
            if not paused and target.paused_reason:
                target.paused_reason = None
                target.paused_notice_sent = False
            if not paused and target.next_digest_at is None:
                target.next_digest_at = self._next_digest(target)
            return _view(row, target)

    async def watch_choices(self, guild_id: int, channel_id: int | None, typed: str) -> list[tuple[int, str]]:
        """Autocomplete: this channel's watches first, then the guild's others; never another guild's."""
        views = await self.list_watches(guild_id)
        wanted = typed.strip().lstrip("#").lower()
        views = [v for v in views if not wanted or wanted in str(v.id) or wanted in v.query.lower()]
        views.sort(key=lambda v: (v.channel_id != channel_id, v.id))
        return [(v.id, _choice_label(v)) for v in views[:25]]

    async def test_query(self, query: str, days: int | None = None) -> list[Paper]:
        parsed = self.parse(query)
        span = days if days is not None else PREVIEW_DAYS
        if span < 1 or span > 90:
            raise UserError("`days` is a number from 1 to 90.")
        async with self.sessions() as session:
            return await self._recent_matches(session, parsed, None, self.clock.now(), span)

    # -- DM alerts -------------------------------------------------------------------------

    async def add_alert(
        self, caller: Caller, *, query: str, mode: str | None = None, min_upvotes: int | None = None
    ) -> AddedWatch:
        parsed = self.parse(query)
        chosen_mode = self._mode(mode)
        floor = self._min_upvotes(min_upvotes)
        now = self.clock.now()
        async with self.sessions.begin() as session:
            target = await TargetRepository(session).ensure_user(caller.user_id, **self._schedule_defaults())
            watches = WatchRepository(session)
            limit = self.settings.limits.alerts_per_user
            if await watches.count_for_target(target.id) >= limit:
                raise UserError(f"You already have {limit} alerts, the most allowed. Remove one first.")
            if target.next_digest_at is None:
                target.next_digest_at = self._next_digest(target)
            row = WatchRow(
                target_id=target.id,
                query=str(parsed.source),
                mode=chosen_mode,
                min_upvotes=floor,
                created_by=caller.user_id,
                created_at=now,
            )
            session.add(row)
            await session.flush()
            recent = await self._recent_matches(session, parsed, floor, now)
            await self._catch_up(session, row, target)
            return AddedWatch(watch=_view(row, target), recent=recent)

    async def list_alerts(self, user_id: int) -> list[WatchView]:
        async with self.sessions() as session:
            target = await TargetRepository(session).user(user_id)
            if target is None:
                return []
            return [_view(w, target) for w in await WatchRepository(session).for_target(target.id)]

    async def _own_alert(
        self, session: AsyncSession, user_id: int, alert_id: int
    ) -> tuple[WatchRow, TargetRow]:
        target = await TargetRepository(session).user(user_id)
        row = await WatchRepository(session).get(alert_id)
        if target is None or row is None or row.target_id != target.id:
            raise NotFound(f"You have no alert #{alert_id}. `/alert list` shows your alerts.")
        return row, target

    async def remove_alert(self, user_id: int, alert_id: int) -> WatchView:
        async with self.sessions.begin() as session:
            row, target = await self._own_alert(session, user_id, alert_id)
            view = _view(row, target)
            await DeliveryRepository(session).forget_watch(target.id, row.id)
            await session.delete(row)
            return view

    async def alert_choices(self, user_id: int, typed: str) -> list[tuple[int, str]]:
        wanted = typed.strip().lstrip("#").lower()
        views = [
            v
            for v in await self.list_alerts(user_id)
            if not wanted or wanted in str(v.id) or wanted in v.query.lower()
        ]
        return [(v.id, _choice_label(v)) for v in views[:25]]

    async def set_alert_schedule(
        self, user_id: int, *, time: str, timezone: str, days: str | None
    ) -> DigestInfo:
        schedule = _schedule(time, timezone, days)
        async with self.sessions.begin() as session:
            target = await TargetRepository(session).ensure_user(user_id, **self._schedule_defaults())
            _apply_schedule(target, schedule)
            target.next_digest_at = schedule.next_after(self.clock.now())
            return await self._digest_info(session, target)

    async def resume_alerts(self, user_id: int) -> int:
        """Resume a user's alerts after their DMs were found closed; returns how many."""
        async with self.sessions.begin() as session:
            target = await TargetRepository(session).user(user_id)
            if target is None:
                return 0
            target.paused_reason = None
            target.paused_notice_sent = False
            watches = WatchRepository(session)
            if target.next_digest_at is None:
                target.next_digest_at = self._next_digest(target)
            return await watches.count_for_target(target.id)

    async def alert_paused_reason(self, user_id: int) -> str | None:
        async with self.sessions() as session:
            target = await TargetRepository(session).user(user_id)
            return target.paused_reason if target else None

    # -- channel digest --------------------------------------------------------------------

    async def set_digest(
        self, caller: Caller, *, channel_id: int, time: str, timezone: str, days: str | None
    ) -> DigestInfo:
        if caller.guild_id is None:
            raise UserError("Digest schedules belong to server channels; use `/alert schedule` for DMs.")
        self._require_manage(caller)
        schedule = _schedule(time, timezone, days)
        async with self.sessions.begin() as session:
            target = await TargetRepository(session).ensure_channel(
                caller.guild_id, channel_id, **self._schedule_defaults()
            )
            if target.guild_id != caller.guild_id:
                raise NotFound("That channel is not in this server.")
            _apply_schedule(target, schedule)
            target.next_digest_at = schedule.next_after(self.clock.now())
            return await self._digest_info(session, target)

    async def show_digest(self, guild_id: int, channel_id: int) -> DigestInfo:
        async with self.sessions() as session:
            target = await TargetRepository(session).channel(channel_id)
            if target is None or target.guild_id != guild_id:
                defaults = Schedule(parse_time(self.settings.digest.time), self.settings.digest.timezone)
                return DigestInfo(defaults, False, None, None, None, 0, 0)
            return await self._digest_info(session, target)

    async def set_digest_paused(self, caller: Caller, *, channel_id: int, paused: bool) -> DigestInfo:
        if caller.guild_id is None:
            raise UserError("Digest schedules belong to server channels.")
        self._require_manage(caller)
        async with self.sessions.begin() as session:
            target = await TargetRepository(session).ensure_channel(
                caller.guild_id, channel_id, **self._schedule_defaults()
            )
            if target.guild_id != caller.guild_id:
                raise NotFound("That channel is not in this server.")
            target.digest_paused = paused
            if not paused:
                target.next_digest_at = self._next_digest(target)
            return await self._digest_info(session, target)

    async def channel_target_id(self, caller: Caller, channel_id: int) -> int | None:
        async with self.sessions() as session:
            target = await TargetRepository(session).channel(channel_id)
            if target is None or target.guild_id != caller.guild_id:
                return None
            return target.id

    async def _digest_info(self, session: AsyncSession, target: TargetRow) -> DigestInfo:
        pending = await session.scalar(
            select(func.count())
            .select_from(DeliveryRow)
            .where(DeliveryRow.target_id == target.id, DeliveryRow.status == DELIVERY_PENDING)
        )
        watches = await WatchRepository(session).count_for_target(target.id)
        return DigestInfo(
            schedule=target_schedule(target),
            paused=target.digest_paused,
            paused_reason=target.paused_reason,
            next_at=target.next_digest_at,
            last_at=target.last_digest_at,
            pending=int(pending or 0),
            watches=watches,
        )

    # -- papers and status -----------------------------------------------------------------

    async def search_papers(self, query: str, limit: int = 10) -> tuple[list[Paper], int]:
        parsed = self.parse(query)
        async with self.sessions() as session:
            papers = await PaperRepository(session).seen_since(datetime(1970, 1, 1, tzinfo=UTC))
        matched = self.matcher.preview(parsed, papers)
        matched.sort(key=lambda p: (-(p.published_at or p.first_seen_at or _EPOCH).timestamp(), p.arxiv_id))
        return matched[:limit], len(matched)

    async def get_paper(self, raw_id: str) -> Paper:
        arxiv_id = normalize_arxiv_id(raw_id[:100])
        if arxiv_id is None:
            raise UserError("That is not an arXiv id; ids look like `2403.01234` or `hep-th/9901001`.")
        async with self.sessions() as session:
            row = await session.get(PaperRow, arxiv_id)
        if row is None:
            raise NotFound(f"paperwatch has not seen `{arxiv_id}` in its feeds.")
        return paper_from_row(row)

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


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


def _choice_label(view: WatchView) -> str:
    label = f"#{view.id} {view.query}"
    return label if len(label) <= 100 else label[:99] + "…"


def _schedule(time: str, timezone: str, days: str | None) -> Schedule:
    try:
        return Schedule(parse_time(time), parse_timezone(timezone), parse_weekdays(days))
    except ScheduleError as exc:
        raise UserError(str(exc)) from None


def _apply_schedule(target: TargetRow, schedule: Schedule) -> None:
    target.digest_time = schedule.at.strftime("%H:%M")
    target.timezone = schedule.timezone
    target.weekdays = schedule.weekdays


def target_schedule(target: TargetRow) -> Schedule:
    return Schedule(parse_time(target.digest_time), target.timezone, target.weekdays)
