"""/watch export and /watch import: a channel's watches as a TOML file, and back."""

from __future__ import annotations

import io
from typing import Any

import discord
from discord import app_commands

from bot.discord.client import NO_MENTIONS, Services, reply
from bot.discord.commands._common import caller, pace, target_channel
from bot.discord.embeds import code_span
from bot.services.access import UserError
from bot.services.transfer import MAX_IMPORT_BYTES, ImportedWatches, ImportProblem, ImportRefused

SHOWN_PROBLEMS = 15
SHOWN_WATCHES = 20


def watches(count: int) -> str:
    """ "1 watch", "3 watches"."""
    return f"{count} watch" + ("" if count == 1 else "es")


def problem_line(problem: ImportProblem) -> str:
    where = f"line {problem.line}" if problem.line is not None else "the file"
    quoted = f" ({code_span(problem.query, 60)})" if problem.query else ""
    return f"• {where}{quoted}: {problem.reason}"


def refusal_text(filename: str, problems: list[ImportProblem]) -> str:
    lines = [f"Nothing was imported from {code_span(filename, 80)}; fix this and attach it again:"]
    lines += [problem_line(p) for p in problems[:SHOWN_PROBLEMS]]
    if len(problems) > SHOWN_PROBLEMS:
        lines.append(f"…and {len(problems) - SHOWN_PROBLEMS} more.")
    return "\n".join(lines)


def imported_text(result: ImportedWatches) -> str:
    lines = [f"Imported {watches(len(result.watches))} into <#{result.channel_id}>:"]
    for view in result.watches[:SHOWN_WATCHES]:
        extra = "" if view.min_upvotes is None else f" · ▲ ≥ {view.min_upvotes}"
        paused = " · ⏸ paused" if view.paused else ""
        lines.append(f"• **#{view.id}** {code_span(view.query, 100)} · {view.mode}{extra}{paused}")
    if len(result.watches) > SHOWN_WATCHES:
        lines.append(f"…and {len(result.watches) - SHOWN_WATCHES} more; `/watch list` shows them all.")
    if result.schedule is not None:
        lines.append(f"Digest schedule: {result.schedule.describe()}.")
    return "\n".join(lines)


def channel_name(interaction: discord.Interaction, channel_id: int) -> str:
    found = interaction.guild.get_channel_or_thread(channel_id) if interaction.guild else None
    return found.name if found is not None else str(channel_id)


def transfer_commands(services: Services) -> list[app_commands.Command[Any, ..., Any]]:
    """The two sub-commands, for the /watch group to add."""

    @app_commands.command(name="export", description="Download this channel's watches as a TOML file")
    @app_commands.describe(channel="The channel whose watches to export (default: this one)")
    async def export(interaction: discord.Interaction, channel: discord.TextChannel | None = None) -> None:
        channel_id = target_channel(interaction, channel)
        pace(services, interaction, lookup=True)
        exported = await services.transfer.export_channel(
            interaction.guild_id or 0, channel_id, channel_name(interaction, channel_id)
        )
        await interaction.response.send_message(
            f"{watches(exported.count)} of <#{channel_id}>, with its digest schedule. "
            "Attach this file to `/watch import` in any channel to copy them there.",
            file=discord.File(io.BytesIO(exported.text.encode()), exported.filename),
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )

    @app_commands.command(name="import", description="Add the watches of a file made by /watch export")
    @app_commands.describe(
        file="A .toml file made by /watch export", channel="The channel to add them to (default: this one)"
    )
    async def import_(
        interaction: discord.Interaction, file: discord.Attachment, channel: discord.TextChannel | None = None
    ) -> None:
        channel_id = target_channel(interaction, channel)
        who = caller(interaction, channel_id)
        if not who.can_manage:
            raise UserError("You need the **Manage Channels** permission in that channel to import watches.")
        pace(services, interaction)
        if file.size > MAX_IMPORT_BYTES:
            raise UserError(
                f"That file is {file.size:,} bytes; `/watch import` reads files up to {MAX_IMPORT_BYTES:,}."
            )
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            data = await file.read()
        except discord.HTTPException:
            raise UserError("Discord did not hand over the file; attach it again.") from None
        try:
            result = await services.transfer.import_channel(who, channel_id, data)
        except ImportRefused as refused:
            await reply(interaction, refusal_text(file.filename, refused.problems))
            return
        await reply(interaction, imported_text(result))

    return [export, import_]
