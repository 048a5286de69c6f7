"""The leader: one process at a time polls the feeds; another takes over when its connection dies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.db.engine import create_engine
from bot.db.lock import LOCK_SPACE
from bot.services.leader import LEADER_KEY, Leadership
from tests.conftest import sqlite_url
from tests.test_migrate_lock import fresh_pg_database, pg_url


@pytest.fixture
async def pg_database() -> AsyncIterator[str]:
    async with fresh_pg_database(pg_url(), prefix="pw_leader") as url:
        yield url


async def leader_pid(engine: AsyncEngine) -> int | None:
    """The server process holding the leader's advisory lock, if any."""
    async with engine.connect() as conn:
        return await conn.scalar(
            text(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND classid = :space AND objid = :key AND objsubid = 2"
            ),
            {"space": LOCK_SPACE, "key": LEADER_KEY},
        )


async def terminate(engine: AsyncEngine, pid: int) -> None:
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


async def test_sqlite_process_always_leads(tmp_path: Path) -> None:
    engine = create_engine(sqlite_url(tmp_path))
    changes: list[bool] = []
    leadership = Leadership(engine, on_change=changes.append)
    await leadership.start()
    assert leadership() and changes == [True]
    await leadership.stop()
    assert not leadership()
    await engine.dispose()


async def test_one_leader_and_takeover_when_its_connection_is_terminated(pg_database: str) -> None:
    engines = [create_engine(pg_database) for _ in range(3)]
    first = Leadership(engines[0], retry_interval=60, check_interval=60)
    second = Leadership(engines[1], retry_interval=60, check_interval=60)
    try:
        await first.start()
        await second.start()
        assert first() and not second()
        for _ in range(3):  # trying again changes nothing while the leader's connection lives
            assert await second.step() is False
            assert await first.step() is True
        pid = await leader_pid(engines[2])
        assert pid is not None
        await terminate(engines[2], pid)
        # the old leader notices at its check and stops leading before anyone else can lead
        assert await first.step() is False
        assert await second.step() is True
        assert await first.step() is False
        assert await leader_pid(engines[2]) not in (None, pid)
    finally:
        await first.stop()
        await second.stop()
        for engine in engines:
            await engine.dispose()


async def test_background_takeover_within_the_retry_interval(pg_database: str) -> None:
    engines = [create_engine(pg_database) for _ in range(3)]
    changes: dict[str, list[bool]] = {"a": [], "b": []}
    a = Leadership(engines[0], retry_interval=0.3, check_interval=0.2, on_change=changes["a"].append)
    b = Leadership(engines[1], retry_interval=0.3, check_interval=0.2, on_change=changes["b"].append)
    try:
        await a.start()
        await b.start()
        assert a() and not b()
        both = 0
        for _ in range(10):  # never two leaders at once
            await asyncio.sleep(0.05)
            both += a() and b()
        pid = await leader_pid(engines[2])
        assert pid is not None
        await terminate(engines[2], pid)
        began = time.monotonic()
        while not b():
            assert time.monotonic() - began < 5, "nobody took over the lead"
            both += a() and b()
            await asyncio.sleep(0.02)
        assert both == 0
        # the old leader learns it lost its connection at its next check (every 0.2 s); the
        # lock went with the connection, so the new leader may already hold it by then
        while a():
            assert time.monotonic() - began < 5, "the old leader never stepped down"
            await asyncio.sleep(0.02)
        assert changes == {"a": [True, False], "b": [True]}
        # the old leader, its database back, does not take the lead from the new one
        await asyncio.sleep(0.8)
        assert b() and not a()
    finally:
        await a.stop()
        await b.stop()
        for engine in engines:
            await engine.dispose()
