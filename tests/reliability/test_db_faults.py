"""The SQLite database shared by the running bot and the command line (issue #4, item 2).

`paperwatch fetch --file …` and `paperwatch db upgrade` run as real subprocesses on the
database the bot is using while the bot polls, delivers and answers commands: nobody sees
"database is locked", every paper of both sources is stored (merged, not duplicated), and
a migration run on a database full of data keeps every row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.feeds.detect import parse_feed_file
from bot.services.core import Core
from tests.conftest import ARXIV_DIR, HF_DIR, raw_entries
from tests.e2e import conftest as e2e
from tests.e2e.conftest import World, reply_text
from tests.feedserver import load_hf_day

pytestmark = pytest.mark.slow

world = e2e.world  # the end-to-end fixture: real bot, FakeDiscord, local feed server

TODAY = "2025-03-17"
RSS = ARXIV_DIR / "rss_all-archives_2024-11-28.xml"  # 1,504 arXiv papers
HF_SAME_DAY = HF_DIR / "2024-11-28.json"  # 20 HF papers, 13 of them also in the RSS file
HF_FILE = HF_DIR / "2025-09-30.json"  # 50 more HF papers, ingested by the CLI
LOCKED = "database is locked"
ERROR_ID = "Something went wrong"


# --- helpers ---------------------------------------------------------------------------------


async def cli(world: World, *args: str | Path, timeout: float = 90) -> tuple[int, str, str]:
    """`python -m bot ARGS` on the bot's database, in a clean environment and directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERWATCH_") and k != "DISCORD_TOKEN"}
    env["PAPERWATCH_DATABASE__URL"] = f"sqlite+aiosqlite:///{world.db}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *map(str, args),
        cwd=world.db.parent,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def table_dump(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {
            table: sorted(conn.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr) for table in tables
        }


def papers(db: Path) -> dict[str, str]:
    """Stored papers: arXiv id -> the JSON list of their sources."""
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        return dict(conn.execute("SELECT arxiv_id, sources FROM papers").fetchall())


def ids_in(path: Path) -> set[str]:
    """The paper ids of a fixture file, read without the bot's parsers."""
    return {entry.arxiv_id for entry in raw_entries(path)}


async def first_poll_done(world: World) -> None:
    def done() -> bool:
        try:
            with contextlib.closing(sqlite3.connect(world.db, timeout=10)) as conn:
                return bool(
                    conn.execute("SELECT 1 FROM feed_state WHERE last_poll_at IS NOT NULL").fetchall()
                )
        except sqlite3.OperationalError:
            return False

    await world.wait(done, timeout=10)


# --- the CLI writing while the bot polls and answers -----------------------------------------


async def test_cli_ingest_while_the_bot_polls_and_answers(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    hf_day = load_hf_day("2024-11-28")
    world.feeds.days[TODAY] = hf_day
    await world.start_bot()
    await first_poll_done(world)
    assert world.app is not None and world.app.timetable is not None
    timetable = world.app.timetable
    # Watches, so that every ingest (bot or CLI) also writes deliveries and match counts.
    await world.command("watch add", query="upvotes>=0")
    await world.command(
        "watch add", query="model* OR learning", mode="instant", channel=world.other_channel_id
    )
    await world.command("alert add", user_id=world.member_id, query="quantum", mode="instant")

    clis = asyncio.gather(
        cli(world, "fetch", "--file", RSS),
        cli(world, "fetch", "--file", HF_FILE),
        cli(world, "db", "upgrade"),
    )
    replies: list[str] = []
    poll_errors: list[BaseException] = []
    round_ = 0
    while not clis.done():
        round_ += 1
        # The HF feed changes during the day: upvotes move, so every poll writes.
        for entry in hf_day[: 3 + round_ % 5]:
            entry["paper"]["upvotes"] += 1
        world.clock.advance(minutes=1)
        try:
            await asyncio.wait_for(timetable.poll_huggingface(), 30)
        except Exception as exc:
            poll_errors.append(exc)
        for name, options in [
            ("watch add", {"query": f"topic{round_} OR agents"}),
            ("watch test", {"query": "diffusion OR quantum"}),
            ("paperwatch status", {}),
            ("alert add", {"query": f"subject{round_}", "user_id": world.member_id}),
            ("digest now", {}),
        ]:
            record = await world.command(name, **options)
            if name == "digest now":
                await world.wait(lambda r=record: bool(r.original_edits), timeout=30)
            replies.append(reply_text(record))
        if round_ >= 40:
            break
    results = await clis
    await asyncio.sleep(0.3)

    for code, out, err in results:
        assert code == 0, err[-2000:]
        assert LOCKED not in out + err
    assert round_ >= 2, "the CLI finished before the bot did anything concurrently"
    assert not poll_errors, poll_errors
    for text in replies:
        assert LOCKED not in text and ERROR_ID not in text, text
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert LOCKED not in logged
    assert "delivery check failed" not in logged

    stored = papers(world.db)
    both = ids_in(RSS) & ids_in(HF_SAME_DAY)
    assert len(both) == 13
    assert set(stored) == ids_in(RSS) | ids_in(HF_SAME_DAY) | ids_in(HF_FILE)
    # A paper in both feeds is one paper carrying both sources.
    for arxiv_id in both:
        assert "arxiv" in stored[arxiv_id].lower() and "hf" in stored[arxiv_id].lower(), (
            arxiv_id,
            stored[arxiv_id],
        )


# --- migrations on a database that already has data ------------------------------------------


async def test_db_upgrade_on_a_populated_database_keeps_every_row(world: World) -> None:
    world.feeds.days[TODAY] = load_hf_day(TODAY)
    await world.start_bot()
    await first_poll_done(world)
    await world.command("watch add", query="upvotes>=0")
    await world.command("watch add", query="model*", mode="instant", channel=world.other_channel_id)
    await world.command("alert add", user_id=world.member_id, query="diffusion")
    await world.command("digest set", time="08:30", timezone="Europe/Paris")
    record = await world.command("digest now")
    await world.wait(lambda: "Posted" in reply_text(record), timeout=10)
    posted = len(world.posts())
    assert posted >= 1
    await world.stop_bot()

    before = table_dump(world.db)
    for table in ("papers", "targets", "watches", "deliveries", "feed_state"):
        assert before[table], f"{table} should hold rows before the migration"

    for _ in range(2):  # twice: a second run finds nothing to do and changes nothing
        code, _, err = await cli(world, "db", "upgrade")
        assert code == 0, err
        assert table_dump(world.db) == before

    # The bot starts on the migrated database with everything in place, posting nothing twice.
    await world.start_bot()
    listing = reply_text(await world.command("watch list"))
    assert "upvotes>=0" in listing and "model*" in listing
    assert "diffusion" in reply_text(await world.command("alert list", user_id=world.member_id))
    assert "08:30 Europe/Paris" in reply_text(await world.command("digest show"))
    again = await world.command("digest now")
    await world.wait(lambda: bool(again.original_edits), timeout=10)
    assert "Posted" not in reply_text(again)
    await asyncio.sleep(0.3)
    assert len(world.posts()) == posted


# --- two writers storing the same new paper at the same moment -------------------------------


async def test_bot_and_cli_storing_the_same_new_papers_at_once(world: World) -> None:
    """The interleaving the CLI test above can only hit by chance, made certain with a lock.

    A third connection holds SQLite's write lock while the bot polls a day and another Core
    (what `paperwatch fetch --file` runs) ingests the same day: both read "not stored yet",
    both wait for the lock, and the lock is released.
    """
    world.feeds.days.clear()
    await world.start_bot()
    await first_poll_done(world)
    assert world.app is not None and world.app.timetable is not None
    await world.command("watch add", query="upvotes>=0", mode="instant")
    world.clock.advance(minutes=5)
    world.feeds.days[TODAY] = json_day = load_hf_day("2024-11-28")
    cli_core = await Core.open(world.settings(), migrate=False)
    blocker = sqlite3.connect(world.db, timeout=10, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        requests = len(world.feeds.hf_requests())
        bot_poll = asyncio.create_task(world.app.timetable.poll_huggingface())
        cli_ingest = asyncio.create_task(cli_core.ingestor.ingest(parse_feed_file(HF_SAME_DAY)))
        await world.wait(lambda: len(world.feeds.hf_requests()) > requests)
        await asyncio.sleep(0.5)  # both have read, both wait for the lock
        blocker.execute("ROLLBACK")
        outcomes = await asyncio.wait_for(asyncio.gather(bot_poll, cli_ingest, return_exceptions=True), 60)
    finally:
        blocker.close()
        await cli_core.close()
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert not errors, [f"{type(e).__name__}: {str(e)[:200]}" for e in errors]
    assert set(papers(world.db)) == {e["paper"]["id"] for e in json_day}
    with contextlib.closing(sqlite3.connect(world.db, timeout=10)) as conn:
        state = conn.execute("SELECT last_error, consecutive_failures FROM feed_state").fetchall()
    assert state == [(None, 0)]
    await world.wait(lambda: len(world.posts()) >= 1, timeout=5)
