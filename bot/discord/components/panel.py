"""The ephemeral panel of one paper: its text and its buttons, drawn from the stored state."""

from __future__ import annotations

from typing import Any

import discord

from bot.discord.components.ids import BIBTEX, DOWN, LIKE, SAVE, UP, panel_id
from bot.discord.embeds import escape_text
from bot.services.paper_actions import PanelState

SAVE_LABEL = "Save"
SAVED_LABEL = "Saved ✓"
UP_LABEL = "👍 More like this"
DOWN_LABEL = "👎 Less like this"
LIKE_LABEL = "Watch similar papers"
BIBTEX_LABEL = "BibTeX"
TITLE_CHARS = 200


def panel_text(state: PanelState, note: str | None = None) -> str:
    """The paper, where the person stands with it, and what the last click did (`note`)."""
    paper = state.paper
    title = escape_text(paper.title) or paper.arxiv_id
    if len(title) > TITLE_CHARS:
        title = title[: TITLE_CHARS - 1] + "…"
    standing = []
    if state.saved:
        standing.append("on your reading list")
    if state.vote > 0:
        standing.append("you asked for more like this 👍")
    elif state.vote < 0:
        standing.append("you asked for less like this 👎")
    lines = [f"**[{title}](<{paper.url}>)** · `{paper.arxiv_id}`"]
    lines.append(("This paper is " + "; ".join(standing) + ".") if standing else "What would you like to do?")
    if note:
        lines.append(note)
    return "\n".join(lines)


def _button(label: str, style: discord.ButtonStyle, custom_id: str, row: int) -> discord.ui.Button[Any]:
    return discord.ui.Button(label=label, style=style, custom_id=custom_id, row=row)


def panel_view(state: PanelState, *, manager: bool) -> discord.ui.View:
    """Save, 👍, 👎, Watch similar papers (managers of a channel only), BibTeX.

    The pressed state shows in the styles. The view is stopped before it is sent, so discord.py
    keeps nothing of it: the clicks reach the dynamic items registered at start.
    """
    target, paper = state.target_id, state.paper.arxiv_id
    view = discord.ui.View(timeout=None)
    saved_style = discord.ButtonStyle.success if state.saved else discord.ButtonStyle.primary
    view.add_item(
        _button(SAVED_LABEL if state.saved else SAVE_LABEL, saved_style, panel_id(SAVE, target, paper), 0)
    )
    up_style = discord.ButtonStyle.success if state.vote > 0 else discord.ButtonStyle.secondary
    view.add_item(_button(UP_LABEL, up_style, panel_id(UP, target, paper), 0))
    down_style = discord.ButtonStyle.danger if state.vote < 0 else discord.ButtonStyle.secondary
    view.add_item(_button(DOWN_LABEL, down_style, panel_id(DOWN, target, paper), 0))
    if manager and state.in_channel:
        view.add_item(_button(LIKE_LABEL, discord.ButtonStyle.secondary, panel_id(LIKE, target, paper), 1))
    view.add_item(_button(BIBTEX_LABEL, discord.ButtonStyle.secondary, panel_id(BIBTEX, target, paper), 1))
    view.stop()
    return view
