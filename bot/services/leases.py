"""Claims across processes: heartbeats, and targets held under a lease.

Several `paperwatch run` processes on one PostgreSQL database each record a heartbeat in the
`processes` table (`last_seen`, every `heartbeat_interval` seconds). A process delivers to a
target only while it holds that target: `targets.claimed_by` names it and `lease_until`
bounds it; every heartbeat moves `lease_until` of the targets the process holds. A process
that dies stops renewing, and once its lease has run out another process may take the target.
The deliveries it claimed name it (`deliveries.claimed_by`): the taker never re-sends them
blindly, it first checks them against the target's history (bot/services/reconcile.py).

Due digests are taken the same way, many at once, with `FOR UPDATE SKIP LOCKED`: a process
skips the targets another is taking at that moment, so one channel's digest goes out once.

Lease times are the database's own clock (`now()`), so the processes' clocks need not agree.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Collection, Coroutine, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from bot.db.models import DELIVERY_PENDING, DeliveryRow, ProcessRow, TargetRow
from bot.tasks import cancel_and_wait

log = logging.getLogger(__name__)


def new_process_id() -> str:
    """`host:pid:random`: names one life of one process (a restart is another process)."""
    host = socket.gethostname()[:48] or "host"
    return f"{host}:{os.getpid()}:{secrets.token_hex(4)}"


class Leases:
    """This process's heartbeat, and the targets it holds; PostgreSQL only."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        process_id: str | None = None,
        heartbeat_interval: float = 5.0,
        lease: float = 30.0,
        on_share: Callable[[int], object] | None = None,
    ) -> None:
        self.sessions = sessions
        self.process_id = process_id or new_process_id()
        self.heartbeat_interval = heartbeat_interval
        self.lease = timedelta(seconds=lease)
        self.on_share = on_share
        """Called with the live process count after each heartbeat (each takes its share of the budget)."""
        self.live = 1
        self.joined: datetime | None = None
        """The database's time just after this process's first heartbeat was stored."""
        self._task: asyncio.Task[None] | None = None

    # -- heartbeat -------------------------------------------------------------------------

    async def start(self) -> None:
        await self.beat()
        self._task = asyncio.create_task(self._run(), name="paperwatch-heartbeat")

    async def stop(self, *, release: bool = True) -> None:
        """Stop the heartbeat; `release`: give back every target held and leave the table."""
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        if not release:
            return
        async with self.sessions.begin() as session:
            await session.execute(
                update(TargetRow)
                .where(TargetRow.claimed_by == self.process_id)
                .values(claimed_by=None, lease_until=None)
            )
            await session.execute(delete(ProcessRow).where(ProcessRow.id == self.process_id))

    async def beat(self) -> int:
        """Record that this process lives, renew its targets' leases; the number of live processes."""
        async with self.sessions.begin() as session:
            now = func.now()
            await session.execute(
                pg_insert(ProcessRow)
                .values(id=self.process_id, started_at=now, last_seen=now)
                .on_conflict_do_update(index_elements=[ProcessRow.id], set_={"last_seen": now})
            )
            await session.execute(
                update(TargetRow)
                .where(TargetRow.claimed_by == self.process_id)
                .values(lease_until=now + self.lease)
            )
            live = await session.scalar(
                select(func.count()).select_from(ProcessRow).where(ProcessRow.last_seen > now - self.lease)
            )
            # forget processes dead for long; their claims stay and are taken over as usual
            await session.execute(delete(ProcessRow).where(ProcessRow.last_seen < now - 10 * self.lease))
        if self.joined is None:  # a moment after the first beat was committed
            async with self.sessions() as session:
                self.joined = await session.scalar(select(func.now()))
        self.live = max(1, int(live or 0))
        if self.on_share is not None:
            self.on_share(self.live)
        return self.live

    async def counted_by_all(self, timeout: float) -> bool:
        """Wait until every other live process has beaten since this one joined (its first
        heartbeat), so that each takes its smaller share of the budget; False if one has not
        within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        if self.joined is None:
            await self.beat()
        joined = self.joined
        while True:
            async with self.sessions() as session:
                behind = await session.scalar(
                    select(func.count())
                    .select_from(ProcessRow)
                    .where(
                        ProcessRow.id != self.process_id,
                        ProcessRow.last_seen > func.now() - self.lease,
                        ProcessRow.last_seen <= joined,
                    )
                )
            if not behind:
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(min(0.25, self.heartbeat_interval / 4))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            try:
                await self.beat()
            except Exception:  # the database is away: the leases run out, others take over
                log.exception("the heartbeat failed; trying again in %.0f s", self.heartbeat_interval)

    # -- targets ---------------------------------------------------------------------------

    def _free(self) -> ColumnElement[bool]:
        """A target this process may take: nobody holds it, this process does, or the lease ran out."""
        return or_(
            TargetRow.claimed_by.is_(None),
            TargetRow.claimed_by == self.process_id,
            TargetRow.lease_until.is_(None),
            TargetRow.lease_until < func.now(),
        )

    async def take(self, target_id: int) -> bool:
        """Hold `target_id` (again) for a lease; False when another live process holds it."""
        async with self.sessions.begin() as session:
            taken = await session.scalar(
                update(TargetRow)
                .where(TargetRow.id == target_id, self._free())
                .values(claimed_by=self.process_id, lease_until=func.now() + self.lease)
                .returning(TargetRow.id)
                .execution_options(synchronize_session=False)
            )
        return taken is not None

    async def give_back(self, target_id: int) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                update(TargetRow)
                .where(TargetRow.id == target_id, TargetRow.claimed_by == self.process_id)
                .values(claimed_by=None, lease_until=None)
            )

    async def take_due(self, now: datetime, limit: int = 500, *, exclude: Collection[int] = ()) -> list[int]:
        """Hold the targets whose digest is due at `now` and that no live process holds, oldest first.

        `exclude`: targets this process is working on already (their digest has not moved on yet).
        """
        due = (
            select(TargetRow.id)
            .where(TargetRow.next_digest_at.is_not(None), TargetRow.next_digest_at <= now, self._free())
            .order_by(TargetRow.next_digest_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        if exclude:
            due = due.where(TargetRow.id.not_in(list(exclude)))
        async with self.sessions.begin() as session:
            ids = await session.scalars(
                update(TargetRow)
                .where(TargetRow.id.in_(due.scalar_subquery()))
                .values(claimed_by=self.process_id, lease_until=func.now() + self.lease)
                .returning(TargetRow.id)
                .execution_options(synchronize_session=False)
            )
            return sorted(ids)

    async def takeable(self, target_ids: Sequence[int]) -> list[int]:
        """Of `target_ids`, the ones no other live process holds now (skipping rows being taken)."""
        if not target_ids:
            return []
        async with self.sessions.begin() as session:
            ids = await session.scalars(
                select(TargetRow.id)
                .where(and_(TargetRow.id.in_(list(target_ids)), self._free()))
                .with_for_update(skip_locked=True)
            )
            return sorted(ids)


async def unclaim(
    sessions: async_sessionmaker[AsyncSession],
    target_id: int,
    ids: Sequence[int],
    schedule: tuple[datetime | None, datetime | None] | None,
) -> None:
    """Undo a claim nothing of which was sent: the deliveries wait again, and a digest keeps its time.

    `schedule`: the target's (next_digest_at, last_digest_at) before the claim moved them.
    """
    async with sessions.begin() as session:
        rows = await session.scalars(select(DeliveryRow).where(DeliveryRow.id.in_(list(ids))))
        for row in rows:
            row.status = DELIVERY_PENDING
            row.nonce = None
            row.claimed_at = None
            row.claimed_content = None
            row.claimed_by = None
            row.attempts = max(0, row.attempts - 1)
        target = await session.get(TargetRow, target_id)
        if target is not None and schedule is not None:
            target.next_digest_at, target.last_digest_at = schedule


TURNS_IN_FLIGHT = 4
"""Due digests are taken in turns of `batch` ÷ this, so this many turns are under way at once."""


async def due_in_turns(
    leases: Leases,
    now: datetime,
    batch: int,
    deliver: Callable[[Sequence[int], Any], Coroutine[Any, Any, object]],
    report: Any,
) -> None:
    """Take due digests a turn at a time and `deliver` each turn, until none is left to take.

    Small turns share a busy 09:00 between the processes. Up to `batch` targets are held at
    once, in `TURNS_IN_FLIGHT` turns: when one turn is done the next is taken, so the slowest
    target of a turn never leaves the others' share of the REST budget unused. A target taken
    again after its turn (its digest could not be moved on) is given back and not taken again
    this round.
    """
    turn = max(1, batch // TURNS_IN_FLIGHT)
    seen: set[int] = set()
    running: dict[asyncio.Task[object], list[int]] = {}
    taking = True
    try:
        while taking or running:
            held = [target_id for ids in running.values() for target_id in ids]
            if taking and batch - len(held) >= turn:
                due = await leases.take_due(now, limit=turn, exclude=held)
                fresh = [target_id for target_id in due if target_id not in seen]
                for target_id in set(due) - set(fresh):
                    await leases.give_back(target_id)
                if fresh:
                    seen.update(fresh)
                    running[asyncio.create_task(deliver(fresh, report))] = fresh
                    continue
                taking = False
            if running:
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    del running[task]
                    task.result()
                taking = True  # a turn is done: there is room, and targets may have come free
    finally:
        for task in running:
            await cancel_and_wait(task)
