"""/paper and /paperwatch: looking things up."""

from __future__ import annotations

import discord
from discord import app_commands

from bot.discord.client import Services, reply
from bot.discord.commands._common import pace, paper_line, papers_block, when
from bot.discord.embeds import paper_embed
from bot.domain.digest import DigestEntry


class PaperCommands(app_commands.Group):
    def __init__(self, services: Services) -> None:
        super().__init__(name="paper", description="Look up papers paperwatch has seen")
        self.services = services

    @app_commands.command(name="search", description="Search stored papers with a query (only you see it)")
    @app_commands.describe(query='A query, e.g. author:"yann lecun" OR title:diffusion')
    async def search(self, interaction: discord.Interaction, query: app_commands.Range[str, 1, 1000]) -> None:
        pace(self.services, interaction, lookup=True)
        found = await self.services.papers.search(query)
        bound = f"\n-# {found.bound}" if found.bound else ""
        if not found.papers:
            await reply(interaction, "No stored paper matches that query." + bound)
            return
        await reply(
            interaction, f"{found.total} papers match:\n" + papers_block(found.papers, found.total) + bound
        )

    @app_commands.command(name="show", description="Show one paper (only you see it)")
    @app_commands.describe(id="An arXiv id, e.g. 2403.01234")
    async def show(self, interaction: discord.Interaction, id: app_commands.Range[str, 1, 100]) -> None:
        pace(self.services, interaction, lookup=True)
        paper = await self.services.papers.get(id)
        embed = discord.Embed.from_dict(paper_embed(DigestEntry(paper=paper)))
        await interaction.response.send_message(
            paper_line(paper), embed=embed, ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
        )


class StatusCommands(app_commands.Group):
    def __init__(self, services: Services) -> None:
        super().__init__(name="paperwatch", description="About paperwatch")
        self.services = services

    @app_commands.command(name="status", description="Last poll, papers today, watches, next digest")
    async def status(self, interaction: discord.Interaction) -> None:
        pace(self.services, interaction, lookup=True)
        status = await self.services.status.status(interaction.guild_id, interaction.channel_id)
        lines = ["**paperwatch status**"]
        if not status.feeds:
            lines.append("Feeds: not polled yet")
        for feed in status.feeds:
            line = f"• `{feed.key}`: last poll {when(feed.last_poll_at)}"
            if feed.last_error:
                line += f" — last error {when(feed.last_error_at)}: {feed.last_error[:300]}"
            elif feed.last_success_at:
                line += " — ok"
            lines.append(line)
        lines.append(f"Papers today: {status.papers_today} (stored: {status.papers_total})")
        if interaction.guild_id is not None:
            lines.append(f"Watches in this server: {status.watches_here}")
        lines.append(f"Next digest: {when(status.next_digest_at)}")
        await reply(interaction, "\n".join(lines))
