"""The components of a message that carries papers: "Pick a paper…" and, under "and N more", Next papers.

Plain JSON, as the outbox stores and sends messages; always within Discord's limits (one select
of at most 25 options with 100-character labels and values, one button row).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.discord.components.ids import is_paper_value, next_id, pick_id
from bot.domain.paper import Paper

SELECT_PLACEHOLDER = "Pick a paper…"
NEXT_LABEL = "Next papers"
MAX_OPTIONS = 25
OPTION_TEXT = 100
ACTION_ROW = 1
BUTTON = 2
STRING_SELECT = 3
SECONDARY = 2
_SPACE = re.compile(r"\s+")


def option_label(paper: Paper) -> str:
    """The paper's title as a select label: one line, at most 100 characters."""
    title = _SPACE.sub(" ", paper.title).strip() or paper.arxiv_id
    return title if len(title) <= OPTION_TEXT else title[: OPTION_TEXT - 1].rstrip() + "…"


def pick_row(target_id: int, papers: Sequence[Paper]) -> dict[str, object] | None:
    """The select listing the papers (each once, at most 25); None when there is none to list."""
    options: list[dict[str, object]] = []
    seen: set[str] = set()
    for paper in papers:
        if paper.arxiv_id in seen or not is_paper_value(paper.arxiv_id):
            continue
        seen.add(paper.arxiv_id)
        description = f"arXiv {paper.arxiv_id} · ▲ {paper.upvotes}"
        options.append({"label": option_label(paper), "value": paper.arxiv_id, "description": description})
        if len(options) == MAX_OPTIONS:
            break
    if not options:
        return None
    select = {
        "type": STRING_SELECT,
        "custom_id": pick_id(target_id),
        "placeholder": SELECT_PLACEHOLDER,
        "min_values": 1,
        "max_values": 1,
        "options": options,
    }
    return {"type": ACTION_ROW, "components": [select]}


def next_row(target_id: int, delivery_id: int) -> dict[str, object]:
    button = {
        "type": BUTTON,
        "style": SECONDARY,
        "label": NEXT_LABEL,
        "custom_id": next_id(target_id, delivery_id),
    }
    return {"type": ACTION_ROW, "components": [button]}


def message_components(
    target_id: int | None, papers: Sequence[Paper], *, next_after: int | None = None
) -> list[dict[str, object]]:
    """A posted message's components: the select of its papers, then Next papers when more wait.

    `next_after` is the first delivery of the message that announces "and N more" (the key of
    the page the button posts). Messages that went to no target (previews) get none.
    """
    if target_id is None:
        return []
    rows: list[dict[str, object]] = []
    picked = pick_row(target_id, papers)
    if picked is not None:
        rows.append(picked)
    if next_after is not None:
        rows.append(next_row(target_id, next_after))
    return rows
