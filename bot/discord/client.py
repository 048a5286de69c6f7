"""The Discord client: smallest intents, command tree synced only when it changed."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import discord
from discord import app_commands

from bot.config import Settings
from bot.db.repo import BotStateRepository
from bot.discord.embeds import code_span
from bot.discord.observe import request_trace
from bot.services.access import UserError
from bot.services.alerts import AlertService
from bot.services.delivery import Deliverer
from bot.services.digests import DigestService
from bot.services.export import ExportService
from bot.services.feedback import FeedbackService
from bot.services.paper_actions import PaperActions
from bot.services.papers import PaperService
from bot.services.scheduling import Timetable
from bot.services.stats import StatsService
from bot.services.status import StatusService
from bot.services.transfer import TransferService
from bot.services.watches import WatchService

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()

# paperwatch never joins voice; skip discord.py's warnings about voice libraries.
discord.VoiceClient.warn_nacl = False
discord.VoiceClient.warn_dave = False


@dataclass(slots=True)
class Services:
    """What the commands call; built once in the runner and passed in."""

    settings: Settings
    watches: WatchService
    alerts: AlertService
    digests: DigestService
    papers: PaperService
    status: StatusService
    feedback: FeedbackService
    transfer: TransferService
    export: ExportService
    stats: StatsService
    deliverer: Deliverer
    cooldown: Cooldown
    """Pacing of the commands that change something, per user."""
    lookups: Cooldown = field(default_factory=lambda: Cooldown(0, 1_000_000))
    """Pacing of the read-only commands (search, test, lists, status), per user."""
    actions: PaperActions | None = None
    """What the components of paper messages do (pick, Save, 👍/👎, BibTeX, Next papers)."""
    clicks: Cooldown = field(default_factory=lambda: Cooldown(0, 1_000_000))
    """Pacing of clicks on paper components, per user."""


def intents() -> discord.Intents:
    """Guild and channel events only: no members, no presences, no message content."""
    chosen = discord.Intents.none()
    chosen.guilds = True
    return chosen


class PaperwatchClient(discord.Client):
    def __init__(self, settings: Settings, **sharding: Any) -> None:
        """`sharding`: `shard_count` and `shard_ids`, for the sharded client (bot/discord/shards.py)."""
        super().__init__(
            intents=intents(),
            member_cache_flags=discord.MemberCacheFlags.none(),
            chunk_guilds_at_startup=False,
            max_messages=None,
            allowed_mentions=NO_MENTIONS,
            guild_ready_timeout=settings.discord.guild_ready_timeout,
            http_trace=request_trace(settings.discord.api_base),
            **sharding,
        )
        self.settings = settings
        self.tree = app_commands.CommandTree(self)
        self.tree.on_error = self.on_command_error  # type: ignore[method-assign]
        self.services: Services | None = None
        self.timetable: Timetable | None = None
        self.synced = False

    def attach(self, services: Services, timetable: Timetable) -> None:
        from bot.discord.commands import add_commands

        self.services = services
        self.timetable = timetable
        add_commands(self.tree, services)

    @property
    def syncs_commands(self) -> bool:
        """Whether this process syncs the command tree (of several, the one holding shard 0)."""
        return True

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        if not initial:
            await asyncio.sleep(self.settings.discord.identify_delay)

    async def setup_hook(self) -> None:
        from bot.discord.components.items import paper_items

        assert self.services is not None and self.timetable is not None
        # old messages' components answer from the first event on: their custom ids carry all
        self.add_dynamic_items(*paper_items())
        if self.syncs_commands:
            await self.sync_commands()
        report = await self.services.deliverer.recover()
        if report.messages:
            log.info("re-sent %d unconfirmed messages after a restart", report.messages)
        self.timetable.start()

    async def sync_commands(self) -> bool:
        """Sync the command tree, but only when it differs from the last synced one."""
        assert self.services is not None
        guild_id = self.settings.discord.dev_guild_id
        guild = discord.Object(id=guild_id) if guild_id else None
        if guild is not None:
            self.tree.copy_global_to(guild=guild)
        payload = [command.to_dict(self.tree) for command in self.tree.get_commands(guild=guild)]
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
        key = f"commands:{guild_id or 'global'}:{self.application_id}"
        sessions = self.services.watches.sessions
        async with sessions() as session:
            stored = await BotStateRepository(session).get(key)
        if stored == digest:
            log.info("command tree unchanged; not syncing")
            return False
        await self.tree.sync(guild=guild)
        async with sessions.begin() as session:
            await BotStateRepository(session).set(key, digest)
        self.synced = True
        log.info("synced %d commands %s", len(payload), f"to guild {guild_id}" if guild_id else "globally")
        return True

    async def on_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        original = getattr(error, "original", error)
        if isinstance(original, UserError):
            await reply(interaction, str(original))
            return
        if isinstance(error, app_commands.TransformerError):
            await reply(interaction, f"That value, {code_span(str(error.value), 50)}, cannot be used here.")
            return
        if isinstance(error, app_commands.CheckFailure):
            await reply(interaction, "You cannot use this command here.")
            return
        error_id = uuid.uuid4().hex[:8]
        log.error("command failed (error id %s)", error_id, exc_info=original)
        await reply(
            interaction, f"Something went wrong on our side (error id `{error_id}`). It has been logged."
        )

    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        log.info("a channel was deleted; its watches pause at the next post attempt")


async def reply(interaction: discord.Interaction, text: str, *, ephemeral: bool = True) -> None:
    """Answer an interaction (or follow up if it was already answered), never pinging anyone."""
    text = text if len(text) <= 2000 else text[:1999] + "…"
    try:
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=ephemeral, allowed_mentions=NO_MENTIONS)
        else:
            await interaction.response.send_message(text, ephemeral=ephemeral, allowed_mentions=NO_MENTIONS)
    except discord.HTTPException:
        log.warning("could not answer an interaction")


class Cooldown:
    """Per-user pacing of commands that change something: a minimum gap and a per-minute cap."""

    def __init__(self, seconds: float, per_minute: int) -> None:
        self.seconds = seconds
        self.per_minute = per_minute
        self._recent: dict[int, list[float]] = {}

    def check(self, user_id: int, now: float) -> float:
        """0 if the user may go ahead (and records it), else the seconds left to wait."""
        times = [t for t in self._recent.get(user_id, []) if now - t < 60]
        if times and now - times[-1] < self.seconds:
            return self.seconds - (now - times[-1])
        if len(times) >= self.per_minute:
            return 60 - (now - times[0])
        times.append(now)
        self._recent[user_id] = times
        if len(self._recent) > 10_000:
            self._recent = {u: ts for u, ts in self._recent.items() if ts and now - ts[-1] < 60}
        return 0.0
