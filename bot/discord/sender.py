"""Posting outbox messages to Discord with a nonce, no mentions, and clear failure kinds."""

from __future__ import annotations

import logging

import aiohttp
import discord
from discord.http import Route

from bot.db.models import TARGET_USER
from bot.services.delivery import (
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


def message_payload(message: OutgoingMessage, nonce: str) -> dict[str, object]:
    payload: dict[str, object] = {
        "embeds": message.embeds,
        "allowed_mentions": NO_MENTIONS,
        "nonce": nonce,
        "enforce_nonce": True,
    }
    if message.content:
        payload["content"] = message.content
    return payload


class DiscordSender(Sender):
    def __init__(self, client: discord.Client) -> None:
        self.client = client
        self._dm_channels: dict[int, int] = {}

    async def _channel_for(self, destination: Destination) -> int:
        if destination.kind != TARGET_USER:
            return destination.channel_id
        cached = self._dm_channels.get(destination.user_id)
        if cached is None:
            data = await self.client.http.start_private_message(destination.user_id)
            cached = int(data["id"])
            self._dm_channels[destination.user_id] = cached
        return cached

    async def send(self, destination: Destination, message: OutgoingMessage, nonce: str) -> int:
        try:
            channel_id = await self._channel_for(destination)
            data = await self.client.http.request(
                Route("POST", "/channels/{channel_id}/messages", channel_id=channel_id),
                json=message_payload(message, nonce),
            )
        except (discord.Forbidden, discord.NotFound) as exc:
            reason = GONE_CODES.get(exc.code)
            if reason is None:
                reason = (
                    "the channel is gone" if isinstance(exc, discord.NotFound) else "no permission to post"
                )
            if destination.kind == TARGET_USER and isinstance(exc, discord.Forbidden):
                reason = GONE_CODES[CANNOT_DM]
            raise TargetGone(reason) from None
        except discord.RateLimited as exc:
            raise SendError(f"rate limited for {exc.retry_after:.0f}s") from None
        except discord.HTTPException as exc:
            if exc.status == 400:
                raise MessageRejected(f"Discord refused the message: {exc.text[:200]}") from None
            raise SendError(f"Discord answered HTTP {exc.status}") from None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise SendError(f"network error: {type(exc).__name__}") from None
        return int(data["id"])

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
