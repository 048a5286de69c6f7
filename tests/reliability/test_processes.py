"""Two `paperwatch run` processes on one PostgreSQL database, end to end, against the local Discord.

Each process connects one of two shards. Feeds are polled by the leader alone; digests and
instant posts go out exactly once whichever process takes them; SIGKILL of the leader hands
the polling to the other; SIGKILL of the process posting a digest leaves claims that the
other, once their lease has run out, checks against the channel's history and finishes.
Lease, heartbeat and leader intervals are short here (`[scaleout]` settings).
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from bot.db.engine import create_engine, session_factory
from bot.db.models import DeliveryRow
from tests.fakediscord.model import Perm
from tests.fakediscord.server import FakeDiscord
from tests.feedserver import FeedServer, load_hf_day
from tests.reliability.crash_helpers import (
    MESSAGES,
    BotProcess,
    bot_environ,
    embed_urls,
    exactly_once_problems,
    paper_url,
    today_iso,
)
from tests.test_migrate_lock import fresh_pg_database, pg_url

pytestmark = pytest.mark.slow

DAY = "2025-09-30"
"""50 real papers."""
SCALEOUT = {
    "PAPERWATCH_SCALEOUT__HEARTBEAT_INTERVAL": "0.3",
    "PAPERWATCH_SCALEOUT__LEASE": "1.5",
    "PAPERWATCH_SCALEOUT__LEADER_RETRY": "0.5",
    "PAPERWATCH_SCALEOUT__LEADER_CHECK": "0.3",
    "PAPERWATCH_FEEDS__HUGGINGFACE__POLL_INTERVAL": "1",
    "PAPERWATCH_FEEDS__JITTER": "0",
    "PAPERWATCH_DIGEST__MAX_PAPERS": "100",
    "PAPERWATCH_DISCORD__SHARD_COUNT": "2",
    "PAPERWATCH_DISCORD__IDENTIFY_DELAY": "0.5",
}


@dataclass
class Cluster:
    fake: FakeDiscord
    feeds: FeedServer
    url: str
    bots: list[BotProcess]

    async def until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        def check() -> bool:
            for bot in self.bots:
                if bot.proc is not None and bot.proc.returncode not in (None, -signal.SIGKILL):
                    raise AssertionError(f"a bot exited by itself:\n{bot.log_tail()}")
            return predicate()

        try:
            await self.fake.wait_for(check, timeout, what)
        except TimeoutError:
            logs = "\n".join(f"--- bot {n} ---\n{b.log_tail(60)}" for n, b in enumerate(self.bots))
            raise AssertionError(f"timed out waiting for {what}\n{logs}") from None

    def log(self, n: int) -> str:
        return self.bots[n].log_path.read_text(encoding="utf-8")

    async def sql(self, statement: str) -> object:
        engine = create_engine(self.url)
        try:
            async with engine.begin() as conn:
                result = await conn.execute(text(statement))
                return result.scalar() if result.returns_rows else None
        finally:
            await engine.dispose()


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    fake = FakeDiscord()
    await fake.start()
    feeds = FeedServer()
    await feeds.start()
    async with fresh_pg_database(pg_url(), prefix="pw_procs") as url:
        bots = []
        for shard in (0, 1):
            env = bot_environ(
                fake,
                feeds,
                tmp_path / "unused.db",
                PAPERWATCH_DATABASE__URL=url,
                PAPERWATCH_DISCORD__SHARD_IDS=f"[{shard}]",
                **SCALEOUT,
            )
            bots.append(BotProcess(env, tmp_path, tmp_path / f"bot{shard}.log"))
        world = Cluster(fake, feeds, url, bots)
        try:
            yield world
        finally:
            for bot in bots:
                await bot.close()
            await feeds.close()
            await fake.close()


def guild_on_shard(fake: FakeDiscord, shard: int, name: str) -> int:
    while True:
        guild = fake.add_guild(name, channels=("digest", "instant"))
        if (guild.id >> 22) % 2 == shard:
            return guild.id
        fake.advance_clock(0.001)


async def start_leader_first(cluster: Cluster) -> None:
    """Process 0 starts and leads; then process 1 starts; both shards connect."""
    await cluster.bots[0].start()
    await cluster.until(lambda: "this process leads" in cluster.log(0), 60, "process 0 to lead")
    await cluster.bots[1].start()

    def connected() -> bool:
        return {s.shard_id for s in cluster.fake.sessions.values() if s.alive and s.connection} == {0, 1}

    await cluster.until(connected, 60, "both shards connected")
    await cluster.until(lambda: bool(cluster.fake.command_syncs), 30, "the commands synced")


async def add_watches(cluster: Cluster, guild_id: int) -> tuple[int, int]:
    """A digest watch in #digest and an instant one in #instant; their channel ids."""
    fake = cluster.fake
    admin = fake.add_member(guild_id, username="admin", permissions=Perm.MANAGE_CHANNELS | Perm.SEND_MESSAGES)
    digest_channel, instant_channel = fake.guilds[guild_id].channel_ids
    for channel, mode in ((digest_channel, "digest"), (instant_channel, "instant")):
        record = await fake.invoke_command(
            guild_id, channel, admin.user_id, "watch add", options={"query": "upvotes>=0", "mode": mode}
        )
        await record.wait_response(timeout=15)
        assert "added" in str((record.callback or {}).get("data", {}).get("content")), record.callback
    return digest_channel, instant_channel


def urls(fake: FakeDiscord, channel_id: int) -> Counter[str]:
    return Counter(embed_urls(fake.messages(channel_id, include_interaction_replies=False)))


async def statuses(url: str) -> Counter[str]:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            rows = await session.execute(
                select(DeliveryRow.status, func.count()).group_by(DeliveryRow.status)
            )
            return Counter({str(status): int(count) for status, count in rows})
    finally:
        await engine.dispose()


async def test_leader_polls_alone_posts_go_out_once_and_a_killed_leader_is_replaced(cluster: Cluster) -> None:
    fake, feeds = cluster.fake, cluster.feeds
    await start_leader_first(cluster)
    guild_id = guild_on_shard(fake, 1, "Reading group")  # answered by process 1, which survives
    digest_channel, instant_channel = await add_watches(cluster, guild_id)

    entries = load_hf_day(DAY)
    half = len(entries) // 2
    expected_first = {paper_url(e) for e in entries[:half]}
    feeds.days[today_iso()] = entries[:half]
    # the leader polls and matches; the instant posts and the due digest go out once, whoever sends
    await cluster.until(lambda: expected_first <= urls(fake, instant_channel).keys(), 30, "instant posts")
    await cluster.sql("UPDATE targets SET next_digest_at = now() - interval '1 minute' WHERE channel_id > 0")
    await cluster.until(lambda: expected_first <= urls(fake, digest_channel).keys(), 30, "the digest")
    await asyncio.sleep(1.0)  # both processes keep checking: nothing may follow
    assert "polled huggingface" in cluster.log(0) and "polled huggingface" not in cluster.log(1)

    # the leader dies; the other takes the lead and polls at once
    cluster.bots[0].signal(signal.SIGKILL)
    await cluster.bots[0].wait(10)
    rest = {paper_url(e) for e in entries[half:]}
    feeds.days[today_iso()] = entries
    await cluster.until(lambda: "this process leads" in cluster.log(1), 15, "process 1 to take the lead")
    await cluster.until(
        lambda: rest <= urls(fake, instant_channel).keys(), 30, "instant posts after takeover"
    )
    assert "polled huggingface" in cluster.log(1)

    everything = expected_first | rest
    found = {"#instant": urls(fake, instant_channel), "#digest": urls(fake, digest_channel)}
    problems = exactly_once_problems({"#instant": found["#instant"]}, everything)
    problems += exactly_once_problems({"#digest": found["#digest"]}, expected_first)
    assert not problems, "\n".join(problems)


async def test_a_process_killed_mid_digest_is_finished_by_the_other_with_nothing_doubled(
    cluster: Cluster,
) -> None:
    """A DM digest: any process may post it, and either one may be the one killed."""
    fake, feeds = cluster.fake, cluster.feeds
    await start_leader_first(cluster)
    guild_id = guild_on_shard(fake, 1, "Reading group")
    reader = fake.add_member(guild_id, username="reader")
    record = await fake.invoke_command(
        guild_id,
        fake.guilds[guild_id].channel_ids[0],
        reader.user_id,
        "alert add",
        options={"query": "upvotes>=0"},
    )
    await record.wait_response(timeout=15)
    entries = load_hf_day(DAY)
    expected = {paper_url(e) for e in entries}
    feeds.days[today_iso()] = entries
    for _ in range(300):
        if (await statuses(cluster.url)).get("pending", 0) >= len(entries):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"the papers were not matched for the digest: {record.callback}")

    def dm_urls() -> Counter[str]:
        return Counter(embed_urls(fake.dm_messages(reader.user_id)))

    # messages are stored by Discord, then their answers held back: a kill leaves one unanswered
    fake.delay("POST", MESSAGES, 0.6, after_effect=True)
    await cluster.sql("UPDATE targets SET next_digest_at = now() - interval '1 minute' WHERE kind = 'user'")
    await cluster.until(lambda: len(fake.dm_messages(reader.user_id)) >= 2, 30, "two digest messages stored")
    owner = str(await cluster.sql("SELECT claimed_by FROM targets WHERE kind = 'user'"))
    pid = int(owner.split(":")[1])
    [victim] = [b for b in cluster.bots if b.proc is not None and b.proc.pid == pid]
    victim.signal(signal.SIGKILL)
    await victim.wait(10)
    fake.clear_faults()
    await cluster.until(lambda: expected <= dm_urls().keys(), 30, "the digest finished by the other process")
    await asyncio.sleep(1.0)
    problems = exactly_once_problems({"DM": dm_urls()}, expected)
    assert not problems, "\n".join(problems)
    assert await statuses(cluster.url) == Counter(sent=len(expected))
    dm_channel = fake.dm_messages(reader.user_id)[0].channel_id
    reads = [r for r in fake.requests if r.method == "GET" and r.path == f"/channels/{dm_channel}/messages"]
    assert reads, "the dead process's claims were not checked against the history"


async def test_claims_in_a_guild_of_a_shard_the_taker_does_not_connect_are_finished_over_rest(
    cluster: Cluster,
) -> None:
    """Process 1 (shard 1) is killed mid-digest in a guild of shard 1; process 0 connects shard 0
    only, so it has no gateway cache for that guild: it reads the bot's permissions in the channel
    over REST, checks the history and finishes the digest, nothing doubled."""
    fake, feeds = cluster.fake, cluster.feeds
    await start_leader_first(cluster)
    guild_id = guild_on_shard(fake, 1, "Reading group")
    admin = fake.add_member(guild_id, username="admin", permissions=Perm.MANAGE_CHANNELS | Perm.SEND_MESSAGES)
    digest_channel = fake.guilds[guild_id].channel_ids[0]
    record = await fake.invoke_command(
        guild_id,
        digest_channel,
        admin.user_id,
        "watch add",
        options={"query": "upvotes>=0", "mode": "digest"},
    )
    await record.wait_response(timeout=15)
    entries = load_hf_day(DAY)
    expected = {paper_url(e) for e in entries}
    feeds.days[today_iso()] = entries
    for _ in range(300):
        if (await statuses(cluster.url)).get("pending", 0) >= len(entries):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"the papers were not matched for the digest: {record.callback}")

    # process 0 goes away, so the digest is claimed by process 1, which holds the guild's shard
    cluster.bots[0].signal(signal.SIGKILL)
    await cluster.bots[0].wait(10)
    fake.delay("POST", MESSAGES, 0.6, after_effect=True)
    await cluster.sql("UPDATE targets SET next_digest_at = now() - interval '1 minute' WHERE channel_id > 0")
    await cluster.until(lambda: len(urls(fake, digest_channel)) >= 2, 30, "two digest messages stored")
    owner = str(await cluster.sql("SELECT claimed_by FROM targets WHERE channel_id > 0"))
    assert cluster.bots[1].proc is not None and owner.split(":")[1] == str(cluster.bots[1].proc.pid), owner
    cluster.bots[1].signal(signal.SIGKILL)
    await cluster.bots[1].wait(10)
    fake.clear_faults()
    killed_at = len(fake.requests)

    # process 0 comes back with shard 0 alone and takes over the dead process's claims
    await cluster.bots[0].start()
    await cluster.until(
        lambda: expected <= urls(fake, digest_channel).keys(), 45, "the digest finished by process 0"
    )
    await asyncio.sleep(1.0)
    problems = exactly_once_problems({"#digest": urls(fake, digest_channel)}, expected)
    assert not problems, "\n".join(problems)
    assert await statuses(cluster.url) == Counter(sent=len(expected))
    assert {s.shard_id for s in fake.sessions.values() if s.alive and s.connection} == {0}
    after = {(r.method, r.path) for r in fake.requests[killed_at:]}
    bot_id = fake.bot_user.id
    for read in (
        f"/guilds/{guild_id}",
        f"/guilds/{guild_id}/members/{bot_id}",
        f"/channels/{digest_channel}",
        f"/channels/{digest_channel}/messages",
    ):
        assert ("GET", read) in after, f"process 0 did not read {read}"
