"""Mutated real feeds never make a parser raise: they give a FeedResult, papers or not."""

from __future__ import annotations

import json
from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.domain.paper import FeedResult, normalize_arxiv_id
from bot.feeds.arxiv_api import parse_arxiv_api
from bot.feeds.arxiv_rss import parse_arxiv_rss
from bot.feeds.detect import parse_feed_bytes
from bot.feeds.hf import parse_hf_daily

from .conftest import arxiv_bytes, hf_bytes, small_rss

HF_SAMPLES = ["2026-07-15", "2025-07-15", "2024-06-21"]
XML_SAMPLES = {
    "rss": small_rss(),
    "api-2026": arxiv_bytes("api_search_testing_s0_m10_2026-04-12.xml"),
    "api-2016": arxiv_bytes("api_search_au-del_maestro_2016-10-09.xml"),
    "api-old-id": arxiv_bytes("api_idlist_astro-ph_0601001_2026-05-11.xml"),
    "api-error": arxiv_bytes("api_idlist_abc-error400_2026-04-12.xml"),
    "rss-error": arxiv_bytes("rss_astroph-bad-archive-error_2024-11-28.xml"),
}
ALL_SAMPLES = [hf_bytes(day) for day in HF_SAMPLES] + list(XML_SAMPLES.values())

fuzz = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)
PAPER_FIELDS = [
    "id",
    "title",
    "summary",
    "authors",
    "publishedAt",
    "upvotes",
    "submittedOnDailyAt",
    "ai_summary",
    "ai_keywords",
    "githubRepo",
    "projectPage",
]
ENTRY_FIELDS = ["paper", "title", "numComments", "summary", "publishedAt"]


def well_formed(result: FeedResult) -> None:
    assert isinstance(result, FeedResult)
    for paper in result.papers:
        assert normalize_arxiv_id(paper.arxiv_id) == paper.arxiv_id
        assert paper.title.strip()
        assert all(isinstance(name, str) and name for name in paper.authors)
        assert paper.published_at is None or paper.published_at.tzinfo is not None
    if result.error is not None:
        assert result.papers == []


def flip(content: bytes, flips: list[tuple[int, int]]) -> bytes:
    data = bytearray(content)
    for position, value in flips:
        data[position % len(data)] = value
    return bytes(data)


@fuzz
@given(
    sample=st.sampled_from(ALL_SAMPLES),
    flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=12),
)
def test_byte_flips_never_raise(sample: bytes, flips: list[tuple[int, int]]) -> None:
    mutated = flip(sample, flips)
    for parse in (parse_hf_daily, parse_arxiv_rss, parse_arxiv_api, parse_feed_bytes):
        well_formed(parse(mutated))


@fuzz
@given(sample=st.sampled_from(ALL_SAMPLES), cut=st.floats(min_value=0, max_value=1))
def test_truncation_never_raises(sample: bytes, cut: float) -> None:
    truncated = sample[: int(len(sample) * cut)]
    well_formed(parse_feed_bytes(truncated, day=date(2025, 7, 15)))
    well_formed(parse_hf_daily(truncated))
    well_formed(parse_arxiv_rss(truncated))
    well_formed(parse_arxiv_api(truncated))


@fuzz
@given(
    day=st.sampled_from(HF_SAMPLES),
    edits=st.lists(
        st.tuples(
            st.integers(min_value=0),
            st.sampled_from([("paper", f) for f in PAPER_FIELDS] + [("entry", f) for f in ENTRY_FIELDS]),
            st.one_of(st.just("<delete>"), JSON_VALUES),
        ),
        min_size=1,
        max_size=8,
    ),
)
def test_hf_entry_field_deletion_or_type_change_never_raises(day: str, edits: list) -> None:
    entries = json.loads(hf_bytes(day))
    touched: set[int] = set()
    for position, (where, field), value in edits:
        index = position % len(entries)
        touched.add(index)
        target = entries[index]
        if where == "paper":
            if not isinstance(target.get("paper"), dict):
                continue
            target = target["paper"]
        if value == "<delete>":
            target.pop(field, None)
        else:
            target[field] = value

    result = parse_hf_daily(json.dumps(entries).encode(), day=date.fromisoformat(day))

    well_formed(result)
    assert result.error is None
    assert len(result.papers) + len(result.skipped) >= len(entries) - len(touched)
    untouched = {entries[i]["paper"]["id"] for i in range(len(entries)) if i not in touched}
    assert untouched <= {p.arxiv_id for p in result.papers}


@fuzz
@given(
    name=st.sampled_from(sorted(XML_SAMPLES)),
    position=st.integers(min_value=0),
    junk=st.binary(min_size=1, max_size=30)
    | st.sampled_from([b"<", b"&", b"]]>", b"</item>", b"</entry>", b"<!--"]),
)
def test_xml_with_inserted_junk_never_raises(name: str, position: int, junk: bytes) -> None:
    sample = XML_SAMPLES[name]
    at = position % len(sample)
    mutated = sample[:at] + junk + sample[at:]
    well_formed(parse_arxiv_rss(mutated))
    well_formed(parse_arxiv_api(mutated))
    well_formed(parse_feed_bytes(mutated))


@fuzz
@given(creator=st.text(max_size=80))
def test_any_creator_string_splits_without_raising(creator: str) -> None:
    from bot.feeds.arxiv_rss import split_authors

    names = split_authors(creator)
    assert all(isinstance(name, str) and name == name.strip() and name for name in names)
