"""arXiv export API (Atom) parsing, against real 2016 and 2026 responses."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.domain.paper import ARXIV, FeedResult
from bot.feeds.arxiv_api import parse_arxiv_api

from .conftest import arxiv_bytes

TESTING = "api_search_testing_s0_m10_2026-04-12.xml"
DEL_MAESTRO = "api_search_au-del_maestro_2016-10-09.xml"
OLD_STYLE = "api_idlist_astro-ph_0601001_2026-05-11.xml"
ERROR_400 = "api_idlist_abc-error400_2026-04-12.xml"


def parse(name: str) -> FeedResult:
    return parse_arxiv_api(arxiv_bytes(name))


@pytest.mark.parametrize(("name", "count"), [(TESTING, 10), (DEL_MAESTRO, 10), (OLD_STYLE, 1)])
def test_every_entry_becomes_a_paper(name: str, count: int) -> None:
    result = parse(name)
    assert result.error is None
    assert result.skipped == []
    assert len(result.papers) == count
    for paper in result.papers:
        assert paper.sources == frozenset({ARXIV})
        assert paper.title and "\n" not in paper.title and "  " not in paper.title
        assert paper.abstract and "\n" not in paper.abstract and not paper.abstract.startswith(" ")
        assert paper.authors and paper.categories and paper.version is not None
        assert paper.published_at is not None and paper.published_at.tzinfo is not None


def test_2026_layout_fields() -> None:
    first = parse(TESTING).papers[0]
    assert first.arxiv_id == "2202.12139"
    assert first.version == 1
    assert (
        first.title
        == "Testing Deep Learning Models: A First Comparative Study of Multiple Testing Techniques"
    )
    assert first.authors == ("Mohit Kumar Ahuja", "Arnaud Gotlieb", "Helge Spieker")
    assert first.categories == ("cs.SE", "cs.LG")
    assert first.published_at == datetime(2022, 2, 24, 15, 5, 19, tzinfo=UTC)


def test_utf8_author_names_survive() -> None:
    authors = [name for paper in parse(TESTING).papers for name in paper.authors]
    assert "Aurora Ramírez" in authors
    assert "José Raúl Romero" in authors


def test_2016_layout_with_wrapped_text_and_old_style_ids() -> None:
    result = parse(DEL_MAESTRO)
    first = result.papers[0]
    assert first.arxiv_id == "1201.4869"
    assert first.title == "A Luttinger Liquid Core Inside Helium-4 Filled Nanopores"
    assert first.abstract.startswith(
        "As helium-4 is cooled below 2.17 K it undergoes a phase transition to a fundamentally"
    )
    assert first.categories == ("cond-mat.mes-hall", "cond-mat.other")
    assert all(name == "Adrian Del Maestro" for name in first.authors)
    assert "cond-mat/0412498" in {p.arxiv_id for p in result.papers}


def test_primary_category_comes_first() -> None:
    content = arxiv_bytes(TESTING).replace(
        b'<arxiv:primary_category term="cs.SE"/>', b'<arxiv:primary_category term="cs.LG"/>', 1
    )
    assert parse_arxiv_api(content).papers[0].categories == ("cs.LG", "cs.SE")


def test_old_style_id_with_affiliations() -> None:
    paper = parse(OLD_STYLE).papers[0]
    assert paper.arxiv_id == "astro-ph/0601001"
    assert paper.version == 1
    assert paper.authors == ("Andrew Gould", "Susan Dorsher", "B. Scott Gaudi", "Andrzej Udalski")
    assert paper.categories == ("astro-ph",)
    assert paper.abs_url == "https://arxiv.org/abs/astro-ph/0601001"


def test_the_error_entry_is_a_feed_error_never_a_paper() -> None:
    result = parse(ERROR_400)
    assert result.papers == []
    assert result.error == "incorrect id format for abc"


def test_an_entry_without_an_arxiv_id_is_skipped_and_the_rest_kept() -> None:
    content = arxiv_bytes(TESTING).replace(
        b"<id>http://arxiv.org/abs/2405.13786v1</id>", b"<id>http://example.org/whatever</id>", 1
    )
    content = content.replace(
        b"<title>Testing Deep Learning Models: A First Comparative Study of Multiple Testing "
        b"Techniques</title>",
        b"<title/>",
        1,
    )
    result = parse_arxiv_api(content)
    assert {s.entry_id for s in result.skipped} == {"http://example.org/whatever", "2202.12139"}
    assert len(result.papers) == 8


def test_a_broken_entry_costs_only_that_entry() -> None:
    content = arxiv_bytes(TESTING).replace(
        b"<title>Towards Explainable Test Case Prioritisation", b"<title><<Towards Explainable Test Case", 1
    )
    result = parse_arxiv_api(content)
    assert result.error is None
    assert [s.entry_id for s in result.skipped] == ["http://arxiv.org/abs/2405.13786v1"]
    assert len(result.papers) == 9


def test_no_entries_is_no_papers_and_no_error() -> None:
    empty = (
        b"<?xml version='1.0' encoding='UTF-8'?><feed xmlns='http://www.w3.org/2005/Atom' "
        b"xmlns:opensearch='http://a9.com/-/spec/opensearch/1.1/'>"
        b"<title>arXiv Query</title><opensearch:totalResults>0</opensearch:totalResults></feed>"
    )
    assert parse_arxiv_api(empty) == FeedResult(papers=[])


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"Rate exceeded.", "not well-formed"),
        (arxiv_bytes("rss_astroph-bad-archive-error_2024-11-28.xml"), "not an Atom feed"),
        (b'<!DOCTYPE feed [<!ENTITY e SYSTEM "file:///etc/passwd">]><feed/>', "refused"),
    ],
)
def test_documents_that_are_not_atom_are_feed_errors(content: bytes, fragment: str) -> None:
    result = parse_arxiv_api(content)
    assert result.papers == []
    assert result.error is not None and fragment in result.error
