"""Recognise a saved feed response (HF JSON, arXiv RSS, arXiv API Atom) and parse it."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from bot.domain.paper import FeedResult
from bot.feeds.arxiv_api import parse_arxiv_api
from bot.feeds.arxiv_rss import parse_arxiv_rss
from bot.feeds.hf import parse_hf_daily

_SNIFF_BYTES = 4096
_BOMS = (b"\xef\xbb\xbf",)
_FIRST_ELEMENT = re.compile(rb"\s*<([A-Za-z_][\w.\-]*:)?([A-Za-z_][\w.\-]*)")
_DAY_NAME = re.compile(r"\d{4}-\d{2}-\d{2}")
_MARKUP_PROLOGUE = re.compile(rb"\s*(?:<\?.*?\?>|<!--.*?-->|<!.*?>)", re.DOTALL)


def parse_feed_bytes(content: bytes, *, day: date | None = None) -> FeedResult:
    """Parse any supported feed response, recognised by its first bytes.

    A JSON document goes to the Hugging Face parser (`day` is the Daily Papers date),
    `<rss` to the arXiv RSS parser and an Atom `<feed` to the arXiv API parser.
    """
    head = content[:_SNIFF_BYTES]
    for bom in _BOMS:
        if head.startswith(bom):
            content = content[len(bom) :]
            head = head[len(bom) :]
    stripped = head.lstrip()
    if stripped.startswith((b"[", b"{")):
        return parse_hf_daily(content, day=day)
    if stripped.startswith(b"<"):
        root = _root_element_name(stripped)
        if root == "rss":
            return parse_arxiv_rss(content)
        if root == "feed":
            return parse_arxiv_api(content)
        if root:
            return FeedResult(papers=[], error=f"unrecognised feed format (root element <{root}>)")
    return FeedResult(papers=[], error="unrecognised feed format")


def parse_feed_file(path: Path) -> FeedResult:
    """Parse a saved feed file; a Hugging Face file named `YYYY-MM-DD.json` gets that day.

    Raises OSError when the file cannot be read.
    """
    content = path.read_bytes()
    return parse_feed_bytes(content, day=_day_from_name(path))


def _day_from_name(path: Path) -> date | None:
    if not _DAY_NAME.fullmatch(path.stem):
        return None
    try:
        return date.fromisoformat(path.stem)
    except ValueError:
        return None


def _root_element_name(head: bytes) -> str | None:
    position = 0
    while (prologue := _MARKUP_PROLOGUE.match(head, position)) is not None and prologue.end() > position:
        position = prologue.end()
    found = _FIRST_ELEMENT.match(head, position)
    if found is None:
        return None
    return found.group(2).decode("ascii", errors="replace").lower()
