"""/digest: a channel's digest schedule, and posting it now."""

from __future__ import annotations

import discord
from discord import app_commands

from bot.discord.client import Services, reply
from bot.discord.commands._common import caller, pace, when
from bot.domain.schedule import timezone_suggestions
from bot.services.access import UserError
from bot.services.digests import DigestInfo


async def timezone_autocomplete(
    interaction: discord.Interaction, current: str
) -> list[app_commands.Choice[str]]:
    return [app_commands.Choice(name=name, value=name) for name in timezone_suggestions(current)]


def describe_digest(info: DigestInfo, channel_id: int) -> str:
    lines = [f"Digest of <#{channel_id}>: {info.schedule.describe()}"]
    if info.paused:
        lines.append("⏸ The digest is paused (`/digest resume`).")
    if info.paused_reason:
        lines.append(f"⏸ Posting is paused: {info.paused_reason}.")
    lines.append(f"Next digest: {when(info.next_at) if not info.paused else 'paused'}")
    lines.append(f"{info.watches} watches, {info.pending} papers waiting")
    return "\n".join(lines)


class DigestCommands(app_commands.Group):
    def __init__(self, services: Services) -> None:
        super().__init__(name="digest", description="This channel's paper digest", guild_only=True)
        self.services = services

    def _manage(self, interaction: discord.Interaction) -> int:
        who = caller(interaction)
        if interaction.channel_id is None or not who.can_manage:
            raise UserError("You need the **Manage Channels** permission in this channel to do this.")
        pace(self.services, interaction)
        return interaction.channel_id

    @app_commands.command(name="set", description="Set when this channel's digest is posted")
    @app_commands.describe(
        time="Time of day, HH:MM (24-hour)",
        timezone="IANA timezone, e.g. Europe/Paris",
        days="Weekdays, e.g. mon-fri or mon,wed,fri (default: every day)",
    )
    @app_commands.autocomplete(timezone=timezone_autocomplete)
    async def set(
        self,
        interaction: discord.Interaction,
        time: app_commands.Range[str, 1, 10],
        timezone: app_commands.Range[str, 1, 64],
        days: app_commands.Range[str, 1, 60] | None = None,
    ) -> None:
        channel_id = self._manage(interaction)
        info = await self.services.digests.set_digest(
            caller(interaction), channel_id=channel_id, time=time, timezone=timezone, days=days
        )
        await reply(interaction, describe_digest(info, channel_id), ephemeral=False)

    @app_commands.command(name="show", description="Show this channel's digest schedule")
    async def show(self, interaction: discord.Interaction) -> None:
        if interaction.guild_id is None or interaction.channel_id is None:
            raise UserError("This command works in a server channel.")
        pace(self.services, interaction, lookup=True)
        info = await self.services.digests.show_digest(interaction.guild_id, interaction.channel_id)
        await reply(interaction, describe_digest(info, interaction.channel_id))

    @app_commands.command(name="now", description="Post the waiting papers in this channel now")
    async def now(self, interaction: discord.Interaction) -> None:
        channel_id = self._manage(interaction)
        target_id = await self.services.digests.channel_target_id(caller(interaction), channel_id)
        if target_id is None:
            raise UserError("This channel has no watches yet. Add one with `/watch add`.")
        await reply(interaction, "Posting the digest…")
        report = await self.services.deliverer.deliver_digest(target_id, scheduled=False)
        if report.paused:
            text = f"Could not post here: {report.errors[-1]}. The watches of this channel are paused."
        elif report.retry:
            text = "Discord did not accept the post right now; paperwatch will retry shortly."
        elif report.papers:
            text = f"Posted {report.papers} papers."
        else:
            text = "No papers are waiting for this channel."
        await interaction.edit_original_response(
            content=text, allowed_mentions=discord.AllowedMentions.none()
        )

    @app_commands.command(name="pause", description="Stop posting this channel's digest")
    async def pause(self, interaction: discord.Interaction) -> None:
        channel_id = self._manage(interaction)
        info = await self.services.digests.set_digest_paused(
            caller(interaction), channel_id=channel_id, paused=True
        )
        await reply(interaction, describe_digest(info, channel_id), ephemeral=False)

    @app_commands.command(name="resume", description="Post this channel's digest again")
    async def resume(self, interaction: discord.Interaction) -> None:
        channel_id = self._manage(interaction)
        info = await self.services.digests.set_digest_paused(
            caller(interaction), channel_id=channel_id, paused=False
        )
        await reply(interaction, describe_digest(info, channel_id), ephemeral=False)
