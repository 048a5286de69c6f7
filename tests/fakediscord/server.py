"""``FakeDiscord``: a local Discord (REST API v10 + JSON gateway) for end-to-end tests.

The real, unmodified discord.py client talks to it over loopback once it is pointed at
``fake.api_base`` / ``fake.gateway_url`` (see ``bot.discord.endpoints.apply_endpoints``).

Typical use::

    async with FakeDiscord() as fake:
        guild = fake.add_guild(name="Lab")
        apply_endpoints(fake.api_base, fake.gateway_url)
        ...start the bot with token=fake.token, guild_ready_timeout=0.05...
        await fake.wait_connected()
        record = await fake.invoke_command(guild.id, guild.default_channel_id, user.id, "watch",
                                           subcommand="add", options={"query": "diffusion"})
        reply = await record.wait_reply()
        assert reply.ephemeral and "diffusion" in reply.content

State lives in plain dicts/lists on the instance, mutated only from the event loop.
Helpers that change the world (``add_channel``, ``delete_channel`` ...) are synchronous;
the gateway dispatches they cause are buffered per session and written by the
connection's writer task, so they also reach a bot that RESUMEs later.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import secrets
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiohttp import BodyPartReader, WSMsgType, web

from .attachments import ROUTE as ATTACHMENT_ROUTE
from .attachments import AttachmentStore
from .channel_limit import ChannelMessageLimit
from .components import check_pick
from .errors import DiscordHTTPError, FaultRule, FormErrors, form_error, json_response, ratelimited_response
from .gateway import SESSION_ENDING_CLOSE_CODES, GatewayConnection, GatewaySession, Op
from .interactions import (
    ALLOWED_CALLBACKS,
    CallbackType,
    CommandNotSynced,
    InteractionRecord,
    InteractionType,
    Notifier,
    OptionType,
    check_choice_answer,
    find_command,
    nest_options,
    resolve_path,
)
from .model import (
    JSON,
    ChannelType,
    Clock,
    FakeChannel,
    FakeGuild,
    FakeMember,
    FakeRole,
    FakeUser,
    MessageFlags,
    MessageType,
    Overwrite,
    Perm,
    PermissionsLike,
    SnowflakeFactory,
    StoredMessage,
    UploadedFile,
    compute_permissions,
    compute_pings,
    iter_components,
    perm_value,
)
from .ratelimit import GlobalRateLimit
from .shards import ShardRules
from .validation import is_empty_message, validate_command, validate_message

API_PREFIX = "/api/v10"
_MESSAGE_FLAGS_SETTABLE = (
    MessageFlags.SUPPRESS_EMBEDS | MessageFlags.SUPPRESS_NOTIFICATIONS | MessageFlags.IS_COMPONENTS_V2
)
INTERACTION_TOKEN_LIFETIME = 15 * 60.0


@dataclass
class RecordedRequest:
    """One REST request the bot made (``path`` is below the API base, e.g. ``/channels/1/messages``)."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    headers: dict[str, str]
    time: float
    files: list[UploadedFile] = field(default_factory=list)
    status: int | None = None
    response: Any = None
    known_route: bool = True


@dataclass
class CommandSync:
    """One bulk overwrite of application commands (``guild_id`` None = global)."""

    guild_id: int | None
    commands: list[JSON]
    time: float


@dataclass
class _ApiRequest:
    method: str
    path: str
    params: dict[str, str]
    query: Mapping[str, str]
    body: Any
    files: list[UploadedFile]
    record: RecordedRequest


_Handler = Callable[["FakeDiscord", _ApiRequest], Awaitable[Any]]


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: _Handler
    auth: bool
    template: str


_ROUTES: list[_Route] = []


def _route(method: str, template: str, *, auth: bool = True) -> Callable[[_Handler], _Handler]:
    pattern = re.compile(template)

    def register(handler: _Handler) -> _Handler:
        _ROUTES.append(_Route(method, pattern, handler, auth, template))
        return handler

    return register


def _no_content() -> web.Response:
    return web.Response(status=204)


def _as_int(value: Any, what: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        errors = FormErrors()
        errors.add([what], "NUMBER_TYPE_COERCE", f'Value "{value}" is not snowflake.')
        errors.raise_if_any()
        raise


class FakeDiscord:
    """A local stand-in for Discord's REST API v10 and gateway, for the real discord.py client.

    Parameters
    ----------
    token:
        The bot token the fake accepts (``Authorization: Bot <token>`` and IDENTIFY).
    bot_name:
        Username of the bot user (whose id is also the application id, as on Discord).
    heartbeat_interval:
        Milliseconds, sent in HELLO.
    shard_count:
        What ``GET /gateway/bot`` recommends.
    interaction_timeout:
        Seconds within which the bot must call back an interaction (Discord: 3).
    nonce_window:
        Seconds during which ``enforce_nonce`` deduplicates (Discord: "a few minutes").
    require_auth:
        Reject REST calls / IDENTIFY without the right token (401 / close 4004).
    ratelimit_headers:
        Send (generous) ``X-RateLimit-*`` headers on successful responses.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        bot_name: str = "paperwatch",
        heartbeat_interval: float = 41250,
        shard_count: int = 1,
        interaction_timeout: float = 3.0,
        nonce_window: float = 300.0,
        require_auth: bool = True,
        ratelimit_headers: bool = True,
    ) -> None:
        self.token = token or f"fake.{secrets.token_urlsafe(18)}"
        self.heartbeat_interval = heartbeat_interval
        self.shard_count = shard_count
        self.interaction_timeout = interaction_timeout
        self.nonce_window = nonce_window
        self.require_auth = require_auth
        self.ratelimit_headers = ratelimit_headers
        #: Set to False to stop answering heartbeats (zombie-connection tests).
        self.ack_heartbeats = True
        self.application_flags = 0

        self.clock = Clock()
        self._snowflake = SnowflakeFactory(self.clock)
        self.notifier = Notifier()

        self.users: dict[int, FakeUser] = {}
        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, FakeChannel] = {}
        self._dm_channel_ids: dict[int, int] = {}
        self._channel_messages: dict[int, list[StoredMessage]] = {}
        self._messages_by_id: dict[int, StoredMessage] = {}
        self._nonces: dict[tuple[int, int, str], StoredMessage] = {}

        self.global_commands: list[JSON] = []
        self.guild_commands: dict[int, list[JSON]] = {}
        self.command_syncs: list[CommandSync] = []
        self._command_ids: dict[tuple[int | None, str, int], int] = {}

        self.interactions: dict[int, InteractionRecord] = {}
        self.attachments = AttachmentStore(lambda: self.base_url, self.new_id)
        """Bytes of every uploaded file, served at the attachment urls (see ``attachments``)."""
        self._interactions_by_token: dict[str, InteractionRecord] = {}

        self.requests: list[RecordedRequest] = []
        self.unknown_requests: list[RecordedRequest] = []
        self.faults: list[FaultRule] = []

        self.sessions: dict[str, GatewaySession] = {}
        self.gateway_connections: list[GatewayConnection] = []
        self.identify_count = 0
        self.shards = ShardRules()
        """IDENTIFY rules and records: ``max_concurrency``, ``identify_interval`` ... (see ``shards``)."""
        self.global_limit: GlobalRateLimit | None = None
        """Discord's global 50 requests/s, answered with 429s when set (see ``ratelimit``)."""
        self.channel_limit: ChannelMessageLimit | None = None
        """Discord's 5 messages per 5 s per channel, with headers and 429s, when set (``channel_limit``)."""
        self.resume_count = 0
        self.failed_resume_count = 0

        self.bot_user = self.add_user(bot_name, bot=True)
        self.application_id = self.bot_user.id
        self.app_owner = self.add_user("app-owner")

        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._closing = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> Self:
        """Listen on a free port of 127.0.0.1."""
        if self._runner is not None:
            return self
        self._closing.clear()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway_handler)
        app.router.add_get("/gateway/resume", self._gateway_handler)
        app.router.add_get(ATTACHMENT_ROUTE, self.attachments.handle)
        app.router.add_route("*", "/{tail:.*}", self._api_handler)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._port = int(sock.getsockname()[1])
        site = web.SockSite(runner, sock)
        await site.start()
        self._runner = runner
        return self

    async def close(self) -> None:
        """Close every gateway connection (1001) and stop the server (pending delays end at once)."""
        self._closing.set()
        for conn in list(self.gateway_connections):
            if conn.open:
                await conn.close(1001, b"fakediscord shutting down")
            await conn.finish()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeDiscord is not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        """E.g. ``http://127.0.0.1:PORT/api/v10`` (for ``[discord] api_base``)."""
        return f"{self.base_url}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        """E.g. ``ws://127.0.0.1:PORT/gateway`` (for ``[discord] gateway_url``; also in GET /gateway/bot)."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    @property
    def resume_gateway_url(self) -> str:
        """The ``resume_gateway_url`` READY hands out (same server, distinct path, so tests can tell)."""
        return f"ws://127.0.0.1:{self.port}/gateway/resume"

    # ------------------------------------------------------------------ clock & waiting
    def advance_clock(self, seconds: float) -> None:
        """Let time pass for nonce windows, interaction expiry and new snowflakes."""
        self.clock.advance(seconds)

    async def _sleep(self, seconds: float) -> None:
        """``asyncio.sleep`` that :meth:`close` cuts short."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    async def wait_for(
        self, predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition"
    ) -> None:
        """Wait until ``predicate()`` holds; re-checked after every request / gateway event."""
        await self.notifier.wait_for(predicate, timeout, what)

    @property
    def connected(self) -> bool:
        """A live session with an open, identified/resumed connection exists."""
        return any(s.alive and s.connection is not None and s.connection.open for s in self.sessions.values())

    async def wait_connected(self, timeout: float = 5.0) -> None:
        await self.wait_for(lambda: self.connected, timeout, "a gateway session")

    async def wait_identified(self, count: int = 1, timeout: float = 5.0) -> None:
        await self.wait_for(lambda: self.identify_count >= count, timeout, f"{count} IDENTIFY")

    async def wait_resumed(self, count: int = 1, timeout: float = 5.0) -> None:
        await self.wait_for(lambda: self.resume_count >= count, timeout, f"{count} RESUME")

    async def wait_synced(self, guild_id: int | None = None, timeout: float = 5.0) -> list[JSON]:
        """Wait for a command sync (global, or to ``guild_id``) and return the synced commands."""
        await self.wait_for(
            lambda: any(s.guild_id == guild_id for s in self.command_syncs), timeout, "a command sync"
        )
        return self.commands(guild_id)

    async def wait_messages(
        self, channel_id: int, count: int = 1, timeout: float = 5.0
    ) -> list[StoredMessage]:
        await self.wait_for(
            lambda: len(self.messages(channel_id)) >= count, timeout, f"{count} message(s) in {channel_id}"
        )
        return self.messages(channel_id)

    # ------------------------------------------------------------------ world building
    def new_id(self) -> int:
        return self._snowflake()

    def add_user(
        self,
        username: str | None = None,
        *,
        user_id: int | None = None,
        bot: bool = False,
        global_name: str | None = None,
    ) -> FakeUser:
        """Create (or return the existing) user."""
        uid = user_id if user_id is not None else self.new_id()
        if uid in self.users:
            return self.users[uid]
        user = FakeUser(uid, username or f"user{len(self.users)}", global_name=global_name, bot=bot)
        self.users[uid] = user
        return user

    def add_guild(
        self,
        name: str = "Test Guild",
        owner_id: int | None = None,
        *,
        channels: Sequence[str] = ("general",),
        everyone_permissions: PermissionsLike = Perm.DEFAULT_EVERYONE,
        bot_permissions: PermissionsLike = Perm.DEFAULT_BOT,
        member_count: int | None = None,
        guild_id: int | None = None,
    ) -> FakeGuild:
        """A guild the bot is in: @everyone, the bot's managed role, the bot and owner as members,
        and text channels (the first is ``default_channel_id``). Dispatches GUILD_CREATE if connected."""
        gid = guild_id if guild_id is not None else self.new_id()
        owner = self.users[owner_id] if owner_id is not None and owner_id in self.users else None
        if owner is None:
            owner = self.add_user(f"owner-of-{name}", user_id=owner_id)
        bot_role_id = self.new_id()
        guild = FakeGuild(
            id=gid, name=name, owner_id=owner.id, bot_role_id=bot_role_id, member_count=member_count
        )
        guild.joined_at = self.clock.iso()
        guild.roles[gid] = FakeRole(gid, gid, "@everyone", perm_value(everyone_permissions), position=0)
        guild.roles[bot_role_id] = FakeRole(
            bot_role_id, gid, self.bot_user.username, perm_value(bot_permissions), 1, True, self.bot_user.id
        )
        guild.members[self.bot_user.id] = FakeMember(
            gid, self.bot_user.id, [bot_role_id], joined_at=guild.joined_at
        )
        guild.members[owner.id] = FakeMember(gid, owner.id)
        self.guilds[gid] = guild
        for position, channel_name in enumerate(channels):
            channel = self._new_channel(guild, channel_name, ChannelType.GUILD_TEXT, position=position)
            if guild.default_channel_id is None:
                guild.default_channel_id = channel.id
        self.dispatch("GUILD_CREATE", self.guild_create_payload(guild), guild_id=gid)
        return guild

    def remove_guild(self, guild_id: int) -> None:
        """The bot was removed: GUILD_DELETE, then REST calls there answer 403 Missing Access."""
        guild = self._guild(guild_id)
        self.dispatch("GUILD_DELETE", {"id": str(guild_id)}, guild_id=guild_id)
        guild.removed = True

    def add_channel(
        self,
        guild_id: int,
        name: str,
        *,
        type: int = ChannelType.GUILD_TEXT,
        parent_id: int | None = None,
        topic: str | None = None,
        overwrites: Sequence[Overwrite] = (),
    ) -> FakeChannel:
        """Create a guild channel; dispatches CHANNEL_CREATE."""
        guild = self._guild(guild_id)
        channel = self._new_channel(guild, name, type, position=len(guild.channel_ids), parent_id=parent_id)
        channel.topic = topic
        channel.overwrites = list(overwrites)
        self.dispatch("CHANNEL_CREATE", channel.payload(), guild_id=guild_id)
        return channel

    def delete_channel(self, channel_id: int) -> None:
        """Delete a channel: CHANNEL_DELETE, then posting there answers 404 Unknown Channel (10003)."""
        channel = self._channel(channel_id)
        channel.deleted = True
        if channel.guild_id is not None:
            guild = self.guilds[channel.guild_id]
            if channel_id in guild.channel_ids:
                guild.channel_ids.remove(channel_id)
            self.dispatch("CHANNEL_DELETE", channel.payload(), guild_id=channel.guild_id)

    def set_overwrite(
        self, channel_id: int, target_id: int, *, allow: PermissionsLike = 0, deny: PermissionsLike = 0
    ) -> None:
        """Set a role or member permission overwrite on a channel; dispatches CHANNEL_UPDATE."""
        channel = self._channel(channel_id)
        guild = self._guild(self._require_guild_id(channel))
        kind = 0 if target_id in guild.roles else 1
        channel.overwrites = [ow for ow in channel.overwrites if not (ow.id == target_id and ow.type == kind)]
        if perm_value(allow) or perm_value(deny):
            channel.overwrites.append(Overwrite(target_id, kind, perm_value(allow), perm_value(deny)))
        self.dispatch("CHANNEL_UPDATE", channel.payload(), guild_id=guild.id)

    def forbid_channel(self, channel_id: int, *, hide: bool = False) -> None:
        """Take SEND_MESSAGES from the bot there (posts: 403 Missing Permissions, 50013);
        with ``hide`` also VIEW_CHANNEL (posts: 403 Missing Access, 50001)."""
        deny = Perm.SEND_MESSAGES | Perm.SEND_MESSAGES_IN_THREADS | (Perm.VIEW_CHANNEL if hide else 0)
        self.set_overwrite(channel_id, self.bot_user.id, deny=deny)

    def allow_channel(self, channel_id: int) -> None:
        """Undo :meth:`forbid_channel`."""
        self.set_overwrite(channel_id, self.bot_user.id)

    def hide_history(self, channel_id: int) -> None:
        """Take READ_MESSAGE_HISTORY from the bot there: reading the channel's messages answers an
        empty list (as Discord does), posting still works. :meth:`allow_channel` undoes it."""
        self.set_overwrite(channel_id, self.bot_user.id, deny=Perm.READ_MESSAGE_HISTORY)

    def add_role(
        self, guild_id: int, name: str, permissions: PermissionsLike = 0, *, mentionable: bool = False
    ) -> FakeRole:
        guild = self._guild(guild_id)
        role = FakeRole(
            self.new_id(), guild_id, name, perm_value(permissions), len(guild.roles), mentionable=mentionable
        )
        guild.roles[role.id] = role
        self.dispatch(
            "GUILD_ROLE_CREATE", {"guild_id": str(guild_id), "role": role.payload()}, guild_id=guild_id
        )
        return role

    def add_member(
        self,
        guild_id: int,
        user_id: int | None = None,
        *,
        username: str | None = None,
        roles: Sequence[int] = (),
        permissions: PermissionsLike | None = None,
        nick: str | None = None,
    ) -> FakeMember:
        """Add a user (created if needed) to a guild. ``permissions`` creates a role granting them."""
        guild = self._guild(guild_id)
        user = self.add_user(username, user_id=user_id)
        member = guild.members.get(user.id)
        if member is None:
            member = FakeMember(guild_id, user.id, joined_at=self.clock.iso())
            guild.members[user.id] = member
            self.dispatch(
                "GUILD_MEMBER_ADD", {"guild_id": str(guild_id), **member.payload(user)}, guild_id=guild_id
            )
        member.nick = nick if nick is not None else member.nick
        member.roles.extend(r for r in roles if r not in member.roles)
        if permissions is not None:
            role = self.add_role(guild_id, f"{user.username} permissions", permissions)
            member.roles.append(role.id)
        return member

    def close_dms(self, user_id: int) -> None:
        """The user no longer accepts DMs from the bot: DM posts answer 403 (50007)."""
        self.add_user(user_id=user_id).dms_closed = True

    def open_dms(self, user_id: int) -> None:
        self.add_user(user_id=user_id).dms_closed = False

    def dm_channel(self, user_id: int) -> FakeChannel:
        """The (stable) DM channel between the bot and a user."""
        user = self.add_user(user_id=user_id)
        cid = self._dm_channel_ids.get(user.id)
        if cid is None:
            channel = FakeChannel(self.new_id(), ChannelType.DM, None, recipient_id=user.id)
            self.channels[channel.id] = channel
            self._dm_channel_ids[user.id] = channel.id
            return channel
        return self.channels[cid]

    def permissions_for(self, user_id: int, channel_id: int) -> int:
        channel = self._channel(channel_id)
        if channel.guild_id is None:
            return Perm.DEFAULT_BOT
        return compute_permissions(self.guilds[channel.guild_id], user_id, channel)

    # ------------------------------------------------------------------ inspection
    def messages(
        self, channel_id: int, *, include_deleted: bool = False, include_interaction_replies: bool = True
    ) -> list[StoredMessage]:
        """Messages in a channel, oldest first (ephemeral interaction replies are never in a channel)."""
        return [
            m
            for m in self._channel_messages.get(channel_id, [])
            if (include_deleted or not m.deleted)
            and (include_interaction_replies or m.interaction_id is None)
        ]

    def dm_messages(self, user_id: int, *, include_deleted: bool = False) -> list[StoredMessage]:
        """Messages in the bot's DM channel with a user, oldest first."""
        cid = self._dm_channel_ids.get(user_id)
        return [] if cid is None else self.messages(cid, include_deleted=include_deleted)

    def message(self, message_id: int) -> StoredMessage:
        """Any message the fake holds (channel messages, ephemeral replies, follow-ups)."""
        return self._messages_by_id[message_id]

    def commands(self, guild_id: int | None = None) -> list[JSON]:
        """The currently synced commands (global, or of one guild), as Discord returns them."""
        if guild_id is None:
            return list(self.global_commands)
        return list(self.guild_commands.get(guild_id, []))

    def requests_matching(self, method: str, path_regex: str) -> list[RecordedRequest]:
        """Recorded REST requests whose path fullmatches ``path_regex`` (method ``"*"`` = any)."""
        pattern = re.compile(path_regex)
        return [
            r
            for r in self.requests
            if method.upper() in ("*", r.method) and pattern.fullmatch(r.path) is not None
        ]

    @property
    def failed_requests(self) -> list[RecordedRequest]:
        """REST requests answered with a 4xx/5xx (injected faults included)."""
        return [r for r in self.requests if r.status is not None and r.status >= 400]

    # ------------------------------------------------------------------ faults
    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int,
        *,
        times: int | None = 1,
        retry_after: float = 1.0,
        global_: bool = False,
        scope: str = "user",
        code: int | None = None,
        message: str | None = None,
        after_effect: bool = False,
    ) -> FaultRule:
        """Answer the next ``times`` matching requests with ``status`` (429, 403, 404, 500, 502, 503 ...).

        429s carry ``Via``, ``Retry-After``, ``X-RateLimit-*`` (incl. ``Scope``) and Discord's body.
        ``after_effect=True`` runs the real handler first (e.g. the message IS stored) and then
        answers the error, like a response lost on the way back.
        """
        rule = FaultRule(
            method,
            path_regex,
            status,
            times=times,
            retry_after=retry_after,
            global_=global_,
            scope=scope,
            code=code,
            message=message,
            after_effect=after_effect,
        )
        self.faults.append(rule)
        return rule

    def delay(
        self,
        method: str,
        path_regex: str,
        seconds: float,
        *,
        times: int | None = None,
        after_effect: bool = False,
    ) -> FaultRule:
        """Slow matching requests by ``seconds`` (before handling; or after it with ``after_effect``)."""
        rule = FaultRule(method, path_regex, None, times=times, delay=seconds, after_effect=after_effect)
        self.faults.append(rule)
        return rule

    def clear_faults(self) -> None:
        self.faults.clear()

    # ------------------------------------------------------------------ gateway controls
    def dispatch(self, event: str, data: Any, *, guild_id: int | None = None) -> int:
        """Send a dispatch to every live session that handles ``guild_id``'s shard and wants the event.

        Sessions whose socket is down buffer it for RESUME. Returns how many sessions got it.
        """
        count = 0
        for session in list(self.sessions.values()):
            if (
                session.alive
                and session.handles_guild(guild_id)
                and session.wants(event, in_guild=guild_id is not None)
            ):
                session.dispatch(event, data)
                count += 1
        self.notifier.notify()
        return count

    def _attached(self, shard_id: int | None) -> list[GatewayConnection]:
        return [
            c
            for c in self.gateway_connections
            if c.open and c.session is not None and (shard_id is None or c.session.shard_id == shard_id)
        ]

    async def close_gateway(self, code: int = 4000, *, shard_id: int | None = None, reason: str = "") -> None:
        """Close the bot's gateway socket(s) with ``code``. 4000-style codes keep the session
        resumable (the client RESUMEs); 4007/4009 end it (RESUME then gets op 9)."""
        for conn in self._attached(shard_id):
            session = conn.session
            await conn.close(code, reason.encode())
            if session is not None and code in SESSION_ENDING_CLOSE_CODES:
                session.alive = False
        self.notifier.notify()

    def drop_gateway(self, *, shard_id: int | None = None) -> None:
        """Cut the bot's gateway TCP connection(s) without a close frame."""
        for conn in self._attached(shard_id):
            conn.abort()
        self.notifier.notify()

    async def invalidate_session(self, resumable: bool = False, *, shard_id: int | None = None) -> None:
        """Send op 9 INVALID_SESSION; ``resumable=False`` forgets the session (client re-IDENTIFYs)."""
        for conn in self._attached(shard_id):
            if conn.session is not None and not resumable:
                conn.session.alive = False
            await conn.send_json({"op": Op.INVALID_SESSION, "d": resumable, "s": None, "t": None})
        self.notifier.notify()

    async def request_reconnect(self, *, shard_id: int | None = None) -> None:
        """Send op 7 RECONNECT (the client closes and RESUMEs)."""
        for conn in self._attached(shard_id):
            await conn.send_json({"op": Op.RECONNECT, "d": None, "s": None, "t": None})

    # ------------------------------------------------------------------ interactions
    async def invoke_command(
        self,
        guild_id: int | None,
        channel_id: int | None,
        user_id: int,
        name: str,
        *,
        subcommand: str | None = None,
        group: str | None = None,
        options: Mapping[str, Any] | None = None,
        permissions: PermissionsLike | None = None,
        app_permissions: PermissionsLike | None = None,
        locale: str = "en-US",
        enforce_default_permissions: bool = False,
    ) -> InteractionRecord:
        """A user runs a slash command, built from the SYNCED definition, and it is dispatched.

        ``name`` may hold the whole path (``"watch add"``) or use ``group=``/``subcommand=``.
        Option values: str/int/float/bool, ids (or objects with ``.id``) for user/channel/role
        options, which are resolved into ``data.resolved``. ``guild_id=None`` means the bot's
        DM (``user`` instead of ``member``, ``context`` 1; ``channel_id`` may be None).
        ``permissions`` overrides the member's computed permissions in the channel.
        """
        command, path, scope_guild = self._command_for(guild_id, name, group, subcommand)
        if enforce_default_permissions and guild_id is not None:
            needed = command.get("default_member_permissions")
            have = perm_value(permissions) if permissions is not None else None
            if needed is not None:
                have = have if have is not None else compute_permissions(self._guild(guild_id), user_id, None)
                if int(needed) & ~have and not have & Perm.ADMINISTRATOR:
                    raise PermissionError(
                        f"user {user_id} cannot see /{name} (default_member_permissions={needed})"
                    )
        _, leaf_defs = resolve_path(command, path)
        channel = self._interaction_channel(guild_id, channel_id, user_id)
        leaf, resolved = self._build_options(
            leaf_defs, options or {}, guild_id, channel, user_id, focused=None
        )
        data: JSON = {"id": command["id"], "name": command["name"], "type": 1}
        nested = nest_options(command, path, leaf)
        if nested:
            data["options"] = nested
        if resolved:
            data["resolved"] = resolved
        if scope_guild is not None:
            data["guild_id"] = str(scope_guild)
        payload = self._interaction_payload(
            InteractionType.APPLICATION_COMMAND,
            data,
            guild_id,
            channel,
            user_id,
            permissions,
            app_permissions,
            locale,
        )
        return self._dispatch_interaction(payload, guild_id)

    async def autocomplete(
        self,
        guild_id: int | None,
        channel_id: int | None,
        user_id: int,
        name: str,
        *,
        subcommand: str | None = None,
        group: str | None = None,
        options: Mapping[str, Any] | None = None,
        focused: str | None = None,
        permissions: PermissionsLike | None = None,
        locale: str = "en-US",
        timeout: float = 5.0,
    ) -> list[JSON]:
        """A user types into an autocomplete option; returns the choices the bot answered (type 8).

        ``focused`` names the option being typed (default: the last one in ``options``); its
        value is sent as the typed text (a string), the others as normal values.
        """
        record = await self.start_autocomplete(
            guild_id,
            channel_id,
            user_id,
            name,
            subcommand=subcommand,
            group=group,
            options=options,
            focused=focused,
            permissions=permissions,
            locale=locale,
        )
        callback = await record.wait_response(timeout)
        if int(callback["type"]) != CallbackType.APPLICATION_COMMAND_AUTOCOMPLETE_RESULT:
            raise AssertionError(f"autocomplete answered with callback type {callback['type']}")
        return record.choices

    async def start_autocomplete(
        self,
        guild_id: int | None,
        channel_id: int | None,
        user_id: int,
        name: str,
        *,
        subcommand: str | None = None,
        group: str | None = None,
        options: Mapping[str, Any] | None = None,
        focused: str | None = None,
        permissions: PermissionsLike | None = None,
        locale: str = "en-US",
    ) -> InteractionRecord:
        """Like :meth:`autocomplete` but returns the :class:`InteractionRecord` without waiting."""
        options = dict(options or {})
        if focused is None:
            if not options:
                raise ValueError("autocomplete needs at least the focused option")
            focused = list(options)[-1]
        command, path, scope_guild = self._command_for(guild_id, name, group, subcommand)
        _, leaf_defs = resolve_path(command, path)
        focused_def = next((o for o in leaf_defs if o["name"] == focused), None)
        if focused_def is None or not focused_def.get("autocomplete"):
            raise ValueError(f"option {focused!r} of /{name} is not an autocomplete option")
        channel = self._interaction_channel(guild_id, channel_id, user_id)
        leaf, resolved = self._build_options(leaf_defs, options, guild_id, channel, user_id, focused=focused)
        data: JSON = {
            "id": command["id"],
            "name": command["name"],
            "type": 1,
            "options": nest_options(command, path, leaf),
        }
        if resolved:
            data["resolved"] = resolved
        if scope_guild is not None:
            data["guild_id"] = str(scope_guild)
        payload = self._interaction_payload(
            InteractionType.APPLICATION_COMMAND_AUTOCOMPLETE,
            data,
            guild_id,
            channel,
            user_id,
            permissions,
            None,
            locale,
        )
        record = self._dispatch_interaction(payload, guild_id)
        record.focused_option = focused_def
        return record

    async def click_button(
        self,
        message: StoredMessage | int | Mapping[str, Any],
        custom_id: str,
        user_id: int,
        *,
        permissions: PermissionsLike | None = None,
        locale: str = "en-US",
    ) -> InteractionRecord:
        """A user clicks a button (MESSAGE_COMPONENT, component_type 2) on a message the fake holds."""
        return self._component_interaction(message, custom_id, user_id, None, permissions, locale)

    async def select_option(
        self,
        message: StoredMessage | int | Mapping[str, Any],
        custom_id: str,
        values: Sequence[str],
        user_id: int,
        *,
        permissions: PermissionsLike | None = None,
        locale: str = "en-US",
    ) -> InteractionRecord:
        """A user picks ``values`` in a select menu on a message."""
        return self._component_interaction(message, custom_id, user_id, list(values), permissions, locale)

    # ------------------------------------------------------------------ internals: model lookups
    def _guild(self, guild_id: int) -> FakeGuild:
        try:
            return self.guilds[guild_id]
        except KeyError:
            raise KeyError(f"unknown guild {guild_id}") from None

    def _channel(self, channel_id: int) -> FakeChannel:
        try:
            return self.channels[channel_id]
        except KeyError:
            raise KeyError(f"unknown channel {channel_id}") from None

    @staticmethod
    def _require_guild_id(channel: FakeChannel) -> int:
        if channel.guild_id is None:
            raise ValueError(f"channel {channel.id} is not a guild channel")
        return channel.guild_id

    def _new_channel(
        self, guild: FakeGuild, name: str, type: int, *, position: int, parent_id: int | None = None
    ) -> FakeChannel:
        channel = FakeChannel(self.new_id(), type, name, guild.id, position=position, parent_id=parent_id)
        self.channels[channel.id] = channel
        guild.channel_ids.append(channel.id)
        return channel

    def guild_create_payload(self, guild: FakeGuild) -> JSON:
        """The GUILD_CREATE a bot gets for ``guild`` (bot member only: no member chunking)."""
        data = self.guild_payload(guild)
        data.update(
            {
                "joined_at": guild.joined_at,
                "large": False,
                "unavailable": False,
                "member_count": guild.member_count if guild.member_count is not None else len(guild.members),
                "members": [guild.members[self.bot_user.id].payload(self.bot_user)],
                "channels": [
                    self.channels[cid].payload(with_guild_id=False)
                    for cid in guild.channel_ids
                    if not self.channels[cid].deleted
                ],
                "threads": [],
                "presences": [],
                "voice_states": [],
                "stage_instances": [],
                "guild_scheduled_events": [],
                "soundboard_sounds": [],
            }
        )
        return data

    def guild_payload(self, guild: FakeGuild) -> JSON:
        return {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "owner_id": str(guild.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": [role.payload() for role in guild.roles.values()],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None if guild.default_channel_id is None else str(guild.default_channel_id),
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "description": None,
            "banner": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": guild.locale,
            "nsfw_level": 0,
            "max_members": 500000,
            "max_video_channel_users": 25,
        }

    def _me_payload(self) -> JSON:
        data = self.bot_user.payload()
        data.update({"verified": True, "mfa_enabled": False, "locale": "en-US", "email": None, "bot": True})
        return data

    # ------------------------------------------------------------------ internals: interactions
    def _command_for(
        self, guild_id: int | None, name: str, group: str | None, subcommand: str | None
    ) -> tuple[JSON, list[str], int | None]:
        parts = name.split()
        if not parts:
            raise ValueError("empty command name")
        path = parts[1:] + [p for p in (group, subcommand) if p]
        command = None
        scope_guild: int | None = None
        if guild_id is not None:
            command = find_command(self.guild_commands.get(guild_id, []), parts[0])
            scope_guild = guild_id if command is not None else None
        if command is None:
            command = find_command(self.global_commands, parts[0])
        if command is None:
            synced = sorted(
                {c["name"] for c in self.global_commands}
                | {c["name"] for c in self.guild_commands.get(guild_id or 0, [])}
            )
            raise CommandNotSynced(f"/{parts[0]} was not synced (synced: {synced})")
        contexts = command.get("contexts")
        if guild_id is None:
            if (
                (contexts is not None and 1 not in contexts)
                or (contexts is None and command.get("dm_permission") is False)
                or scope_guild is not None
            ):
                raise CommandNotSynced(f"/{parts[0]} is not available in DMs")
        elif contexts is not None and 0 not in contexts:
            raise CommandNotSynced(f"/{parts[0]} is not available in guilds")
        return command, path, scope_guild

    def _interaction_channel(self, guild_id: int | None, channel_id: int | None, user_id: int) -> FakeChannel:
        if guild_id is None:
            dm = self.dm_channel(user_id)
            if channel_id is not None and channel_id != dm.id:
                raise ValueError(f"channel {channel_id} is not the DM channel of user {user_id}")
            return dm
        guild = self._guild(guild_id)
        cid = channel_id if channel_id is not None else guild.default_channel_id
        if cid is None:
            raise ValueError("the guild has no channel")
        channel = self._channel(cid)
        if channel.guild_id != guild_id:
            raise ValueError(f"channel {cid} is not in guild {guild_id}")
        return channel

    def _build_options(
        self,
        definitions: Sequence[JSON],
        values: Mapping[str, Any],
        guild_id: int | None,
        channel: FakeChannel,
        user_id: int,
        *,
        focused: str | None,
    ) -> tuple[list[JSON], JSON]:
        by_name = {d["name"]: d for d in definitions}
        result: list[JSON] = []
        resolved: dict[str, dict[str, JSON]] = {}
        for name, raw in values.items():
            definition = by_name.get(name)
            if definition is None:
                raise ValueError(f"unknown option {name!r} (the command has {sorted(by_name)})")
            option_type = int(definition["type"])
            if name == focused:
                result.append({"name": name, "type": option_type, "value": str(raw), "focused": True})
                continue
            value = self._option_value(definition, raw, guild_id, channel, user_id, resolved)
            result.append({"name": name, "type": option_type, "value": value})
        if focused is None:
            missing = [d["name"] for d in definitions if d.get("required") and d["name"] not in values]
            if missing:
                raise ValueError(f"missing required option(s) {missing}")
        return result, dict(resolved)

    def _option_value(
        self,
        definition: JSON,
        raw: Any,
        guild_id: int | None,
        channel: FakeChannel,
        user_id: int,
        resolved: dict[str, dict[str, JSON]],
    ) -> Any:
        name = definition["name"]
        option_type = int(definition["type"])
        choices = definition.get("choices")
        if option_type == OptionType.STRING:
            if not isinstance(raw, str):
                raise TypeError(f"option {name!r} is a string option, got {raw!r}")
            if len(raw) < int(definition.get("min_length", 0)) or len(raw) > int(
                definition.get("max_length", 6000)
            ):
                raise ValueError(f"option {name!r}: length outside min/max_length")
            value: Any = raw
        elif option_type in (OptionType.INTEGER, OptionType.NUMBER):
            ok = isinstance(raw, int) if option_type == OptionType.INTEGER else isinstance(raw, int | float)
            if isinstance(raw, bool) or not ok:
                raise TypeError(
                    f"option {name!r} needs a {'integer' if option_type == 4 else 'number'}, got {raw!r}"
                )
            if ("min_value" in definition and raw < definition["min_value"]) or (
                "max_value" in definition and raw > definition["max_value"]
            ):
                raise ValueError(f"option {name!r}: {raw} outside min/max_value")
            value = raw
        elif option_type == OptionType.BOOLEAN:
            if not isinstance(raw, bool):
                raise TypeError(f"option {name!r} needs a bool, got {raw!r}")
            value = raw
        elif option_type in (OptionType.USER, OptionType.CHANNEL, OptionType.ROLE, OptionType.MENTIONABLE):
            target = int(getattr(raw, "id", raw))
            value = str(target)
            self._resolve_entity(definition, target, guild_id, user_id, resolved)
        elif option_type == OptionType.ATTACHMENT:
            attachment = self.attachments.option_attachment(self.application_id, raw)
            value = attachment["id"]
            resolved.setdefault("attachments", {})[value] = attachment
        else:
            raise ValueError(f"option {name!r} has unsupported type {option_type}")
        if choices and value not in [c["value"] for c in choices]:
            raise ValueError(f"option {name!r}: {value!r} is not one of the choices {choices}")
        return value

    def _resolve_entity(
        self,
        definition: JSON,
        target: int,
        guild_id: int | None,
        user_id: int,
        resolved: dict[str, dict[str, JSON]],
    ) -> None:
        option_type = int(definition["type"])
        if option_type in (OptionType.CHANNEL, OptionType.MENTIONABLE) and target in self.channels:
            channel = self.channels[target]
            if channel.guild_id != guild_id or channel.deleted:
                raise ValueError(f"channel {target} cannot be picked here")
            allowed = definition.get("channel_types")
            if allowed and channel.type not in allowed:
                raise ValueError(f"channel {target} (type {channel.type}) not in channel_types {allowed}")
            perms = (
                compute_permissions(self.guilds[guild_id], user_id, channel) if guild_id else Perm.DEFAULT_BOT
            )
            entry = {
                "id": str(channel.id),
                "name": channel.name,
                "type": channel.type,
                "permissions": str(perms),
                "parent_id": None if channel.parent_id is None else str(channel.parent_id),
                "flags": 0,
            }
            resolved.setdefault("channels", {})[str(target)] = entry
            return
        if option_type == OptionType.CHANNEL:
            raise ValueError(f"unknown channel {target}")
        if guild_id is not None and target in self.guilds[guild_id].roles and option_type != OptionType.USER:
            resolved.setdefault("roles", {})[str(target)] = self.guilds[guild_id].roles[target].payload()
            return
        if option_type == OptionType.ROLE:
            raise ValueError(f"unknown role {target}")
        user = self.users.get(target)
        if user is None:
            raise ValueError(f"unknown user {target}")
        resolved.setdefault("users", {})[str(target)] = user.payload()
        if guild_id is not None:
            guild = self.guilds[guild_id]
            member = guild.members.get(target)
            if member is not None:
                member_data = member.payload(None, permissions=compute_permissions(guild, target, None))
                resolved.setdefault("members", {})[str(target)] = member_data

    def _interaction_payload(
        self,
        interaction_type: int,
        data: JSON,
        guild_id: int | None,
        channel: FakeChannel,
        user_id: int,
        permissions: PermissionsLike | None,
        app_permissions: PermissionsLike | None,
        locale: str,
    ) -> JSON:
        user = self.add_user(user_id=user_id)
        iid = self.new_id()
        payload: JSON = {
            "id": str(iid),
            "application_id": str(self.application_id),
            "type": interaction_type,
            "data": data,
            "channel_id": str(channel.id),
            "token": f"aW50ZXJhY3Rpb246{iid}:{secrets.token_urlsafe(24)}",
            "version": 1,
            "locale": locale,
            "entitlements": [],
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        if guild_id is not None:
            guild = self._guild(guild_id)
            if user.id not in guild.members:
                self.add_member(guild_id, user.id)
            member = guild.members[user.id]
            perms = (
                perm_value(permissions)
                if permissions is not None
                else compute_permissions(guild, user.id, channel)
            )
            app_perms = (
                perm_value(app_permissions)
                if app_permissions is not None
                else compute_permissions(guild, self.bot_user.id, channel)
            )
            payload.update(
                {
                    "guild_id": str(guild_id),
                    "guild": {"id": str(guild_id), "locale": guild.locale, "features": []},
                    "guild_locale": guild.locale,
                    "member": member.payload(user, permissions=perms),
                    "channel": channel.payload(),
                    "app_permissions": str(app_perms),
                    "authorizing_integration_owners": {"0": str(guild_id)},
                    "context": 0,
                }
            )
        else:
            app_perms = perm_value(app_permissions) if app_permissions is not None else Perm.DEFAULT_BOT
            payload.update(
                {
                    "user": user.payload(),
                    "channel": channel.payload(recipients=[user]),
                    "app_permissions": str(app_perms),
                    "authorizing_integration_owners": {"0": "0"},
                    "context": 1,
                }
            )
        return payload

    def _dispatch_interaction(self, payload: JSON, guild_id: int | None) -> InteractionRecord:
        record = InteractionRecord(
            id=int(payload["id"]),
            token=payload["token"],
            type=int(payload["type"]),
            payload=payload,
            created_at=self.clock.now(),
            notifier=self.notifier,
        )
        self.interactions[record.id] = record
        self._interactions_by_token[record.token] = record
        if not self.dispatch("INTERACTION_CREATE", payload, guild_id=guild_id):
            raise RuntimeError(
                "no live gateway session to deliver the interaction to (is the bot connected?)"
            )
        return record

    def _resolve_message(self, message: StoredMessage | int | Mapping[str, Any]) -> StoredMessage:
        if isinstance(message, StoredMessage):
            return message
        mid = int(message) if isinstance(message, int) else int(message["id"])
        return self.message(mid)

    def _component_interaction(
        self,
        message: StoredMessage | int | Mapping[str, Any],
        custom_id: str,
        user_id: int,
        values: list[str] | None,
        permissions: PermissionsLike | None,
        locale: str,
    ) -> InteractionRecord:
        stored = self._resolve_message(message)
        if stored.deleted:
            raise ValueError(f"message {stored.id} was deleted")
        component = next(
            (c for c in iter_components(stored.components) if c.get("custom_id") == custom_id), None
        )
        if component is None:
            ids = [c.get("custom_id") for c in iter_components(stored.components) if c.get("custom_id")]
            raise ValueError(f"message {stored.id} has no component {custom_id!r} (has {ids})")
        if component.get("disabled"):
            raise ValueError(f"component {custom_id!r} is disabled")
        ctype = int(component["type"])
        if values is None and ctype != 2:
            raise ValueError(f"component {custom_id!r} is not a button (type {ctype})")
        if values is not None and ctype not in (3, 5, 6, 7, 8):
            raise ValueError(f"component {custom_id!r} is not a select menu (type {ctype})")
        problem = None if values is None else check_pick(component, values)
        if problem is not None:
            raise ValueError(f"select {custom_id!r} cannot be picked so: {problem}")
        channel = self._channel(stored.channel_id)
        data: JSON = {"custom_id": custom_id, "component_type": ctype}
        if "id" in component:
            data["id"] = component["id"]
        if values is not None:
            data["values"] = values
        payload = self._interaction_payload(
            InteractionType.MESSAGE_COMPONENT,
            data,
            channel.guild_id,
            channel,
            user_id,
            permissions,
            None,
            locale,
        )
        payload["message"] = json.loads(json.dumps(stored.data))
        return self._dispatch_interaction(payload, channel.guild_id)

    # ------------------------------------------------------------------ internals: messages
    def _attachments(self, channel_id: int, files: Sequence[UploadedFile]) -> list[JSON]:
        return self.attachments.message_attachments(channel_id, list(files))

    def _message_data(
        self,
        channel: FakeChannel,
        body: Mapping[str, Any],
        files: Sequence[UploadedFile],
        *,
        message_type: int = MessageType.DEFAULT,
        extra_flags: int = 0,
        webhook: bool = False,
    ) -> JSON:
        mid = self.new_id()
        content = str(body.get("content") or "")
        pings = compute_pings(content, body.get("allowed_mentions"))
        embeds = [{"type": "rich", **embed} for embed in body.get("embeds") or []]
        flags = (int(body.get("flags") or 0) & _MESSAGE_FLAGS_SETTABLE) | extra_flags
        data: JSON = {
            "type": message_type,
            "content": content,
            "mentions": [self.users[u].payload() for u in pings.users if u in self.users],
            "mention_roles": [str(r) for r in pings.roles],
            "mention_everyone": pings.everyone,
            "attachments": self._attachments(channel.id, files),
            "embeds": embeds,
            "timestamp": self.clock.iso(),
            "edited_timestamp": None,
            "flags": flags,
            "components": list(body.get("components") or []),
            "id": str(mid),
            "channel_id": str(channel.id),
            "author": self.bot_user.payload(),
            "pinned": False,
            "tts": bool(body.get("tts")),
        }
        if body.get("nonce") is not None:
            data["nonce"] = body["nonce"]
        if webhook:
            data["webhook_id"] = str(self.application_id)
            data["application_id"] = str(self.application_id)
        if "poll" in body:
            data["poll"] = body["poll"]
        return data

    def _store(self, message: StoredMessage, channel: FakeChannel, *, in_channel: bool) -> None:
        self._messages_by_id[message.id] = message
        if in_channel:
            self._channel_messages.setdefault(channel.id, []).append(message)
            channel.last_message_id = message.id
            self.dispatch(
                "MESSAGE_CREATE", self._gateway_message(message, channel), guild_id=channel.guild_id
            )

    def _gateway_message(self, message: StoredMessage, channel: FakeChannel) -> JSON:
        data = dict(message.data)
        if channel.guild_id is not None:
            data["guild_id"] = str(channel.guild_id)
            member = self.guilds[channel.guild_id].members.get(self.bot_user.id)
            if member is not None:
                data["member"] = member.payload(None)
        return data

    def _apply_edit(
        self, message: StoredMessage, body: Mapping[str, Any], files: Sequence[UploadedFile]
    ) -> None:
        errors = FormErrors()
        validate_message(body, errors, interaction=message.interaction_id is not None)
        errors.raise_if_any()
        data = message.data
        if "content" in body:
            data["content"] = str(body.get("content") or "")
        if "embeds" in body:
            data["embeds"] = [{"type": "rich", **e} for e in body.get("embeds") or []]
        if "components" in body:
            data["components"] = list(body.get("components") or [])
        if "allowed_mentions" in body:
            message.allowed_mentions = body.get("allowed_mentions")
        if "flags" in body and body["flags"] is not None:
            keep = data.get("flags", 0) & ~MessageFlags.SUPPRESS_EMBEDS
            data["flags"] = keep | (int(body["flags"]) & MessageFlags.SUPPRESS_EMBEDS)
        if "attachments" in body:
            keep_ids = {str(a.get("id")) for a in body.get("attachments") or []}
            data["attachments"] = [a for a in data.get("attachments", []) if a["id"] in keep_ids]
        if files:
            data["attachments"] = list(data.get("attachments", [])) + self._attachments(
                message.channel_id, files
            )
            message.files.extend(files)
        pings = compute_pings(data["content"], message.allowed_mentions)
        data["mentions"] = [self.users[u].payload() for u in pings.users if u in self.users]
        data["mention_roles"] = [str(r) for r in pings.roles]
        data["mention_everyone"] = pings.everyone
        data["edited_timestamp"] = self.clock.iso()
        message.edits.append(dict(body))
        if not message.ephemeral and message in self._channel_messages.get(message.channel_id, []):
            channel = self.channels[message.channel_id]
            self.dispatch(
                "MESSAGE_UPDATE", self._gateway_message(message, channel), guild_id=channel.guild_id
            )

    def _delete(self, message: StoredMessage) -> None:
        message.deleted = True
        channel = self.channels[message.channel_id]
        if not message.ephemeral:
            event: JSON = {"id": str(message.id), "channel_id": str(channel.id)}
            if channel.guild_id is not None:
                event["guild_id"] = str(channel.guild_id)
            self.dispatch("MESSAGE_DELETE", event, guild_id=channel.guild_id)

    def _check_send(self, channel_id: int, *, send: bool = True) -> FakeChannel:
        channel = self.channels.get(channel_id)
        if channel is None or channel.deleted:
            raise DiscordHTTPError(404, 10003)
        if channel.is_dm:
            recipient = self.users.get(channel.recipient_id or 0)
            if send and recipient is not None and recipient.dms_closed:
                raise DiscordHTTPError(403, 50007)
            return channel
        guild = self.guilds[self._require_guild_id(channel)]
        if guild.removed:
            raise DiscordHTTPError(403, 50001)
        perms = compute_permissions(guild, self.bot_user.id, channel)
        if not perms & Perm.VIEW_CHANNEL:
            raise DiscordHTTPError(403, 50001)
        if send and not perms & Perm.SEND_MESSAGES:
            raise DiscordHTTPError(403, 50013)
        return channel

    def _channel_message(self, channel_id: int, message_id: int) -> StoredMessage:
        message = self._messages_by_id.get(message_id)
        if message is None or message.deleted or message.channel_id != channel_id or message.ephemeral:
            raise DiscordHTTPError(404, 10008)
        return message

    # ------------------------------------------------------------------ REST plumbing
    async def _read_body(self, request: web.Request) -> tuple[Any, list[UploadedFile]]:
        files: list[UploadedFile] = []
        ctype = request.content_type
        if ctype.startswith("multipart/"):
            body: Any = None
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    break
                if not isinstance(part, BodyPartReader):
                    continue
                name = part.name or ""
                raw = await part.read()
                if name == "payload_json":
                    body = json.loads(bytes(raw).decode())
                else:
                    content_type = part.headers.get("Content-Type", "application/octet-stream")
                    filename = part.filename or name
                    files.append(UploadedFile(name, filename, content_type, len(raw), bytes(raw)))
            return body, files
        raw_bytes = await request.read()
        if not raw_bytes:
            return None, files
        try:
            return json.loads(raw_bytes), files
        except ValueError:
            return raw_bytes.decode(errors="replace"), files

    @staticmethod
    def _bucket(route: _Route) -> str:
        """Discord's bucket hash: per route (discord.py adds the major parameters itself)."""
        return hashlib.sha1(f"{route.method} {route.template}".encode()).hexdigest()[:16]

    async def _api_handler(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if not path.startswith(API_PREFIX + "/"):
            return json_response({"message": "404: Not Found", "code": 0}, status=404)
        path = path[len(API_PREFIX) :]
        body, files = await self._read_body(request)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
        record = RecordedRequest(
            request.method, path, dict(request.query), body, headers, self.clock.now(), files
        )
        self.requests.append(record)
        try:
            response = await self._handle_api(request, record, body, files)
        except DiscordHTTPError as exc:
            response = exc.response()
        record.status = response.status
        if (
            isinstance(response, web.Response)
            and response.body is not None
            and response.content_type == "application/json"
        ):
            with contextlib.suppress(ValueError, TypeError):
                record.response = json.loads(bytes(response.body))  # type: ignore[arg-type]
        self.notifier.notify()
        return response

    async def _handle_api(
        self, request: web.Request, record: RecordedRequest, body: Any, files: list[UploadedFile]
    ) -> web.Response:
        method, path = record.method, record.path
        matched: tuple[_Route, dict[str, str]] | None = None
        method_mismatch = False
        for route in _ROUTES:
            m = route.pattern.fullmatch(path)
            if m is None:
                continue
            if route.method != method:
                method_mismatch = True
                continue
            matched = (route, m.groupdict())
            break
        authorized = request.headers.get("Authorization") == f"Bot {self.token}" or not self.require_auth
        global_retry = None
        if self.global_limit is not None and matched is not None and matched[0].auth and authorized:
            # Discord counts a request when it arrives, before the latency of its answer.
            global_retry = self.global_limit.check(path)
        for rule in [
            r for r in self.faults if r.status is None and not r.after_effect and r.matches(method, path)
        ]:
            rule.hits += 1
            await self._sleep(rule.delay)
        if matched is None:
            record.known_route = False
            self.unknown_requests.append(record)
            if method_mismatch:
                return json_response({"message": "405: Method Not Allowed", "code": 0}, status=405)
            return json_response({"message": "404: Not Found", "code": 0}, status=404)
        route, params = matched
        if route.auth and not authorized:
            return json_response({"message": "401: Unauthorized", "code": 0}, status=401)
        if global_retry is not None:
            return ratelimited_response(global_retry, global_=True, scope="global")
        bucket = self._bucket(route)
        per_channel = self.channel_limit.check(method, path) if self.channel_limit is not None else None
        if per_channel is not None and per_channel.retry_after is not None:
            return ratelimited_response(per_channel.retry_after, scope="user", bucket=bucket)
        fault = next((r for r in self.faults if r.status is not None and r.matches(method, path)), None)
        if fault is not None:
            fault.hits += 1
            if not fault.after_effect:
                return fault.response(bucket)
        api_request = _ApiRequest(method, path, params, request.query, body, files, record)
        try:
            result = await route.handler(self, api_request)
        except DiscordHTTPError:
            if fault is not None:
                return fault.response(bucket)
            raise
        for rule in [
            r for r in self.faults if r.status is None and r.after_effect and r.matches(method, path)
        ]:
            rule.hits += 1
            await self._sleep(rule.delay)
        if fault is not None:
            return fault.response(bucket)
        response = result if isinstance(result, web.Response) else json_response(result)
        if self.ratelimit_headers and response.status < 300:
            response.headers.update(
                {
                    "X-RateLimit-Limit": "50",
                    "X-RateLimit-Remaining": "49",
                    "X-RateLimit-Reset": f"{time.time() + 1:.3f}",
                    "X-RateLimit-Reset-After": "1.000",
                    "X-RateLimit-Bucket": bucket,
                }
            )
            if per_channel is not None:
                response.headers.update(per_channel.headers(bucket))
        return response

    # ------------------------------------------------------------------ REST routes
    @_route("GET", r"/users/@me")
    async def _r_me(self, req: _ApiRequest) -> Any:
        return self._me_payload()

    @_route("GET", r"/users/(?P<user_id>\d+)")
    async def _r_user(self, req: _ApiRequest) -> Any:
        user = self.users.get(int(req.params["user_id"]))
        if user is None:
            raise DiscordHTTPError(404, 10013)
        return user.payload()

    @_route("GET", r"/users/@me/guilds")
    async def _r_my_guilds(self, req: _ApiRequest) -> Any:
        return [
            {
                "id": str(g.id),
                "name": g.name,
                "icon": None,
                "owner": False,
                "permissions": str(compute_permissions(g, self.bot_user.id, None)),
                "features": [],
            }
            for g in self.guilds.values()
            if not g.removed
        ]

    @_route("POST", r"/users/@me/channels")
    async def _r_create_dm(self, req: _ApiRequest) -> Any:
        body = req.body or {}
        recipient = _as_int(body.get("recipient_id"), "recipient_id")
        if recipient not in self.users or recipient == self.bot_user.id:
            raise DiscordHTTPError(400, 50033)
        channel = self.dm_channel(recipient)
        return channel.payload(recipients=[self.users[recipient]])

    @_route("GET", r"/oauth2/applications/@me")
    async def _r_application(self, req: _ApiRequest) -> Any:
        return {
            "id": str(self.application_id),
            "name": self.bot_user.username,
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "flags": self.application_flags,
            "owner": self.app_owner.payload(),
            "team": None,
            "hook": True,
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "tags": [],
            "approximate_guild_count": sum(1 for g in self.guilds.values() if not g.removed),
            "integration_types_config": {"0": {}},
            "bot": self.bot_user.payload(),
        }

    @_route("GET", r"/gateway", auth=False)
    async def _r_gateway(self, req: _ApiRequest) -> Any:
        return {"url": self.gateway_url}

    @_route("GET", r"/gateway/bot")
    async def _r_gateway_bot(self, req: _ApiRequest) -> Any:
        return self.shards.gateway_bot(self.gateway_url, self.shard_count)

    # --- application commands
    def _check_app(self, req: _ApiRequest) -> None:
        if int(req.params["app_id"]) != self.application_id:
            raise DiscordHTTPError(403, 50001)

    def _check_command_guild(self, req: _ApiRequest) -> int:
        gid = int(req.params["guild_id"])
        guild = self.guilds.get(gid)
        if guild is None or guild.removed:
            raise DiscordHTTPError(403, 50001)
        return gid

    def _normalize_commands(self, raw: Any, guild_id: int | None) -> list[JSON]:
        if not isinstance(raw, list):
            raise form_error([], "BASE_TYPE_ARRAY", "Must be an array.")
        errors = FormErrors()
        seen: set[tuple[str, int]] = set()
        result = []
        for index, command in enumerate(raw):
            ctype = int(command.get("type", 1))
            name = command.get("name", "")
            validate_command(command, [index], errors)
            if (name, ctype) in seen:
                errors.add(
                    [index, "name"],
                    "APPLICATION_COMMANDS_DUPLICATE_NAME",
                    f"Application command names must be unique ({name})",
                )
            seen.add((name, ctype))
            key = (guild_id, name, ctype)
            cid = self._command_ids.setdefault(key, self.new_id())
            data: JSON = {
                "id": str(cid),
                "application_id": str(self.application_id),
                "version": str(self.new_id()),
                "default_member_permissions": command.get("default_member_permissions"),
                "type": ctype,
                "name": name,
                "name_localizations": command.get("name_localizations"),
                "description": command.get("description", ""),
                "description_localizations": command.get("description_localizations"),
                "nsfw": bool(command.get("nsfw", False)),
                "integration_types": command.get("integration_types") or [0],
                "contexts": command.get("contexts"),
            }
            if guild_id is not None:
                data["guild_id"] = str(guild_id)
            else:
                data["dm_permission"] = command.get("dm_permission", True) is not False
            if command.get("options"):
                data["options"] = command["options"]
            result.append(data)
        chat = sum(1 for c in result if c["type"] == 1)
        if chat > 100:
            errors.add(
                [], "APPLICATION_COMMANDS_TOO_MANY", "Maximum number of application commands reached (100)"
            )
        errors.raise_if_any()
        return result

    @_route("PUT", r"/applications/(?P<app_id>\d+)/commands")
    async def _r_put_global_commands(self, req: _ApiRequest) -> Any:
        self._check_app(req)
        self.global_commands = self._normalize_commands(req.body, None)
        self.command_syncs.append(CommandSync(None, self.global_commands, self.clock.now()))
        return self.global_commands

    @_route("GET", r"/applications/(?P<app_id>\d+)/commands")
    async def _r_get_global_commands(self, req: _ApiRequest) -> Any:
        self._check_app(req)
        return self.global_commands

    @_route("PUT", r"/applications/(?P<app_id>\d+)/guilds/(?P<guild_id>\d+)/commands")
    async def _r_put_guild_commands(self, req: _ApiRequest) -> Any:
        self._check_app(req)
        gid = self._check_command_guild(req)
        self.guild_commands[gid] = self._normalize_commands(req.body, gid)
        self.command_syncs.append(CommandSync(gid, self.guild_commands[gid], self.clock.now()))
        return self.guild_commands[gid]

    @_route("GET", r"/applications/(?P<app_id>\d+)/guilds/(?P<guild_id>\d+)/commands")
    async def _r_get_guild_commands(self, req: _ApiRequest) -> Any:
        self._check_app(req)
        return self.guild_commands.get(self._check_command_guild(req), [])

    # --- channels & messages
    @_route("GET", r"/channels/(?P<channel_id>\d+)")
    async def _r_get_channel(self, req: _ApiRequest) -> Any:
        channel = self._check_send(int(req.params["channel_id"]), send=False)
        if channel.is_dm:
            return channel.payload(recipients=[self.users[channel.recipient_id or 0]])
        return channel.payload()

    @_route("POST", r"/channels/(?P<channel_id>\d+)/messages")
    async def _r_create_message(self, req: _ApiRequest) -> Any:
        channel = self._check_send(int(req.params["channel_id"]))
        body = req.body if isinstance(req.body, dict) else {}
        errors = FormErrors()
        validate_message(body, errors)
        errors.raise_if_any()
        if is_empty_message(body, req.files):
            raise DiscordHTTPError(400, 50006)
        nonce = body.get("nonce")
        key = None if nonce is None else (channel.id, self.bot_user.id, str(nonce))
        if key is not None and body.get("enforce_nonce"):
            previous = self._nonces.get(key)
            if previous is not None and self.clock.now() - previous.created_at <= self.nonce_window:
                return previous.data
        data = self._message_data(channel, body, req.files)
        message = StoredMessage(
            data,
            allowed_mentions=body.get("allowed_mentions"),
            nonce=None if nonce is None else str(nonce),
            enforce_nonce=bool(body.get("enforce_nonce")),
            created_at=self.clock.now(),
            files=list(req.files),
        )
        if key is not None:
            self._nonces[key] = message
        self._store(message, channel, in_channel=True)
        return data

    @_route("GET", r"/channels/(?P<channel_id>\d+)/messages")
    async def _r_list_messages(self, req: _ApiRequest) -> Any:
        """Newest first. ``limit`` 1-100 (default 50); ``after`` gives the ``limit`` messages just
        after it, ``before`` the ones just before it, ``around`` the ones around it. As on Discord:
        without View Channel 403 (50001); without Read Message History an empty list, not an error;
        nonces are not part of fetched messages (only of the create answer and the gateway event)."""
        channel = self._check_send(int(req.params["channel_id"]), send=False)
        limit = _as_int(req.query.get("limit", "50"), "limit")
        if not 1 <= limit <= 100:
            raise form_error(["limit"], "NUMBER_TYPE_MAX", "Must be between 1 and 100.")
        if (
            channel.guild_id is not None
            and not self.permissions_for(self.bot_user.id, channel.id) & Perm.READ_MESSAGE_HISTORY
        ):
            return []
        messages = self.messages(channel.id)
        if "before" in req.query:
            messages = [m for m in messages if m.id < _as_int(req.query["before"], "before")]
        if "after" in req.query:
            messages = [m for m in messages if m.id > _as_int(req.query["after"], "after")][:limit]
        if "around" in req.query:
            around = _as_int(req.query["around"], "around")
            older = [m for m in messages if m.id <= around][-((limit + 1) // 2) :]
            newer = [m for m in messages if m.id > around][: limit // 2]
            messages = older + newer
        return [{k: v for k, v in m.data.items() if k != "nonce"} for m in reversed(messages[-limit:])]

    @_route("GET", r"/channels/(?P<channel_id>\d+)/messages/(?P<message_id>\d+)")
    async def _r_get_message(self, req: _ApiRequest) -> Any:
        channel = self._check_send(int(req.params["channel_id"]), send=False)
        return self._channel_message(channel.id, int(req.params["message_id"])).data

    @_route("PATCH", r"/channels/(?P<channel_id>\d+)/messages/(?P<message_id>\d+)")
    async def _r_edit_message(self, req: _ApiRequest) -> Any:
        channel = self._check_send(int(req.params["channel_id"]), send=False)
        message = self._channel_message(channel.id, int(req.params["message_id"]))
        if message.author_id != self.bot_user.id:
            raise DiscordHTTPError(403, 50005)
        self._apply_edit(message, req.body if isinstance(req.body, dict) else {}, req.files)
        return message.data

    @_route("DELETE", r"/channels/(?P<channel_id>\d+)/messages/(?P<message_id>\d+)")
    async def _r_delete_message(self, req: _ApiRequest) -> Any:
        channel = self._check_send(int(req.params["channel_id"]), send=False)
        message = self._channel_message(channel.id, int(req.params["message_id"]))
        if message.author_id != self.bot_user.id and not (
            channel.guild_id and self.permissions_for(self.bot_user.id, channel.id) & Perm.MANAGE_MESSAGES
        ):
            raise DiscordHTTPError(403, 50013)
        self._delete(message)
        return _no_content()

    @_route("POST", r"/channels/(?P<channel_id>\d+)/typing")
    async def _r_typing(self, req: _ApiRequest) -> Any:
        self._check_send(int(req.params["channel_id"]))
        return _no_content()

    # --- guilds
    def _visible_guild(self, guild_id: int) -> FakeGuild:
        guild = self.guilds.get(guild_id)
        if guild is None:
            raise DiscordHTTPError(404, 10004)
        if guild.removed:
            raise DiscordHTTPError(403, 50001)
        return guild

    @_route("GET", r"/guilds/(?P<guild_id>\d+)")
    async def _r_get_guild(self, req: _ApiRequest) -> Any:
        guild = self._visible_guild(int(req.params["guild_id"]))
        data = self.guild_payload(guild)
        if req.query.get("with_counts") in ("true", "1", "True"):
            data["approximate_member_count"] = guild.member_count or len(guild.members)
            data["approximate_presence_count"] = 0
        return data

    @_route("GET", r"/guilds/(?P<guild_id>\d+)/channels")
    async def _r_guild_channels(self, req: _ApiRequest) -> Any:
        guild = self._visible_guild(int(req.params["guild_id"]))
        return [self.channels[cid].payload() for cid in guild.channel_ids if not self.channels[cid].deleted]

    @_route("GET", r"/guilds/(?P<guild_id>\d+)/members/(?P<user_id>\d+)")
    async def _r_guild_member(self, req: _ApiRequest) -> Any:
        guild = self._visible_guild(int(req.params["guild_id"]))
        member = guild.members.get(int(req.params["user_id"]))
        if member is None:
            raise DiscordHTTPError(404, 10007, "Unknown Member")
        return member.payload(self.users[member.user_id])

    @_route("GET", r"/guilds/(?P<guild_id>\d+)/roles")
    async def _r_guild_roles(self, req: _ApiRequest) -> Any:
        return [r.payload() for r in self._visible_guild(int(req.params["guild_id"])).roles.values()]

    # --- interactions
    def _record_for_callback(self, req: _ApiRequest) -> InteractionRecord:
        record = self.interactions.get(int(req.params["interaction_id"]))
        if record is None or record.token != req.params["token"]:
            raise DiscordHTTPError(404, 10062)
        return record

    def _interaction_error(self, record: InteractionRecord, error: DiscordHTTPError) -> DiscordHTTPError:
        record.errors.append(error.body())
        self.notifier.notify()
        return error

    @_route("POST", r"/interactions/(?P<interaction_id>\d+)/(?P<token>[^/]+)/callback", auth=False)
    async def _r_interaction_callback(self, req: _ApiRequest) -> Any:
        record = self._record_for_callback(req)
        body = req.body if isinstance(req.body, dict) else {}
        if self.clock.now() - record.created_at > self.interaction_timeout:
            raise self._interaction_error(record, DiscordHTTPError(404, 10062))
        if record.callback is not None:
            raise self._interaction_error(record, DiscordHTTPError(400, 40060))
        ctype = int(body.get("type", 0))
        if ctype not in ALLOWED_CALLBACKS.get(record.type, frozenset()):
            invalid = form_error(
                ["type"], "INTERACTION_CALLBACK_TYPE_INVALID", "Interaction callback type is invalid"
            )
            raise self._interaction_error(record, invalid)
        data = body.get("data") or {}
        channel = self.channels[int(record.payload["channel_id"])]
        message: StoredMessage | None = None
        try:
            if ctype == CallbackType.CHANNEL_MESSAGE_WITH_SOURCE:
                message = self._interaction_message(record, channel, data, req.files, loading=False)
            elif ctype == CallbackType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE:
                record.deferred_ephemeral = bool(int(data.get("flags") or 0) & MessageFlags.EPHEMERAL)
                message = self._interaction_message(record, channel, data, [], loading=True)
            elif ctype in (CallbackType.UPDATE_MESSAGE, CallbackType.DEFERRED_UPDATE_MESSAGE):
                message = self._message_of_component(record)
                if ctype == CallbackType.UPDATE_MESSAGE:
                    self._apply_edit(message, data, req.files)
            elif ctype == CallbackType.APPLICATION_COMMAND_AUTOCOMPLETE_RESULT:
                problems = check_choice_answer(record.focused_option, data.get("choices"))
                if problems:
                    raise form_error(["data", "choices"], "AUTOCOMPLETE_INVALID", "; ".join(problems))
            elif ctype == CallbackType.MODAL:
                for key in ("custom_id", "title", "components"):
                    if not data.get(key):
                        raise form_error(["data", key], "BASE_TYPE_REQUIRED", "This field is required")
            else:
                raise form_error(["type"], "UNSUPPORTED", "callback type not supported by the fake")
        except DiscordHTTPError as exc:
            raise self._interaction_error(record, exc) from None
        record.callback = {"type": ctype, "data": data}
        if message is not None:
            record.original = message
        self.notifier.notify()
        if req.query.get("with_response") not in ("1", "true", "True"):
            return _no_content()
        interaction: JSON = {"id": str(record.id), "type": record.type}
        response: JSON = {"interaction": interaction}
        if message is not None:
            interaction["response_message_id"] = str(message.id)
            interaction["response_message_loading"] = (
                ctype == CallbackType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
            )
            interaction["response_message_ephemeral"] = message.ephemeral
            response["resource"] = {"type": ctype, "message": message.data}
        elif ctype == CallbackType.MODAL:
            response["resource"] = {"type": ctype}
        return response

    def _message_of_component(self, record: InteractionRecord) -> StoredMessage:
        raw = record.payload.get("message")
        if raw is None:
            raise form_error(["type"], "INTERACTION_CALLBACK_TYPE_INVALID", "No message to update")
        return self.message(int(raw["id"]))

    def _interaction_message(
        self,
        record: InteractionRecord,
        channel: FakeChannel,
        data: Mapping[str, Any],
        files: Sequence[UploadedFile],
        *,
        loading: bool,
        followup: bool = False,
    ) -> StoredMessage:
        errors = FormErrors()
        validate_message(data, errors, interaction=True)
        errors.raise_if_any()
        if not loading and is_empty_message(data, files):
            raise DiscordHTTPError(400, 50006)
        ephemeral = bool(int(data.get("flags") or 0) & MessageFlags.EPHEMERAL)
        extra = (MessageFlags.EPHEMERAL if ephemeral else 0) | (MessageFlags.LOADING if loading else 0)
        mtype = (
            MessageType.CHAT_INPUT_COMMAND
            if record.type == InteractionType.APPLICATION_COMMAND
            else MessageType.REPLY
        )
        body = {k: v for k, v in data.items() if k != "nonce"}
        msg_data = self._message_data(
            channel, body, files, message_type=mtype, extra_flags=extra, webhook=True
        )
        user = record.payload.get("member", {}).get("user") or record.payload.get("user")
        metadata: JSON = {
            "id": str(record.id),
            "type": record.type,
            "user": user,
            "authorizing_integration_owners": record.payload.get("authorizing_integration_owners", {}),
        }
        if record.type == InteractionType.APPLICATION_COMMAND:
            metadata["name"] = record.payload["data"]["name"]
            msg_data["interaction"] = {
                "id": str(record.id),
                "type": record.type,
                "name": metadata["name"],
                "user": user,
            }
        if record.type == InteractionType.MESSAGE_COMPONENT and "message" in record.payload:
            metadata["interacted_message_id"] = record.payload["message"]["id"]
        if followup and record.original is not None:
            metadata["original_response_message_id"] = str(record.original.id)
        msg_data["interaction_metadata"] = metadata
        message = StoredMessage(
            msg_data,
            allowed_mentions=data.get("allowed_mentions"),
            created_at=self.clock.now(),
            ephemeral=ephemeral,
            interaction_id=record.id,
            files=list(files),
        )
        self._store(message, channel, in_channel=not ephemeral)
        return message

    def _record_for_webhook(self, req: _ApiRequest) -> InteractionRecord:
        if int(req.params["app_id"]) != self.application_id:
            raise DiscordHTTPError(404, 10015)
        record = self._interactions_by_token.get(req.params["token"])
        if record is None or self.clock.now() - record.created_at > INTERACTION_TOKEN_LIFETIME:
            raise DiscordHTTPError(404, 10015)
        if record.callback is None:
            raise self._interaction_error(record, DiscordHTTPError(404, 10015))
        return record

    def _webhook_message(self, record: InteractionRecord, message_id: str) -> StoredMessage:
        if message_id == "@original":
            if record.original is None or record.original.deleted:
                raise self._interaction_error(record, DiscordHTTPError(404, 10008))
            return record.original
        for message in [record.original, *record.followups]:
            if message is not None and message.id == int(message_id) and not message.deleted:
                return message
        raise self._interaction_error(record, DiscordHTTPError(404, 10008))

    def _finish_deferral(self, record: InteractionRecord, message: StoredMessage) -> None:
        if message.loading:
            message.data["flags"] = message.flags & ~MessageFlags.LOADING

    @_route("POST", r"/webhooks/(?P<app_id>\d+)/(?P<token>[^/]+)", auth=False)
    async def _r_followup(self, req: _ApiRequest) -> Any:
        record = self._record_for_webhook(req)
        body = req.body if isinstance(req.body, dict) else {}
        channel = self.channels[int(record.payload["channel_id"])]
        try:
            original = record.original
            if record.callback_type == 5 and original is not None and original.loading:
                # the first follow-up after a deferral fills in the "thinking..." message
                self._apply_edit(original, {k: v for k, v in body.items() if k != "flags"}, req.files)
                self._finish_deferral(record, original)
                message = original
            else:
                message = self._interaction_message(
                    record, channel, body, req.files, loading=False, followup=True
                )
        except DiscordHTTPError as exc:
            raise self._interaction_error(record, exc) from None
        record.followups.append(message)
        self.notifier.notify()
        if req.query.get("wait") in ("1", "true", "True"):
            return message.data
        return _no_content()

    @_route(
        "GET",
        r"/webhooks/(?P<app_id>\d+)/(?P<token>[^/]+)/messages/(?P<message_id>@original|\d+)",
        auth=False,
    )
    async def _r_webhook_get(self, req: _ApiRequest) -> Any:
        record = self._record_for_webhook(req)
        return self._webhook_message(record, req.params["message_id"]).data

    @_route(
        "PATCH",
        r"/webhooks/(?P<app_id>\d+)/(?P<token>[^/]+)/messages/(?P<message_id>@original|\d+)",
        auth=False,
    )
    async def _r_webhook_edit(self, req: _ApiRequest) -> Any:
        record = self._record_for_webhook(req)
        message = self._webhook_message(record, req.params["message_id"])
        body = req.body if isinstance(req.body, dict) else {}
        try:
            self._apply_edit(message, body, req.files)
        except DiscordHTTPError as exc:
            raise self._interaction_error(record, exc) from None
        self._finish_deferral(record, message)
        if message is record.original:
            record.original_edits.append(body)
        self.notifier.notify()
        return message.data

    @_route(
        "DELETE",
        r"/webhooks/(?P<app_id>\d+)/(?P<token>[^/]+)/messages/(?P<message_id>@original|\d+)",
        auth=False,
    )
    async def _r_webhook_delete(self, req: _ApiRequest) -> Any:
        record = self._record_for_webhook(req)
        self._delete(self._webhook_message(record, req.params["message_id"]))
        return _no_content()

    # ------------------------------------------------------------------ gateway
    async def _gateway_handler(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0, autoping=True, timeout=2.0)
        await ws.prepare(request)
        conn = GatewayConnection(ws, request, opened_at=self.clock.now())
        self.gateway_connections.append(conn)
        self.notifier.notify()
        try:
            if request.query.get("encoding", "json") != "json":
                await conn.close(4002, b"Decode error: only encoding=json is supported by fakediscord")
                return ws
            if request.query.get("v", "10") != "10":
                await conn.close(4012, b"Invalid API version")
                return ws
            await conn.send_json(
                {
                    "op": Op.HELLO,
                    "d": {"heartbeat_interval": self.heartbeat_interval, "_trace": ["fakediscord"]},
                    "s": None,
                    "t": None,
                }
            )
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._gateway_receive(conn, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await conn.close(4002, b"Decode error")
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            session = conn.session
            conn.closed_at = self.clock.now()
            if conn.close_code is None:
                conn.close_code = ws.close_code
            conn.detach()
            if session is not None and not conn.closed_by_server and ws.close_code in (1000, 1001):
                session.alive = False  # a client closing with 1000/1001 ends its session
            await conn.finish()
            self.notifier.notify()
        return ws

    async def _gateway_receive(self, conn: GatewayConnection, text: str) -> None:
        try:
            payload = json.loads(text)
            op = int(payload["op"])
        except (ValueError, KeyError, TypeError):
            await conn.close(4002, b"Decode error")
            return
        data = payload.get("d")
        recorded = dict(payload)
        if isinstance(data, dict) and "token" in data:
            recorded["d"] = {**data, "token": "<redacted>"}
        conn.received.append(recorded)
        if op == Op.HEARTBEAT:
            conn.heartbeats += 1
            if self.ack_heartbeats:
                await conn.send_json({"op": Op.HEARTBEAT_ACK, "d": None, "s": None, "t": None})
        elif op == Op.IDENTIFY:
            await self._identify(conn, data if isinstance(data, dict) else {})
        elif op == Op.RESUME:
            await self._resume(conn, data if isinstance(data, dict) else {})
        elif conn.session is None:
            await conn.close(4003, b"Not authenticated")
        elif op == Op.REQUEST_GUILD_MEMBERS:
            self._members_chunk(conn.session, data if isinstance(data, dict) else {})
        elif op in (Op.PRESENCE_UPDATE, Op.VOICE_STATE_UPDATE):
            pass
        else:
            await conn.close(4001, b"Unknown opcode")
        self.notifier.notify()

    async def _identify(self, conn: GatewayConnection, data: JSON) -> None:
        if conn.session is not None:
            await conn.close(4005, b"Already authenticated")
            return
        if self.require_auth and data.get("token") != self.token:
            await conn.close(4004, b"Authentication failed")
            return
        live = [g.id for g in self.guilds.values() if not g.removed]
        shard_id, shard_count, refusal = self.shards.admit(data.get("shard"), live)
        if refusal is not None and refusal.close_code is not None:
            await conn.close(refusal.close_code, refusal.reason.encode())
            return
        if refusal is not None:  # over the identify concurrency: op 9, as Discord answers
            await conn.send_json({"op": Op.INVALID_SESSION, "d": False, "s": None, "t": None})
            return
        for old in self.sessions.values():
            if old.alive and old.shard_id == shard_id and old.shard_count == shard_count:
                old.alive = False
        identify = {k: v for k, v in data.items() if k != "token"}
        session = GatewaySession(
            uuid.uuid4().hex, shard_id, shard_count, int(data.get("intents") or 0), identify
        )
        self.sessions[session.session_id] = session
        self.identify_count += 1
        guilds = [g for g in self.guilds.values() if not g.removed and session.handles_guild(g.id)]
        ready: JSON = {
            "v": 10,
            "user": self._me_payload(),
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.resume_gateway_url,
            "application": {"id": str(self.application_id), "flags": self.application_flags},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "user_settings": {},
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "_trace": ['["fakediscord-gateway",{"micros":0}]'],
        }
        if data.get("shard") is not None:
            ready["shard"] = [shard_id, shard_count]
        session.dispatch("READY", ready)
        for guild in guilds:
            if session.wants("GUILD_CREATE", in_guild=True):
                session.dispatch("GUILD_CREATE", self.guild_create_payload(guild))
        conn.attach(session, after_seq=0)

    async def _resume(self, conn: GatewayConnection, data: JSON) -> None:
        if conn.session is not None:
            await conn.close(4005, b"Already authenticated")
            return
        if self.require_auth and data.get("token") != self.token:
            await conn.close(4004, b"Authentication failed")
            return
        session = self.sessions.get(str(data.get("session_id")))
        seq = int(data.get("seq") or 0)
        if session is None or not session.alive or seq > session.seq:
            self.failed_resume_count += 1
            await conn.send_json({"op": Op.INVALID_SESSION, "d": False, "s": None, "t": None})
            return
        self.resume_count += 1
        conn.resumed = True
        session.dispatch("RESUMED", {"_trace": ['["fakediscord-gateway",{"micros":0}]']})
        conn.attach(session, after_seq=seq)

    def _members_chunk(self, session: GatewaySession, data: JSON) -> None:
        guild = self.guilds.get(int(data.get("guild_id") or 0))
        members = [] if guild is None else list(guild.members.values())
        user_ids = data.get("user_ids")
        if user_ids:
            wanted = {int(u) for u in (user_ids if isinstance(user_ids, list) else [user_ids])}
            members = [m for m in members if m.user_id in wanted]
        query = str(data.get("query") or "")
        members = [m for m in members if self.users[m.user_id].username.startswith(query)]
        limit = int(data.get("limit") or 0)
        if limit:
            members = members[:limit]
        chunk = {
            "guild_id": str(data.get("guild_id")),
            "members": [m.payload(self.users[m.user_id]) for m in members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if data.get("nonce") is not None:
            chunk["nonce"] = data["nonce"]
        session.dispatch("GUILD_MEMBERS_CHUNK", chunk)
