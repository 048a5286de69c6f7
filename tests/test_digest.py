"""Digest composition (docs/delivery.md): ordered by upvotes then date, capped, the rest announced."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.domain.digest import DigestEntry, Match, compose_digest, group_pending, header_line, overflow_line
from bot.domain.paper import Paper
from tests.conftest import HF_DIR, load_feed, raw_entries

DAY = HF_DIR / "2024-06-21.json"


def entries_of(papers: list[Paper], watch_id: int = 1, query: str = "q") -> list[DigestEntry]:
    return [DigestEntry(paper=p, matches=(Match(watch_id, query),)) for p in papers]


def expected_order() -> list[str]:
    """Upvotes high to low, then the newest submission first, read from the JSON itself."""

    def key(entry: object) -> tuple[int, float, str]:
        published = datetime.fromisoformat(entry.published.replace("Z", "+00:00"))  # type: ignore[attr-defined]
        return (-entry.upvotes, -published.timestamp(), entry.arxiv_id)  # type: ignore[attr-defined]

    return [e.arxiv_id for e in sorted(raw_entries(DAY), key=key)]


def test_real_day_is_ordered_by_upvotes_then_date() -> None:
    papers = list(reversed(load_feed(DAY).papers))  # the order given must not matter
    digest = compose_digest(entries_of(papers), max_papers=100)
    assert [e.paper.arxiv_id for e in digest.entries] == expected_order()
    assert digest.overflow == 0
    assert digest.total == len(papers)


def test_equal_upvotes_newest_first() -> None:
    base = load_feed(DAY).papers[0]
    old = replace(base, arxiv_id="2406.00001", upvotes=5, published_at=datetime(2024, 6, 1, tzinfo=UTC))
    new = replace(base, arxiv_id="2406.00002", upvotes=5, published_at=datetime(2024, 6, 20, tzinfo=UTC))
    top = replace(base, arxiv_id="2406.00003", upvotes=6, published_at=datetime(2023, 1, 1, tzinfo=UTC))
    digest = compose_digest(entries_of([old, new, top]), max_papers=10)
    assert [e.paper.arxiv_id for e in digest.entries] == ["2406.00003", "2406.00002", "2406.00001"]


def test_paper_without_date_uses_first_seen() -> None:
    base = load_feed(DAY).papers[0]
    seen_late = replace(
        base,
        arxiv_id="2406.00001",
        upvotes=0,
        published_at=None,
        first_seen_at=datetime(2024, 6, 21, tzinfo=UTC),
    )
    dated = replace(base, arxiv_id="2406.00002", upvotes=0, published_at=datetime(2024, 6, 1, tzinfo=UTC))
    digest = compose_digest(entries_of([dated, seen_late]), max_papers=10)
    assert [e.paper.arxiv_id for e in digest.entries] == ["2406.00001", "2406.00002"]


@pytest.mark.parametrize("cap", [1, 5, 20])
def test_cap_keeps_the_best_and_counts_the_rest(cap: int) -> None:
    papers = load_feed(DAY).papers
    digest = compose_digest(entries_of(papers), max_papers=cap)
    assert [e.paper.arxiv_id for e in digest.entries] == expected_order()[:cap]
    assert digest.overflow == len(papers) - cap
    assert digest.total == len(papers)
    line = overflow_line(digest)
    assert line is not None
    assert f"and {len(papers) - cap} more" in line


def test_no_overflow_no_line() -> None:
    digest = compose_digest(entries_of(load_feed(DAY).papers[:3]), max_papers=3)
    assert digest.overflow == 0
    assert overflow_line(digest) is None


def test_overflow_of_one_is_singular() -> None:
    digest = compose_digest(entries_of(load_feed(DAY).papers[:4]), max_papers=3)
    line = overflow_line(digest)
    assert line is not None
    assert "and 1 more matching paper" in line
    assert "papers" not in line


def test_header_names_every_watch_and_the_count() -> None:
    papers = load_feed(DAY).papers
    entries = [
        DigestEntry(paper=papers[0], matches=(Match(7, "distill*"), Match(4, "diffusion"))),
        DigestEntry(paper=papers[1], matches=(Match(4, "diffusion"),)),
        DigestEntry(paper=papers[2], matches=(Match(9, '"knowledge distillation"'),)),
    ]
    digest = compose_digest(entries, max_papers=2)
    assert [w for w, _ in digest.watches] == [4, 7, 9]  # every contributing watch, in id order
    line = header_line(digest)
    assert "2 new papers" in line  # the papers in this digest, not the held-back one
    for watch_id, query in ((4, "diffusion"), (7, "distill*"), (9, '"knowledge distillation"')):
        assert f"`{query}` (#{watch_id})" in line


def test_header_singular_and_backticks_cannot_break_out() -> None:
    paper = load_feed(DAY).papers[0]
    digest = compose_digest([DigestEntry(paper=paper, matches=(Match(3, "a`b``c"),))], max_papers=5)
    line = header_line(digest)
    assert "1 new paper" in line
    assert "1 new papers" not in line
    assert line.count("`") == 2  # only the pair around the query


def test_header_is_shortened_to_its_limit() -> None:
    paper = load_feed(DAY).papers[0]
    matches = tuple(Match(i, f"query number {i} " + "x" * 80) for i in range(1, 60))
    digest = compose_digest([DigestEntry(paper=paper, matches=matches)], max_papers=5)
    line = header_line(digest, limit=500)
    assert len(line) <= 500
    assert "(#1)" in line


def test_group_pending_one_entry_per_paper_with_every_match() -> None:
    papers = load_feed(DAY).papers
    pairs = [
        (papers[0], Match(1, "a")),
        (papers[1], Match(1, "a")),
        (papers[0], Match(2, "b")),
    ]
    grouped = group_pending(pairs)
    assert [e.paper.arxiv_id for e in grouped] == [papers[0].arxiv_id, papers[1].arxiv_id]
    assert [m.watch_id for m in grouped[0].matches] == [1, 2]


def test_empty_digest() -> None:
    digest = compose_digest([], max_papers=25)
    assert digest.entries == []
    assert digest.total == 0
    assert overflow_line(digest) is None
    assert "0 new papers" in header_line(digest)


def test_timezones_of_dates_are_compared_as_instants() -> None:
    base = load_feed(DAY).papers[0]
    a = replace(base, arxiv_id="2406.00001", upvotes=1, published_at=datetime(2024, 6, 1, 12, tzinfo=UTC))
    later_in_utc = datetime(2024, 6, 1, 12, 30, tzinfo=UTC).astimezone(ZoneInfo("America/New_York"))
    b = replace(base, arxiv_id="2406.00002", upvotes=1, published_at=later_in_utc)
    digest = compose_digest(entries_of([a, b]), max_papers=5)
    assert [e.paper.arxiv_id for e in digest.entries] == ["2406.00002", "2406.00001"]
    assert later_in_utc - a.published_at == timedelta(minutes=30)  # type: ignore[operator]
