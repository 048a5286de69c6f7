"""A channel's digest schedule: set, show, pause and resume it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.db.models import DELIVERY_PENDING, DeliveryRow, TargetRow
from bot.db.repo import TargetRepository, WatchRepository
from bot.domain.schedule import Schedule, ScheduleError, parse_time, parse_timezone, parse_weekdays
from bot.services.access import Caller, UserError, own_channel, require_guild, require_manage
from bot.services.clock import Clock


@dataclass(frozen=True, slots=True)
class DigestInfo:
    schedule: Schedule
    paused: bool
    paused_reason: str | None
    next_at: datetime | None
    last_at: datetime | None
    pending: int
    watches: int


def target_schedule(target: TargetRow) -> Schedule:
    return Schedule(parse_time(target.digest_time), target.timezone, target.weekdays)


def parse_schedule(time: str, timezone: str, days: str | None) -> Schedule:
    try:
        return Schedule(parse_time(time), parse_timezone(timezone), parse_weekdays(days))
    except ScheduleError as exc:
        raise UserError(str(exc)) from None


def apply_schedule(target: TargetRow, schedule: Schedule) -> None:
    target.digest_time = schedule.at.strftime("%H:%M")
    target.timezone = schedule.timezone
    target.weekdays = schedule.weekdays


async def digest_info(session: AsyncSession, target: TargetRow) -> DigestInfo:
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


class DigestService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings, clock: Clock) -> None:
        self.sessions = sessions
        self.settings = settings
        self.clock = clock

    async def set_digest(
        self, caller: Caller, *, channel_id: int, time: str, timezone: str, days: str | None
    ) -> DigestInfo:
        require_guild(caller, "Digest schedules belong to server channels; use `/alert schedule` for DMs.")
        require_manage(caller)
        schedule = parse_schedule(time, timezone, days)
        async with self.sessions.begin() as session:
            target = await own_channel(session, caller, channel_id, self.settings)
            apply_schedule(target, schedule)
            target.next_digest_at = schedule.next_after(self.clock.now())
            return await digest_info(session, target)

    async def show_digest(self, guild_id: int, channel_id: int) -> DigestInfo:
        async with self.sessions() as session:
            target = await TargetRepository(session).channel(channel_id)
            if target is None or target.guild_id != guild_id:
                defaults = Schedule(parse_time(self.settings.digest.time), self.settings.digest.timezone)
                return DigestInfo(defaults, False, None, None, None, 0, 0)
            return await digest_info(session, target)

    async def set_digest_paused(self, caller: Caller, *, channel_id: int, paused: bool) -> DigestInfo:
        require_guild(caller, "Digest schedules belong to server channels.")
        require_manage(caller)
        async with self.sessions.begin() as session:
            target = await own_channel(session, caller, channel_id, self.settings)
            target.digest_paused = paused
            if not paused:
                target.next_digest_at = target_schedule(target).next_after(self.clock.now())
            return await digest_info(session, target)

    async def channel_target_id(self, caller: Caller, channel_id: int) -> int | None:
        async with self.sessions() as session:
            target = await TargetRepository(session).channel(channel_id)
            if target is None or target.guild_id != caller.guild_id:
                return None
            return target.id
