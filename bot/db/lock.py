"""Locks between processes: PostgreSQL advisory locks, and the one-process rule of SQLite.

PostgreSQL: every advisory lock paperwatch takes uses the two-key form
`pg_advisory_lock(LOCK_SPACE, key)`, whose key space does not overlap the one-key form that
other software on the same database may use. `key` is a purpose (`LockPurpose`) in the high
bits and a number within it (an identify bucket) in the low bits.

SQLite: one `paperwatch run` per database file. The running bot holds an exclusive `flock`
on a file beside the database (`paperwatch.db.lock`) for its whole life; the kernel drops it
when the process ends, however it ends, so a killed bot leaves no stale lock behind.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

LOCK_SPACE = 0x7061_7077
"""First key of every paperwatch advisory lock ("papw")."""


class LockPurpose(enum.IntEnum):
    MIGRATIONS = 1
    IDENTIFY = 2
    """One lock per identify bucket (`shard_id % max_concurrency`)."""
    LEADER = 3
    """Held by the process that polls the feeds and matches new papers (bot/services/leader.py)."""


def advisory_key(purpose: LockPurpose, number: int = 0) -> int:
    """The second key of an advisory lock: the purpose, and a number below 2**20 within it."""
    if not 0 <= number < 1 << 20:
        raise ValueError(f"advisory lock number out of range: {number}")
    return (int(purpose) << 20) | number


async def take_advisory_lock(connection: AsyncConnection, key: int) -> None:
    """Wait for and take the session-level lock `key` on `connection` (outside any transaction after)."""
    await connection.execute(text("SELECT pg_advisory_lock(:space, :key)"), {"space": LOCK_SPACE, "key": key})
    await connection.commit()


async def release_advisory_lock(connection: AsyncConnection, key: int) -> None:
    """Give back a lock from `take_advisory_lock`; a failed transaction is rolled back first."""
    await connection.rollback()
    await connection.execute(
        text("SELECT pg_advisory_unlock(:space, :key)"), {"space": LOCK_SPACE, "key": key}
    )
    await connection.commit()


@contextlib.asynccontextmanager
async def advisory_lock(connection: AsyncConnection, key: int) -> AsyncIterator[None]:
    """Hold `key` on `connection` for the block (PostgreSQL); elsewhere the block runs unlocked.

    If the lock cannot be given back (the connection broke), the connection is invalidated,
    which ends its session on the server and with it the lock.
    """
    if connection.dialect.name != "postgresql":
        yield
        return
    await take_advisory_lock(connection, key)
    try:
        yield
    finally:
        try:
            await release_advisory_lock(connection, key)
        except Exception:
            await connection.invalidate()
            raise


# --- SQLite: one running bot per database file --------------------------------------------------


class DatabaseInUseError(Exception):
    """Another `paperwatch run` holds this SQLite database."""


SQLITE_ONE_PROCESS = (
    "another paperwatch run is already using the SQLite database {path}. SQLite serves one "
    "process; to run the bot in several processes, give them one PostgreSQL database "
    "([database] url = postgresql+asyncpg://…)."
)


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL, None for another engine or an in-memory database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    if parsed.database.startswith("file:"):
        return None
    return Path(parsed.database).resolve()


class SqliteProcessLock:
    """An exclusive, non-blocking `flock` on `<database>.lock`, held until `release` or process exit."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.path = database.with_name(database.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise DatabaseInUseError at once (never waits)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DatabaseInUseError(SQLITE_ONE_PROCESS.format(path=self.database)) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> SqliteProcessLock:
        self.acquire()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def hold_sqlite_database(url: str) -> SqliteProcessLock | None:
    """Lock the SQLite file of `url` for this process (None for PostgreSQL or in-memory SQLite).

    Raises DatabaseInUseError when another running bot holds it.
    """
    database = sqlite_file(url)
    if database is None:
        return None
    lock = SqliteProcessLock(database)
    lock.acquire()
    return lock
