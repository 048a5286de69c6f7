"""SQLite serves one running bot: a second `paperwatch run` on the same file exits at once."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.db.lock import DatabaseInUseError, SqliteProcessLock, hold_sqlite_database, sqlite_file
from tests.fakediscord.server import FakeDiscord
from tests.feedserver import FeedServer
from tests.reliability.crash_helpers import REPO, BotProcess, CrashWorld, bot_environ


def test_the_lock_file_sits_beside_the_database(tmp_path: Path) -> None:
    db = tmp_path / "data" / "paperwatch.db"
    lock = hold_sqlite_database(f"sqlite+aiosqlite:///{db}")
    assert lock is not None
    try:
        assert lock.path == db.with_name("paperwatch.db.lock")
        assert lock.path.exists()
    finally:
        lock.release()


def test_a_second_holder_is_refused_at_once_until_the_first_lets_go(tmp_path: Path) -> None:
    db = tmp_path / "paperwatch.db"
    first = SqliteProcessLock(db)
    first.acquire()
    with pytest.raises(DatabaseInUseError) as refused:
        SqliteProcessLock(db).acquire()
    message = str(refused.value)
    assert "SQLite serves one process" in message
    assert "PostgreSQL" in message
    assert str(db) in message
    first.release()
    with SqliteProcessLock(db):  # free again
        pass


@pytest.mark.parametrize(
    "url",
    [
        "sqlite+aiosqlite:///:memory:",
        "sqlite+aiosqlite://",
        "postgresql+asyncpg://postgres@127.0.0.1:5432/test",
    ],
)
def test_no_lock_file_without_a_sqlite_file(url: str) -> None:
    assert sqlite_file(url) is None
    assert hold_sqlite_database(url) is None


def test_a_relative_path_is_locked_where_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert sqlite_file("sqlite+aiosqlite:///paperwatch.db") == tmp_path / "paperwatch.db"


# --- real `paperwatch run` processes against the local Discord ------------------------------------


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[CrashWorld]:
    fake = FakeDiscord()
    await fake.start()
    feeds = FeedServer()
    await feeds.start()
    db = tmp_path / "paperwatch.db"
    bot = BotProcess(bot_environ(fake, feeds, db), tmp_path, tmp_path / "bot.log")
    world = CrashWorld(fake=fake, feeds=feeds, bot=bot, db=db)
    try:
        yield world
    finally:
        await bot.close()
        await feeds.close()
        await fake.close()


async def paperwatch(world: CrashWorld, *args: str, timeout: float = 60) -> tuple[int, str]:
    """Run `python -m bot ARGS` with the bot's environment to its end; exit code and stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=world.bot.cwd,
        env=world.bot.env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_a_second_run_on_the_same_sqlite_file_exits_with_code_2(world: CrashWorld) -> None:
    await world.start()
    await world.wait_ready(timeout=60)
    identified = world.fake.identify_count

    code, err = await paperwatch(world, "run")
    assert code == 2, err
    assert "SQLite serves one process" in err and "PostgreSQL" in err
    assert "Traceback" not in err
    assert world.fake.identify_count == identified  # it never reached Discord
    assert world.bot.alive  # the running bot is untouched

    # short commands on the same file still work while the bot runs
    code, err = await paperwatch(world, "db", "upgrade")
    assert code == 0, err

    # a killed bot leaves no stale lock: the next start connects
    world.bot.signal(signal.SIGKILL)
    assert await world.bot.wait(10) == -signal.SIGKILL
    await world.start()
    await world.wait_ready(timeout=60)
    assert world.fake.identify_count == identified + 1
    assert world.bot.alive


def test_the_lock_file_is_not_committed() -> None:
    ignored = (REPO / ".gitignore").read_text(encoding="utf-8").split()
    assert "*.db.lock" in ignored
