"""The paper model shared by every stage: feeds produce it, the matcher reads it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import TypeVar

_T = TypeVar("_T", str, tuple[str, ...])

HF = "hf"
ARXIV = "arxiv"

_NEW_ID = re.compile(r"^(\d{4}\.\d{4,5})(?:v(\d+))?$")
_OLD_ID = re.compile(r"^([a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7})(?:v(\d+))?$", re.IGNORECASE)
_ID_PREFIXES = (
    "oai:arxiv.org:",
    "https://arxiv.org/abs/",
    "http://arxiv.org/abs/",
    "https://arxiv.org/pdf/",
    "http://arxiv.org/pdf/",
    "arxiv:",
)


def split_arxiv_id(raw: str) -> tuple[str, int | None] | None:
    """Return (id without version, version) for any form of arXiv id, or None."""
    text = raw.strip()
    lowered = text.lower()
    for prefix in _ID_PREFIXES:
        if lowered.startswith(prefix):
            text = text[len(prefix) :]
            break
    text = text.removesuffix(".pdf")
    for pattern in (_NEW_ID, _OLD_ID):
        found = pattern.match(text)
        if found:
            version = int(found.group(2)) if found.group(2) else None
            return found.group(1), version
    return None


def normalize_arxiv_id(raw: str) -> str | None:
    """The paper key: the arXiv id without version, or None when `raw` is not one."""
    parts = split_arxiv_id(raw)
    return parts[0] if parts else None


@dataclass(frozen=True, slots=True)
class Paper:
    """One paper, whatever feeds it came from. Keyed by `arxiv_id` (no version)."""

    arxiv_id: str
    title: str
    abstract: str = ""
    authors: tuple[str, ...] = ()
    published_at: datetime | None = None
    sources: frozenset[str] = frozenset()
    categories: tuple[str, ...] = ()
    upvotes: int = 0
    comments: int = 0
    ai_summary: str | None = None
    ai_keywords: tuple[str, ...] = ()
    github_url: str | None = None
    project_url: str | None = None
    hf_date: date | None = None
    """The Hugging Face Daily Papers day the paper was listed on."""
    announce_type: str | None = None
    """arXiv RSS announce type: new, cross, replace, replace-cross."""
    version: int | None = None
    first_seen_at: datetime | None = field(default=None, compare=False)
    """When paperwatch first ingested the paper; set by storage, not by feeds."""

    @property
    def abs_url(self) -> str:
        return f"https://arxiv.org/abs/{self.arxiv_id}"

    @property
    def pdf_url(self) -> str:
        return f"https://arxiv.org/pdf/{self.arxiv_id}"

    @property
    def hf_url(self) -> str | None:
        return f"https://huggingface.co/papers/{self.arxiv_id}" if HF in self.sources else None

    @property
    def url(self) -> str:
        """The link a paper's embed title points to: its HF page, else its arXiv page."""
        return self.hf_url or self.abs_url

    def merged_with(self, other: Paper) -> Paper:
        """Combine two sightings of the same paper; `other` is the newer one.

        Counters (upvotes, comments) come from the newer HF sighting, text fields keep
        whichever value is present, categories and sources are united.
        """
        if other.arxiv_id != self.arxiv_id:
            raise ValueError(f"cannot merge {self.arxiv_id} with {other.arxiv_id}")
        newer_hf = HF in other.sources
        # Hugging Face's text is clean UTF-8 and wins; otherwise the first text seen stays,
        # so alternating polls of two sources do not flip a paper back and forth.
        text_from_other = newer_hf or HF not in self.sources
        categories = self.categories + tuple(c for c in other.categories if c not in self.categories)
        return replace(
            self,
            title=_prefer(other.title, self.title, text_from_other),
            abstract=_prefer(other.abstract, self.abstract, text_from_other),
            authors=_prefer(other.authors, self.authors, text_from_other),
            published_at=_earliest(self.published_at, other.published_at),
            sources=self.sources | other.sources,
            categories=categories,
            upvotes=other.upvotes if newer_hf else self.upvotes,
            comments=other.comments if newer_hf else self.comments,
            ai_summary=other.ai_summary or self.ai_summary,
            ai_keywords=other.ai_keywords or self.ai_keywords,
            github_url=other.github_url or self.github_url,
            project_url=other.project_url or self.project_url,
            hf_date=other.hf_date or self.hf_date,
            announce_type=other.announce_type or self.announce_type,
            version=max(v for v in (self.version, other.version, 0) if v is not None) or None,
        )


def _prefer(theirs: _T, mine: _T, theirs_first: bool) -> _T:
    """The preferred non-empty value of two."""
    return (theirs or mine) if theirs_first else (mine or theirs)


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    """The submission time (HF, arXiv API) is earlier than an RSS announcement day."""
    if a is None or b is None:
        return a or b
    return min(a, b)


@dataclass(frozen=True, slots=True)
class SkippedEntry:
    """A feed entry that could not be turned into a paper, and why."""

    entry_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class FeedResult:
    """What a parser made of one response: the papers, the skipped entries, a feed error."""

    papers: list[Paper]
    skipped: list[SkippedEntry] = field(default_factory=list)
    error: str | None = None
    """A feed-level error (arXiv API `Error` entry, RSS "Feed error for query")."""
