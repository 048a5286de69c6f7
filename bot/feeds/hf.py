"""Hugging Face Daily Papers: parse `GET /api/daily_papers?date=…` and fetch every page of a day."""

from __future__ import annotations

import json
import logging
import re
from datetime import date

import httpx

from bot.domain.paper import HF, FeedResult, Paper, SkippedEntry, split_arxiv_id
from bot.feeds._xml import BadEntryError, collapse_whitespace, parse_iso8601
from bot.feeds.http import FeedFetcher, FeedValidators, FetchResult

logger = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
MAX_PAGES = 20

_LINK_PART = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]*)*)")
_LINK_REL = re.compile(r"""\brel\s*=\s*"?([^";,]*)"?""", re.IGNORECASE)


def parse_hf_daily(content: bytes, *, day: date | None = None) -> FeedResult:
    """Turn one Daily Papers response (a bare JSON array) into papers.

    `day` is the Daily Papers date that was asked for; it becomes `hf_date` for entries
    that do not say when they were put on the page. Broken entries are skipped and
    logged; a response that is not a JSON array gives a result with `error` set.
    """
    result, _ = _parse_page(content, day)
    return result


async def fetch_hf_day(
    fetcher: FeedFetcher,
    base_url: str,
    day: date,
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
    validators: FeedValidators | None = None,
    max_pages: int = MAX_PAGES,
) -> tuple[FeedResult, FeedValidators | None]:
    """Fetch every page of one Daily Papers day and merge the papers by arXiv id.

    A page holding `page_size` entries (or a `Link: rel="next"` header) means there may
    be more, so pages `p=1, 2, …` follow until a short or empty page, or a page that
    brings no paper not already seen (at most `max_pages` pages). Only the first
    page is a conditional GET: on 304 Not Modified the result has no papers and the
    validators are the ones sent. Validators are returned only for a day that fits on
    one page, so a longer day is always fetched in full.
    Raises FeedError when a page cannot be fetched.
    """
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
    papers: dict[str, Paper] = {}
    skipped: list[SkippedEntry] = []
    seen_urls: set[str] = set()
    first_validators: FeedValidators | None = None
    request: tuple[str, dict[str, str | int] | None] | None = (base_url, _page_params(day, 0, page_size))
    page = 0
    while request is not None:
        if page == max_pages:
            logger.warning("stopped reading %s for %s after %d pages", base_url, day, max_pages)
            return FeedResult(papers=list(papers.values()), skipped=skipped), None
        url, params = request
        fetched = await fetcher.get(url, params=params, validators=validators if page == 0 else None)
        seen_urls.add(fetched.url)
        if page == 0:
            if fetched.content is None:
                return FeedResult(papers=[]), fetched.validators
            first_validators = fetched.validators
        result, entries = _parse_page(fetched.content or b"", day)
        if result.error is not None:
            if page == 0:
                return result, None
            error = f"page {page} of {day.isoformat()}: {result.error}"
            return FeedResult(papers=list(papers.values()), skipped=skipped, error=error), None
        known = len(papers)
        _merge_into(papers, result.papers)
        skipped.extend(result.skipped)
        if page > 0 and result.papers and len(papers) == known:
            logger.warning("page %d of %s for %s repeats earlier papers; stopping", page, base_url, day)
            return FeedResult(papers=list(papers.values()), skipped=skipped), None
        request = _next_request(fetched, entries, base_url, day, page + 1, page_size, seen_urls)
        page += 1
    merged = FeedResult(papers=list(papers.values()), skipped=skipped)
    return merged, first_validators if page == 1 else None


def _next_request(
    fetched: FetchResult,
    entries: int,
    base_url: str,
    day: date,
    page: int,
    page_size: int,
    seen_urls: set[str],
) -> tuple[str, dict[str, str | int] | None] | None:
    """Where the next page of a day is: the `Link: rel="next"` URL, else `p=page` after a full page."""
    next_link = _next_link(fetched.link, fetched.url)
    if next_link is not None and next_link not in seen_urls:
        return next_link, None
    params = _page_params(day, page, page_size)
    if entries >= page_size and _full_url(base_url, params) not in seen_urls:
        return base_url, params
    return None


def _page_params(day: date, page: int, page_size: int) -> dict[str, str | int]:
    return {"date": day.isoformat(), "p": page, "limit": page_size}


def _full_url(base_url: str, params: dict[str, str | int]) -> str:
    try:
        return str(httpx.URL(base_url).copy_merge_params(params))
    except (httpx.InvalidURL, TypeError, ValueError):
        return base_url


def _next_link(link_header: str | None, current_url: str) -> str | None:
    """The absolute URL of a `Link: <…>; rel="next"` header, if there is one."""
    if not link_header:
        return None
    for found in _LINK_PART.finditer(link_header):
        rel = _LINK_REL.search(found.group(2))
        if rel is not None and "next" in rel.group(1).lower().split():
            try:
                return str(httpx.URL(current_url).join(found.group(1).strip()))
            except (httpx.InvalidURL, TypeError, ValueError):
                return None
    return None


def _merge_into(papers: dict[str, Paper], new: list[Paper]) -> None:
    for paper in new:
        existing = papers.get(paper.arxiv_id)
        papers[paper.arxiv_id] = existing.merged_with(paper) if existing is not None else paper


def _parse_page(content: bytes, day: date | None) -> tuple[FeedResult, int]:
    """Parse one response; also return how many entries the page held, broken ones included."""
    try:
        data = json.loads(content)
    except (ValueError, RecursionError) as exc:
        return FeedResult(papers=[], error=_not_json(content, exc)), 0
    if not isinstance(data, list):
        return FeedResult(papers=[], error=f"expected a JSON array of daily papers, got {_kind(data)}"), 0
    papers: dict[str, Paper] = {}
    skipped: list[SkippedEntry] = []
    for index, entry in enumerate(data):
        try:
            paper = _paper_from_entry(entry, index, day)
        except BadEntryError as exc:
            logger.warning("skipped Hugging Face daily paper %s: %s", exc.entry_id, exc.reason)
            skipped.append(SkippedEntry(entry_id=exc.entry_id, reason=exc.reason))
            continue
        _merge_into(papers, [paper])
    return FeedResult(papers=list(papers.values()), skipped=skipped), len(data)


def _not_json(content: bytes, exc: Exception) -> str:
    start = content.lstrip()[:200].lower()
    if not start:
        return "empty response, expected a JSON array of daily papers"
    if start.startswith(b"<"):
        kind = "an HTML page" if b"<html" in start or b"<!doctype html" in start else "markup"
        return f"got {kind} instead of a JSON array of daily papers"
    if isinstance(exc, RecursionError):
        return "JSON nested too deeply"
    return f"not valid JSON ({exc})"


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _paper_from_entry(entry: object, index: int, day: date | None) -> Paper:
    fallback_id = f"entry {index}"
    if not isinstance(entry, dict):
        raise BadEntryError(fallback_id, f"entry is {_kind(entry)}, expected an object")
    if "paper" not in entry:
        raise BadEntryError(fallback_id, "no paper object")
    paper = entry.get("paper")
    if not isinstance(paper, dict):
        raise BadEntryError(fallback_id, f"paper is {_kind(paper)}, expected an object")
    raw_id = paper.get("id")
    if not isinstance(raw_id, str):
        numeric = isinstance(raw_id, int | float) and not isinstance(raw_id, bool)
        label = str(raw_id) if numeric else fallback_id
        raise BadEntryError(label, f"paper.id is {_kind(raw_id)}, expected an arXiv id string")
    parts = split_arxiv_id(raw_id)
    if parts is None:
        raise BadEntryError(raw_id.strip() or fallback_id, f"paper.id {raw_id!r} is not an arXiv id")
    arxiv_id, version = parts
    title = _text(paper.get("title")) or _text(entry.get("title"))
    if not title:
        raise BadEntryError(arxiv_id, "no title")

    return Paper(
        arxiv_id=arxiv_id,
        title=title,
        abstract=_text(paper.get("summary")) or _text(entry.get("summary")),
        authors=_authors(paper.get("authors")),
        published_at=parse_iso8601(_raw_text(paper.get("publishedAt"))),
        sources=frozenset({HF}),
        upvotes=_count(paper.get("upvotes")),
        comments=_count(entry.get("numComments")),
        ai_summary=_text(paper.get("ai_summary")) or None,
        ai_keywords=_keywords(paper.get("ai_keywords")),
        github_url=_web_url(paper.get("githubRepo")),
        project_url=_web_url(paper.get("projectPage")),
        hf_date=_daily_date(paper.get("submittedOnDailyAt")) or day,
        version=version,
    )


def _raw_text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _text(value: object) -> str:
    return collapse_whitespace(value) if isinstance(value, str) else ""


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        return 0
    return max(0, value)


def _authors(value: object) -> tuple[str, ...]:
    """Author display names in order; authors hidden on Hugging Face are kept."""
    if not isinstance(value, list):
        return ()
    names: list[str] = []
    for author in value:
        name = _text(author.get("name")) if isinstance(author, dict) else _text(author)
        if name:
            names.append(name)
    return tuple(names)


def _keywords(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    keywords: dict[str, None] = {}
    for keyword in value:
        text = _text(keyword)
        if text:
            keywords.setdefault(text)
    return tuple(keywords)


def _web_url(value: object) -> str | None:
    text = _raw_text(value).strip()
    if text.lower().startswith(("https://", "http://")) and len(text) > len("https://") and " " not in text:
        return text
    return None


def _daily_date(value: object) -> date | None:
    moment = parse_iso8601(_raw_text(value))
    return moment.date() if moment is not None else None
