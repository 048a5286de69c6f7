"""The arXiv export API (`export.arxiv.org/api/query`, Atom), in its 2016 and current layouts."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from xml.etree.ElementTree import Element

from bot.domain.paper import ARXIV, FeedResult, Paper, SkippedEntry, split_arxiv_id
from bot.feeds._xml import (
    BadEntryError,
    XmlRefusedError,
    child_text,
    collapse_whitespace,
    decode_tex_name,
    is_unsafe_xml,
    parse_iso8601,
    parse_xml,
    recover_elements,
)
from bot.feeds.http import FeedFetcher

logger = logging.getLogger(__name__)

ATOM_NS = "http://www.w3.org/2005/Atom"
ARXIV_NS = "http://arxiv.org/schemas/atom"
_FEED = f"{{{ATOM_NS}}}feed"
_ENTRY = f"{{{ATOM_NS}}}entry"
_ID = f"{{{ATOM_NS}}}id"
_TITLE = f"{{{ATOM_NS}}}title"
_SUMMARY = f"{{{ATOM_NS}}}summary"
_PUBLISHED = f"{{{ATOM_NS}}}published"
_UPDATED = f"{{{ATOM_NS}}}updated"
_AUTHOR_NAME = f"{{{ATOM_NS}}}author/{{{ATOM_NS}}}name"
_CATEGORY = f"{{{ATOM_NS}}}category"
_PRIMARY_CATEGORY = f"{{{ARXIV_NS}}}primary_category"
_ERROR_ID_MARKER = "arxiv.org/api/errors"

HTTP_BAD_REQUEST = 400


async def fetch_arxiv_api(
    fetcher: FeedFetcher,
    api_url: str,
    *,
    id_list: Sequence[str] | None = None,
    search_query: str | None = None,
    start: int = 0,
    max_results: int = 100,
) -> FeedResult:
    """Query the export API by ids and/or a search query.

    A malformed query is answered with HTTP 400 and an Atom `Error` entry; that comes back
    as a result with `error` set. Raises FeedError when the API cannot be reached.
    """
    if not id_list and not search_query:
        raise ValueError("give id_list or search_query")
    params: dict[str, str | int] = {
        "search_query": search_query or "",
        "id_list": ",".join(id_list or ()),
        "start": max(0, start),
        "max_results": max(0, max_results),
    }
    fetched = await fetcher.get(api_url, params=params, accept_statuses={HTTP_BAD_REQUEST})
    result = parse_arxiv_api(fetched.content or b"")
    if fetched.status == HTTP_BAD_REQUEST and result.error is None:
        return FeedResult(papers=[], error=f"{fetched.url} answered HTTP 400")
    return result


def parse_arxiv_api(content: bytes) -> FeedResult:
    """Turn an export API response into papers.

    An entry titled `Error` whose id is under `arxiv.org/api/errors` is the API's way of
    reporting a bad query: its summary becomes `error`, never a paper.
    """
    try:
        root = parse_xml(content)
    except XmlRefusedError as exc:
        if is_unsafe_xml(exc):
            return FeedResult(papers=[], error=f"arXiv API: {exc}")
        return _recover(content, str(exc))
    if root.tag != _FEED:
        return FeedResult(papers=[], error=f"not an Atom feed (root element <{root.tag}>)")
    return _papers_from_entries(enumerate(root.findall(_ENTRY)))


def _recover(content: bytes, problem: str) -> FeedResult:
    recovered = list(recover_elements(content, b"feed", b"entry", b"id"))
    if not any(found.element is not None for found in recovered):
        return FeedResult(papers=[], error=f"arXiv API: {problem}")
    logger.warning("arXiv API response is broken (%s); reading it entry by entry", problem)
    entries: list[tuple[int, Element]] = []
    broken: list[SkippedEntry] = []
    for found in recovered:
        if found.element is not None:
            entries.append((found.index, found.element))
        else:
            entry_id = found.raw_id or f"entry {found.index}"
            reason = found.problem or "unreadable"
            logger.warning("skipped arXiv API entry %s: %s", entry_id, reason)
            broken.append(SkippedEntry(entry_id=entry_id, reason=reason))
    result = _papers_from_entries(entries)
    return FeedResult(papers=result.papers, skipped=broken + result.skipped, error=result.error)


def _papers_from_entries(entries: Iterable[tuple[int, Element]]) -> FeedResult:
    papers: dict[str, Paper] = {}
    skipped: list[SkippedEntry] = []
    errors: list[str] = []
    for index, entry in entries:
        if _is_error_entry(entry):
            errors.append(child_text(entry, _SUMMARY) or child_text(entry, _ID) or "arXiv API error")
            continue
        try:
            paper = _paper_from_entry(entry, index)
        except BadEntryError as exc:
            logger.warning("skipped arXiv API entry %s: %s", exc.entry_id, exc.reason)
            skipped.append(SkippedEntry(entry_id=exc.entry_id, reason=exc.reason))
            continue
        existing = papers.get(paper.arxiv_id)
        papers[paper.arxiv_id] = existing.merged_with(paper) if existing is not None else paper
    return FeedResult(papers=list(papers.values()), skipped=skipped, error="; ".join(errors) or None)


def _is_error_entry(entry: Element) -> bool:
    return child_text(entry, _TITLE) == "Error" and _ERROR_ID_MARKER in child_text(entry, _ID)


def _paper_from_entry(entry: Element, index: int) -> Paper:
    raw_id = child_text(entry, _ID)
    parts = split_arxiv_id(raw_id)
    if parts is None:
        raise BadEntryError(raw_id or f"entry {index}", "entry id is not an arXiv abs URL")
    arxiv_id, version = parts
    title = child_text(entry, _TITLE)
    if not title:
        raise BadEntryError(arxiv_id, "no title")
    primary = entry.find(_PRIMARY_CATEGORY)
    terms = [primary.get("term", "")] if primary is not None else []
    terms += [category.get("term", "") for category in entry.findall(_CATEGORY)]
    categories = dict.fromkeys(term for raw in terms if (term := collapse_whitespace(raw)))
    authors = tuple(
        name
        for element in entry.findall(_AUTHOR_NAME)
        if (name := decode_tex_name("".join(element.itertext())))
    )
    published = parse_iso8601(child_text(entry, _PUBLISHED)) or parse_iso8601(child_text(entry, _UPDATED))
    return Paper(
        arxiv_id=arxiv_id,
        title=title,
        abstract=child_text(entry, _SUMMARY),
        authors=authors,
        published_at=published,
        sources=frozenset({ARXIV}),
        categories=tuple(categories),
        version=version,
    )
