"""The answer of `/paperwatch stats`: a chart of the channel's matches per week, attached."""

from __future__ import annotations

import io

import discord

from bot.discord.client import NO_MENTIONS, Services, reply
from bot.discord.commands._common import counted, target_channel

CHART_FILENAME = "paperwatch-stats.png"


async def answer_stats(services: Services, interaction: discord.Interaction, weeks: int) -> None:
    """The chart of this channel's matches per week, or a sentence when there are none yet."""
    channel_id = target_channel(interaction, None)
    stats = await services.stats.weekly(channel_id, weeks)
    period = "week" if weeks == 1 else f"{weeks} weeks"
    if stats.empty:
        if stats.watches == 0:
            text = "This channel has no watches yet, so nothing was matched. Add one with `/watch add`."
        else:
            text = (
                f"No papers matched in this channel in the last {period} "
                f"({counted(stats.watches, 'watch')} here). Try more `weeks`, or `/watch test` a query."
            )
        await reply(interaction, text)
        return
    # drawing takes a moment (the first chart of a process longer): say "thinking" meanwhile
    await interaction.response.defer(ephemeral=True, thinking=True)
    png = await services.stats.png(stats)
    await interaction.followup.send(
        f"Papers matched per week in this channel, the last {period}: "
        f"{counted(stats.papers, 'paper')} in all.",
        file=discord.File(io.BytesIO(png), filename=CHART_FILENAME),
        ephemeral=True,
        allowed_mentions=NO_MENTIONS,
    )
