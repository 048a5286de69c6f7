"""/paper and /paperwatch: looking things up, and a person's own reading list."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import discord
from discord import app_commands

from bot.discord.client import NO_MENTIONS, Services, reply
from bot.discord.commands._common import counted, pace, paper_line, papers_block, when
from bot.discord.commands.stats import answer_stats
from bot.discord.embeds import code_span, escape_text, paper_embed
from bot.domain.digest import DigestEntry
from bot.domain.paper import Paper
from bot.services.access import NotFound
from bot.services.export import ExportFormat
from bot.services.feedback import FeedbackService
from bot.services.stats import DEFAULT_WEEKS, MAX_WEEKS

SAVED_PAGE_SIZE = 10
REMOVE_ROW = 5
"""Remove buttons a row: a full page of 10 takes two rows, the paging buttons a third."""


SAVED_TITLE = 80
"""Characters of a title in the reading list, so that a full page fits in one message."""
MESSAGE_LIMIT = 2000


def saved_line(number: int, paper: Paper, saved_at: datetime, title_limit: int = SAVED_TITLE) -> str:
    """`3.`, the id, the linked title, the day saved: the number is that of the paper's remove
    button, the id what `/paper unsave` takes."""
    title = paper.title if len(paper.title) <= title_limit else paper.title[: title_limit - 1] + "…"
    stamp = int(saved_at.astimezone(UTC).timestamp())
    return (
        f"{number}. {code_span(paper.arxiv_id)} [{escape_text(title)}](<{paper.url}>) · saved <t:{stamp}:d>"
    )


class RemoveSavedButton(discord.ui.Button["SavedListView"]):
    """The "✕ 3" button takes the paper of line 3 off the reading list. It names the paper, not
    the line, so a list changed meanwhile never loses another paper."""

    def __init__(self, number: int, arxiv_id: str, row: int) -> None:
        super().__init__(
            label=f"✕ {number}",
            style=discord.ButtonStyle.secondary,
            custom_id=f"pw:saved:rm:{arxiv_id}",
            row=row,
        )
        self.arxiv_id = arxiv_id

    async def callback(self, interaction: discord.Interaction) -> None:
        if self.view is not None:
            await self.view.remove(interaction, self.arxiv_id)


class SavedListView(discord.ui.View):
    """A reading list, one page read at a time: a remove button for each paper listed, and
    prev/next buttons when there is more than one page. Only its owner presses them."""

    def __init__(self, feedback: FeedbackService, owner_id: int, total: int) -> None:
        super().__init__(timeout=600)
        self.feedback = feedback
        self.owner_id = owner_id
        self.total = total
        self.page = 0
        self._sync_buttons([])

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // SAVED_PAGE_SIZE))

    async def render(self, note: str = "") -> str:
        """The current page, read again, so a change made meanwhile shows."""
        offset = self.page * SAVED_PAGE_SIZE
        papers, self.total = await self.feedback.saved(self.owner_id, offset, SAVED_PAGE_SIZE)
        if self.page >= self.pages:  # the list shrank under this page
            self.page = self.pages - 1
            offset = self.page * SAVED_PAGE_SIZE
            papers, self.total = await self.feedback.saved(self.owner_id, offset, SAVED_PAGE_SIZE)
        self._sync_buttons([paper.arxiv_id for paper, _ in papers])
        note = f"{note}\n" if note else ""
        if not papers:
            return note + "Your reading list is empty. Save papers with `/paper save`."
        header = f"{note}**Your reading list: {counted(self.total, 'paper')}, newest first**\n"
        footer = f"\nPage {self.page + 1}/{self.pages}" if self.pages > 1 else ""
        for title_limit in (SAVED_TITLE, SAVED_TITLE // 2, 12):  # shorter titles if a page runs long
            body = "\n".join(
                saved_line(offset + index + 1, paper, saved_at, title_limit)
                for index, (paper, saved_at) in enumerate(papers)
            )
            if len(header) + len(body) + len(footer) <= MESSAGE_LIMIT:
                break
        return header + body + footer

    def _sync_buttons(self, listed: list[str]) -> None:
        """A remove button for each listed paper (rows of 5), then the paging row if needed."""
        self.clear_items()
        first = self.page * SAVED_PAGE_SIZE + 1
        for index, arxiv_id in enumerate(listed):
            self.add_item(RemoveSavedButton(first + index, arxiv_id, row=index // REMOVE_ROW))
        if self.pages > 1:
            self.previous.disabled = self.page == 0
            self.next.disabled = self.page >= self.pages - 1
            self.add_item(self.previous).add_item(self.next)

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id != self.owner_id:
            await reply(interaction, "Run `/paper saved` yourself to see your reading list.")
            return False
        return True

    async def _show(self, interaction: discord.Interaction, note: str = "") -> None:
        content = await self.render(note)
        await interaction.response.edit_message(
            content=content, view=self if self.children else None, allowed_mentions=NO_MENTIONS
        )

    async def _turn(self, interaction: discord.Interaction, step: int) -> None:
        self.page = min(max(0, self.page + step), self.pages - 1)
        await self._show(interaction)

    async def remove(self, interaction: discord.Interaction, arxiv_id: str) -> None:
        """Take a paper off the list and show the page again (the one before, if it emptied)."""
        try:
            paper = await self.feedback.unsave(self.owner_id, arxiv_id)
        except NotFound:  # removed meanwhile, e.g. with `/paper unsave`
            await self._show(interaction)
            await reply(interaction, f"{code_span(arxiv_id)} was no longer on your reading list.")
            return
        await self._show(interaction, f"Removed {code_span(paper.arxiv_id)} from your reading list.")

    @discord.ui.button(
        label="◀ Previous", style=discord.ButtonStyle.secondary, custom_id="pw:saved:prev", row=2
    )
    async def previous(
        self, interaction: discord.Interaction, button: discord.ui.Button[SavedListView]
    ) -> None:
        await self._turn(interaction, -1)

    @discord.ui.button(label="Next ▶", style=discord.ButtonStyle.secondary, custom_id="pw:saved:next", row=2)
    async def next(self, interaction: discord.Interaction, button: discord.ui.Button[SavedListView]) -> None:
        await self._turn(interaction, 1)


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
        matched = f"{found.total_text} papers match:\n"
        await reply(interaction, matched + papers_block(found.papers, found.total) + bound)

    @app_commands.command(name="show", description="Show one paper (only you see it)")
    @app_commands.describe(id="An arXiv id, e.g. 2403.01234")
    async def show(self, interaction: discord.Interaction, id: app_commands.Range[str, 1, 100]) -> None:
        pace(self.services, interaction, lookup=True)
        paper = await self.services.papers.get(id)
        embed = discord.Embed.from_dict(paper_embed(DigestEntry(paper=paper)))
        await interaction.response.send_message(
            paper_line(paper), embed=embed, ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
        )

    @app_commands.command(name="save", description="Put a paper on your reading list (only you see it)")
    @app_commands.describe(id="An arXiv id, e.g. 2403.01234")
    async def save(self, interaction: discord.Interaction, id: app_commands.Range[str, 1, 100]) -> None:
        pace(self.services, interaction)
        paper, already = await self.services.feedback.save(interaction.user.id, id)
        if already:
            await reply(interaction, f"{code_span(paper.arxiv_id)} is already on your reading list.")
            return
        await reply(interaction, f"Saved to your reading list: {paper_line(paper)}")

    @app_commands.command(name="saved", description="Your reading list, newest first (only you see it)")
    async def saved(self, interaction: discord.Interaction) -> None:
        pace(self.services, interaction, lookup=True)
        lister = SavedListView(self.services.feedback, interaction.user.id, total=0)
        content = await lister.render()
        await interaction.response.send_message(
            content,
            view=lister if lister.children else discord.utils.MISSING,
            ephemeral=True,
            allowed_mentions=discord.AllowedMentions.none(),
        )

    @app_commands.command(name="unsave", description="Take a paper off your reading list")
    @app_commands.describe(id="The arXiv id of a saved paper")
    async def unsave(self, interaction: discord.Interaction, id: app_commands.Range[str, 1, 100]) -> None:
        pace(self.services, interaction)
        paper = await self.services.feedback.unsave(interaction.user.id, id)
        await reply(interaction, f"Removed from your reading list: {paper_line(paper)}")

    @app_commands.command(name="export", description="Your reading list as a file: BibTeX or CSV")
    @app_commands.describe(format="bib (BibTeX, the default) or csv")
    async def export(self, interaction: discord.Interaction, format: ExportFormat = "bib") -> None:
        pace(self.services, interaction, lookup=True)
        # a long list takes a second or two to write: say "thinking" meanwhile
        await interaction.response.defer(ephemeral=True, thinking=True)
        exported = await self.services.export.reading_list(interaction.user.id, format)
        if exported is None:
            await reply(interaction, "Your reading list is empty. Save papers with `/paper save` first.")
            return
        kind = "BibTeX" if format == "bib" else "CSV"
        await interaction.followup.send(
            f"Your reading list as {kind}: {counted(exported.papers, 'paper')}.",
            file=discord.File(io.BytesIO(exported.data), filename=exported.filename),
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
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

    @app_commands.command(name="stats", description="A chart of the papers matched per week in this channel")
    @app_commands.describe(weeks=f"How many weeks back (default {DEFAULT_WEEKS})")
    async def stats(
        self, interaction: discord.Interaction, weeks: app_commands.Range[int, 1, MAX_WEEKS] = DEFAULT_WEEKS
    ) -> None:
        pace(self.services, interaction, lookup=True)
        await answer_stats(self.services, interaction, weeks)
