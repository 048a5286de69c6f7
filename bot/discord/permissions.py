"""The bot's permissions in a channel of a guild this process has no gateway cache for.

Each process connects only some shards, so the guilds of the others are not in its cache;
yet it may have to read such a channel's history (finishing another process's claims). The
permissions then come from three REST reads (the guild's roles and owner, the bot's member
roles, the channel's overwrites, a thread's taken from its parent) and Discord's algorithm:
the owner and Administrator get everything; otherwise @everyone's permissions or'ed with the
member's roles, then the channel's overwrites for @everyone, for the member's roles together,
and for the member; without View Channel nothing of the channel remains.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import discord

THREAD_TYPES = frozenset({10, 11, 12})
"""Announcement, public and private threads: their overwrites are their parent channel's."""
ROLE_OVERWRITE = 0
MEMBER_OVERWRITE = 1
CACHE_SECONDS = 60.0
"""How long the permissions read over REST are reused: the reads cost three requests."""

Payload = Mapping[str, Any]


def _by_key(overwrites: Iterable[Payload]) -> dict[tuple[int, int], tuple[int, int]]:
    """(type, id) → (allow, deny) of a channel's permission overwrites."""
    found: dict[tuple[int, int], tuple[int, int]] = {}
    for ow in overwrites:
        found[(int(ow.get("type", ROLE_OVERWRITE)), int(ow["id"]))] = (int(ow["allow"]), int(ow["deny"]))
    return found


def channel_permissions(
    *,
    guild_id: int,
    owner_id: int,
    roles: Mapping[int, int],
    member_id: int,
    member_roles: Iterable[int],
    overwrites: Iterable[Payload],
) -> discord.Permissions:
    """Discord's permission algorithm for one member in one channel.

    `roles` maps every role id of the guild (@everyone's id is the guild's) to its permission
    bits; `overwrites` are the channel's `permission_overwrites` as the API gives them.
    """
    if member_id == owner_id:
        return discord.Permissions.all()
    own_roles = [role for role in member_roles if role != guild_id]
    base = discord.Permissions(roles.get(guild_id, 0))
    for role in own_roles:
        base.value |= roles.get(role, 0)
    if base.administrator:
        return discord.Permissions.all()
    by_key = _by_key(overwrites)
    everyone = by_key.get((ROLE_OVERWRITE, guild_id))
    if everyone is not None:
        base.handle_overwrite(allow=everyone[0], deny=everyone[1])
    allow = deny = 0
    for role in own_roles:
        found = by_key.get((ROLE_OVERWRITE, role))
        if found is not None:
            allow |= found[0]
            deny |= found[1]
    base.handle_overwrite(allow=allow, deny=deny)
    mine = by_key.get((MEMBER_OVERWRITE, member_id))
    if mine is not None:
        base.handle_overwrite(allow=mine[0], deny=mine[1])
    if not base.view_channel:
        base.value &= ~discord.Permissions.all_channel().value
    return base


def permissions_from_payloads(
    guild: Payload, member: Payload, channel: Payload, member_id: int
) -> discord.Permissions:
    """The algorithm applied to the REST answers for the guild, the member and the channel
    (for a thread: its parent channel)."""
    guild_id = int(guild["id"])
    return channel_permissions(
        guild_id=guild_id,
        owner_id=int(guild.get("owner_id") or 0),
        roles={int(role["id"]): int(role.get("permissions") or 0) for role in guild.get("roles") or []},
        member_id=member_id,
        member_roles=[int(role) for role in member.get("roles") or []],
        overwrites=channel.get("permission_overwrites") or [],
    )


class RestPermissions:
    """The bot's permissions in channels outside this process's cache, read over REST and
    reused for `ttl` seconds. Discord's errors (403, 404) propagate to the caller."""

    def __init__(
        self,
        http: discord.http.HTTPClient,
        pace: Callable[[], Awaitable[None]] | None = None,
        *,
        ttl: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.http = http
        self.pace = pace
        self.ttl = ttl
        self.clock = clock
        self._known: dict[tuple[int, int], tuple[float, discord.Permissions]] = {}

    async def _get(self, read: Callable[[], Awaitable[Any]]) -> Any:
        if self.pace is not None:
            await self.pace()
        return await read()

    async def in_channel(self, channel_id: int, member_id: int) -> discord.Permissions:
        now = self.clock()
        known = self._known.get((channel_id, member_id))
        if known is not None and now - known[0] < self.ttl:
            return known[1]
        channel: Payload = await self._get(lambda: self.http.get_channel(channel_id))
        if int(channel.get("type", 0)) in THREAD_TYPES and channel.get("parent_id"):
            parent_id = int(channel["parent_id"])
            channel = await self._get(lambda: self.http.get_channel(parent_id))
        guild_id = int(channel["guild_id"])
        guild: Payload = await self._get(lambda: self.http.get_guild(guild_id, with_counts=False))
        member: Payload = await self._get(lambda: self.http.get_member(guild_id, member_id))
        permissions = permissions_from_payloads(guild, member, channel, member_id)
        self._known = {key: kp for key, kp in self._known.items() if now - kp[0] < self.ttl}
        self._known[(channel_id, member_id)] = (now, permissions)
        return permissions
