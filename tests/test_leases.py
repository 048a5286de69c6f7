"""Several processes on one PostgreSQL database: each paper posted once, dead processes' claims finished.

Two "processes" here are two Cores (separate engines, distinct process ids) over one fresh
database, each with its own Deliverer and leases, posting to one shared stand-in for Discord
(the recording Sender of tests/test_delivery.py, which honours nonces and keeps a history).
The fan-out parts that need no database (token bucket, per-target work) are tested on their own.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from sqlalchemy import func, select

from bot.config import Settings
from bot.db.models import DeliveryRow, ProcessRow, TargetRow
from bot.discord.embeds import render
from bot.services.core import Core
from bot.services.delivery import Deliverer
from bot.services.fanout import TargetWork, TokenBucket
from bot.services.leases import Leases
from bot.services.outbox import Destination, OutgoingMessage
from tests.conftest import HF_OVERLAP, FakeClock, load_feed
from tests.test_delivery import ADMIN, CHANNEL, NEXT_DIGEST, RecordingSender, digest_order
from tests.test_migrate_lock import fresh_pg_database, pg_url

CHANNELS = 12


class SlowDiscord(RecordingSender):
    """The shared Discord: every post takes a little while, so the processes' sends overlap."""

    def __init__(self, clock: FakeClock, delay: float = 0.005) -> None:
        super().__init__(clock)
        self.delay = delay
        self.hang_after: int | None = None
        """After this many messages are stored, the sends hang unanswered (the process sending is dying)."""
        self.hung = asyncio.Event()

    async def send(self, destination: Destination, message: OutgoingMessage, nonce: str) -> int:
        await asyncio.sleep(self.delay)
        message_id = await super().send(destination, message, nonce)
        if self.hang_after is not None and len(self.posted) >= self.hang_after:
            self.hung.set()
            await asyncio.Event().wait()  # stored, never answered: the process died mid-digest
        return message_id


class ViaProcess(RecordingSender):
    """One process's view of the shared Discord: its own failures, the shared messages."""

    def __init__(self, discord: RecordingSender, send: Callable[..., Awaitable[int]]) -> None:
        super().__init__(discord.clock)
        self.discord = discord
        self._send = send

    async def send(self, destination: Destination, message: OutgoingMessage, nonce: str) -> int:
        return await self._send(destination, message, nonce)

    async def sent_since(self, destination: Destination, since, looking_for):  # type: ignore[no-untyped-def]
        return await self.discord.sent_since(destination, since, looking_for)


@pytest.fixture
async def pg_database() -> AsyncIterator[str]:
    async with fresh_pg_database(pg_url(), prefix="pw_leases") as url:
        yield url


@pytest.fixture
async def two_cores(
    pg_database: str, make_settings: Callable[..., Settings], clock: FakeClock
) -> AsyncIterator[tuple[Core, Core]]:
    settings = make_settings(PAPERWATCH_DATABASE__URL=pg_database)
    first = await Core.open(settings, clock=clock)
    second = await Core.open(settings, clock=clock, migrate=False)
    yield first, second
    await first.close()
    await second.close()


async def channels_with_matches(core: Core, clock: FakeClock, count: int) -> list[int]:
    for n in range(count):
        await core.watches.add_watch(ADMIN, channel_id=CHANNEL + n, query="upvotes>=0")
    clock.advance(minutes=1)
    await core.ingestor.ingest(load_feed(HF_OVERLAP))
    ids = [await core.digests.channel_target_id(ADMIN, CHANNEL + n) for n in range(count)]
    assert all(i is not None for i in ids)
    return [i for i in ids if i is not None]


def process(
    core: Core, sender: RecordingSender, *, lease: float = 30.0, heartbeat: float = 5.0, concurrency: int = 3
) -> tuple[Deliverer, Leases]:
    leases = Leases(core.sessions, heartbeat_interval=heartbeat, lease=lease)
    outbox = Deliverer(
        core.sessions,
        sender,
        render,
        core.clock,
        max_papers=core.settings.digest.max_papers,
        leases=leases,
        concurrency=concurrency,
    )
    return outbox, leases


def papers_per_channel(discord: RecordingSender) -> dict[int, Counter[str]]:
    found: dict[int, Counter[str]] = {}
    for destination, message, _, _ in discord.posted:
        urls = [str(e["url"]).rsplit("/", 1)[1] for e in message.embeds]
        found.setdefault(destination.channel_id, Counter()).update(urls)
    return found


def assert_everything_once(discord: RecordingSender, channels: int) -> None:
    found = papers_per_channel(discord)
    expected = Counter(digest_order())
    assert sorted(found) == [CHANNEL + n for n in range(channels)]
    for channel, counts in found.items():
        assert counts == expected, f"channel {channel}: {counts - expected} doubled, {expected - counts} lost"


async def statuses(core: Core) -> Counter[str]:
    async with core.sessions() as session:
        return Counter(await session.scalars(select(DeliveryRow.status)))


# --- two processes, one database ----------------------------------------------------------------


async def test_two_processes_post_every_due_digest_once(
    two_cores: tuple[Core, Core], clock: FakeClock
) -> None:
    first, second = two_cores
    await channels_with_matches(first, clock, CHANNELS)
    discord = SlowDiscord(clock)
    a, a_leases = process(first, ViaProcess(discord, discord.send))
    b, b_leases = process(second, ViaProcess(discord, discord.send))
    await a_leases.start()
    await b_leases.start()
    assert a_leases.process_id != b_leases.process_id
    assert await a_leases.beat() == 2  # each takes half of the budget
    clock.set(NEXT_DIGEST)
    reports = await asyncio.gather(
        a.run_due_digests(), b.run_due_digests(), a.run_due_digests(), b.recover(), a.flush_instant()
    )
    assert_everything_once(discord, CHANNELS)
    assert await statuses(first) == Counter({"sent": CHANNELS * len(digest_order())})
    # both processes did part of the work, and between them exactly all of it
    assert reports[0].messages + reports[2].messages > 0 and reports[1].messages > 0
    assert sum(r.messages for r in reports) == len(discord.posted)
    async with first.sessions() as session:  # every claim given back, every digest moved on
        held = await session.scalars(select(TargetRow).where(TargetRow.claimed_by.is_not(None)))
        assert list(held) == []
        due = await session.scalars(select(TargetRow).where(TargetRow.next_digest_at <= clock.now()))
        assert list(due) == []
    await a_leases.stop()
    await b_leases.stop()
    async with first.sessions() as session:
        assert list(await session.scalars(select(ProcessRow))) == []


async def test_a_dead_process_claims_are_checked_against_history_and_finished_by_the_other(
    two_cores: tuple[Core, Core], clock: FakeClock
) -> None:
    first, second = two_cores
    await channels_with_matches(first, clock, 1)
    discord = SlowDiscord(clock)
    discord.hang_after = 2  # the second message reaches Discord, its answer never comes back
    a, a_leases = process(first, ViaProcess(discord, discord.send), lease=1.0, heartbeat=0.2)
    b, b_leases = process(second, ViaProcess(discord, discord.send), lease=1.0, heartbeat=0.2)
    await a_leases.start()
    await b_leases.start()
    clock.set(NEXT_DIGEST)
    dying = asyncio.create_task(a.run_due_digests())
    await asyncio.wait_for(discord.hung.wait(), 10)
    assert len(discord.posted) == 2
    async with first.sessions() as session:
        claimed = list(await session.scalars(select(DeliveryRow).where(DeliveryRow.status == "claimed")))
    assert claimed and {r.claimed_by for r in claimed} == {a_leases.process_id}

    # while the owner's heartbeat goes on, its claims are left alone
    await asyncio.sleep(1.2)
    assert (await b.recover()).messages == 0 and len(discord.history_reads) == 0

    await a_leases.stop(release=False)  # the process dies: no heartbeat, no clean-up
    discord.hang_after = None
    began = time.monotonic()
    report = await b.recover()
    while report.messages == 0 and time.monotonic() - began < 5:
        await asyncio.sleep(0.2)
        report = await b.recover()
    assert discord.history_reads, "a foreign claim must be checked against history first"
    assert report.found_sent > 0
    assert_everything_once(discord, 1)
    assert set((await statuses(first)).elements()) == {"sent"}
    dying.cancel()
    await asyncio.gather(dying, return_exceptions=True)
    await b_leases.stop()


async def test_a_slow_target_holds_up_neither_its_turn_nor_the_next(
    two_cores: tuple[Core, Core], clock: FakeClock
) -> None:
    first, _ = two_cores
    await channels_with_matches(first, clock, CHANNELS)
    discord = SlowDiscord(clock)
    release = asyncio.Event()
    slow: list[int] = []

    async def send(destination: Destination, message: OutgoingMessage, nonce: str) -> int:
        if not slow:
            slow.append(destination.channel_id)
        if destination.channel_id == slow[0]:
            await release.wait()  # the first channel's post takes a very long time
        return await discord.send(destination, message, nonce)

    outbox, leases = process(first, ViaProcess(discord, send), concurrency=4)
    await leases.start()
    clock.set(NEXT_DIGEST)
    round_ = asyncio.create_task(outbox.run_due_digests())
    expected = Counter(digest_order())
    for _ in range(1000):
        found = papers_per_channel(discord)
        if len(found) == CHANNELS - 1 and all(counts == expected for counts in found.values()):
            break
        await asyncio.sleep(0.01)
    # the other eleven channels' digests went out whole, four targets at a time, meanwhile
    assert sorted(found) == sorted(CHANNEL + n for n in range(CHANNELS) if CHANNEL + n != slow[0])
    assert all(counts == expected for counts in found.values())
    assert not round_.done()
    release.set()
    await round_
    assert_everything_once(discord, CHANNELS)
    await leases.stop()


async def test_a_target_held_by_a_live_process_is_not_taken(
    two_cores: tuple[Core, Core], clock: FakeClock
) -> None:
    first, second = two_cores
    [target_id] = await channels_with_matches(first, clock, 1)
    a_leases = Leases(first.sessions, lease=2.0)
    b_leases = Leases(second.sessions, lease=2.0)
    await a_leases.beat()
    await b_leases.beat()
    assert await a_leases.take(target_id)
    assert not await b_leases.take(target_id)
    assert await b_leases.takeable([target_id]) == []
    clock.set(NEXT_DIGEST)
    assert await b_leases.take_due(clock.now()) == []
    await a_leases.give_back(target_id)
    assert await b_leases.take_due(clock.now()) == [target_id]
    assert not await a_leases.take(target_id)


async def test_a_new_process_waits_until_every_other_one_counts_it(
    two_cores: tuple[Core, Core],
) -> None:
    first, second = two_cores
    shares: list[int] = []
    old = Leases(first.sessions, heartbeat_interval=0.2, lease=5.0, on_share=shares.append)
    new = Leases(second.sessions, heartbeat_interval=0.2, lease=5.0)
    assert await old.beat() == 1 and shares == [1]
    assert await new.beat() == 2
    # the old process still sends at the whole budget until its next heartbeat
    assert not await new.counted_by_all(timeout=0.3)
    assert await old.beat() == 2 and shares == [1, 2]
    assert await new.counted_by_all(timeout=0.3)
    # a process dead for longer than a lease is not waited for
    await new.stop()
    assert await old.counted_by_all(timeout=0.3)


# --- fan-out without a database -------------------------------------------------------------------


async def test_token_bucket_paces_requests_to_its_rate() -> None:
    bucket = TokenBucket(50.0)
    began = time.monotonic()
    await asyncio.gather(*(bucket.take() for _ in range(26)))
    elapsed = time.monotonic() - began
    assert 0.45 <= elapsed < 2.0, elapsed  # 25 waits of 20 ms after the first token
    bucket.set_rate(100.0)
    began = time.monotonic()
    await asyncio.gather(*(bucket.take() for _ in range(21)))
    assert 0.18 <= time.monotonic() - began < 1.5


async def test_a_hold_off_ends_at_its_time_or_when_resumed() -> None:
    bucket = TokenBucket(1000.0)
    bucket.hold_off(0.2)
    began = time.monotonic()
    await bucket.take()
    assert time.monotonic() - began >= 0.19
    bucket.hold_off(30.0)
    waiting = asyncio.create_task(bucket.take())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    bucket.resume()
    await asyncio.wait_for(waiting, 1.0)


async def test_each_target_in_order_targets_overlap_and_a_stuck_one_holds_up_nobody() -> None:
    work = TargetWork(concurrency=4)
    log: list[tuple[int, int]] = []
    stuck = asyncio.Event()

    async def deliver(item: tuple[int, int]) -> None:
        target, n = item
        async with work.hold(target):
            if target == 0:
                await stuck.wait()  # a target whose sends never finish
            await asyncio.sleep(0.01)
            log.append((target, n))

    items = [(t, n) for n in range(3) for t in range(4)]
    running = asyncio.create_task(work.each(items, deliver))
    for _ in range(100):
        if len(log) == 9:
            break
        await asyncio.sleep(0.01)
    assert sorted(log) == [(t, n) for t in (1, 2, 3) for n in range(3)]
    for target in (1, 2, 3):
        assert [n for t, n in log if t == target] == [0, 1, 2]
    stuck.set()
    await running
    assert [n for t, n in log if t == 0] == [0, 1, 2]
    assert work.locks == 0  # idle targets keep no lock


async def test_quiet_waits_for_the_work_under_way_and_starts_nothing_new() -> None:
    work = TargetWork()
    done: list[str] = []

    async def under_way() -> None:
        async with work.hold(1):
            await asyncio.sleep(0.1)
            done.append("first")

    task = asyncio.create_task(under_way())
    await asyncio.sleep(0.01)
    async with work.quiet(timeout=2) as drained:
        assert drained and done == ["first"]
        late = asyncio.create_task(under_way())
        await asyncio.sleep(0.15)
        assert done == ["first"]  # waits for the gate
    await asyncio.wait_for(late, 1)
    await task
    assert done == ["first", "first"]


async def test_each_process_keeps_the_pool_its_settings_ask_for(
    pg_database: str, make_settings: Callable[..., Settings], clock: FakeClock
) -> None:
    settings = make_settings(
        PAPERWATCH_DATABASE__URL=pg_database,
        PAPERWATCH_DATABASE__POOL_SIZE="3",
        PAPERWATCH_DATABASE__MAX_OVERFLOW="1",
    )
    core = await Core.open(settings, clock=clock)
    try:

        async def busy() -> None:
            async with core.sessions() as session:
                await session.execute(select(func.pg_sleep(0.2)))

        began = time.monotonic()
        await asyncio.gather(*(busy() for _ in range(6)))  # four at a time: three kept, one more
        assert time.monotonic() - began >= 0.39  # two rounds of 0.2 s: no fifth connection
        pool = core.engine.pool
        assert pool.size() == 3  # type: ignore[attr-defined]
        assert pool.checkedin() == 3  # type: ignore[attr-defined]  # the overflow one was closed
    finally:
        await core.close()
