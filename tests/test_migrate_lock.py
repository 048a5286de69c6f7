"""Migrations run once when several processes start together on one PostgreSQL database.

Each test gets a database of its own, created for it and dropped afterwards, so the processes
it starts see exactly what a fresh deployment sees.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bot.db.engine import create_engine
from bot.db.lock import LOCK_SPACE, LockPurpose, advisory_key, release_advisory_lock, take_advisory_lock
from bot.db.migrate import alembic_config, current_revision, upgrade

PG_ENV = "PAPERWATCH_TEST_PG_URL"
REPO = Path(__file__).resolve().parents[1]


def pg_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is not set (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test)")
    return url


@asynccontextmanager
async def fresh_pg_database(url: str, prefix: str = "pw_test") -> AsyncIterator[str]:
    """A new, empty PostgreSQL database on the server of `url`; its URL. Dropped on exit."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


async def versions(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars())
    finally:
        await engine.dispose()


@pytest.fixture
async def database() -> AsyncIterator[str]:
    async with fresh_pg_database(pg_url()) as url:
        yield url


async def test_four_processes_upgrading_at_once_all_succeed(database: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERWATCH_")}
    env.update({"PAPERWATCH_DATABASE__URL": database, "PYTHONPATH": str(REPO)})
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "db",
            "upgrade",
            cwd=REPO,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(4)
    ]
    outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 120)
    head = head_revision()
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()
        assert f"database is at revision {head}" in out.decode()
        assert "Traceback" not in err.decode()
    assert await versions(database) == [head]


async def test_four_engines_upgrading_at_once_in_one_program(database: str) -> None:
    engines = [create_engine(database) for _ in range(4)]
    try:
        await asyncio.gather(*(upgrade(engine) for engine in engines))
        assert await current_revision(engines[0]) == head_revision()
    finally:
        for engine in engines:
            await engine.dispose()
    assert await versions(database) == [head_revision()]


async def test_an_upgrade_waits_while_another_process_holds_the_migration_lock(database: str) -> None:
    holder = create_engine(database)
    engine = create_engine(database)
    key = advisory_key(LockPurpose.MIGRATIONS)
    try:
        async with holder.connect() as conn:
            await take_advisory_lock(conn, key)
            migrating = asyncio.create_task(upgrade(engine))
            await asyncio.sleep(1.0)
            assert not migrating.done()
            assert await current_revision(holder) is None  # nothing migrated behind the lock
            await release_advisory_lock(conn, key)
            await asyncio.wait_for(migrating, 60)
        assert await current_revision(engine) == head_revision()
        # the lock was given back: it can be taken at once
        async with holder.connect() as conn:
            taken = await conn.execute(
                text("SELECT pg_try_advisory_lock(:s, :k)"), {"s": LOCK_SPACE, "k": key}
            )
            assert taken.scalar() is True
            await release_advisory_lock(conn, key)
    finally:
        await holder.dispose()
        await engine.dispose()


async def test_a_failed_migration_gives_the_lock_back(database: str) -> None:
    engine = create_engine(database)
    key = advisory_key(LockPurpose.MIGRATIONS)
    try:
        with pytest.raises(Exception, match=r"no_such_revision"):
            await upgrade(engine, "no_such_revision")
        async with engine.connect() as conn:
            taken = await conn.execute(
                text("SELECT pg_try_advisory_lock(:s, :k)"), {"s": LOCK_SPACE, "k": key}
            )
            assert taken.scalar() is True
            await release_advisory_lock(conn, key)
    finally:
        await engine.dispose()
