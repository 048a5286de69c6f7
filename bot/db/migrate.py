"""Apply Alembic migrations from inside the running program (`db upgrade`, `run`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.db.lock import LockPurpose, advisory_key, advisory_lock


def migrations_dir() -> Path:
    """Where the migration scripts are: `bot.migrations` when installed, `migrations/` in a checkout."""
    spec = importlib.util.find_spec("bot.migrations")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the database behind `engine` to `revision`, sharing its connection (once across processes)."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    # On PostgreSQL the migrating connection holds an advisory lock: processes that start
    # together wait here, then find the database at head and have nothing left to do.
    lock = advisory_key(LockPurpose.MIGRATIONS)
    async with engine.connect() as connection, advisory_lock(connection, lock), connection.begin():
        await connection.run_sync(run)


async def current_revision(engine: AsyncEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as connection:
        return await connection.run_sync(read)
