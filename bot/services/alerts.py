"""A user's DM alerts: add, list, remove them, and the schedule of their DM digest."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import TargetRow, WatchRow
from bot.db.repo import TargetRepository, WatchRepository
from bot.services.access import Caller, NotFound, UserError, schedule_defaults
from bot.services.digests import DigestInfo, apply_schedule, digest_info, parse_schedule, target_schedule
from bot.services.subscriptions import AddedWatch, SubscriptionService, WatchView, choices_of, view_of


class AlertService(SubscriptionService):
    async def add_alert(
        self, caller: Caller, *, query: str, mode: str | None = None, min_upvotes: int | None = None
    ) -> AddedWatch:
        options = self.subscriptions.options(query, mode, min_upvotes)
        async with self.sessions.begin() as session:
            target = await TargetRepository(session).ensure_user(
                caller.user_id, **schedule_defaults(self.settings)
            )
            limit = self.settings.limits.alerts_per_user
            if await WatchRepository(session).count_for_target(target.id) >= limit:
                raise UserError(f"You already have {limit} alerts, the most allowed. Remove one first.")
            return await self.subscriptions.add(session, target, options, caller.user_id)

    async def list_alerts(self, user_id: int) -> list[WatchView]:
        async with self.sessions() as session:
            target = await TargetRepository(session).user(user_id)
            if target is None:
                return []
            return [view_of(w, target) for w in await WatchRepository(session).for_target(target.id)]

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
            return await self.subscriptions.remove(session, row, target)

    async def alert_choices(self, user_id: int, typed: str) -> list[tuple[int, str]]:
        return choices_of(await self.list_alerts(user_id), typed)

    async def set_alert_schedule(
        self, user_id: int, *, time: str, timezone: str, days: str | None
    ) -> DigestInfo:
        schedule = parse_schedule(time, timezone, days)
        async with self.sessions.begin() as session:
            target = await TargetRepository(session).ensure_user(user_id, **schedule_defaults(self.settings))
            apply_schedule(target, schedule)
            target.next_digest_at = schedule.next_after(self.subscriptions.clock.now())
            return await digest_info(session, target)

    async def resume_alerts(self, user_id: int) -> int:
        """Resume a user's alerts after their DMs were found closed; returns how many."""
        async with self.sessions.begin() as session:
            target = await TargetRepository(session).user(user_id)
            if target is None:
                return 0
            target.paused_reason = None
            target.paused_notice_sent = False
            if target.next_digest_at is None:
                target.next_digest_at = target_schedule(target).next_after(self.subscriptions.clock.now())
            return await WatchRepository(session).count_for_target(target.id)

    async def alert_paused_reason(self, user_id: int) -> str | None:
        async with self.sessions() as session:
            target = await TargetRepository(session).user(user_id)
            return target.paused_reason if target else None
