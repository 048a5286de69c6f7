"""Shards: the ones this process connects, identified at Discord's pace by every process together.

Discord accepts one IDENTIFY per 5 seconds per identify bucket, `shard_id % max_concurrency`
(`max_concurrency` from `GET /gateway/bot`), counted over the whole bot. One process paces
its own shards in memory; processes that share a PostgreSQL database take the bucket's
advisory lock before identifying and keep it for the interval after, so the next identify of
that bucket, from whichever process, comes at least that long later. A process that dies
while holding the lock loses its database session and with it the lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import discord
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.config import Settings
from bot.db.lock import LockPurpose, advisory_key, release_advisory_lock, take_advisory_lock
from bot.discord.client import PaperwatchClient

log = logging.getLogger(__name__)

Concurrency = Callable[[], Awaitable[int]]


class IdentifyPacer:
    """Spaces the identifies of each bucket `interval` seconds apart, within this process."""

    def __init__(self, interval: float, concurrency: Concurrency) -> None:
        self.interval = interval
        self._concurrency = concurrency
        self._last: dict[int, float] = {}
        self._locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def bucket(self, shard_id: int) -> int:
        return shard_id % max(1, await self._concurrency())

    async def wait_turn(self, shard_id: int) -> None:
        """Return when `shard_id` may send its IDENTIFY now."""
        bucket = await self.bucket(shard_id)
        async with self._locks[bucket]:
            last = self._last.get(bucket)
            if last is not None:
                delay = last + self.interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            self._last[bucket] = time.monotonic()

    async def close(self) -> None:
        """Nothing held in memory outlives the process."""


class SharedIdentifyPacer(IdentifyPacer):
    """Spaces the identifies of each bucket across every process on one PostgreSQL database."""

    def __init__(self, engine: AsyncEngine, interval: float, concurrency: Concurrency) -> None:
        super().__init__(interval, concurrency)
        self.engine = engine
        self._holds: set[asyncio.Task[None]] = set()

    async def wait_turn(self, shard_id: int) -> None:
        bucket = await self.bucket(shard_id)
        key = advisory_key(LockPurpose.IDENTIFY, bucket)
        connection = await self.engine.connect()
        try:
            await take_advisory_lock(connection, key)
        except BaseException:
            # cancelled or failed while waiting: ending the session drops the lock if it came
            await connection.invalidate()
            await connection.close()
            raise
        hold = asyncio.create_task(self._hold(connection, key), name=f"identify-bucket-{bucket}")
        self._holds.add(hold)
        hold.add_done_callback(self._holds.discard)

    async def _hold(self, connection: AsyncConnection, key: int) -> None:
        """Keep the bucket's lock `interval` seconds after this identify, then give it back."""
        try:
            await asyncio.sleep(self.interval)
        finally:
            try:
                await release_advisory_lock(connection, key)
            except Exception:
                log.warning("could not give back an identify lock; dropping its connection", exc_info=True)
                await connection.invalidate()
            finally:
                await connection.close()

    async def close(self) -> None:
        holds = list(self._holds)
        for hold in holds:
            hold.cancel()
        for hold in holds:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await hold


class ShardedPaperwatchClient(PaperwatchClient, discord.AutoShardedClient):
    """The bot connecting `[discord] shard_ids` of `shard_count` shards (all of them when unset)."""

    def __init__(self, settings: Settings, engine: AsyncEngine) -> None:
        discord_settings = settings.discord
        assert discord_settings.shard_count is not None
        sharding: dict[str, Any] = {"shard_count": discord_settings.shard_count}
        if discord_settings.shard_ids is not None:
            sharding["shard_ids"] = list(discord_settings.shard_ids)
        super().__init__(settings, **sharding)
        self._max_concurrency: int | None = None
        interval = discord_settings.identify_delay
        self.identify_pacer: IdentifyPacer = (
            SharedIdentifyPacer(engine, interval, self.max_concurrency)
            if engine.dialect.name == "postgresql"
            else IdentifyPacer(interval, self.max_concurrency)
        )

    @property
    def syncs_commands(self) -> bool:
        """Only the process that holds shard 0 syncs the commands."""
        return self.shard_ids is None or 0 in self.shard_ids

    async def max_concurrency(self) -> int:
        """Discord's identify concurrency for this bot (asked once; 1 if Discord cannot say)."""
        if self._max_concurrency is None:
            try:
                limits = await self.fetch_session_start_limits()
                self._max_concurrency = max(1, int(limits.max_concurrency))
            except (discord.DiscordException, KeyError, TypeError, ValueError):
                log.warning("could not read the identify concurrency from Discord; identifying one at a time")
                self._max_concurrency = 1
        return self._max_concurrency

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        # `initial` is not enough: another process may just have identified in this bucket
        await self.identify_pacer.wait_turn(shard_id or 0)
        log.info("identifying shard %s of %s", shard_id, self.shard_count)

    async def close(self) -> None:
        await super().close()
        await self.identify_pacer.close()


def build_client(settings: Settings, engine: AsyncEngine) -> PaperwatchClient:
    """One unsharded connection, unless `[discord] shard_count` asks for shards."""
    if settings.discord.shard_count is None:
        return PaperwatchClient(settings)
    return ShardedPaperwatchClient(settings, engine)
