"""The fake Discord, proven against the real discord.py client over loopback."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from typing import Any, Literal

import aiohttp
import discord
import pytest
import yarl
from discord import app_commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bot.discord.endpoints import (
    DEFAULT_API_BASE,
    DEFAULT_GATEWAY_URL,
    apply_endpoints,
    current_endpoints,
    endpoints,
)
from tests.fakediscord import FakeDiscord, FakeGuild, MessageFlags, Perm
from tests.fakediscord.client import running_client

# --------------------------------------------------------------------------- a small bot


class PanelView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=30)

    @discord.ui.select(
        custom_id="panel:pick", options=[discord.SelectOption(label="a"), discord.SelectOption(label="b")]
    )
    async def pick(self, interaction: discord.Interaction, select: discord.ui.Select[PanelView]) -> None:
        await interaction.response.send_message(f"picked {select.values}", ephemeral=True)

    @discord.ui.button(label="OK", custom_id="panel:ok", style=discord.ButtonStyle.primary)
    async def ok(self, interaction: discord.Interaction, button: discord.ui.Button[PanelView]) -> None:
        await interaction.response.edit_message(content=f"clicked by {interaction.user.id}", view=None)


class MiniBot(discord.Client):
    """One group with a sub-command (string/integer/channel/choice options), autocomplete, a button."""

    def __init__(self, guild_id: int) -> None:
        super().__init__(intents=discord.Intents(guilds=True), guild_ready_timeout=0.05)
        self.guild_id = guild_id
        self.tree = app_commands.CommandTree(self)
        self.events: list[str] = []
        self.errors: list[BaseException] = []
        self._add_commands()

        @self.tree.error
        async def on_app_command_error(
            interaction: discord.Interaction, error: app_commands.AppCommandError
        ) -> None:
            self.errors.append(error)

    def _add_commands(self) -> None:
        guild = discord.Object(self.guild_id)
        watch = app_commands.Group(name="watch", description="Manage watches")

        @watch.command(name="add", description="Add a watch")
        async def watch_add(
            interaction: discord.Interaction,
            query: str,
            min_upvotes: int = 0,
            channel: discord.TextChannel | None = None,
            mode: Literal["instant", "digest"] = "digest",
        ) -> None:
            target = channel or interaction.channel
            assert target is not None
            perms = interaction.permissions.manage_channels
            await interaction.response.send_message(
                f"watching {query!r} in <#{target.id}> mode={mode} min={min_upvotes} manage={perms}",
                ephemeral=True,
            )
            await interaction.followup.send("a follow-up", ephemeral=True)

        @watch.command(name="remove", description="Remove a watch")
        async def watch_remove(interaction: discord.Interaction, watch: int) -> None:
            await interaction.response.send_message(f"removed {watch}", ephemeral=True)

        @watch_remove.autocomplete("watch")
        async def watch_complete(
            interaction: discord.Interaction, current: str
        ) -> list[app_commands.Choice[int]]:
            return [
                app_commands.Choice(name=f"watch #{i}", value=i) for i in (1, 12, 123) if current in str(i)
            ]

        @watch.command(name="slow", description="Defer, then answer")
        async def watch_slow(interaction: discord.Interaction) -> None:
            await interaction.response.defer(ephemeral=True, thinking=True)
            await asyncio.sleep(0.01)
            await interaction.followup.send("done thinking")
            await interaction.edit_original_response(content="done thinking (edited)")

        @app_commands.command(name="panel", description="Post a panel with a button")
        async def panel(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("panel", view=PanelView())

        @app_commands.command(name="ping", description="Ping, also in DMs")
        @app_commands.allowed_contexts(guilds=True, dms=True)
        async def ping(interaction: discord.Interaction) -> None:
            where = "dm" if interaction.guild_id is None else "guild"
            await interaction.response.send_message(f"pong from {where}", ephemeral=True)

        self.tree.add_command(watch, guild=guild)
        self.tree.add_command(panel, guild=guild)
        self.tree.add_command(ping)

    async def setup_hook(self) -> None:
        await self.tree.sync()
        await self.tree.sync(guild=discord.Object(self.guild_id))

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py sleeps 5 s before every non-initial IDENTIFY; tests need not."""

    async def on_ready(self) -> None:
        self.events.append("ready")

    async def on_resumed(self) -> None:
        self.events.append("resumed")


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        yield server


@pytest.fixture
async def world(fake: FakeDiscord) -> AsyncIterator[tuple[FakeDiscord, FakeGuild, MiniBot]]:
    guild = fake.add_guild(name="Lab", channels=("general", "papers"))
    async with running_client(MiniBot(guild.id), fake) as client:
        yield fake, guild, client
    assert fake.unknown_requests == []


def _channel(client: discord.Client, channel_id: int) -> discord.TextChannel:
    channel = client.get_channel(channel_id)
    assert isinstance(channel, discord.TextChannel)
    return channel


# --------------------------------------------------------------------------- endpoints


def test_apply_endpoints_points_rest_and_gateway_at_configured_urls() -> None:
    before = current_endpoints()
    with endpoints("http://127.0.0.1:1/api/v10/", "ws://127.0.0.1:1/gateway"):
        assert Route.BASE == "http://127.0.0.1:1/api/v10"
        assert Route("GET", "/users/@me").url == "http://127.0.0.1:1/api/v10/users/@me"
        assert yarl.URL("ws://127.0.0.1:1/gateway") == DiscordWebSocket.DEFAULT_GATEWAY
    assert current_endpoints() == before
    with pytest.raises(ValueError, match="api_base"):
        apply_endpoints("discord.com/api/v10", DEFAULT_GATEWAY_URL)
    with pytest.raises(ValueError, match="gateway_url"):
        apply_endpoints(DEFAULT_API_BASE, "https://gateway.discord.gg/")
    assert current_endpoints() == before


# --------------------------------------------------------------------------- connect, sync, commands


async def test_connects_and_syncs_commands(world: tuple[FakeDiscord, FakeGuild, MiniBot]) -> None:
    fake, guild, client = world
    assert client.user is not None and client.user.id == fake.bot_user.id
    assert client.application_id == fake.application_id
    assert client.get_guild(guild.id) is not None and client.events == ["ready"]
    assert fake.identify_count == 1 and fake.gateway_connections[0].path == "/gateway"
    assert [c["name"] for c in fake.commands()] == ["ping"]
    synced = {c["name"]: c for c in fake.commands(guild.id)}
    assert set(synced) == {"watch", "panel"}
    add = next(o for o in synced["watch"]["options"] if o["name"] == "add")
    assert [(o["name"], o["type"]) for o in add["options"]] == [
        ("query", 3),
        ("min_upvotes", 4),
        ("channel", 7),
        ("mode", 3),
    ]
    # ids are stable across re-syncs, like Discord's
    first_ids = {c["name"]: c["id"] for c in fake.commands(guild.id)}
    again = await client.tree.sync(guild=discord.Object(guild.id))
    assert {c.name: str(c.id) for c in again} == first_ids
    response = fake.requests_matching("GET", "/users/@me")[0]
    assert "Authorization" not in response.headers and response.status == 200


async def test_slash_command_reply_is_ephemeral_and_followup_works(
    world: tuple[FakeDiscord, FakeGuild, MiniBot],
) -> None:
    fake, guild, client = world
    papers = guild.channel_ids[1]
    user = fake.add_member(guild.id, username="alice", permissions=Perm.MANAGE_CHANNELS)
    record = await fake.invoke_command(
        guild.id,
        guild.default_channel_id,
        user.user_id,
        "watch",
        subcommand="add",
        options={"query": "diffusion", "min_upvotes": 5, "channel": papers, "mode": "instant"},
    )
    callback = await record.wait_response()
    assert callback["type"] == 4
    assert callback["data"]["flags"] & MessageFlags.EPHEMERAL
    reply = await record.wait_reply()
    assert reply.ephemeral
    assert reply.content == f"watching 'diffusion' in <#{papers}> mode=instant min=5 manage=True"
    followups = await record.wait_followups(1)
    assert followups[0].content == "a follow-up" and followups[0].ephemeral
    # the interaction the bot received was built from the synced tree
    data = record.payload["data"]
    assert data["guild_id"] == str(guild.id)
    assert data["options"][0]["name"] == "add" and data["options"][0]["type"] == 1
    assert data["resolved"]["channels"][str(papers)]["type"] == 0
    assert record.payload["member"]["permissions"] == str(
        fake.permissions_for(user.user_id, guild.default_channel_id or 0)
    )
    # ephemeral replies are not channel messages
    assert fake.messages(guild.default_channel_id or 0) == []
    assert client.errors == []


async def test_deferred_reply_is_filled_by_first_followup_then_edited(
    world: tuple[FakeDiscord, FakeGuild, MiniBot],
) -> None:
    fake, guild, _ = world
    record = await fake.invoke_command(guild.id, None, fake.add_user("bob").id, "watch slow")
    assert (await record.wait_response())["type"] == 5
    await record.wait_for(lambda r: bool(r.original_edits))
    reply = await record.wait_reply()
    assert reply.ephemeral and not reply.loading
    assert reply.content == "done thinking (edited)"
    assert record.followups == [reply]


async def test_autocomplete_returns_the_bots_choices(world: tuple[FakeDiscord, FakeGuild, MiniBot]) -> None:
    fake, guild, _ = world
    choices = await fake.autocomplete(
        guild.id, None, fake.add_user("carol").id, "watch", subcommand="remove", options={"watch": "12"}
    )
    assert choices == [{"name": "watch #12", "value": 12}, {"name": "watch #123", "value": 123}]
    focused = fake.interactions[max(fake.interactions)].payload["data"]["options"][0]["options"][0]
    assert focused == {"name": "watch", "type": 4, "value": "12", "focused": True}


async def test_button_click_round_trips(world: tuple[FakeDiscord, FakeGuild, MiniBot]) -> None:
    fake, guild, _ = world
    user = fake.add_user("dave")
    record = await fake.invoke_command(guild.id, guild.default_channel_id, user.id, "panel")
    panel = await record.wait_reply()
    assert not panel.ephemeral
    assert fake.messages(guild.default_channel_id or 0) == [panel]
    picked = await fake.select_option(panel, "panel:pick", ["b"], user.id)
    answer = await picked.wait_reply()
    assert answer.content == "picked ['b']" and answer.ephemeral
    click = await fake.click_button(panel, "panel:ok", user.id)
    callback = await click.wait_response()
    assert callback["type"] == 7
    assert panel.content == f"clicked by {user.id}" and panel.components == []
    assert click.payload["message"]["id"] == str(panel.id)
    with pytest.raises(ValueError, match="no component"):
        await fake.click_button(panel, "panel:ok", user.id)


async def test_command_in_dm(world: tuple[FakeDiscord, FakeGuild, MiniBot]) -> None:
    fake, _, _ = world
    user = fake.add_user("erin")
    record = await fake.invoke_command(None, None, user.id, "ping")
    reply = await record.wait_reply()
    assert reply.content == "pong from dm"
    assert "member" not in record.payload and record.payload["user"]["id"] == str(user.id)
    assert record.payload["context"] == 1
    assert record.payload["channel_id"] == str(fake.dm_channel(user.id).id)


async def test_late_or_double_callbacks_are_refused(world: tuple[FakeDiscord, FakeGuild, MiniBot]) -> None:
    fake, _, client = world
    record = await fake.invoke_command(None, None, fake.add_user("frank").id, "ping")
    fake.advance_clock(4)  # past Discord's 3 s window before the bot answers
    with pytest.raises(AssertionError, match="10062"):
        await record.wait_response()
    await fake.wait_for(lambda: bool(client.errors))
    assert isinstance(client.errors[0], app_commands.CommandInvokeError)
    assert isinstance(client.errors[0].original, discord.NotFound)


# --------------------------------------------------------------------------- REST: messages


async def test_send_and_nonce_dedupe(world: tuple[FakeDiscord, FakeGuild, MiniBot]) -> None:
    fake, guild, client = world
    cid = guild.default_channel_id or 0
    route = Route("POST", "/channels/{channel_id}/messages", channel_id=cid)
    body = {"content": "paper", "nonce": "pw1.2.0", "enforce_nonce": True, "allowed_mentions": {"parse": []}}
    first = await client.http.request(route, json=body)
    second = await client.http.request(
        Route("POST", "/channels/{channel_id}/messages", channel_id=cid), json=body
    )
    assert first["id"] == second["id"] and first["nonce"] == "pw1.2.0"
    assert [m.content for m in fake.messages(cid)] == ["paper"]
    stored = fake.messages(cid)[0]
    assert stored.nonce == "pw1.2.0" and stored.allowed_mentions == {"parse": []} and not stored.pings
    # without enforce_nonce, or once the window has passed, a new message is created
    await client.http.request(
        Route("POST", "/channels/{channel_id}/messages", channel_id=cid),
        json={"content": "x", "nonce": "pw1.2.0"},
    )
    fake.advance_clock(fake.nonce_window + 1)
    third = await client.http.request(
        Route("POST", "/channels/{channel_id}/messages", channel_id=cid), json=body
    )
    assert third["id"] != first["id"] and len(fake.messages(cid)) == 3
    # discord.py's Messageable.send(nonce=...) always adds enforce_nonce
    sent = await _channel(client, cid).send("via send", nonce="n-1")
    again = await _channel(client, cid).send("via send", nonce="n-1")
    assert sent.id == again.id
    assert fake.requests[-1].json["enforce_nonce"] is True
    # Discord caps nonces at 25 characters
    with pytest.raises(discord.HTTPException) as excinfo:
        await _channel(client, cid).send("x", nonce="n" * 26)
    assert excinfo.value.status == 400 and excinfo.value.code == 50035


async def test_429_is_retried_and_the_message_stored_once(
    world: tuple[FakeDiscord, FakeGuild, MiniBot],
) -> None:
    fake, guild, client = world
    cid = guild.default_channel_id or 0
    fake.fail_next("POST", r"/channels/\d+/messages", 429, retry_after=0.05)
    message = await _channel(client, cid).send("hello")
    assert [m.id for m in fake.messages(cid)] == [message.id]
    assert [r.status for r in fake.requests_matching("POST", rf"/channels/{cid}/messages")] == [429, 200]


async def test_429_response_is_shaped_like_discords(fake: FakeDiscord) -> None:
    guild = fake.add_guild()
    fake.fail_next("POST", r"/channels/\d+/messages", 429, retry_after=0.25, global_=True)
    url = f"{fake.api_base}/channels/{guild.default_channel_id}/messages"
    headers = {"Authorization": f"Bot {fake.token}"}
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={"content": "x"}, headers=headers) as resp:
            assert resp.status == 429
            assert resp.headers["Content-Type"] == "application/json"
            assert resp.headers["Via"] == "1.1 google"
            assert resp.headers["X-RateLimit-Scope"] == "global"
            assert resp.headers["X-RateLimit-Global"] == "true"
            assert resp.headers["Retry-After"] == "1"
            assert json.loads(await resp.text()) == {
                "message": "You are being rate limited.",
                "retry_after": 0.25,
                "global": True,
            }
        async with session.post(url, json={"content": "x"}, headers=headers) as resp:
            assert resp.status == 200 and resp.headers["X-RateLimit-Bucket"]
        async with session.get(f"{fake.api_base}/users/@me") as resp:
            assert resp.status == 401


async def test_forbidden_missing_and_closed_dms_surface_as_discord_errors(
    world: tuple[FakeDiscord, FakeGuild, MiniBot],
) -> None:
    fake, guild, client = world
    general, papers = guild.channel_ids
    fake.forbid_channel(general)
    with pytest.raises(discord.Forbidden) as forbidden:
        await _channel(client, general).send("x")
    assert forbidden.value.code == 50013
    fake.allow_channel(general)
    await _channel(client, general).send("allowed again")
    fake.fail_next("POST", rf"/channels/{general}/messages", 403, code=50001)
    with pytest.raises(discord.Forbidden) as injected:
        await _channel(client, general).send("x")
    assert injected.value.code == 50001

    cached = _channel(client, papers)
    fake.delete_channel(papers)
    await fake.wait_for(lambda: client.get_channel(papers) is None)  # CHANNEL_DELETE reached the cache
    with pytest.raises(discord.NotFound) as missing:
        await cached.send("x")
    assert missing.value.code == 10003

    user = fake.add_user("gina")
    dm = await (await client.fetch_user(user.id)).create_dm()
    assert dm.id == fake.dm_channel(user.id).id
    await dm.send("hi")
    assert [m.content for m in fake.dm_messages(user.id)] == ["hi"]
    fake.close_dms(user.id)
    with pytest.raises(discord.Forbidden) as closed:
        await dm.send("hi again")
    assert closed.value.code == 50007


async def test_5xx_retries_and_unknown_routes(world: tuple[FakeDiscord, FakeGuild, MiniBot]) -> None:
    fake, guild, client = world
    cid = guild.default_channel_id or 0
    fake.fail_next("POST", r"/channels/\d+/messages", 500)
    await _channel(client, cid).send("after a 500")  # discord.py retries 500/502/504 after 1 s
    fake.fail_next("POST", r"/channels/\d+/messages", 503)
    with pytest.raises(discord.DiscordServerError):  # ... but not 503
        await _channel(client, cid).send("x")
    assert [m.content for m in fake.messages(cid)] == ["after a 500"]
    with pytest.raises(discord.NotFound):
        await client.http.request(Route("GET", "/nowhere/{x}", x=1))
    assert [r.path for r in fake.unknown_requests] == ["/nowhere/1"]
    fake.unknown_requests.clear()


async def test_files_edits_and_deletes(world: tuple[FakeDiscord, FakeGuild, MiniBot]) -> None:
    fake, guild, client = world
    channel = _channel(client, guild.default_channel_id or 0)
    message = await channel.send("with file", file=discord.File(io.BytesIO(b"abc"), "a.txt"))
    stored = fake.message(message.id)
    assert stored.files[0].filename == "a.txt" and stored.files[0].size == 3
    assert message.attachments[0].filename == "a.txt"
    await message.edit(
        content="edited", embed=discord.Embed(title="T", url="https://huggingface.co/papers/1")
    )
    assert stored.content == "edited" and stored.embeds[0]["title"] == "T" and stored.data["edited_timestamp"]
    with pytest.raises(discord.HTTPException) as bad:
        await channel.send(embed=discord.Embed(title="x" * 257))
    assert bad.value.code == 50035
    await message.delete()
    assert fake.messages(channel.id) == []
    assert [m.content for m in await _history(channel)] == []


async def _history(channel: discord.TextChannel) -> list[discord.Message]:
    return [m async for m in channel.history(limit=10)]


# --------------------------------------------------------------------------- gateway


async def test_gateway_close_resumes_and_replays_missed_dispatches(
    world: tuple[FakeDiscord, FakeGuild, MiniBot],
) -> None:
    fake, guild, client = world
    await fake.close_gateway(4000)
    added = fake.add_channel(guild.id, "while-away")  # buffered, replayed on RESUME
    await fake.wait_resumed()
    await fake.wait_for(lambda: client.get_channel(added.id) is not None)
    await fake.wait_for(lambda: "resumed" in client.events)
    assert fake.identify_count == 1
    assert fake.gateway_connections[-1].path == "/gateway/resume"
    assert fake.gateway_connections[0].close_code == 4000

    fake.drop_gateway()
    await fake.wait_resumed(2)
    record = await fake.invoke_command(None, None, fake.add_user("hal").id, "ping")
    assert (await record.wait_reply()).content == "pong from dm"


async def test_invalid_session_makes_the_client_identify_again(
    world: tuple[FakeDiscord, FakeGuild, MiniBot],
) -> None:
    fake, guild, client = world
    old_session = next(iter(fake.sessions.values()))
    await fake.invalidate_session(resumable=False)
    await fake.wait_identified(2)
    await fake.wait_for(lambda: client.events.count("ready") == 2)
    assert not old_session.alive and fake.resume_count == 0
    assert client.get_guild(guild.id) is not None
    # a resumable op 9 leads to RESUME instead
    await fake.invalidate_session(resumable=True)
    await fake.wait_resumed()
    assert fake.identify_count == 2


async def test_resume_of_an_ended_session_gets_op9_then_identify(
    world: tuple[FakeDiscord, FakeGuild, MiniBot],
) -> None:
    fake, _, client = world
    await fake.close_gateway(4009)  # session timed out: RESUME fails, client re-identifies
    await fake.wait_identified(2)
    assert fake.failed_resume_count == 1
    await fake.wait_for(lambda: client.events.count("ready") == 2)


async def test_raw_client_payloads_are_recorded(fake: FakeDiscord) -> None:
    """IDENTIFY reaches the fake with intents, and tokens are never kept in the recordings."""
    guild = fake.add_guild()
    async with running_client(MiniBot(guild.id), fake):
        identify: dict[str, Any] = next(p for p in fake.gateway_connections[0].received if p["op"] == 2)
    assert identify["d"]["intents"] == discord.Intents(guilds=True).value
    assert identify["d"]["token"] == "<redacted>"
    assert fake.gateway_connections[0].query["encoding"] == "json"


async def test_world_changes_reach_the_client(world: tuple[FakeDiscord, FakeGuild, MiniBot]) -> None:
    fake, _, client = world
    joined = fake.add_guild(name="Joined later")  # GUILD_CREATE after READY: the bot was invited
    await fake.wait_for(lambda: client.get_guild(joined.id) is not None)
    fake.remove_guild(joined.id)
    await fake.wait_for(lambda: client.get_guild(joined.id) is None)
    with pytest.raises(discord.Forbidden):
        await client.http.send_message(joined.default_channel_id or 0, params=_params("x"))
    await fake.request_reconnect()  # op 7: the client closes and RESUMEs
    await fake.wait_resumed()


def _params(content: str) -> Any:
    from discord.http import handle_message_parameters

    return handle_message_parameters(content)


async def test_delay_and_lost_responses(world: tuple[FakeDiscord, FakeGuild, MiniBot]) -> None:
    """``delay(after_effect=True)``: Discord stored the message, but the bot never heard back."""
    fake, guild, client = world
    cid = guild.default_channel_id or 0
    fake.delay("POST", r"/channels/\d+/messages", 5.0, times=1, after_effect=True)
    send = asyncio.create_task(_channel(client, cid).send("maybe lost", nonce="lost-1"))
    await fake.wait_messages(cid, 1)
    send.cancel()  # e.g. the bot is killed here
    with pytest.raises(asyncio.CancelledError):
        await send
    # a restarted bot re-sends with the same nonce and gets the same message back
    again = await _channel(client, cid).send("maybe lost", nonce="lost-1")
    assert [m.id for m in fake.messages(cid)] == [again.id]

    fake.delay("GET", r"/channels/\d+", 0.2, times=1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await client.fetch_channel(cid)
    assert loop.time() - started >= 0.2


async def test_history_is_newest_first(world: tuple[FakeDiscord, FakeGuild, MiniBot]) -> None:
    fake, guild, client = world
    channel = _channel(client, guild.default_channel_id or 0)
    for text in ("one", "two", "three"):
        await channel.send(text)
    assert [m.content for m in await _history(channel)] == ["three", "two", "one"]
    assert [m.content for m in fake.messages(channel.id)] == ["one", "two", "three"]


async def test_history_pages_with_limit_before_and_after(
    world: tuple[FakeDiscord, FakeGuild, MiniBot],
) -> None:
    _, guild, client = world
    cid = guild.default_channel_id or 0
    channel = _channel(client, cid)
    sent = []
    for i in range(7):
        sent.append(await channel.send(f"m{i}", nonce=f"n{i}"))
        await asyncio.sleep(0.002)  # one message a millisecond: a time snowflake then splits them
    ids = [m.id for m in sent]

    async def page(**params: int) -> list[int]:
        data = await client.http.request(
            Route("GET", "/channels/{channel_id}/messages", channel_id=cid), params=params
        )
        assert all("nonce" not in m for m in data)  # only the create answer carries it
        return [int(m["id"]) for m in data]

    assert await page() == ids[::-1]  # default limit 50, newest first
    assert await page(limit=3) == ids[:-4:-1]  # the newest three
    assert await page(after=ids[1], limit=3) == [ids[4], ids[3], ids[2]]  # the three just after
    assert await page(after=ids[4]) == [ids[6], ids[5]]
    assert await page(before=ids[3], limit=2) == [ids[2], ids[1]]
    assert await page(after=ids[6]) == []
    for bad in (0, 101):
        with pytest.raises(discord.HTTPException) as excinfo:
            await page(limit=bad)
        assert (excinfo.value.status, excinfo.value.code) == (400, 50035)
    # a time as a snowflake (what a bot does to read "since then"): everything after it
    since = discord.utils.snowflake_time(ids[3])
    assert await page(after=discord.utils.time_snowflake(since)) == ids[:2:-1]
    # discord.py's own paging (after=, oldest_first) walks the same pages
    walked = [
        m.id async for m in channel.history(limit=None, after=discord.Object(ids[0]), oldest_first=True)
    ]
    assert walked == ids[1:]


async def test_history_without_read_message_history_is_empty_and_hidden_channel_refuses(
    world: tuple[FakeDiscord, FakeGuild, MiniBot],
) -> None:
    fake, guild, client = world
    cid = guild.default_channel_id or 0
    route = Route("GET", "/channels/{channel_id}/messages", channel_id=cid)
    await _channel(client, cid).send("one")
    assert len(await client.http.request(route)) == 1
    fake.hide_history(cid)  # like Discord: an empty answer, not an error; posting still works
    assert await client.http.request(route) == []
    await client.http.request(
        Route("POST", "/channels/{channel_id}/messages", channel_id=cid), json={"content": "two"}
    )
    assert [m.content for m in fake.messages(cid)] == ["one", "two"]
    fake.allow_channel(cid)
    assert len(await client.http.request(route)) == 2
    fake.forbid_channel(cid, hide=True)  # no View Channel: 403 Missing Access
    with pytest.raises(discord.Forbidden) as excinfo:
        await client.http.request(route)
    assert excinfo.value.code == 50001
    # and a fault rule makes any history read answer what a test needs
    fake.allow_channel(cid)
    fake.fail_next("GET", rf"/channels/{cid}/messages", 403, code=50001)
    with pytest.raises(discord.Forbidden):
        await client.http.request(route)
    assert len(await client.http.request(route)) == 2
    # a DM's history is readable by the bot
    user = fake.add_user("reader")
    dm = await client.http.start_private_message(user.id)
    await client.http.request(
        Route("POST", "/channels/{channel_id}/messages", channel_id=int(dm["id"])), json={"content": "hi"}
    )
    [message] = await client.http.request(
        Route("GET", "/channels/{channel_id}/messages", channel_id=int(dm["id"]))
    )
    assert message["content"] == "hi"


async def test_nonce_window_is_settable_and_counts_from_the_first_message() -> None:
    async with FakeDiscord(nonce_window=60) as fake:
        guild = fake.add_guild(name="Lab")
        cid = guild.default_channel_id or 0
        async with running_client(MiniBot(guild.id), fake) as client:

            async def post() -> int:
                body = {"content": "x", "nonce": "pw1.1.1", "enforce_nonce": True}
                route = Route("POST", "/channels/{channel_id}/messages", channel_id=cid)
                return int((await client.http.request(route, json=body))["id"])

            first = await post()
            fake.advance_clock(59)
            assert await post() == first  # a re-send inside the window: the same message
            fake.advance_clock(2)  # 61 s after the message was made, however recent the re-send
            second = await post()
            assert second != first
            assert [m.id for m in fake.messages(cid)] == [first, second]
            assert await post() == second  # the new message starts its own window


class ShardedBot(discord.AutoShardedClient):
    def __init__(self) -> None:
        super().__init__(intents=discord.Intents(guilds=True), guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self)

        @self.tree.command(name="where", description="Which shard am I on")
        async def where(interaction: discord.Interaction) -> None:
            await interaction.response.send_message(
                f"shard {interaction.guild and interaction.guild.shard_id}"
            )

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        return None

    async def setup_hook(self) -> None:
        await self.tree.sync()


async def test_auto_sharded_client_uses_gateway_bot_and_shards_guilds() -> None:
    async with FakeDiscord(shard_count=2) as fake:
        guilds = [fake.add_guild(name=f"g{i}") for i in range(4)]
        async with running_client(ShardedBot(), fake) as client:
            assert client.shard_count == 2 and fake.identify_count == 2
            assert {s.shard_id for s in fake.sessions.values()} == {0, 1}
            assert all(client.get_guild(g.id) is not None for g in guilds)
            for guild in guilds:
                record = await fake.invoke_command(guild.id, None, fake.add_user().id, "where")
                assert (await record.wait_reply()).content == f"shard {(guild.id >> 22) % 2}"
        assert fake.requests_matching("GET", "/gateway/bot")
