"""Digest composition: which matched papers go out, in what order, and what is held back."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bot.domain.paper import Paper

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MORE = "…and "


@dataclass(frozen=True, slots=True)
class Match:
    """Why a paper reached a target: the watch and the words it matched on."""

    watch_id: int
    query: str
    words: tuple[tuple[str, str], ...] = ()
    """(query term, paper word) pairs, e.g. ("distill*", "distillation")."""


@dataclass(frozen=True, slots=True)
class DigestEntry:
    paper: Paper
    matches: tuple[Match, ...] = ()
    delivery_id: int | None = None
    reason: str | None = None
    """Why a recommended paper was chosen ("close to …"); None for watch matches."""

    @property
    def recommended(self) -> bool:
        """Sent because the user's own model ranked it, not because a watch matched it."""
        return self.reason is not None and not self.matches


@dataclass(frozen=True, slots=True)
class Digest:
    entries: list[DigestEntry]
    overflow: int = 0
    """Matched papers beyond the cap: announced as "and N more", kept for the next digest."""
    watches: list[tuple[int, str]] = field(default_factory=list)
    """(watch id, query) of the watches that contributed, in id order."""
    target_id: int | None = None
    """The channel or DM it goes to (its messages' components name it); None for previews."""

    @property
    def total(self) -> int:
        return len(self.entries) + self.overflow


def sort_key(entry: DigestEntry) -> tuple[int, float, str]:
    """Most upvoted first, then newest first, then by id so the order is stable."""
    paper = entry.paper
    when = paper.published_at or paper.first_seen_at or _EPOCH
    return (-paper.upvotes, -when.timestamp(), paper.arxiv_id)


def compose_digest(entries: Iterable[DigestEntry], max_papers: int) -> Digest:
    """Order by upvotes then date (newest first), keep `max_papers`, count the rest.

    Recommended papers (a DM digest only) follow the matches in the order given (best
    first); their number is already bounded by the user's `per_day`, so the cap leaves them be.
    """
    given = list(entries)
    ordered = sorted((e for e in given if not e.recommended), key=sort_key)
    kept = ordered[:max_papers] + [e for e in given if e.recommended]
    watches: dict[int, str] = {}
    for entry in ordered:
        for match in entry.matches:
            watches.setdefault(match.watch_id, match.query)
    return Digest(
        entries=kept,
        overflow=len(ordered) - len(kept),
        watches=sorted(watches.items()),
    )


def header_line(digest: Digest, *, limit: int = 1800) -> str:
    """ "3 new papers for `diffusion` (#4), `distill*` (#7)" — plain text, no mentions."""
    count = len(digest.entries)
    noun = "paper" if count == 1 else "papers"
    names = [f"`{_code(query)}` (#{watch_id})" for watch_id, query in digest.watches]
    line = f"📚 **{count} new {noun}** for " + ", ".join(names) if names else f"📚 **{count} new {noun}**"
    if len(line) > limit:
        line = line[: limit - 1].rsplit(",", 1)[0] + " …"
    return line


def overflow_line(digest: Digest) -> str | None:
    if not digest.overflow:
        return None
    noun = "paper" if digest.overflow == 1 else "papers"
    return f"{_MORE}{digest.overflow} more matching {noun}: `/digest now` posts the next ones."


def announces_more(content: str | None) -> bool:
    """Whether a message's text carries the "and N more" line (a re-send keeps its Next papers)."""
    return bool(content) and any(line.startswith(_MORE) for line in (content or "").splitlines())


def _code(text: str) -> str:
    return text.replace("`", "ˋ")


def group_pending(matches: Sequence[tuple[Paper, Match]]) -> list[DigestEntry]:
    """One entry per paper, with every watch that matched it."""
    by_paper: dict[str, tuple[Paper, list[Match]]] = {}
    for paper, match in matches:
        slot = by_paper.setdefault(paper.arxiv_id, (paper, []))
        slot[1].append(match)
    return [DigestEntry(paper=p, matches=tuple(ms)) for p, ms in by_paper.values()]
