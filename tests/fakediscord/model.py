"""Plain-Python model of the fake Discord's world: ids, users, guilds, channels, messages.

Everything here is synchronous and lives in ordinary dicts and lists owned by
:class:`~tests.fakediscord.server.FakeDiscord`; the payload builders produce
the JSON shapes Discord's API v10 uses (ids as strings, permissions as
strings, ISO-8601 timestamps).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

JSON = dict[str, Any]

DISCORD_EPOCH_MS = 1_420_070_400_000


class Clock:
    """Wall clock with an adjustable offset, so tests can let "minutes" pass instantly."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def iso(self, at: float | None = None) -> str:
        when = self.now() if at is None else at
        return dt.datetime.fromtimestamp(when, dt.UTC).isoformat()


class SnowflakeFactory:
    """Real-looking, strictly increasing snowflakes whose timestamp follows the clock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._increment = 0
        self._last = 0

    def __call__(self) -> int:
        ms = int(self._clock.now() * 1000) - DISCORD_EPOCH_MS
        value = (ms << 22) | (1 << 17) | (self._increment & 0xFFF)
        self._increment += 1
        if value <= self._last:
            value = self._last + 1
        self._last = value
        return value


def snowflake_time(snowflake: int) -> float:
    """Unix time (seconds) encoded in a snowflake."""
    return ((snowflake >> 22) + DISCORD_EPOCH_MS) / 1000


class Perm:
    """Discord permission bits (the subset a text bot deals with, plus ADMINISTRATOR)."""

    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_AUDIT_LOG = 1 << 7
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    SEND_TTS_MESSAGES = 1 << 12
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    CONNECT = 1 << 20
    SPEAK = 1 << 21
    CHANGE_NICKNAME = 1 << 26
    MANAGE_ROLES = 1 << 28
    MANAGE_WEBHOOKS = 1 << 29
    USE_APPLICATION_COMMANDS = 1 << 31
    CREATE_PUBLIC_THREADS = 1 << 35
    SEND_MESSAGES_IN_THREADS = 1 << 38
    ALL = (1 << 53) - 1

    #: What a new guild's @everyone role gets (no MANAGE_* bits).
    DEFAULT_EVERYONE = (
        CREATE_INSTANT_INVITE
        | ADD_REACTIONS
        | VIEW_CHANNEL
        | SEND_MESSAGES
        | EMBED_LINKS
        | ATTACH_FILES
        | READ_MESSAGE_HISTORY
        | USE_EXTERNAL_EMOJIS
        | CONNECT
        | SPEAK
        | CHANGE_NICKNAME
        | USE_APPLICATION_COMMANDS
        | CREATE_PUBLIC_THREADS
        | SEND_MESSAGES_IN_THREADS
    )
    #: What the bot's managed role gets by default.
    DEFAULT_BOT = (
        VIEW_CHANNEL
        | SEND_MESSAGES
        | EMBED_LINKS
        | ATTACH_FILES
        | READ_MESSAGE_HISTORY
        | ADD_REACTIONS
        | USE_EXTERNAL_EMOJIS
        | SEND_MESSAGES_IN_THREADS
    )


class HasValue(Protocol):
    @property
    def value(self) -> int: ...


PermissionsLike = int | HasValue


def perm_value(permissions: PermissionsLike) -> int:
    """Accept an int or anything with an int ``.value`` (e.g. ``discord.Permissions``)."""
    if isinstance(permissions, int):
        return permissions
    return int(permissions.value)


class ChannelType:
    GUILD_TEXT = 0
    DM = 1
    GUILD_VOICE = 2
    GROUP_DM = 3
    GUILD_CATEGORY = 4
    GUILD_ANNOUNCEMENT = 5
    ANNOUNCEMENT_THREAD = 10
    PUBLIC_THREAD = 11
    PRIVATE_THREAD = 12
    GUILD_STAGE_VOICE = 13
    GUILD_FORUM = 15


@dataclass
class FakeUser:
    id: int
    username: str
    global_name: str | None = None
    bot: bool = False
    dms_closed: bool = False

    def payload(self) -> JSON:
        data: JSON = {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "public_flags": 0,
            "flags": 0,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
            "primary_guild": None,
            "collectibles": None,
        }
        if self.bot:
            data["bot"] = True
        return data


@dataclass
class FakeRole:
    id: int
    guild_id: int
    name: str
    permissions: int
    position: int = 0
    managed: bool = False
    bot_id: int | None = None
    mentionable: bool = False

    def payload(self) -> JSON:
        data: JSON = {
            "id": str(self.id),
            "name": self.name,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": self.managed,
            "mentionable": self.mentionable,
            "flags": 0,
        }
        if self.bot_id is not None:
            data["tags"] = {"bot_id": str(self.bot_id)}
        return data


@dataclass
class Overwrite:
    """A channel permission overwrite; ``type`` 0 = role, 1 = member."""

    id: int
    type: int
    allow: int = 0
    deny: int = 0

    def payload(self) -> JSON:
        return {"id": str(self.id), "type": self.type, "allow": str(self.allow), "deny": str(self.deny)}


@dataclass
class FakeChannel:
    id: int
    type: int
    name: str | None
    guild_id: int | None = None
    position: int = 0
    parent_id: int | None = None
    topic: str | None = None
    nsfw: bool = False
    overwrites: list[Overwrite] = field(default_factory=list)
    recipient_id: int | None = None
    deleted: bool = False
    last_message_id: int | None = None

    @property
    def is_dm(self) -> bool:
        return self.type in (ChannelType.DM, ChannelType.GROUP_DM)

    def payload(self, *, recipients: Iterable[FakeUser] = (), with_guild_id: bool = True) -> JSON:
        data: JSON = {
            "id": str(self.id),
            "type": self.type,
            "last_message_id": None if self.last_message_id is None else str(self.last_message_id),
            "flags": 0,
        }
        if self.is_dm:
            data["recipients"] = [user.payload() for user in recipients]
            return data
        data.update(
            {
                "name": self.name,
                "position": self.position,
                "permission_overwrites": [ow.payload() for ow in self.overwrites],
                "parent_id": None if self.parent_id is None else str(self.parent_id),
                "nsfw": self.nsfw,
                "rate_limit_per_user": 0,
            }
        )
        if self.type in (ChannelType.GUILD_TEXT, ChannelType.GUILD_ANNOUNCEMENT, ChannelType.GUILD_FORUM):
            data["topic"] = self.topic
            data["default_auto_archive_duration"] = 1440
        if self.type in (ChannelType.GUILD_VOICE, ChannelType.GUILD_STAGE_VOICE):
            data["bitrate"] = 64000
            data["user_limit"] = 0
            data["rtc_region"] = None
        if with_guild_id and self.guild_id is not None:
            data["guild_id"] = str(self.guild_id)
        return data


@dataclass
class FakeMember:
    guild_id: int
    user_id: int
    roles: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: str = "2024-01-01T00:00:00+00:00"

    def payload(self, user: FakeUser | None, *, permissions: int | None = None) -> JSON:
        data: JSON = {
            "roles": [str(role) for role in self.roles],
            "nick": self.nick,
            "avatar": None,
            "banner": None,
            "joined_at": self.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
        }
        if user is not None:
            data["user"] = user.payload()
        if permissions is not None:
            data["permissions"] = str(permissions)
        return data


@dataclass
class FakeGuild:
    """A guild. ``everyone_role_id == id`` as on Discord; ``default_channel_id`` is #general."""

    id: int
    name: str
    owner_id: int
    bot_role_id: int
    roles: dict[int, FakeRole] = field(default_factory=dict)
    channel_ids: list[int] = field(default_factory=list)
    members: dict[int, FakeMember] = field(default_factory=dict)
    default_channel_id: int | None = None
    member_count: int | None = None
    locale: str = "en-US"
    removed: bool = False
    joined_at: str = "2024-01-01T00:00:00+00:00"

    @property
    def everyone_role_id(self) -> int:
        return self.id


def compute_permissions(guild: FakeGuild, user_id: int, channel: FakeChannel | None) -> int:
    """Discord's permission algorithm: base (roles) then channel overwrites (everyone, roles, member)."""
    if user_id == guild.owner_id:
        return Perm.ALL
    member = guild.members.get(user_id)
    role_ids = [] if member is None else member.roles
    everyone = guild.roles.get(guild.everyone_role_id)
    base = 0 if everyone is None else everyone.permissions
    for role_id in role_ids:
        role = guild.roles.get(role_id)
        if role is not None:
            base |= role.permissions
    if base & Perm.ADMINISTRATOR:
        return Perm.ALL
    if channel is None:
        return base
    perms = base
    by_id = {(ow.type, ow.id): ow for ow in channel.overwrites}
    ow = by_id.get((0, guild.everyone_role_id))
    if ow is not None:
        perms = (perms & ~ow.deny) | ow.allow
    allow = deny = 0
    for role_id in role_ids:
        ow = by_id.get((0, role_id))
        if ow is not None:
            allow |= ow.allow
            deny |= ow.deny
    perms = (perms & ~deny) | allow
    ow = by_id.get((1, user_id))
    if ow is not None:
        perms = (perms & ~ow.deny) | ow.allow
    return perms


@dataclass(frozen=True)
class UploadedFile:
    """A file the bot uploaded (a ``files[n]`` part of a multipart request), bytes included."""

    field: str
    filename: str
    content_type: str
    size: int
    data: bytes = dataclasses.field(default=b"", repr=False, compare=False)

    @property
    def text(self) -> str:
        return self.data.decode()


@dataclass(frozen=True)
class Pings:
    """Who a message actually notified, after ``allowed_mentions`` were applied."""

    users: tuple[int, ...] = ()
    roles: tuple[int, ...] = ()
    everyone: bool = False

    def __bool__(self) -> bool:
        return bool(self.users or self.roles or self.everyone)


_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")
_EVERYONE = re.compile(r"@(everyone|here)")


def compute_pings(content: str, allowed_mentions: Mapping[str, Any] | None) -> Pings:
    """Apply Discord's allowed_mentions rules to the mentions written in ``content``."""
    users = [int(m) for m in _USER_MENTION.findall(content)]
    roles = [int(m) for m in _ROLE_MENTION.findall(content)]
    everyone = bool(_EVERYONE.search(content))
    if allowed_mentions is None:
        return Pings(tuple(dict.fromkeys(users)), tuple(dict.fromkeys(roles)), everyone)
    parse = set(allowed_mentions.get("parse") or [])
    allowed_users = {int(u) for u in allowed_mentions.get("users") or []}
    allowed_roles = {int(r) for r in allowed_mentions.get("roles") or []}
    return Pings(
        tuple(dict.fromkeys(u for u in users if "users" in parse or u in allowed_users)),
        tuple(dict.fromkeys(r for r in roles if "roles" in parse or r in allowed_roles)),
        everyone and "everyone" in parse,
    )


@dataclass
class StoredMessage:
    """A message the fake holds. ``data`` is exactly what the REST API returns for it."""

    data: JSON
    allowed_mentions: JSON | None = None
    nonce: str | None = None
    enforce_nonce: bool = False
    created_at: float = 0.0
    ephemeral: bool = False
    interaction_id: int | None = None
    deleted: bool = False
    edits: list[JSON] = field(default_factory=list)
    files: list[UploadedFile] = field(default_factory=list)

    @property
    def id(self) -> int:
        return int(self.data["id"])

    @property
    def channel_id(self) -> int:
        return int(self.data["channel_id"])

    @property
    def author_id(self) -> int:
        return int(self.data["author"]["id"])

    @property
    def content(self) -> str:
        return str(self.data.get("content", ""))

    @property
    def embeds(self) -> list[JSON]:
        return list(self.data.get("embeds", []))

    @property
    def components(self) -> list[JSON]:
        return list(self.data.get("components", []))

    @property
    def flags(self) -> int:
        return int(self.data.get("flags", 0))

    @property
    def loading(self) -> bool:
        """A deferred interaction response that has not been filled in yet."""
        return bool(self.flags & MessageFlags.LOADING)

    @property
    def pings(self) -> Pings:
        return compute_pings(self.content, self.allowed_mentions)


class MessageFlags:
    CROSSPOSTED = 1 << 0
    SUPPRESS_EMBEDS = 1 << 2
    EPHEMERAL = 1 << 6
    LOADING = 1 << 7
    SUPPRESS_NOTIFICATIONS = 1 << 12
    IS_COMPONENTS_V2 = 1 << 15


class MessageType:
    DEFAULT = 0
    REPLY = 19
    CHAT_INPUT_COMMAND = 20


def iter_components(components: Iterable[Mapping[str, Any]]) -> Iterable[Mapping[str, Any]]:
    """Every component in a message's component tree (action rows, v2 containers, accessories)."""
    for component in components:
        yield component
        children = component.get("components")
        if isinstance(children, list):
            yield from iter_components(children)
        accessory = component.get("accessory")
        if isinstance(accessory, Mapping):
            yield from iter_components([accessory])


def embed_length(embed: Mapping[str, Any]) -> int:
    """Characters counted against the 6,000-per-message embed budget."""
    total = len(str(embed.get("title") or "")) + len(str(embed.get("description") or ""))
    for fld in embed.get("fields") or []:
        total += len(str(fld.get("name") or "")) + len(str(fld.get("value") or ""))
    footer = embed.get("footer") or {}
    author = embed.get("author") or {}
    total += len(str(footer.get("text") or "")) + len(str(author.get("name") or ""))
    return total
