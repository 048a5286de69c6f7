"""A channel's watches: add, list, remove, pause and resume them."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import TARGET_CHANNEL, TargetRow, WatchRow
from bot.db.repo import TargetRepository, WatchRepository
from bot.services.access import Caller, NotFound, UserError, own_channel, require_guild, require_manage
from bot.services.digests import target_schedule
from bot.services.subscriptions import AddedWatch, SubscriptionService, WatchView, choices_of, view_of


class WatchService(SubscriptionService):
    async def add_watch(
        self,
        caller: Caller,
        *,
        channel_id: int,
        query: str,
        mode: str | None = None,
        min_upvotes: int | None = None,
    ) -> AddedWatch:
        guild_id = require_guild(
            caller, "Channel watches are set up in a server; use `/alert add` for DM alerts."
        )
        require_manage(caller)
        options = self.subscriptions.options(query, mode, min_upvotes)
        limits = self.settings.limits
        async with self.sessions.begin() as session:
            target = await own_channel(session, caller, channel_id, self.settings)
            watches = WatchRepository(session)
            if await watches.count_for_target(target.id) >= limits.watches_per_channel:
                raise UserError(
                    f"This channel already has {limits.watches_per_channel} watches, the most allowed. "
                    "Remove one with `/watch remove` first."
                )
            if await watches.count_in_guild(guild_id) >= limits.watches_per_guild:
                raise UserError(
                    f"This server already has {limits.watches_per_guild} watches, the most allowed."
                )
            if target.paused_reason:
                target.paused_reason = None
                target.paused_notice_sent = False
            return await self.subscriptions.add(session, target, options, caller.user_id)

    async def list_watches(self, guild_id: int, channel_id: int | None = None) -> list[WatchView]:
        async with self.sessions() as session:
            pairs = await WatchRepository(session).in_guild(guild_id)
        views = [view_of(w, t) for w, t in pairs]
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
        require_manage(caller)
        async with self.sessions.begin() as session:
            row, target = await self._own_watch(session, caller, watch_id)
            view = await self.subscriptions.remove(session, row, target)
            if not await WatchRepository(session).count_for_target(target.id):
                target.next_digest_at = None
            return view

    async def set_watch_paused(self, caller: Caller, watch_id: int, paused: bool) -> WatchView:
        require_manage(caller)
        async with self.sessions.begin() as session:
            row, target = await self._own_watch(session, caller, watch_id)
            row.paused = paused
            if not paused and target.paused_reason:
                target.paused_reason = None
                target.paused_notice_sent = False
            if not paused and target.next_digest_at is None:
                target.next_digest_at = target_schedule(target).next_after(self.subscriptions.clock.now())
            return view_of(row, target)

    async def watch_choices(self, guild_id: int, channel_id: int | None, typed: str) -> list[tuple[int, str]]:
        """Autocomplete: this channel's watches first, then the guild's others; never another guild's."""
        views = await self.list_watches(guild_id)
        views.sort(key=lambda v: (v.channel_id != channel_id, v.id))
        return choices_of(views, typed)
