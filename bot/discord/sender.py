"""Posting outbox messages to Discord with a nonce, no mentions, and clear failure kinds;
reading the bot's own posts back from a channel's or DM's history."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Iterator
from datetime import datetime
from typing import Any

import aiohttp
import discord
from discord.http import Route

from bot.db.models import TARGET_USER
from bot.discord.permissions import RestPermissions
from bot.services.outbox import (
    Destination,
    MessageRejected,
    OutgoingMessage,
    Sender,
    SendError,
    TargetGone,
)

log = logging.getLogger(__name__)

NO_MENTIONS: dict[str, list[str]] = {"parse": []}
CANNOT_DM = 50007
GONE_CODES = {
    10003: "the channel was deleted",
    50001: "the bot cannot see the channel",
    50013: "the bot lost permission to post there",
    CANNOT_DM: "their DMs are closed",
}
NO_HISTORY = "the bot may not read the channel's message history"
HISTORY_PAGE = 100
"""Messages per history request (Discord's largest page)."""
DEFAULT_MESSAGE = 0
"""The message type of a plain post; replies to slash commands have other types."""


def message_payload(message: OutgoingMessage, nonce: str) -> dict[str, object]:
    payload: dict[str, object] = {
        "embeds": message.embeds,
        "allowed_mentions": NO_MENTIONS,
        "nonce": nonce,
        "enforce_nonce": True,
    }
    if message.content:
        payload["content"] = message.content
    if message.components:
        payload["components"] = message.components
    return payload


class DiscordSender(Sender):
    def __init__(self, client: discord.Client, pace: Callable[[], Awaitable[None]] | None = None) -> None:
        self.client = client
        self.pace = pace
        """Awaited before every request: the process's share of the REST budget (bot/services/fanout.py)."""
        self._dm_channels: dict[int, int] = {}
        self._rest_permissions = RestPermissions(client.http, self._paced)

    async def _paced(self) -> None:
        if self.pace is not None:
            await self.pace()

    async def _channel_for(self, destination: Destination) -> int:
        if destination.kind != TARGET_USER:
            return destination.channel_id
        cached = self._dm_channels.get(destination.user_id)
        if cached is None:
            await self._paced()
            data = await self.client.http.start_private_message(destination.user_id)
            cached = int(data["id"])
            self._dm_channels[destination.user_id] = cached
        return cached

    async def send(self, destination: Destination, message: OutgoingMessage, nonce: str) -> int:
        with _failures(destination, reading=False):
            channel_id = await self._channel_for(destination)
            await self._paced()
            data = await self.client.http.request(
                Route("POST", "/channels/{channel_id}/messages", channel_id=channel_id),
                json=message_payload(message, nonce),
            )
        return int(data["id"])

    async def sent_since(
        self, destination: Destination, since: datetime, looking_for: Collection[str]
    ) -> dict[int, frozenset[str]]:
        """The bot's own plain posts after `since`, read oldest page first (`after`, 100 at a time)."""
        me = self.client.user
        if me is None:
            raise SendError("not logged in to Discord yet")
        wanted = set(looking_for)
        found: dict[int, frozenset[str]] = {}
        with _failures(destination, reading=True):
            channel_id = await self._channel_for(destination)
            if destination.kind != TARGET_USER:
                await self._check_history_permission(channel_id)
            after = discord.utils.time_snowflake(since)
            while True:
                await self._paced()
                page: list[Any] = await self.client.http.logs_from(channel_id, HISTORY_PAGE, after=after)
                for data in page:
                    if _is_own_post(data, me.id):
                        urls = frozenset(str(e["url"]) for e in data.get("embeds") or [] if e.get("url"))
                        found[int(data["id"])] = urls
                        wanted -= urls
                if len(page) < HISTORY_PAGE or not wanted:
                    return found
                after = max(int(data["id"]) for data in page)

    async def _check_history_permission(self, channel_id: int) -> None:
        """Discord answers an empty history, not an error, when Read Message History is missing:
        an empty answer is trusted only when the bot may read the history."""
        if not self.client.is_ready():
            raise SendError("the bot's permissions are not known before the gateway is ready")
        channel = self.client.get_channel(channel_id)
        if isinstance(channel, discord.abc.PrivateChannel):
            return
        if isinstance(channel, discord.abc.GuildChannel | discord.Thread) and channel.guild.me is not None:
            permissions = channel.permissions_for(channel.guild.me)
        elif self.client.user is not None:
            # a guild of a shard this process does not connect has no cache here: ask over REST
            permissions = await self._rest_permissions.in_channel(channel_id, self.client.user.id)
        else:
            raise SendError("the bot's permissions in the channel are not known yet")
        if not permissions.read_message_history:
            raise TargetGone(NO_HISTORY)

    async def notify_paused(self, destination: Destination, reason: str) -> bool:
        """Tell the guild once, in its system channel when the bot can post there."""
        guild = self.client.get_guild(destination.guild_id) if destination.guild_id else None
        if guild is None:
            return False
        channel = guild.system_channel
        if channel is None or channel.id == destination.channel_id:
            return False
        me = guild.me
        if me is not None and not channel.permissions_for(me).send_messages:
            return False
        text = (
            f"paperwatch paused the watches of <#{destination.channel_id}>: {reason}. "
            "Fix the channel's permissions, then `/watch resume` a watch there to start again; "
            "nothing matched meanwhile is lost."
        )
        try:
            await self.client.http.request(
                Route("POST", "/channels/{channel_id}/messages", channel_id=channel.id),
                json={"content": text, "allowed_mentions": NO_MENTIONS},
            )
        except discord.HTTPException:
            return False
        return True


def _is_own_post(data: Any, bot_id: int) -> bool:
    """A message the outbox posted: by the bot, a plain message, not an answer to a command."""
    author = data.get("author") or {}
    return (
        str(author.get("id")) == str(bot_id)
        and data.get("type", DEFAULT_MESSAGE) == DEFAULT_MESSAGE
        and not data.get("webhook_id")
        and not data.get("interaction_metadata")
        and not data.get("interaction")
    )


@contextlib.contextmanager
def _failures(destination: Destination, *, reading: bool) -> Iterator[None]:
    """Discord's answers as the outbox's failure kinds: the target refuses, or try again later."""
    try:
        yield
    except (discord.Forbidden, discord.NotFound) as exc:
        reason = GONE_CODES.get(exc.code)
        if reason is None:
            if isinstance(exc, discord.NotFound):
                reason = "the channel is gone"
            else:
                reason = NO_HISTORY if reading else "no permission to post"
        if destination.kind == TARGET_USER and isinstance(exc, discord.Forbidden) and not reading:
            reason = GONE_CODES[CANNOT_DM]
        raise TargetGone(reason) from None
    except discord.RateLimited as exc:
        raise SendError(f"rate limited for {exc.retry_after:.0f}s") from None
    except discord.HTTPException as exc:
        if exc.status == 400 and not reading:
            raise MessageRejected(f"Discord refused the message: {exc.text[:200]}") from None
        raise SendError(f"Discord answered HTTP {exc.status}") from None
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise SendError(f"network error: {type(exc).__name__}") from None
