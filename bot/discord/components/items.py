"""Clicks on paper components, turned into calls on the services.

Three dynamic items, registered once at start, read everything they need from the custom id
(bot/discord/components/ids.py): the select "Pick a paper…", the buttons of a paper's panel, and
Next papers. A click is answered within Discord's 3 seconds (deferred first when the work may
take longer: Save's DM, adding a watch, posting a page) and paced per person.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Self

import discord

from bot.discord.client import NO_MENTIONS, Services, reply
from bot.discord.commands._common import caller, manages
from bot.discord.components.ids import (
    BIBTEX,
    DOWN,
    LIKE,
    NEXT_TEMPLATE,
    PANEL_TEMPLATE,
    PICK_TEMPLATE,
    SAVE,
    UP,
)
from bot.discord.components.panel import panel_text, panel_view
from bot.discord.embeds import code_span
from bot.services.access import UserError
from bot.services.outbox import NEXT_ALREADY, NEXT_EMPTY, NEXT_PAUSED, NEXT_POSTED, NextPage
from bot.services.paper_actions import PanelState, PaperActions, SavedDm

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 2000
ALREADY_SAVED = "It was already on your reading list (`/paper unsave` takes it off)."
SAVED_NOTES = {
    SavedDm.SENT: "✅ Saved to your reading list, and sent to your DMs.",
    SavedDm.IN_DMS: "✅ Saved to your reading list. It is in your DMs already, so it was not sent again.",
    SavedDm.CLOSED: "✅ Saved to your reading list. It could not be sent to your DMs: they are closed.",
    SavedDm.LATER: "✅ Saved to your reading list. Discord is busy: it will reach your DMs shortly.",
}


def _services(interaction: discord.Interaction) -> tuple[Services, PaperActions]:
    services = getattr(interaction.client, "services", None)
    if not isinstance(services, Services) or services.actions is None:
        raise UserError("paperwatch is still starting; try again in a moment.")
    return services, services.actions


def _pace(services: Services, interaction: discord.Interaction) -> None:
    """One bucket per person for every paper click; a refusal says how long to wait."""
    wait = services.clicks.check(interaction.user.id, time.monotonic())
    if wait > 0:
        raise UserError(f"Slow down a little: you can click again in {max(1, math.ceil(wait))} s.")


@contextlib.asynccontextmanager
async def _answering(interaction: discord.Interaction) -> AsyncIterator[None]:
    """Refusals reach the person as a short ephemeral answer; anything else is logged with an id."""
    try:
        yield
    except UserError as refusal:
        await reply(interaction, str(refusal))
    except Exception:
        error_id = uuid.uuid4().hex[:8]
        log.exception("a paper click failed (error id %s)", error_id)
        await reply(
            interaction, f"Something went wrong on our side (error id `{error_id}`). It has been logged."
        )


class PickPaper(discord.ui.DynamicItem[discord.ui.Select[Any]], template=PICK_TEMPLATE):
    """ "Pick a paper…" on a posted message: answers with that paper's panel, to the picker only."""

    def __init__(self, item: discord.ui.Select[Any], target_id: int) -> None:
        super().__init__(item)
        self.target_id = target_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        if not isinstance(item, discord.ui.Select):
            raise TypeError("the paper picker is a select menu")
        return cls(item, int(match["target"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        async with _answering(interaction):
            services, actions = _services(interaction)
            _pace(services, interaction)
            values = self.item.values
            if not values:
                raise UserError("Pick a paper from the list.")
            state = await actions.panel(caller(interaction), self.target_id, values[0])
            await interaction.response.send_message(
                panel_text(state),
                view=panel_view(state, manager=_manager(interaction, state)),
                ephemeral=True,
                allowed_mentions=NO_MENTIONS,
            )


class PaperButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=PANEL_TEMPLATE):
    """A button of a paper's panel: Save, 👍, 👎, Watch similar papers, BibTeX."""

    def __init__(self, item: discord.ui.Button[Any], action: str, target_id: int, arxiv_id: str) -> None:
        super().__init__(item)
        self.action = action
        self.target_id = target_id
        self.arxiv_id = arxiv_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        if not isinstance(item, discord.ui.Button):
            raise TypeError("a panel action is a button")
        return cls(item, match["action"], int(match["target"]), match["paper"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        async with _answering(interaction):
            services, actions = _services(interaction)
            _pace(services, interaction)
            if self.action == SAVE:
                await self._save(interaction, actions)
            elif self.action in (UP, DOWN):
                await self._rate(interaction, actions, 1 if self.action == UP else -1)
            elif self.action == LIKE:
                await self._watch_similar(interaction, actions)
            elif self.action == BIBTEX:
                await self._bibtex(interaction, actions)

    async def _save(self, interaction: discord.Interaction[Any], actions: PaperActions) -> None:
        await interaction.response.defer()  # the DM may take a moment: update the panel afterwards
        saved = await actions.save(caller(interaction), self.target_id, self.arxiv_id)
        note = SAVED_NOTES[saved.dm] if not saved.already and saved.dm else ALREADY_SAVED
        await _update_panel(interaction, saved.state, note)

    async def _rate(self, interaction: discord.Interaction[Any], actions: PaperActions, value: int) -> None:
        state = await actions.rate(caller(interaction), self.target_id, self.arxiv_id, value)
        if state.vote == 0:
            note = "Your vote is taken back."
        elif state.vote > 0:
            note = "👍 Noted: your recommendations lean towards papers like this."
        else:
            note = "👎 Noted: your recommendations lean away from papers like this."
        await interaction.response.edit_message(
            content=panel_text(state, note),
            view=panel_view(state, manager=_manager(interaction, state)),
            allowed_mentions=NO_MENTIONS,
        )

    async def _watch_similar(self, interaction: discord.Interaction[Any], actions: PaperActions) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        state = await actions.panel(caller(interaction), self.target_id, self.arxiv_id)
        who = caller(interaction, state.channel_id) if state.channel_id else caller(interaction)
        similar = await actions.watch_similar(who, self.target_id, self.arxiv_id)
        watch = similar.watch
        if similar.already:
            text = (
                f"<#{watch.channel_id}> already watches papers like this one: "
                f"watch #{watch.id} {code_span(watch.query)}."
            )
        else:
            text = (
                f"Watch #{watch.id} {code_span(watch.query)} added to <#{watch.channel_id}>: "
                "papers whose title and abstract are close to this one's will be posted here."
            )
        await reply(interaction, text)

    async def _bibtex(self, interaction: discord.Interaction[Any], actions: PaperActions) -> None:
        entry = await actions.bibtex(caller(interaction), self.target_id, self.arxiv_id)
        block = f"```bibtex\n{entry}\n```"
        if len(block) <= MESSAGE_LIMIT:
            await interaction.response.send_message(block, ephemeral=True, allowed_mentions=NO_MENTIONS)
            return
        name = f"{self.arxiv_id.replace('/', '_')}.bib"
        await interaction.response.send_message(
            "The entry is too long for a message; here it is as a file.",
            file=discord.File(io.BytesIO(entry.encode()), filename=name),
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )


class NextPapers(discord.ui.DynamicItem[discord.ui.Button[Any]], template=NEXT_TEMPLATE):
    """Next papers under "and N more": posts the next page into the channel, once."""

    def __init__(self, item: discord.ui.Button[Any], target_id: int, delivery_id: int) -> None:
        super().__init__(item)
        self.target_id = target_id
        self.delivery_id = delivery_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        if not isinstance(item, discord.ui.Button):
            raise TypeError("Next papers is a button")
        return cls(item, int(match["target"]), int(match["delivery"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        async with _answering(interaction):
            services, actions = _services(interaction)
            _pace(services, interaction)
            await interaction.response.defer(ephemeral=True, thinking=True)
            page = await actions.next_page(caller(interaction), self.target_id, self.delivery_id)
            await reply(interaction, next_page_text(page, interaction.channel_id))


def next_page_text(page: NextPage, here: int | None) -> str:
    link = _link(page, here)
    if page.outcome == NEXT_POSTED:
        noun = "paper" if page.papers == 1 else "papers"
        more = f" ({page.more} more wait behind them)" if page.more else ""
        return f"Posted the next {page.papers} {noun}{more}" + (f": {link}" if link else ".")
    if page.outcome == NEXT_ALREADY:
        if link:
            return f"That page was posted already: {link}"
        return "That page is being posted already."
    if page.outcome == NEXT_EMPTY:
        return "No more papers are waiting: they were posted since."
    if page.outcome == NEXT_PAUSED:
        return f"Posting here is paused ({page.reason}); nothing was posted."
    return "paperwatch cannot post here right now; try again in a moment."


def _link(page: NextPage, here: int | None) -> str | None:
    if page.message_id is None:
        return None
    if page.guild_id is None:
        return f"https://discord.com/channels/@me/{here}/{page.message_id}" if here else None
    return f"https://discord.com/channels/{page.guild_id}/{page.channel_id}/{page.message_id}"


def _manager(interaction: discord.Interaction[Any], state: PanelState) -> bool:
    return state.channel_id is not None and manages(interaction, state.channel_id)


async def _update_panel(interaction: discord.Interaction[Any], state: PanelState, note: str) -> None:
    await interaction.edit_original_response(
        content=panel_text(state, note),
        view=panel_view(state, manager=_manager(interaction, state)),
        allowed_mentions=NO_MENTIONS,
    )


def paper_items() -> tuple[type[discord.ui.DynamicItem[Any]], ...]:
    """What `Client.add_dynamic_items` registers at start."""
    return (PickPaper, PaperButton, NextPapers)
