"""What every command needs: who is calling, may they change this channel, how to answer."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

import discord

from bot.discord.client import Services
from bot.discord.embeds import code_span, escape_text
from bot.domain.paper import Paper
from bot.services.access import Caller, UserError
from bot.services.papers import PREVIEW_DAYS


def manages(interaction: discord.Interaction, channel_id: int) -> bool:
    """Manage Channels in `channel_id`, computed from what Discord sent, never from defaults."""
    if interaction.guild is None:
        return False
    if channel_id == interaction.channel_id:
        return interaction.permissions.manage_channels
    channel = interaction.guild.get_channel_or_thread(channel_id)
    member = interaction.user
    if channel is None or not isinstance(member, discord.Member):
        return False
    return channel.permissions_for(member).manage_channels


def caller(interaction: discord.Interaction, channel_id: int | None = None) -> Caller:
    target = channel_id if channel_id is not None else interaction.channel_id
    return Caller(
        user_id=interaction.user.id,
        guild_id=interaction.guild_id,
        channel_id=interaction.channel_id,
        can_manage=target is not None and manages(interaction, target),
    )


def target_channel(interaction: discord.Interaction, channel: discord.abc.GuildChannel | None) -> int:
    """The channel a command is about: the option if given (and in this guild), else this one."""
    if interaction.guild is None:
        raise UserError("This command works in a server channel.")
    if channel is None:
        if interaction.channel_id is None:
            raise UserError("This command works in a server channel.")
        return interaction.channel_id
    known = interaction.guild.get_channel_or_thread(channel.id)
    if known is None or getattr(channel, "guild_id", interaction.guild_id) != interaction.guild_id:
        raise UserError("That channel is not in this server.")
    if not isinstance(known, discord.TextChannel | discord.Thread | discord.VoiceChannel):
        raise UserError("Papers can be posted to text channels and threads only.")
    return channel.id


def pace(services: Services, interaction: discord.Interaction, *, lookup: bool = False) -> None:
    """Refuse a user's command that comes too soon after their last ones.

    Commands that change something share one bucket; read-only ones (`lookup`: searches,
    previews, lists, status) have their own, more lenient one, so reading never blocks a change.
    """
    bucket = services.lookups if lookup else services.cooldown
    wait = bucket.check(interaction.user.id, time.monotonic())
    if wait > 0:
        name = interaction.command.qualified_name if interaction.command else "this command"
        raise UserError(slow_down(name, wait))


def slow_down(command: str, wait: float) -> str:
    """The refusal of a paced command: whole seconds, rounded up, never "0 s"."""
    seconds = max(1, math.ceil(wait))
    return f"Slow down a little: you can use `/{command}` again in {seconds} s."


def counted(count: int, noun: str) -> str:
    """ "no paper", "1 paper", "3 papers"."""
    if count == 0:
        return f"no {noun}"
    return f"{count} {noun}" + ("" if count == 1 else "s")


def added_sentence(what: str, query: str, where: str, recent: int) -> str:
    """The one sentence that confirms a new watch or alert and says what it would have matched.

    "Watch #3 `diffusion` added to #papers for its digest (next in 5 hours); in the last 7 days
    it would have matched 2 papers:"
    """
    matched = counted(recent, "paper")
    return (
        f"{what} {code_span(query)} added {where}; "
        f"in the last {PREVIEW_DAYS} days it would have matched {matched}" + (":" if recent else ".")
    )


def paper_line(paper: Paper) -> str:
    title = escape_text(paper.title)
    if len(title) > 150:
        title = title[:149] + "…"
    return f"[{title}](<{paper.url}>) · ▲ {paper.upvotes}"


def upvote_floor(min_upvotes: int | None) -> str:
    return "" if min_upvotes is None else f", papers with at least {min_upvotes} upvotes only"


def when(moment: datetime | None) -> str:
    if moment is None:
        return "not scheduled"
    stamp = int(moment.astimezone(UTC).timestamp())
    return f"<t:{stamp}:f> (<t:{stamp}:R>)"


def papers_block(papers: list[Paper], total: int, limit: int = 10) -> str:
    lines = [f"• {paper_line(p)}" for p in papers[:limit]]
    if total > limit:
        lines.append(f"…and {total - limit} more.")
    return "\n".join(lines)
