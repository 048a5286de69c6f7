"""The leader: the one process that polls the feeds, ingests and matches new papers.

On PostgreSQL the leader holds a session-level advisory lock on a connection kept open for
that purpose alone. The lock lives as long as that database session: when the leader dies,
or its connection breaks, the server drops the lock and another process takes it at its
next try. The leader checks its connection every `check_interval` seconds and gives up
leading the moment the check fails (it may no longer hold the lock); a process that does not
lead tries to take the lock every `retry_interval` seconds. With the defaults (5 s and
10 s) a dead leader is replaced within about 15 s.

On SQLite one process runs the bot, and it always leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot import metrics
from bot.db.lock import LOCK_SPACE, LockPurpose, advisory_key
from bot.tasks import cancel_and_wait

log = logging.getLogger(__name__)

LEADER_KEY = advisory_key(LockPurpose.LEADER)

OnChange = Callable[[bool], Awaitable[object] | None]


class Leadership:
    """Whether this process leads; on PostgreSQL, kept up to date by a background task."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        retry_interval: float = 10.0,
        check_interval: float = 5.0,
        on_change: OnChange | None = None,
    ) -> None:
        self.engine = engine
        self.retry_interval = retry_interval
        self.check_interval = check_interval
        self.on_change = on_change
        self.shared = engine.dialect.name == "postgresql"
        """False on SQLite: one process, always the leader."""
        self.leading = False
        self._connection: AsyncConnection | None = None
        self._task: asyncio.Task[None] | None = None

    def __call__(self) -> bool:
        return self.leading

    async def start(self) -> None:
        """Lead at once on SQLite; on PostgreSQL try now, then keep trying (or checking) in the background."""
        if not self.shared:
            await self._set(True)
            return
        await self.step()
        self._task = asyncio.create_task(self._run(), name="paperwatch-leader")

    async def stop(self) -> None:
        """Stop trying; a held lock is given back by closing its connection."""
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        await self._drop()
        if self.leading:
            self.leading = False
            metrics.set_leader(False)

    async def step(self) -> bool:
        """One round: check the held lock's connection, or try to take the lock; True if leading."""
        if self.leading and not await self._connection_alive():
            log.warning("the leader's database connection was lost; no longer polling the feeds")
            await self._drop()
            await self._set(False)
            return False  # the others get a round to take the lead first
        if not self.leading:
            await self._try_take()
        return self.leading

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.check_interval if self.leading else self.retry_interval)
            try:
                await self.step()
            except Exception:  # a database hiccup: not leading, try again next round
                log.exception("the leadership check failed")
                await self._drop()
                await self._set(False)

    async def _try_take(self) -> None:
        try:
            connection = await self.engine.connect()
        except Exception as exc:
            log.warning("cannot reach the database to take the lead: %s", type(exc).__name__)
            return
        try:
            taken = await connection.scalar(
                text("SELECT pg_try_advisory_lock(:space, :key)"), {"space": LOCK_SPACE, "key": LEADER_KEY}
            )
            await connection.commit()
        except Exception as exc:
            log.warning("taking the lead failed: %s", type(exc).__name__)
            await _discard(connection)
            return
        if not taken:
            await connection.close()
            return
        self._connection = connection
        log.info("this process leads: it polls the feeds and matches new papers")
        await self._set(True)

    async def _connection_alive(self) -> bool:
        connection = self._connection
        if connection is None:
            return False
        try:
            async with asyncio.timeout(self.check_interval):
                await connection.scalar(text("SELECT 1"))
                await connection.commit()
        except Exception:
            return False
        return True

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await _discard(connection)

    async def _set(self, leading: bool) -> None:
        changed = leading != self.leading
        self.leading = leading
        metrics.set_leader(leading)
        if changed and self.on_change is not None:
            result = self.on_change(leading)
            if result is not None:
                await result


async def _discard(connection: AsyncConnection) -> None:
    """Close a connection that may be broken; the server ends its session (and its locks)."""
    with contextlib.suppress(Exception):
        await connection.invalidate()
    with contextlib.suppress(Exception):
        await connection.close()
