"""Engine and session factory; SQLite gets WAL, a busy timeout and foreign keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Each pooled connection keeps its own page cache (2 MiB by default) and fills it as the
# database grows; the operating system caches the file as well, so a small one costs little
# and keeps a long-running bot's memory flat (bench/soak.py: 14-day RSS growth 13.6% → 9.3%).
SQLITE_CACHE_KIB = 256
#: Connections a process keeps open to PostgreSQL (`[database] pool_size`), and how many more
#: it may open at a peak (`max_overflow`). SQLAlchemy's default of 5 made a fan-out to many
#: targets open and close an overflow connection for nearly every transaction, each one
#: connecting and preparing its statements again (bench/bench_fanout.py).
PG_POOL_SIZE = 20
PG_MAX_OVERFLOW = 10


def create_engine(
    url: str,
    *,
    echo: bool = False,
    pool_size: int = PG_POOL_SIZE,
    max_overflow: int = PG_MAX_OVERFLOW,
) -> AsyncEngine:
    """An async engine for `url`; SQLite files are created next to their parent directory."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"echo": echo}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    else:
        kwargs.update(pool_pre_ping=True, pool_size=pool_size, max_overflow=max_overflow)
    engine = create_async_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cursor.close()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
