"""Tests of the pure domain: text, queries, matching.

`hf_fixture_papers` reads the real Hugging Face Daily Papers fixtures into `Paper`
values with a deliberately small loader, independent of the feed parsers.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from bot.domain.paper import HF, Paper

HF_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "feeds" / "hf_daily"


@cache
def hf_fixture_papers() -> tuple[Paper, ...]:
    """Every paper of the HF fixture files, in file order."""
    papers: list[Paper] = []
    for path in sorted(HF_FIXTURES.glob("*.json")):
        for entry in json.loads(path.read_text(encoding="utf-8")):
            raw = entry["paper"]
            papers.append(
                Paper(
                    arxiv_id=raw["id"],
                    title=" ".join(raw["title"].split()),
                    abstract=raw["summary"],
                    authors=tuple(author["name"] for author in raw["authors"]),
                    sources=frozenset({HF}),
                    upvotes=raw.get("upvotes", 0),
                )
            )
    return tuple(papers)
