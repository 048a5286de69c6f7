"""Recognising saved feed files by their content, as `match --feed FILE` does."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from bot.feeds.detect import parse_feed_bytes, parse_feed_file

from .conftest import ARXIV_DIR, HF_DIR, arxiv_bytes, hf_bytes

EXPECTED = {
    "hf_daily/2024-06-21.json": (21, None),
    "hf_daily/2024-11-28.json": (20, None),
    "hf_daily/2025-03-17.json": (12, None),
    "hf_daily/2025-07-15.json": (10, None),
    "hf_daily/2025-09-30.json": (50, None),
    "hf_daily/2025-10-03.json": (39, None),
    "hf_daily/2025-12-25.json": (13, None),
    "hf_daily/2026-03-10.json": (28, None),
    "hf_daily/2026-06-03.json": (23, None),
    "hf_daily/2026-07-15.json": (2, None),
    "arxiv/rss_all-archives_2024-11-28.xml": (1504, None),
    "arxiv/rss_astroph-bad-archive-error_2024-11-28.xml": (0, "Feed error for query"),
    "arxiv/api_search_testing_s0_m10_2026-04-12.xml": (10, None),
    "arxiv/api_search_au-del_maestro_2016-10-09.xml": (10, None),
    "arxiv/api_idlist_astro-ph_0601001_2026-05-11.xml": (1, None),
    "arxiv/api_idlist_abc-error400_2026-04-12.xml": (0, "incorrect id format for abc"),
}


def test_every_fixture_is_listed() -> None:
    on_disk = {f"hf_daily/{p.name}" for p in HF_DIR.glob("*.json")} | {
        f"arxiv/{p.name}" for p in ARXIV_DIR.glob("*.xml")
    }
    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize(("relative", "expected"), EXPECTED.items())
def test_every_fixture_file_parses(relative: str, expected: tuple[int, str | None]) -> None:
    count, error = expected
    result = parse_feed_file(ARXIV_DIR.parent / relative)
    assert len(result.papers) == count
    if error is None:
        assert result.error is None
    else:
        assert result.error is not None and error in result.error


def test_hf_files_named_by_date_get_that_day(tmp_path: Path) -> None:
    result = parse_feed_file(HF_DIR / "2024-06-21.json")
    assert {p.hf_date for p in result.papers} == {date(2024, 6, 21)}
    renamed = tmp_path / "today.json"
    renamed.write_bytes(hf_bytes("2024-06-21"))
    assert {p.hf_date for p in parse_feed_file(renamed).papers} == {None}


def test_a_byte_order_mark_and_leading_whitespace_are_fine() -> None:
    assert len(parse_feed_bytes(b"\xef\xbb\xbf\n  " + hf_bytes("2026-07-15")).papers) == 2
    assert (
        len(parse_feed_bytes(b"\n\n" + arxiv_bytes("api_idlist_astro-ph_0601001_2026-05-11.xml")).papers) == 1
    )


def test_the_day_is_passed_to_the_hf_parser() -> None:
    result = parse_feed_bytes(hf_bytes("2024-11-28"), day=date(2024, 11, 28))
    assert {p.hf_date for p in result.papers} == {date(2024, 11, 28)}


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"", "unrecognised feed format"),
        (b"hello", "unrecognised feed format"),
        (
            b"<!DOCTYPE html><html><body>Bad gateway</body></html>",
            "unrecognised feed format (root element <html>)",
        ),
        (b"<?xml version='1.0'?><!-- a comment --><opml/>", "unrecognised feed format (root element <opml>)"),
        (b"{}", "expected a JSON array"),
    ],
)
def test_unknown_content_is_a_feed_error(content: bytes, error: str) -> None:
    result = parse_feed_bytes(content)
    assert result.papers == []
    assert result.error == error or (result.error is not None and error in result.error)


def test_an_empty_hf_day_is_recognised() -> None:
    result = parse_feed_bytes(b"[]")
    assert result.papers == [] and result.error is None


def test_a_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        parse_feed_file(tmp_path / "missing.json")
