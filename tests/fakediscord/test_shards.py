"""The local Discord's sharding and global rate limit, checked with raw sockets and discord.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import httpx
import pytest
from discord import app_commands

from tests.fakediscord import FakeDiscord, FakeGuild
from tests.fakediscord.client import running_client
from tests.fakediscord.gateway import Op
from tests.fakediscord.ratelimit import GlobalRateLimit


def spread_guilds(fake: FakeDiscord, count: int) -> list[FakeGuild]:
    """Guilds created a millisecond apart, so consecutive ones fall on consecutive shards."""
    guilds = []
    for i in range(count):
        guilds.append(fake.add_guild(name=f"g{i}"))
        fake.advance_clock(0.001)
    return guilds


def shard_of(guild_id: int, shard_count: int) -> int:
    return (guild_id >> 22) % shard_count


class RawShard:
    """One gateway connection driven by hand: HELLO, IDENTIFY, then what the fake sends."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def identify(self, fake: FakeDiscord, shard: list[int] | None) -> None:
        hello = await self.ws.receive_json(timeout=5)
        assert hello["op"] == Op.HELLO
        data: dict[str, Any] = {"token": fake.token, "intents": 1, "properties": {}}
        if shard is not None:
            data["shard"] = shard
        await self.ws.send_json({"op": Op.IDENTIFY, "d": data})

    async def dispatches(self, until: str, timeout: float = 5) -> list[dict[str, Any]]:
        """Frames up to and including the first dispatch named `until`."""
        frames = []
        while True:
            frame = await self.ws.receive_json(timeout=timeout)
            frames.append(frame)
            if frame.get("t") == until:
                return frames

    async def closed(self, timeout: float = 5) -> int | None:
        message = await self.ws.receive(timeout=timeout)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), message
        return self.ws.close_code


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def connect(http: aiohttp.ClientSession, fake: FakeDiscord) -> RawShard:
    return RawShard(await http.ws_connect(f"{fake.gateway_url}?v=10&encoding=json"))


# --- GET /gateway/bot ---------------------------------------------------------------------------


async def test_gateway_bot_says_the_shard_count_and_session_start_limit() -> None:
    async with FakeDiscord(shard_count=4) as fake:
        fake.shards.max_concurrency = 2
        async with httpx.AsyncClient(headers={"Authorization": f"Bot {fake.token}"}) as client:
            body = (await client.get(f"{fake.api_base}/gateway/bot")).json()
        assert body["url"] == fake.gateway_url
        assert body["shards"] == 4
        limit = body["session_start_limit"]
        assert limit["max_concurrency"] == 2
        assert limit["remaining"] == limit["total"] == 1000


# --- IDENTIFY: shards, their guilds, refusals ------------------------------------------------------


async def test_each_shard_gets_ready_with_the_guilds_of_its_shard(http: aiohttp.ClientSession) -> None:
    async with FakeDiscord() as fake:
        guilds = spread_guilds(fake, 4)
        seen: dict[int, set[int]] = {}
        for shard_id in (0, 1):
            raw = await connect(http, fake)
            await raw.identify(fake, [shard_id, 2])
            frames = await raw.dispatches("READY")
            ready = frames[-1]["d"]
            assert ready["shard"] == [shard_id, 2]
            seen[shard_id] = {int(g["id"]) for g in ready["guilds"]}
            await raw.ws.close()
        for shard_id in (0, 1):
            assert seen[shard_id] == {g.id for g in guilds if shard_of(g.id, 2) == shard_id}
        assert seen[0] and seen[1]
        assert [(r.shard_id, r.shard_count, r.outcome) for r in fake.shards.identifies] == [
            (0, 2, "ready"),
            (1, 2, "ready"),
        ]


async def test_guild_events_interactions_and_dms_go_to_the_right_shard(http: aiohttp.ClientSession) -> None:
    async with FakeDiscord() as fake:
        guilds = spread_guilds(fake, 2)
        sessions = {}
        for shard_id in (0, 1):
            raw = await connect(http, fake)
            await raw.identify(fake, [shard_id, 2])
            await raw.dispatches("READY")
        await fake.wait_for(lambda: len(fake.sessions) == 2, 5, "two sessions")
        sessions = {s.shard_id: s for s in fake.sessions.values()}
        for guild in guilds:
            assert fake.dispatch("CHANNEL_CREATE", {"guild_id": str(guild.id)}, guild_id=guild.id) == 1
            owner = sessions[shard_of(guild.id, 2)]
            other = sessions[1 - shard_of(guild.id, 2)]
            assert owner.dispatched("CHANNEL_CREATE")[-1]["d"]["guild_id"] == str(guild.id)
            assert all(f["d"]["guild_id"] != str(guild.id) for f in other.dispatched("CHANNEL_CREATE"))
        fake.dispatch("INTERACTION_CREATE", {"id": "1", "type": 2}, guild_id=None)  # a DM
        assert sessions[0].dispatched("INTERACTION_CREATE") and not sessions[1].dispatched(
            "INTERACTION_CREATE"
        )


@pytest.mark.parametrize(
    ("shard", "setup", "code"),
    [
        ([2, 2], {}, 4010),
        ([-1, 2], {}, 4010),
        ([0, 0], {}, 4010),
        ([0, 2], {"required_shard_count": 3}, 4010),
        (None, {"max_guilds_per_shard": 2}, 4011),  # 3 guilds, no sharding
    ],
)
async def test_a_wrong_shard_is_closed_like_discord_does(
    http: aiohttp.ClientSession, shard: list[int] | None, setup: dict[str, int], code: int
) -> None:
    async with FakeDiscord() as fake:
        spread_guilds(fake, 3)
        for name, value in setup.items():
            setattr(fake.shards, name, value)
        raw = await connect(http, fake)
        await raw.identify(fake, shard)
        assert await raw.closed() == code
        assert not fake.sessions
        assert fake.shards.identifies[-1].outcome == f"closed {code}"


async def test_enough_shards_for_the_guilds_are_accepted(http: aiohttp.ClientSession) -> None:
    async with FakeDiscord() as fake:
        spread_guilds(fake, 4)  # two a shard of two
        fake.shards.max_guilds_per_shard = 2
        raw = await connect(http, fake)
        await raw.identify(fake, [1, 2])
        assert (await raw.dispatches("READY"))[-1]["d"]["shard"] == [1, 2]


# --- the identify rate ----------------------------------------------------------------------------


async def test_a_second_identify_in_a_bucket_too_soon_gets_invalid_session(
    http: aiohttp.ClientSession,
) -> None:
    async with FakeDiscord() as fake:
        fake.shards.identify_interval = 0.5
        first = await connect(http, fake)
        await first.identify(fake, [0, 2])
        await first.dispatches("READY")
        second = await connect(http, fake)
        await second.identify(fake, [1, 2])  # bucket 1 % 1 = 0, like shard 0
        frame = await second.ws.receive_json(timeout=5)
        assert frame["op"] == Op.INVALID_SESSION and frame["d"] is False
        await asyncio.sleep(0.5)
        third = await connect(http, fake)
        await third.identify(fake, [1, 2])
        await third.dispatches("READY")
        assert [r.outcome for r in fake.shards.identifies] == ["ready", "invalid session: too fast", "ready"]
        (gap,) = fake.shards.gaps()[0]
        assert gap >= 0.5


async def test_shards_of_different_buckets_may_identify_together(http: aiohttp.ClientSession) -> None:
    async with FakeDiscord() as fake:
        fake.shards.identify_interval = 5.0
        fake.shards.max_concurrency = 2
        for shard_id in (0, 1):
            raw = await connect(http, fake)
            await raw.identify(fake, [shard_id, 2])
            await raw.dispatches("READY")
        assert [(r.bucket, r.outcome) for r in fake.shards.identifies] == [(0, "ready"), (1, "ready")]
        async with httpx.AsyncClient(headers={"Authorization": f"Bot {fake.token}"}) as client:
            limit = (await client.get(f"{fake.api_base}/gateway/bot")).json()["session_start_limit"]
        assert limit["remaining"] == 998


# --- discord.py connecting some shards of two --------------------------------------------------


class PartBot(discord.AutoShardedClient):
    """Connects `shard_ids` of two shards; answers `/where` with its shard."""

    def __init__(self, shard_ids: list[int]) -> None:
        super().__init__(
            intents=discord.Intents(guilds=True), guild_ready_timeout=0.05, shard_count=2, shard_ids=shard_ids
        )
        self.tree = app_commands.CommandTree(self)
        self.sync = 0 in shard_ids

        @self.tree.command(name="where", description="Which shard am I on")
        async def where(interaction: discord.Interaction) -> None:
            await interaction.response.send_message(
                f"shard {interaction.guild and interaction.guild.shard_id}"
            )

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        return None

    async def setup_hook(self) -> None:
        if self.sync:
            await self.tree.sync()


async def test_two_clients_each_with_one_shard_answer_their_own_guilds() -> None:
    async with FakeDiscord() as fake:
        guilds = spread_guilds(fake, 4)
        user = fake.add_user()
        async with running_client(PartBot([0]), fake) as zero, running_client(PartBot([1]), fake) as one:
            for client, shard_id in ((zero, 0), (one, 1)):
                assert {g.id for g in client.guilds} == {
                    g.id for g in guilds if shard_of(g.id, 2) == shard_id
                }
            for guild in guilds:
                record = await fake.invoke_command(guild.id, None, user.id, "where")
                assert (await record.wait_reply()).content == f"shard {shard_of(guild.id, 2)}"
        assert len(fake.command_syncs) == 1
        assert not fake.requests_matching("GET", "/gateway/bot")  # a fixed shard count needs no advice


# --- the global rate limit ------------------------------------------------------------------------


async def test_over_the_global_limit_discord_answers_429_global() -> None:
    async with FakeDiscord() as fake:
        fake.global_limit = GlobalRateLimit(per_second=5)
        headers = {"Authorization": f"Bot {fake.token}"}
        async with httpx.AsyncClient(headers=headers) as client:
            answers = [await client.get(f"{fake.api_base}/users/@me") for _ in range(6)]
            assert [r.status_code for r in answers] == [200] * 5 + [429]
            limited = answers[-1]
            body = limited.json()
            assert body["global"] is True and 0 < body["retry_after"] <= 1.0
            assert limited.headers["X-RateLimit-Global"] == "true"
            assert limited.headers["X-RateLimit-Scope"] == "global"
            assert "Via" in limited.headers and "Retry-After" in limited.headers
            assert (await client.get(f"{fake.gateway_url.replace('ws', 'http')}")).status_code != 429
            await asyncio.sleep(body["retry_after"])
            assert (await client.get(f"{fake.api_base}/users/@me")).status_code == 200
        assert fake.global_limit.limited == 1
        assert [r.status for r in fake.requests] == [200] * 5 + [429, 200]


async def test_interaction_callbacks_do_not_count_against_the_global_limit() -> None:
    limit = GlobalRateLimit(per_second=1)
    now = time.monotonic()
    assert limit.check("/users/@me", now) is None
    assert limit.check("/users/@me", now) is not None
    assert limit.check("/interactions/1/token/callback", now) is None
    assert limit.check("/webhooks/1/token", now) is None
    assert limit.check("/users/@me", now + 1.0) is None


async def test_discord_py_waits_out_global_429s_and_gets_through() -> None:
    async with FakeDiscord() as fake:
        user = fake.add_user()
        fake.global_limit = GlobalRateLimit(per_second=4)
        client = discord.Client(intents=discord.Intents(guilds=True), guild_ready_timeout=0.05)
        async with running_client(client, fake):
            began = time.monotonic()
            fetched = await asyncio.gather(*(client.fetch_user(user.id) for _ in range(10)))
            took = time.monotonic() - began
        assert [u.id for u in fetched] == [user.id] * 10
        assert fake.global_limit.limited >= 1
        assert took >= 1.0  # 10 requests at 4 a second, counting the ones made while connecting
