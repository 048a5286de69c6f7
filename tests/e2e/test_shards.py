"""Shards end to end: the real bot connects its shards to the local Discord and answers in every one.

One process with `shard_count = 2` connects both shards; two `paperwatch run` processes on one
PostgreSQL database (`shard_ids = [0]` and `[1]`) each connect theirs, and only the holder of
shard 0 syncs the commands. Identifies stay one per interval in their bucket, across processes.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.config import load_settings
from bot.db.engine import create_engine
from bot.discord.shards import IdentifyPacer, ShardedPaperwatchClient, SharedIdentifyPacer
from tests.e2e.conftest import World, reply_text
from tests.fakediscord.model import Perm
from tests.fakediscord.server import FakeDiscord
from tests.feedserver import FeedServer
from tests.reliability.crash_helpers import BotProcess, bot_environ
from tests.test_migrate_lock import fresh_pg_database, pg_url

INTERVAL = 0.4
"""Seconds between two identifies of one bucket, in these tests (Discord: 5)."""
JITTER = 0.9
"""The local Discord measures arrivals: it allows a tenth of the interval for the way there."""


def spread_guilds(fake: FakeDiscord, count: int) -> list[int]:
    """Guilds created a millisecond apart, so they alternate between two shards; their ids.

    The clock is real time moved on: on a slow machine a millisecond more may pass between two
    guilds, so one that lands on the same shard as the one before is left out and another made.
    """
    ids: list[int] = []
    made = 0
    while len(ids) < count:
        guild_id = fake.add_guild(f"Lab {made}", channels=("papers",)).id
        made += 1
        fake.advance_clock(0.001)
        if not ids or shard_of(guild_id) != shard_of(ids[-1]):
            ids.append(guild_id)
    return ids


def shard_of(guild_id: int) -> int:
    return (guild_id >> 22) % 2


async def watch_in_every_guild(fake: FakeDiscord, guild_ids: list[int], admin_id: int) -> dict[int, str]:
    """`/watch add` in the first channel of each guild; the bot's answer per guild."""
    answers = {}
    for guild_id in guild_ids:
        guild = fake.guilds[guild_id]
        record = await fake.invoke_command(
            guild_id,
            guild.channel_ids[0],
            admin_id,
            "watch add",
            options={"query": f"shard{shard_of(guild_id)}"},
        )
        await record.wait_response(timeout=15)
        answers[guild_id] = reply_text(record)
    return answers


def assert_paced(fake: FakeDiscord, interval: float) -> None:
    """Every identify was accepted, and each bucket's came at least `interval` apart."""
    assert all(r.accepted for r in fake.shards.identifies), fake.shards.identifies
    for bucket, gaps in fake.shards.gaps().items():
        assert all(gap >= interval for gap in gaps), (bucket, gaps)


# --- one process, two shards ---------------------------------------------------------------------


async def test_one_process_connects_both_shards_and_answers_in_each(world: World) -> None:
    fake = world.fake
    fake.shards.identify_interval = INTERVAL * JITTER  # a faster identify would get op 9
    guild_ids = [world.guild_id, *spread_guilds(fake, 3)]
    assert {shard_of(g) for g in guild_ids} == {0, 1}
    for guild_id in guild_ids[1:]:
        fake.add_member(
            guild_id, user_id=world.admin_id, permissions=Perm.MANAGE_CHANNELS | Perm.SEND_MESSAGES
        )
    world.extra = {
        "PAPERWATCH_DISCORD__SHARD_COUNT": "2",
        "PAPERWATCH_DISCORD__IDENTIFY_DELAY": str(INTERVAL),
    }

    app = await world.start_bot()
    assert isinstance(app.client, ShardedPaperwatchClient)
    assert sorted((s.shard_id, s.shard_count) for s in fake.sessions.values() if s.alive) == [(0, 2), (1, 2)]
    assert_paced(fake, INTERVAL * JITTER)
    assert len(fake.shards.accepted()) == 2
    assert len(fake.command_syncs) == 1

    answers = await watch_in_every_guild(fake, guild_ids, world.admin_id)
    for guild_id, text in answers.items():
        assert f"`shard{shard_of(guild_id)}` added" in text, text


def test_without_shard_settings_the_bot_stays_unsharded() -> None:
    from bot.discord.client import PaperwatchClient
    from bot.discord.shards import build_client

    engine = create_engine("sqlite+aiosqlite://")
    client = build_client(load_settings(environ={}), engine)
    assert type(client) is PaperwatchClient
    sharded = build_client(
        load_settings(
            environ={"PAPERWATCH_DISCORD__SHARD_COUNT": "4", "PAPERWATCH_DISCORD__SHARD_IDS": "2,3"}
        ),
        engine,
    )
    assert isinstance(sharded, ShardedPaperwatchClient)
    assert (sharded.shard_count, sharded.shard_ids) == (4, [2, 3])
    assert not sharded.syncs_commands


# --- identify pacing ------------------------------------------------------------------------------


async def one() -> int:
    return 1


async def test_in_one_process_identifies_of_a_bucket_are_spaced() -> None:
    pacer = IdentifyPacer(INTERVAL, one)
    times = []
    for shard_id in range(3):
        await pacer.wait_turn(shard_id)
        times.append(time.monotonic())
    assert all(later - earlier >= INTERVAL for earlier, later in itertools.pairwise(times))


async def test_two_processes_on_postgresql_space_the_identifies_of_one_bucket() -> None:
    """Two pacers with their own engines stand for two processes: one bucket, one identify per interval."""
    async with fresh_pg_database(pg_url()) as url:
        engines = [create_engine(url) for _ in range(2)]
        pacers = [SharedIdentifyPacer(engine, INTERVAL, one) for engine in engines]
        try:

            async def turn(pacer: SharedIdentifyPacer, shard_id: int) -> float:
                await pacer.wait_turn(shard_id)
                return time.monotonic()

            began = time.monotonic()
            times = sorted(await asyncio.gather(*(turn(p, i) for i, p in enumerate(pacers * 2))))
            assert times[0] - began < INTERVAL  # the first goes at once
            gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
            assert all(gap >= INTERVAL * 0.95 for gap in gaps), gaps
        finally:
            for pacer in pacers:
                await pacer.close()
            for engine in engines:
                await engine.dispose()


async def test_buckets_of_a_higher_concurrency_identify_together() -> None:
    async def two() -> int:
        return 2

    async with fresh_pg_database(pg_url()) as url:
        engine = create_engine(url)
        pacer = SharedIdentifyPacer(engine, 5.0, two)
        try:
            began = time.monotonic()
            await asyncio.gather(pacer.wait_turn(0), pacer.wait_turn(1))
            assert time.monotonic() - began < 2.0  # buckets 0 and 1 do not wait for each other
        finally:
            await pacer.close()
            await engine.dispose()


# --- two processes on one PostgreSQL database ------------------------------------------------------


@pytest.fixture
async def pg_database() -> AsyncIterator[str]:
    async with fresh_pg_database(pg_url()) as url:
        yield url


async def test_two_processes_each_connect_their_shard_and_answer_its_guilds(
    tmp_path: Path, pg_database: str
) -> None:
    fake = FakeDiscord()
    await fake.start()
    feeds = FeedServer()
    await feeds.start()
    fake.shards.identify_interval = 1.0 * JITTER
    guild_ids = spread_guilds(fake, 4)
    admin = fake.add_user("admin")
    for guild_id in guild_ids:
        fake.add_member(guild_id, user_id=admin.id, permissions=Perm.MANAGE_CHANNELS | Perm.SEND_MESSAGES)
    bots = []
    for shard_id in (0, 1):
        env = bot_environ(
            fake,
            feeds,
            tmp_path / "unused.db",
            PAPERWATCH_DATABASE__URL=pg_database,
            PAPERWATCH_DISCORD__SHARD_COUNT="2",
            PAPERWATCH_DISCORD__SHARD_IDS=f"[{shard_id}]",
            PAPERWATCH_DISCORD__IDENTIFY_DELAY="1.0",
        )
        bots.append(BotProcess(env, tmp_path, tmp_path / f"bot{shard_id}.log"))
    try:
        await asyncio.gather(*(bot.start() for bot in bots))

        def both_connected() -> bool:
            for bot in bots:
                if not bot.alive:
                    raise AssertionError(f"a bot exited:\n{bot.log_tail()}")
            shards = {s.shard_id for s in fake.sessions.values() if s.alive and s.connection is not None}
            return shards == {0, 1}

        await fake.wait_for(both_connected, 90, "both shards connected")
        await fake.wait_for(lambda: bool(fake.command_syncs), 30, "the commands synced")

        sessions = [s for s in fake.sessions.values() if s.alive]
        assert sorted((s.shard_id, s.shard_count) for s in sessions) == [(0, 2), (1, 2)]
        assert_paced(fake, 1.0 * JITTER)
        answers = await watch_in_every_guild(fake, guild_ids, admin.id)
        for guild_id, text in answers.items():
            assert f"`shard{shard_of(guild_id)}` added" in text, text
        assert len(fake.command_syncs) == 1
        logs = [bot.log_path.read_text(encoding="utf-8") for bot in bots]
        assert "synced" in logs[0]
        assert "synced" not in logs[1] and "command tree unchanged" not in logs[1]
        assert "Traceback" not in logs[0] + logs[1], logs
    finally:
        for bot in bots:
            await bot.close()
        await feeds.close()
        await fake.close()
