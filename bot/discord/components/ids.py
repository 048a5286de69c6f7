"""Custom ids of paper components: what each carries, built and read back (ids only, ≤ 100 characters).

`pa:pick:<target>` the select of a posted message; `pa:<action>:<target>:<paper>` a panel button
(save, up, down, like, bib); `pa:next:<target>:<delivery>` the Next papers button, keyed by the
first delivery of the message that carries it. The target is the channel or DM the message was
posted to, so every click is checked against the guild (or user) it comes from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_CUSTOM_ID = 100
PREFIX = "pa"
PICK = "pick"
NEXT = "next"
SAVE = "save"
UP = "up"
DOWN = "down"
LIKE = "like"
BIBTEX = "bib"
PANEL_ACTIONS = (SAVE, UP, DOWN, LIKE, BIBTEX)

_ID = r"[0-9]{1,20}"
_PAPER = r"[A-Za-z0-9][A-Za-z0-9./-]{0,39}"

PICK_TEMPLATE = rf"{PREFIX}:{PICK}:(?P<target>{_ID})"
NEXT_TEMPLATE = rf"{PREFIX}:{NEXT}:(?P<target>{_ID}):(?P<delivery>{_ID})"
PANEL_TEMPLATE = rf"{PREFIX}:(?P<action>{'|'.join(PANEL_ACTIONS)}):(?P<target>{_ID}):(?P<paper>{_PAPER})"
_PAPER_ID = re.compile(_PAPER)


@dataclass(frozen=True, slots=True)
class PanelId:
    action: str
    target_id: int
    arxiv_id: str


def _checked(custom_id: str) -> str:
    if len(custom_id) > MAX_CUSTOM_ID:  # pragma: no cover - ids are at most 20 digits, papers 40 characters
        raise ValueError(f"custom id longer than {MAX_CUSTOM_ID} characters")
    return custom_id


def pick_id(target_id: int) -> str:
    return _checked(f"{PREFIX}:{PICK}:{target_id}")


def next_id(target_id: int, delivery_id: int) -> str:
    return _checked(f"{PREFIX}:{NEXT}:{target_id}:{delivery_id}")


def panel_id(action: str, target_id: int, arxiv_id: str) -> str:
    if action not in PANEL_ACTIONS:
        raise ValueError(f"unknown panel action {action!r}")
    if not _PAPER_ID.fullmatch(arxiv_id):
        raise ValueError(f"not a paper id for a custom id: {arxiv_id!r}")
    return _checked(f"{PREFIX}:{action}:{target_id}:{arxiv_id}")


def is_paper_value(value: str) -> bool:
    """Whether a select value can name a paper (an arXiv id as the select offers it)."""
    return bool(_PAPER_ID.fullmatch(value))


def read_pick(custom_id: str) -> int | None:
    found = re.fullmatch(PICK_TEMPLATE, custom_id)
    return int(found["target"]) if found else None


def read_next(custom_id: str) -> tuple[int, int] | None:
    found = re.fullmatch(NEXT_TEMPLATE, custom_id)
    return (int(found["target"]), int(found["delivery"])) if found else None


def read_panel(custom_id: str) -> PanelId | None:
    found = re.fullmatch(PANEL_TEMPLATE, custom_id)
    return PanelId(found["action"], int(found["target"]), found["paper"]) if found else None
