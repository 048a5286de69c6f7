"""arXiv listings from rss.arxiv.org (the 2024+ RSS 2.0 format with `arxiv:announce_type`)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import datetime
from xml.etree.ElementTree import Element

from bot.domain.paper import ARXIV, FeedResult, Paper, SkippedEntry, split_arxiv_id
from bot.feeds._xml import (
    BadEntryError,
    XmlRefusedError,
    child_text,
    collapse_whitespace,
    decode_tex_name,
    is_unsafe_xml,
    parse_rfc822,
    parse_xml,
    recover_elements,
)
from bot.feeds.http import FeedFetcher, FeedValidators

logger = logging.getLogger(__name__)

ARXIV_NS = "http://arxiv.org/schemas/atom"
DC_NS = "http://purl.org/dc/elements/1.1/"
_ANNOUNCE_TYPE = f"{{{ARXIV_NS}}}announce_type"
_CREATOR = f"{{{DC_NS}}}creator"

_CATEGORY = re.compile(r"^[A-Za-z][A-Za-z0-9.\-]*$")
_DESCRIPTION_ID = re.compile(r"arXiv:(\S+)")
_DESCRIPTION_TYPE = re.compile(r"Announce Type:\s*([\w-]+)")
_AND = re.compile(r"\s+and\s+")
_PARENTHESISED = re.compile(r"\([^()]*\)")
_NICKNAME_SPLIT = re.compile(r"\s*[^\s()]+\s*\([^()]*\)\s*")
_MONONYM_PART = re.compile(r"\s{2,}[^\s()]+\s*")


def rss_url_for(rss_url: str, categories: Iterable[str]) -> str:
    """The listing URL for some categories: `https://rss.arxiv.org/rss/cs.CL+cs.LG`."""
    names = [category.strip() for category in categories if category.strip()]
    if not names:
        raise ValueError("at least one arXiv category is needed")
    bad = [name for name in names if not _CATEGORY.match(name)]
    if bad:
        raise ValueError(f"not an arXiv category: {', '.join(bad)}")
    return f"{rss_url.rstrip('/')}/{'+'.join(names)}"


async def fetch_arxiv_rss(
    fetcher: FeedFetcher,
    rss_url: str,
    categories: Iterable[str],
    *,
    validators: FeedValidators | None = None,
) -> tuple[FeedResult, FeedValidators | None]:
    """Fetch and parse today's listing for `categories`.

    On 304 Not Modified the result has no papers and the validators are the ones sent.
    Raises FeedError when the feed cannot be fetched.
    """
    fetched = await fetcher.get(rss_url_for(rss_url, categories), validators=validators)
    if fetched.content is None:
        return FeedResult(papers=[]), fetched.validators
    result = parse_arxiv_rss(fetched.content)
    return result, fetched.validators if result.error is None else None


def parse_arxiv_rss(content: bytes) -> FeedResult:
    """Turn an rss.arxiv.org response into papers.

    A "Feed error for query" channel (a bad archive name) gives a result with `error`
    set to its title. Items that cannot become papers are skipped and logged; a
    document that is not well-formed XML is read item by item so one broken item does
    not cost the rest. Documents with a DTD or entity declarations are refused.
    """
    try:
        root = parse_xml(content)
    except XmlRefusedError as exc:
        if is_unsafe_xml(exc):
            return FeedResult(papers=[], error=f"arXiv RSS: {exc}")
        return _recover(content, str(exc))
    if _local_name(root.tag) != "rss":
        return FeedResult(papers=[], error=f"not an RSS feed (root element <{_local_name(root.tag)}>)")
    channel = root.find("channel")
    if channel is None:
        return FeedResult(papers=[], error="RSS feed has no channel")
    title = child_text(channel, "title")
    if title.lower().startswith("feed error"):
        return FeedResult(papers=[], error=title)
    channel_date = parse_rfc822(child_text(channel, "pubDate"))
    return _papers_from_items(enumerate(channel.findall("item")), channel_date)


def _recover(content: bytes, problem: str) -> FeedResult:
    recovered = list(recover_elements(content, b"rss", b"item", b"guid"))
    if not any(found.element is not None for found in recovered):
        return FeedResult(papers=[], error=f"arXiv RSS: {problem}")
    logger.warning("arXiv RSS is broken (%s); reading it item by item", problem)
    items: list[tuple[int, Element]] = []
    broken: list[SkippedEntry] = []
    for found in recovered:
        if found.element is not None:
            items.append((found.index, found.element))
        else:
            entry_id = found.raw_id or f"item {found.index}"
            reason = found.problem or "unreadable"
            logger.warning("skipped arXiv RSS item %s: %s", entry_id, reason)
            broken.append(SkippedEntry(entry_id=entry_id, reason=reason))
    result = _papers_from_items(items, None)
    return FeedResult(papers=result.papers, skipped=broken + result.skipped)


def _papers_from_items(items: Iterable[tuple[int, Element]], channel_date: datetime | None) -> FeedResult:
    papers: dict[str, Paper] = {}
    skipped: list[SkippedEntry] = []
    for index, item in items:
        try:
            paper = _paper_from_item(item, index, channel_date)
        except BadEntryError as exc:
            logger.warning("skipped arXiv RSS item %s: %s", exc.entry_id, exc.reason)
            skipped.append(SkippedEntry(entry_id=exc.entry_id, reason=exc.reason))
            continue
        existing = papers.get(paper.arxiv_id)
        papers[paper.arxiv_id] = existing.merged_with(paper) if existing is not None else paper
    return FeedResult(papers=list(papers.values()), skipped=skipped)


def _paper_from_item(item: Element, index: int, channel_date: datetime | None) -> Paper:
    guid = child_text(item, "guid")
    link = child_text(item, "link")
    description = _raw_text(item, "description")
    found_in_description = _DESCRIPTION_ID.search(description)
    described_id = found_in_description.group(1) if found_in_description else ""
    label = guid or link or described_id or f"item {index}"

    parts = split_arxiv_id(guid) or split_arxiv_id(link)
    if parts is None:
        raise BadEntryError(label, "no arXiv id in guid or link")
    arxiv_id, version = parts
    if version is None and described_id:
        described = split_arxiv_id(described_id)
        if described is not None and described[0] == arxiv_id:
            version = described[1]
    title = child_text(item, "title")
    if not title:
        raise BadEntryError(arxiv_id, "no title")

    _, marker, abstract = description.partition("Abstract:")
    announce_type = child_text(item, _ANNOUNCE_TYPE)
    if not announce_type:
        found_type = _DESCRIPTION_TYPE.search(description)
        announce_type = found_type.group(1) if found_type else ""
    categories = dict.fromkeys(
        text for category in item.findall("category") if (text := collapse_whitespace(category.text or ""))
    )
    creators = ", ".join(
        creator.text for creator in item.findall(_CREATOR) if creator.text and creator.text.strip()
    )
    return Paper(
        arxiv_id=arxiv_id,
        title=title,
        abstract=collapse_whitespace(abstract if marker else description),
        authors=split_authors(creators),
        published_at=parse_rfc822(child_text(item, "pubDate")) or channel_date,
        sources=frozenset({ARXIV}),
        categories=tuple(categories),
        announce_type=announce_type.lower() or None,
        version=version,
    )


def split_authors(creator: str) -> tuple[str, ...]:
    """Split arXiv's one-string author list into names.

    Names are separated by commas and a final " and "; affiliations in parentheses are
    dropped (commas inside them do not separate names) and TeX accents are decoded.
    arXiv writes "Xuemin (Sherman) Shen" as "Xuemin (Sherman),  Shen"; such a one-word
    surname after a one-word name with a nickname is joined back to it.
    """
    names: list[str] = []
    previous = ""
    for part in _split_top_level(creator):
        name = decode_tex_name(_strip_parenthesised(part))
        if names and name and _NICKNAME_SPLIT.fullmatch(previous) and _MONONYM_PART.fullmatch(part):
            names[-1] = f"{names[-1]} {name}"
        elif name:
            names.append(name)
        previous = part
    return tuple(names)


def _split_top_level(text: str) -> list[str]:
    """Split on commas and " and " that are outside parentheses and TeX braces."""
    if not _balanced(text):
        return [piece for segment in text.split(",") for piece in _AND.split(segment)]
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    position = 0
    while position < len(text):
        char = text[position]
        if char in "({":
            depth += 1
        elif char in ")}":
            depth -= 1
        elif depth == 0 and char == ",":
            parts.append("".join(current))
            current = []
            position += 1
            continue
        elif depth == 0 and char.isspace():
            joiner = _AND.match(text, position)
            if joiner is not None:
                parts.append("".join(current))
                current = []
                position = joiner.end()
                continue
        current.append(char)
        position += 1
    parts.append("".join(current))
    return parts


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        if char in "({":
            depth += 1
        elif char in ")}":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def _strip_parenthesised(name: str) -> str:
    previous = None
    while previous != name:
        previous = name
        name = _PARENTHESISED.sub(" ", name)
    return name.replace("(", " ").replace(")", " ")


def _raw_text(element: Element, tag: str) -> str:
    child = element.find(tag)
    return "".join(child.itertext()) if child is not None else ""


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]
