"""arXiv RSS parsing, against the real rss.arxiv.org captures."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, date, datetime

import pytest

from bot.domain.paper import ARXIV, HF, FeedResult, Paper
from bot.feeds.arxiv_rss import parse_arxiv_rss, rss_url_for, split_authors
from bot.feeds.hf import parse_hf_daily

from .conftest import RSS_ALL, arxiv_bytes, hf_bytes, small_rss

OVERLAP_2024_11_28 = {
    "2411.17949",
    "2411.18613",
    "2411.17945",
    "2411.18279",
    "2411.17786",
    "2411.17787",
    "2411.18197",
    "2411.17769",
    "2411.18363",
    "2411.18462",
    "2411.17991",
    "2411.18412",
    "2411.18104",
}


def paper(result: FeedResult, arxiv_id: str):
    return next(p for p in result.papers if p.arxiv_id == arxiv_id)


def test_all_archives_capture_gives_1504_papers(rss_all: FeedResult) -> None:
    assert rss_all.error is None
    assert rss_all.skipped == []
    assert len(rss_all.papers) == 1504
    assert Counter(p.announce_type for p in rss_all.papers) == {"new": 926, "cross": 9, "replace": 569}
    for item in rss_all.papers:
        assert item.sources == frozenset({ARXIV})
        assert item.title and item.abstract and item.authors and item.categories
        assert item.version is not None
        assert item.published_at == datetime(2024, 11, 28, 5, 0, tzinfo=UTC)


def test_first_item_fields(rss_all: FeedResult) -> None:
    first = rss_all.papers[0]
    assert first.arxiv_id == "2411.17700"
    assert first.version == 1
    assert first.title.startswith("Exploring the Impact of Generative AI on Cross-Border E-Commerce")
    assert first.abstract.startswith("This study investigates the influence of generative artificial")
    assert not first.abstract.startswith("arXiv:")
    assert first.authors == ("Jun Cui",)
    assert first.categories == ("cs.CY",)
    assert first.announce_type == "new"
    assert first.hf_url is None and first.url == "https://arxiv.org/abs/2411.17700"


def test_categories_are_all_kept_in_order(rss_all: FeedResult) -> None:
    assert paper(rss_all, "2411.17702").categories == ("eess.SP", "cs.LG")


def test_tex_accents_in_author_names_are_decoded(rss_all: FeedResult) -> None:
    assert "Benjamin Rémy" in paper(rss_all, "2411.17748").authors
    assert "Przemysław Olbratowski" in paper(rss_all, "2411.17709").authors
    assert "Özenç Güngör" in paper(rss_all, "2211.02603").authors
    for item in rss_all.papers:
        for name in item.authors:
            assert "\\" not in name and "{" not in name and "}" not in name, (item.arxiv_id, name)


def test_affiliations_are_stripped_and_their_commas_do_not_split_names(rss_all: FeedResult) -> None:
    assert paper(rss_all, "2411.17748").authors == (
        "Mohammed Riadh Berramdane",
        "Alexandre Battiston",
        "Michele Bardi",
        "Nicolas Blet",
        "Benjamin Rémy",
        "Matthieu Urbain",
    )
    assert paper(rss_all, "2411.06802").authors == (
        "Yuxiu Shao",
        "David Dahmen",
        "Stefano Recanatesi",
        "Eric Shea-Brown",
        "Srdjan Ostojic",
    )
    assert paper(rss_all, "2411.17801").authors == ("Aaron B. Pearlman",)
    for item in rss_all.papers:
        assert not any("(" in name or ")" in name for name in item.authors), item.arxiv_id


def test_nicknames_that_arxiv_split_off_are_joined_back(rss_all: FeedResult) -> None:
    assert paper(rss_all, "2411.17965").authors == ("Shuli Jiang", "Qiuyi Zhang", "Gauri Joshi")
    assert paper(rss_all, "2411.18129").authors == ("Yuxuan Wang", "Kaige Qu", "Wen Wu", "Xuemin Shen")


@pytest.mark.parametrize(
    ("creator", "names"),
    [
        ("A. One, B. Two and C. Three", ("A. One", "B. Two", "C. Three")),
        ("A. One, B. Two, and C. Three", ("A. One", "B. Two", "C. Three")),
        ("Gergely Zar\\'and, Mikl\\'os Antal Werner", ("Gergely Zaránd", "Miklós Antal Werner")),
        ("Jane Doe (Dept. of X and Y, Univ. Z, USA), John Roe", ("Jane Doe", "John Roe")),
        ("Krishna Shende, Kavita Dorai,  Arvind", ("Krishna Shende", "Kavita Dorai", "Arvind")),
        ("Unclosed (Affiliation, Second Author", ("Unclosed Affiliation", "Second Author")),
        ("Sofie Castro Holb{\\ae}k", ("Sofie Castro Holbæk",)),
        ("Jos\\'e~Luis 100% Real", ("José Luis 100% Real",)),
        ("", ()),
        (" , ,", ()),
    ],
)
def test_split_authors(creator: str, names: tuple[str, ...]) -> None:
    assert split_authors(creator) == names


def test_latex_in_titles_is_left_alone(rss_all: FeedResult) -> None:
    with_math = [p for p in rss_all.papers if "$" in p.title]
    assert len(with_math) >= 80
    assert any("\\" in p.title for p in with_math)


def test_bad_archive_feed_is_a_feed_error() -> None:
    result = parse_arxiv_rss(arxiv_bytes("rss_astroph-bad-archive-error_2024-11-28.xml"))
    assert result.papers == []
    assert result.error == "Feed error for query: http://rss.arxiv.org/rss/astroph"


def test_hf_and_rss_agree_on_the_papers_they_share(rss_all: FeedResult) -> None:
    hf = {p.arxiv_id: p for p in parse_hf_daily(hf_bytes("2024-11-28"), day=date(2024, 11, 28)).papers}
    rss = {p.arxiv_id: p for p in rss_all.papers}
    assert set(hf) & set(rss) == OVERLAP_2024_11_28
    for arxiv_id in OVERLAP_2024_11_28:
        assert hf[arxiv_id].title == rss[arxiv_id].title
        assert hf[arxiv_id].authors == rss[arxiv_id].authors


@pytest.mark.parametrize("hf_first", [True, False])
def test_merging_a_shared_paper_gives_one_paper_with_both_sources(
    rss_all: FeedResult, hf_first: bool
) -> None:
    hf = {p.arxiv_id: p for p in parse_hf_daily(hf_bytes("2024-11-28"), day=date(2024, 11, 28)).papers}
    rss = {p.arxiv_id: p for p in rss_all.papers}
    merged: dict[str, Paper] = {}
    feeds = [hf.values(), rss.values()] if hf_first else [rss.values(), hf.values()]
    for feed in feeds:
        for item in feed:
            known = merged.get(item.arxiv_id)
            merged[item.arxiv_id] = known.merged_with(item) if known is not None else item
    assert len(merged) == len(set(hf) | set(rss))
    for arxiv_id in OVERLAP_2024_11_28:
        both = merged[arxiv_id]
        assert both.sources == frozenset({HF, ARXIV})
        assert both.upvotes == hf[arxiv_id].upvotes
        assert both.categories == rss[arxiv_id].categories
        assert both.hf_date == date(2024, 11, 28)
        assert both.url == f"https://huggingface.co/papers/{arxiv_id}"


def _replace_once(content: bytes, old: bytes, new: bytes) -> bytes:
    assert content.count(old) >= 1, old
    return content.replace(old, new, 1)


def test_items_without_a_usable_id_or_title_are_skipped_and_the_rest_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    content = small_rss()
    content = _replace_once(content, b'<guid isPermaLink="false">oai:arXiv.org:2411.17702v1</guid>', b"")
    content = _replace_once(content, b"<link>https://arxiv.org/abs/2411.17702</link>", b"")
    content = _replace_once(
        content, b'<guid isPermaLink="false">oai:arXiv.org:2411.17704v1</guid>', b"<guid>rubbish!</guid>"
    )
    content = _replace_once(content, b"<link>https://arxiv.org/abs/2411.17704</link>", b"<link>nope</link>")
    content = _replace_once(
        content,
        b"<title>Probabilistic Forecasting of Radiation Exposure for Spaceflight</title>",
        b"<title>   </title>",
    )

    with caplog.at_level(logging.WARNING, logger="bot.feeds.arxiv_rss"):
        result = parse_arxiv_rss(content)

    assert result.error is None
    assert {s.entry_id for s in result.skipped} == {"2411.17702v1", "rubbish!", "2411.17703"}
    assert len(result.papers) == 12
    all_ids = [p.arxiv_id for p in parse_arxiv_rss(small_rss()).papers]
    assert [p.arxiv_id for p in result.papers] == [
        i for i in all_ids if i not in {"2411.17702", "2411.17703", "2411.17704"}
    ]
    assert "rubbish!" in caplog.text


def test_an_item_that_breaks_the_xml_costs_only_that_item() -> None:
    content = _replace_once(
        small_rss(),
        b"<title>Probabilistic Forecasting of Radiation Exposure for Spaceflight</title>",
        b"<title>Probabilistic <b>Forecasting & Co</title>",
    )
    result = parse_arxiv_rss(content)
    assert result.error is None
    assert [s.entry_id for s in result.skipped] == ["oai:arXiv.org:2411.17703v1"]
    assert len(result.papers) == 14
    assert "2411.17703" not in {p.arxiv_id for p in result.papers}


def test_a_truncated_feed_keeps_its_complete_items() -> None:
    raw = arxiv_bytes(RSS_ALL)
    cut = raw.index(b"<item>", raw.index(b"oai:arXiv.org:2411.17710v1")) + 200
    result = parse_arxiv_rss(raw[:cut])
    assert result.error is None
    assert [p.arxiv_id for p in result.papers][-1] == "2411.17710"
    assert len(result.papers) == 11
    assert [s.reason for s in result.skipped] == ["truncated"]


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<rss version="2.0"><channel><title>x</title><item><title>&lol9;</title>
<link>https://arxiv.org/abs/2411.17700</link><guid>oai:arXiv.org:2411.17700v1</guid></item></channel></rss>
"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><title>x</title><item><title>&secret;</title>
<link>https://arxiv.org/abs/2411.17700</link><guid>oai:arXiv.org:2411.17700v1</guid></item></channel></rss>
"""


@pytest.mark.parametrize(
    "content", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["billion-laughs", "external-entity"]
)
def test_entity_tricks_are_refused_not_parsed(content: bytes) -> None:
    result = parse_arxiv_rss(content)
    assert result.papers == []
    assert result.error is not None and "refused" in result.error


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "not well-formed"),
        (b"<html><body>Service unavailable</body></html>", "not an RSS feed"),
        (b"<rss version='2.0'></rss>", "no channel"),
        (arxiv_bytes("api_search_testing_s0_m10_2026-04-12.xml"), "not an RSS feed"),
    ],
)
def test_documents_that_are_not_rss_are_feed_errors(content: bytes, fragment: str) -> None:
    result = parse_arxiv_rss(content)
    assert result.papers == []
    assert result.error is not None and fragment in result.error


def test_an_empty_channel_is_no_papers_and_no_error() -> None:
    result = parse_arxiv_rss(
        b"<rss version='2.0'><channel><title>cs updates on arXiv.org</title></channel></rss>"
    )
    assert result == FeedResult(papers=[])


def test_rss_url_for_joins_categories_with_plus() -> None:
    assert (
        rss_url_for("https://rss.arxiv.org/rss/", ["cs.CL", "cs.LG"])
        == "https://rss.arxiv.org/rss/cs.CL+cs.LG"
    )
    assert rss_url_for("https://rss.arxiv.org/rss", ("astro-ph",)) == "https://rss.arxiv.org/rss/astro-ph"
    with pytest.raises(ValueError, match="category"):
        rss_url_for("https://rss.arxiv.org/rss/", [])
    with pytest.raises(ValueError, match="not an arXiv category"):
        rss_url_for("https://rss.arxiv.org/rss/", ["cs.CL", "../etc?x=1"])
