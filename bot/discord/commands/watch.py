"""/watch: a channel's watches."""

from __future__ import annotations

import discord
from discord import app_commands

from bot.discord.client import Services, reply
from bot.discord.commands._common import (
    added_sentence,
    caller,
    counted,
    pace,
    papers_block,
    target_channel,
    upvote_floor,
)
from bot.discord.commands.transfer import transfer_commands
from bot.discord.embeds import code_span
from bot.services.access import UserError
from bot.services.subscriptions import WatchView

MODE_CHOICES = [
    app_commands.Choice(name="digest (in the channel's scheduled digest)", value="digest"),
    app_commands.Choice(name="instant (posted as soon as it appears)", value="instant"),
]
PAGE_SIZE = 10


def describe_watch(view: WatchView) -> str:
    parts = [f"**#{view.id}** {code_span(view.query)}", view.mode]
    if view.min_upvotes is not None:
        parts.append(f"▲ ≥ {view.min_upvotes}")
    parts.append(f"{view.match_count} matched")
    if view.paused:
        parts.append("⏸ paused" + (f" ({view.paused_reason})" if view.paused_reason else ""))
    return " · ".join(parts) + (f" · <#{view.channel_id}>" if view.channel_id else "")


class WatchListView(discord.ui.View):
    """Prev/next buttons over a watch list; only the person who asked can turn the pages."""

    def __init__(self, owner_id: int, title: str, lines: list[str]) -> None:
        super().__init__(timeout=600)
        self.owner_id = owner_id
        self.title = title
        self.lines = lines
        self.page = 0
        self.pages = max(1, -(-len(lines) // PAGE_SIZE))
        self._sync_buttons()

    def render(self) -> str:
        chunk = self.lines[self.page * PAGE_SIZE : (self.page + 1) * PAGE_SIZE]
        footer = f"\nPage {self.page + 1}/{self.pages}" if self.pages > 1 else ""
        return f"{self.title}\n" + "\n".join(chunk) + footer

    def _sync_buttons(self) -> None:
        self.previous.disabled = self.page == 0
        self.next.disabled = self.page >= self.pages - 1

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id != self.owner_id:
            await reply(interaction, "Run `/watch list` yourself to page through the list.")
            return False
        return True

    @discord.ui.button(label="◀ Previous", style=discord.ButtonStyle.secondary, custom_id="pw:watchlist:prev")
    async def previous(
        self, interaction: discord.Interaction, button: discord.ui.Button[WatchListView]
    ) -> None:
        self.page = max(0, self.page - 1)
        self._sync_buttons()
        await interaction.response.edit_message(content=self.render(), view=self)

    @discord.ui.button(label="Next ▶", style=discord.ButtonStyle.secondary, custom_id="pw:watchlist:next")
    async def next(self, interaction: discord.Interaction, button: discord.ui.Button[WatchListView]) -> None:
        self.page = min(self.pages - 1, self.page + 1)
        self._sync_buttons()
        await interaction.response.edit_message(content=self.render(), view=self)


class WatchCommands(app_commands.Group):
    def __init__(self, services: Services) -> None:
        super().__init__(name="watch", description="Watch the paper feeds for a channel", guild_only=True)
        self.services = services
        for command in transfer_commands(services):
            self.add_command(command)

    async def _watch_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[int]]:
        if interaction.guild_id is None:
            return []
        choices = await self.services.watches.watch_choices(
            interaction.guild_id, interaction.channel_id, current
        )
        return [app_commands.Choice(name=label, value=watch_id) for watch_id, label in choices]

    @app_commands.command(name="add", description="Add a watch: matching papers are posted in this channel")
    @app_commands.describe(
        query='What to look for, e.g. "knowledge distillation" OR distill*',
        mode="digest (default) or instant",
        min_upvotes="Only papers with at least this many Hugging Face upvotes",
        channel="Channel to post in (default: this one)",
    )
    @app_commands.choices(mode=MODE_CHOICES)
    async def add(
        self,
        interaction: discord.Interaction,
        query: app_commands.Range[str, 1, 1000],
        mode: app_commands.Choice[str] | None = None,
        min_upvotes: app_commands.Range[int, 0, 1_000_000] | None = None,
        channel: discord.TextChannel | None = None,
    ) -> None:
        channel_id = target_channel(interaction, channel)
        who = caller(interaction, channel_id)
        if not who.can_manage:
            raise UserError("You need the **Manage Channels** permission in that channel to add a watch.")
        pace(self.services, interaction)
        added = await self.services.watches.add_watch(
            who,
            channel_id=channel_id,
            query=query,
            mode=mode.value if mode else None,
            min_upvotes=min_upvotes,
        )
        info = await self.services.digests.show_digest(who.guild_id or 0, channel_id)
        view = added.watch
        if view.mode == "digest":
            if info.paused or info.next_at is None:
                timing = " for its digest (paused)"
            else:
                timing = f" for its digest (next <t:{int(info.next_at.timestamp())}:R>)"
        else:
            timing = ", posting papers as soon as they appear"
        where = f"to <#{channel_id}>{timing}{upvote_floor(view.min_upvotes)}"
        text = added_sentence(f"Watch #{view.id}", view.query, where, len(added.recent))
        if added.recent:
            text += "\n" + papers_block(added.recent, len(added.recent), limit=5)
        await reply(interaction, text, ephemeral=False)

    @app_commands.command(name="list", description="List the watches of this server or of one channel")
    @app_commands.describe(channel="Only this channel's watches")
    async def list(
        self, interaction: discord.Interaction, channel: discord.TextChannel | None = None
    ) -> None:
        if interaction.guild_id is None:
            raise UserError("This command works in a server.")
        channel_id = target_channel(interaction, channel) if channel is not None else None
        pace(self.services, interaction, lookup=True)
        views = await self.services.watches.list_watches(interaction.guild_id, channel_id)
        where = f"<#{channel_id}>" if channel_id else "this server"
        if not views:
            await reply(
                interaction, f"No watches in {where} yet. Add one with `/watch add`.", ephemeral=False
            )
            return
        lister = WatchListView(
            interaction.user.id, f"**{len(views)} watches in {where}**", [describe_watch(v) for v in views]
        )
        await interaction.response.send_message(
            lister.render(),
            view=lister if lister.pages > 1 else discord.utils.MISSING,
            allowed_mentions=discord.AllowedMentions.none(),
        )

    async def _change(self, interaction: discord.Interaction, watch: int, action: str) -> WatchView:
        service = self.services.watches
        base = caller(interaction)
        channel_id = await service.watch_channel(base, watch)
        who = caller(interaction, channel_id)
        if not who.can_manage:
            raise UserError(f"You need the **Manage Channels** permission in <#{channel_id}> to {action} it.")
        pace(self.services, interaction)
        if action == "remove":
            return await service.remove_watch(who, watch)
        return await service.set_watch_paused(who, watch, action == "pause")

    @app_commands.command(name="remove", description="Remove a watch")
    @app_commands.describe(watch="The watch id shown by /watch list")
    async def remove(self, interaction: discord.Interaction, watch: int) -> None:
        view = await self._change(interaction, watch, "remove")
        await reply(interaction, f"Removed watch #{view.id} {code_span(view.query)}.", ephemeral=False)

    @app_commands.command(name="pause", description="Pause a watch; it matches nothing until resumed")
    @app_commands.describe(watch="The watch id shown by /watch list")
    async def pause(self, interaction: discord.Interaction, watch: int) -> None:
        view = await self._change(interaction, watch, "pause")
        await reply(interaction, f"Paused watch #{view.id}.", ephemeral=False)

    @app_commands.command(name="resume", description="Resume a paused watch")
    @app_commands.describe(watch="The watch id shown by /watch list")
    async def resume(self, interaction: discord.Interaction, watch: int) -> None:
        view = await self._change(interaction, watch, "resume")
        await reply(interaction, f"Resumed watch #{view.id}.", ephemeral=False)

    remove.autocomplete("watch")(_watch_autocomplete)
    pause.autocomplete("watch")(_watch_autocomplete)
    resume.autocomplete("watch")(_watch_autocomplete)

    @app_commands.command(
        name="test", description="Try a query against the papers seen recently (only you see it)"
    )
    @app_commands.describe(query="A query to try", days="How many days back (default 7)")
    async def test(
        self,
        interaction: discord.Interaction,
        query: app_commands.Range[str, 1, 1000],
        days: app_commands.Range[int, 1, 90] | None = None,
    ) -> None:
        pace(self.services, interaction, lookup=True)
        found = await self.services.papers.preview(query, days)
        span = days or 7
        bound = f"\n-# {found.bound}" if found.bound else ""
        if not found.papers:
            await reply(
                interaction, f"{code_span(query)} matches no paper seen in the last {span} days." + bound
            )
            return
        text = f"{code_span(query)} matches {counted(found.total, 'paper')} from the last {span} days:\n"
        await reply(interaction, text + papers_block(found.papers, found.total) + bound)
