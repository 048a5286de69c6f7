"""Hugging Face Daily Papers parsing, against the real captured responses."""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime

import pytest

from bot.domain.paper import HF, SkippedEntry
from bot.feeds.hf import parse_hf_daily

from .conftest import hf_bytes

EXPECTED_COUNTS = {
    "2024-06-21": 21,
    "2024-11-28": 20,
    "2025-03-17": 12,
    "2025-07-15": 10,
    "2025-09-30": 50,
    "2025-10-03": 39,
    "2025-12-25": 13,
    "2026-03-10": 28,
    "2026-06-03": 23,
    "2026-07-15": 2,
}


def entries(day: str) -> list[dict]:
    return json.loads(hf_bytes(day))


def by_id(day: str):
    return {
        paper.arxiv_id: paper for paper in parse_hf_daily(hf_bytes(day), day=date.fromisoformat(day)).papers
    }


@pytest.mark.parametrize(("day", "count"), EXPECTED_COUNTS.items())
def test_every_entry_of_every_day_becomes_a_paper(day: str, count: int) -> None:
    result = parse_hf_daily(hf_bytes(day), day=date.fromisoformat(day))

    assert result.error is None
    assert result.skipped == []
    assert len(result.papers) == count
    assert [p.arxiv_id for p in result.papers] == [e["paper"]["id"] for e in entries(day)]
    for paper in result.papers:
        assert paper.sources == frozenset({HF})
        assert paper.title and "\n" not in paper.title and "  " not in paper.title
        assert paper.abstract and "\n" not in paper.abstract
        assert paper.authors
        assert paper.hf_date == date.fromisoformat(day)
        assert paper.published_at is not None and paper.published_at.tzinfo is not None


def test_2024_hard_wrapped_titles_and_abstracts_are_joined() -> None:
    raw = entries("2024-06-21")
    wrapped = [e for e in raw if "\n" in e["paper"]["title"]]
    assert len(wrapped) == 16
    papers = by_id("2024-06-21")
    for entry in wrapped:
        paper = papers[entry["paper"]["id"]]
        assert paper.title == " ".join(entry["paper"]["title"].split())
        assert "\n" not in paper.abstract
    first = papers["2406.14347"]
    assert first.title == (
        "nabla^2DFT: A Universal Quantum Chemistry Dataset of Drug-Like Molecules "
        "and a Benchmark for Neural Network Potentials"
    )


def test_titles_keep_latex_escaped_dollars_and_greek() -> None:
    march = by_id("2026-03-10")
    assert any(p.title.startswith("\\$OneMillion-Bench: ") for p in march.values())
    june = by_id("2026-06-03")
    assert any(p.title.startswith("Ψ-Bench: ") for p in june.values())
    assert any(p.title.startswith("αDepth: ") for p in june.values())


def test_a_358_author_paper_keeps_every_author_in_order() -> None:
    paper = by_id("2025-12-25")["2512.20856"]
    raw = next(e for e in entries("2025-12-25") if e["paper"]["id"] == "2512.20856")
    assert len(paper.authors) == 358
    assert list(paper.authors) == [a["name"] for a in raw["paper"]["authors"]]


def test_hidden_authors_are_kept() -> None:
    paper = by_id("2025-09-30")["2509.22518"]
    assert paper.authors[0] == "Bo Li"
    assert len(paper.authors) == 8


def test_fields_are_taken_from_the_right_places() -> None:
    raw = next(
        e for e in entries("2025-07-15") if e["paper"].get("githubRepo") and e["paper"].get("projectPage")
    )
    paper = by_id("2025-07-15")[raw["paper"]["id"]]
    assert paper.upvotes == raw["paper"]["upvotes"]
    assert paper.comments == raw["numComments"]
    assert paper.ai_summary == raw["paper"]["ai_summary"]
    assert paper.ai_keywords == tuple(raw["paper"]["ai_keywords"])
    assert paper.github_url == raw["paper"]["githubRepo"]
    assert paper.project_url == raw["paper"]["projectPage"]
    assert paper.hf_url == f"https://huggingface.co/papers/{paper.arxiv_id}"


def test_published_at_is_the_arxiv_submission_time_not_the_top_level_one() -> None:
    raw = entries("2026-03-10")[0]
    paper = by_id("2026-03-10")[raw["paper"]["id"]]
    expected = datetime.fromisoformat(raw["paper"]["publishedAt"])
    assert paper.published_at == expected
    assert paper.published_at != datetime.fromisoformat(raw["publishedAt"])
    assert paper.published_at.tzinfo == UTC


def test_daily_date_prefers_submitted_on_daily_at_over_the_queried_day() -> None:
    result = parse_hf_daily(hf_bytes("2025-03-17"), day=date(2000, 1, 1))
    assert {p.hf_date for p in result.papers} == {date(2025, 3, 17)}
    older = parse_hf_daily(hf_bytes("2024-06-21"), day=date(2024, 6, 21))
    assert {p.hf_date for p in older.papers} == {date(2024, 6, 21)}
    assert {p.hf_date for p in parse_hf_daily(hf_bytes("2024-06-21")).papers} == {None}


def test_missing_optional_fields_give_defaults() -> None:
    papers = by_id("2026-07-15")
    for paper in papers.values():
        assert paper.ai_summary is None
        assert paper.ai_keywords == ()
        assert paper.github_url is None
    assert sum(p.project_url is not None for p in papers.values()) == 1
    early = by_id("2025-03-17")
    assert all(p.ai_summary is None for p in early.values())


def test_nulls_are_tolerated_everywhere_optional() -> None:
    raw = entries("2025-07-15")
    entry = raw[0]
    for key in (
        "ai_summary",
        "ai_keywords",
        "githubRepo",
        "projectPage",
        "upvotes",
        "publishedAt",
        "summary",
    ):
        entry["paper"][key] = None
    entry["paper"]["authors"] = None
    entry["numComments"] = None
    entry["summary"] = None
    raw[1]["paper"]["authors"] = [None, {"name": None}, {"_id": "x"}, {"name": "  Ada   Lovelace "}, 7]

    result = parse_hf_daily(json.dumps(raw).encode())

    assert result.skipped == []
    first, second = result.papers[0], result.papers[1]
    assert first.arxiv_id == entry["paper"]["id"]
    assert (first.ai_summary, first.ai_keywords, first.github_url, first.project_url) == (
        None,
        (),
        None,
        None,
    )
    assert (first.upvotes, first.comments, first.published_at, first.abstract, first.authors) == (
        0,
        0,
        None,
        "",
        (),
    )
    assert second.authors == ("Ada Lovelace",)


def test_only_web_links_are_kept() -> None:
    raw = entries("2025-07-15")
    raw[0]["paper"]["githubRepo"] = "javascript:alert(1)"
    raw[0]["paper"]["projectPage"] = 42
    paper = parse_hf_daily(json.dumps(raw).encode()).papers[0]
    assert paper.github_url is None
    assert paper.project_url is None


def test_broken_entries_are_skipped_with_their_ids_and_the_rest_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    raw = entries("2025-09-30")
    ids = [e["paper"]["id"] for e in raw]
    del raw[3]["paper"]
    raw[5]["paper"]["id"] = 250912345
    raw[7]["paper"]["title"] = None
    raw[7]["title"] = None
    raw[9]["paper"]["id"] = "not-an-arxiv-id"
    raw[11] = "garbage"
    raw[13]["paper"] = ["wrong", "type"]
    raw[15]["paper"]["title"] = 12

    with caplog.at_level(logging.WARNING, logger="bot.feeds.hf"):
        result = parse_hf_daily(json.dumps(raw, ensure_ascii=False).encode())

    assert result.error is None
    assert {s.entry_id for s in result.skipped} == {
        "entry 3",
        "250912345",
        ids[7],
        "not-an-arxiv-id",
        "entry 11",
        "entry 13",
    }
    assert all(s.reason for s in result.skipped)
    broken = {3, 5, 7, 9, 11, 13}
    kept = [i for n, i in enumerate(ids) if n not in broken]
    assert [p.arxiv_id for p in result.papers] == kept
    assert len(result.papers) == 44
    assert next(p for p in result.papers if p.arxiv_id == ids[15]).title == " ".join(raw[15]["title"].split())
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert ids[7] in logged and "not-an-arxiv-id" in logged and "entry 3" in logged


def test_top_level_title_stands_in_for_a_missing_paper_title() -> None:
    raw = entries("2024-11-28")
    raw[0]["paper"]["title"] = None
    paper = parse_hf_daily(json.dumps(raw).encode()).papers[0]
    assert paper.title == " ".join(raw[0]["title"].split())


def test_duplicate_ids_in_one_response_become_one_paper() -> None:
    raw = entries("2026-07-15")
    raw.append(json.loads(json.dumps(raw[0])))
    raw[-1]["paper"]["upvotes"] = 999
    result = parse_hf_daily(json.dumps(raw).encode())
    assert len(result.papers) == 2
    assert result.papers[0].upvotes == 999


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (
            b"<!DOCTYPE html><html><head><title>503</title></head><body>Service Unavailable</body></html>",
            "HTML",
        ),
        (hf_bytes("2025-07-15")[:5000], "not valid JSON"),
        (b"{}", "expected a JSON array"),
        (b'{"error": "Invalid date"}', "expected a JSON array"),
        (b"null", "expected a JSON array"),
        (b"", "empty response"),
        (b"\xff\xfe\x00garbage", "JSON"),
        (b"[" * 100_000, "JSON"),
    ],
)
def test_a_response_that_is_not_a_list_is_a_feed_error(content: bytes, fragment: str) -> None:
    result = parse_hf_daily(content)
    assert result.papers == []
    assert result.error is not None and fragment in result.error


def test_an_empty_weekend_day_is_no_papers_and_no_error() -> None:
    result = parse_hf_daily(b"[]", day=date(2025, 10, 4))
    assert result.papers == [] and result.skipped == [] and result.error is None


def test_versioned_ids_are_accepted() -> None:
    raw = entries("2026-07-15")
    raw[0]["paper"]["id"] = raw[0]["paper"]["id"] + "v3"
    paper = parse_hf_daily(json.dumps(raw).encode()).papers[0]
    assert "v" not in paper.arxiv_id and paper.version == 3


def test_skipped_entries_are_reported_as_skipped_entries() -> None:
    result = parse_hf_daily(b'[{"paper": {"id": "bad"}}, 5]')
    assert result.skipped == [
        SkippedEntry("bad", "paper.id 'bad' is not an arXiv id"),
        SkippedEntry("entry 1", "entry is a number, expected an object"),
    ]
