"""Benchmark: `/paper search` and `/watch test` on a large paper store, through the service layer.

Run from the repository root:

    .venv/bin/python -m bench.bench_search [--papers N] [--queries N] [--baseline-queries N]

Stores N papers (default 100,000: the fixture papers topped up with synthetic ones made of
their titles, sentences, authors and categories, first seen over the last year) in a temporary
SQLite file, then runs queries of every kind of the query language through `PaperService.search`
and `PaperService.preview` while a probe task measures how late the event loop wakes it (the
longest stall). The baseline is the load-everything approach the index replaced: load the newest
20,000 papers and run the matcher on the event loop. With PAPERWATCH_TEST_PG_URL set, the same
runs on PostgreSQL too (in a scratch database that is dropped afterwards).

The machine is shared: other processes on its two cores make both latencies and stalls longer
(the event loop waits for a core as much as for the search), so compare runs on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

from bench.bench_match import RESULTS, STOPWORDS, Corpus, load_corpus, make_papers
from bench.probe import PROBE_INTERVAL, StallProbe
from bot.config import load_settings
from bot.db.engine import create_engine
from bot.db.models import PaperRow
from bot.db.repo import PaperRepository
from bot.db.search_index import write_documents
from bot.domain.paper import Paper
from bot.domain.parser import parse_query
from bot.domain.query import ParseError
from bot.domain.text import words
from bot.services.core import Core

PG_ENV = "PAPERWATCH_TEST_PG_URL"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
BASELINE_LIMIT = 20_000
"""What the load-everything approach loaded: the newest 20,000 papers."""


class FixedClock:
    def now(self) -> datetime:
        return NOW


# --- the store ------------------------------------------------------------------------------


def spread(papers: list[Paper], rng: random.Random) -> list[tuple[Paper, datetime]]:
    """Each paper with a first-seen time over the last year, the fixture papers newest."""
    span = timedelta(days=365).total_seconds()
    count = len(papers)
    return [
        (paper, NOW - timedelta(seconds=span * index / count + rng.random()))
        for index, paper in enumerate(papers)
    ]


def row_of(paper: Paper, seen: datetime) -> dict[str, Any]:
    return {
        "arxiv_id": paper.arxiv_id,
        "title": paper.title,
        "abstract": paper.abstract,
        "authors": list(paper.authors),
        "sources": sorted(paper.sources),
        "categories": list(paper.categories),
        "ai_keywords": [],
        "upvotes": paper.upvotes,
        "comments": 0,
        "first_seen_at": seen,
        "updated_at": seen,
    }


async def fill(core: Core, papers: list[tuple[Paper, datetime]]) -> float:
    """Bulk insert: rows and their index entries, 5,000 per transaction; returns seconds."""
    started = time.perf_counter()
    for start in range(0, len(papers), 5000):
        chunk = papers[start : start + 5000]
        async with core.sessions.begin() as session:
            await session.execute(insert(PaperRow), [row_of(p, seen) for p, seen in chunk])
            await write_documents(session, [p for p, _ in chunk])
    async with core.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            await conn.execute(text("PRAGMA optimize"))
        else:
            await conn.execute(text("ANALYZE"))
    return time.perf_counter() - started


# --- queries of every kind --------------------------------------------------------------------


def make_queries(corpus: Corpus, count: int, rng: random.Random) -> list[str]:
    """`count` queries cycling through every kind of the query language."""
    vocabulary = sorted(
        {w for t in corpus.titles for w in words(t) if len(w) > 3 and w not in STOPWORDS and not w.isdigit()}
    )
    singulars = [w for w in vocabulary if not w.endswith("s")]
    phrases = [
        " ".join(found[i : i + 2]) for t in corpus.titles if len(found := words(t)) > 3 for i in (0, 1)
    ]
    names = sorted({a for a in corpus.authors if len(words(a)) >= 2})
    categories = sorted(set(corpus.categories))

    def term() -> str:
        return rng.choice(vocabulary)

    kinds: list[Callable[[], str]] = [
        term,
        lambda: rng.choice(singulars) + "s",  # plural: finds the singular too
        lambda: term()[: rng.randint(4, 7)] + "*",
        lambda: f'"{rng.choice(phrases)}"',
        lambda: f"{rng.choice(['title', 'abstract'])}:{term()}",
        lambda: (
            f'author:"{rng.choice(names)}"'
            if rng.random() < 0.5
            else f"author:{words(rng.choice(names))[-1]}"
        ),
        lambda: f"category:{rng.choice(categories)}" if rng.random() < 0.7 else "category:cs.*",
        lambda: f"upvotes>={rng.choice([5, 20, 50, 100])}",
        lambda: f"{term()} -{term()}",
        lambda: f"{term()} NOT {rng.choice(['title', 'abstract'])}:{term()}",
        lambda: f"{term()} OR {term()}",
        lambda: f"({term()} OR {term()[:5]}*) {term()}",
        lambda: f'("{rng.choice(phrases)}" OR {term()}) upvotes>={rng.choice([1, 10])}',
        lambda: f"category:{rng.choice(categories)} {term()} -{term()}",
        lambda: f"{term()} {term()}",
    ]
    queries: list[str] = []
    while len(queries) < count:
        candidate = kinds[len(queries) % len(kinds)]()
        try:
            parse_query(candidate)
        except ParseError:
            continue
        queries.append(candidate)
    return queries


# --- timing ---------------------------------------------------------------------------------


def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(p95 * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


async def timed(calls: list[Callable[[], Awaitable[object]]]) -> tuple[list[float], float]:
    latencies: list[float] = []
    with StallProbe() as probe:
        await asyncio.sleep(PROBE_INTERVAL * 2)
        for call in calls:
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0)
    return latencies, probe.worst


async def load_everything(core: Core, query: str) -> list[Paper]:
    """The approach the index replaced: the newest 20,000 papers, matched on the event loop."""
    parsed = parse_query(query)
    async with core.sessions() as session:
        papers = await PaperRepository(session).seen_since(datetime(1970, 1, 1, tzinfo=UTC), BASELINE_LIMIT)
    return core.matcher.preview(parsed, papers)


async def run_on(
    url: str, make: Callable[[], list[tuple[Paper, datetime]]], queries: list[str], baseline: int
) -> dict[str, Any]:
    settings = load_settings(environ={"PAPERWATCH_DATABASE__URL": url})
    core = await Core.open(settings, clock=FixedClock())
    try:
        papers = make()
        count = len(papers)
        fill_seconds = await fill(core, papers)
        # the bot keeps no paper list in memory: nor does the run (its objects would only make
        # the garbage collector's full passes, and so the stalls, longer than the bot's)
        del papers
        gc.collect()
        # as the bot does once started (bot/discord/runner.py): what start-up made is never
        # garbage, so the collector's full passes leave it out and stay short
        gc.freeze()
        print(f"  stored {count:,} papers in {fill_seconds:.1f} s")
        await core.papers.search(queries[0])  # warm the caches once
        searches, search_stall = await timed([lambda q=q: core.papers.search(q) for q in queries])
        previews, preview_stall = await timed([lambda q=q: core.papers.preview(q, 7) for q in queries])
        bounded = 0
        for query in queries[:50]:
            bounded += (await core.papers.search(query)).bound is not None
        sample = queries[:: max(1, len(queries) // baseline)][:baseline]
        base, base_stall = await timed([lambda q=q: load_everything(core, q) for q in sample])
    finally:
        gc.unfreeze()
        await core.close()
    both = searches + previews
    result: dict[str, Any] = {
        "papers": count,
        "queries": len(queries),
        **summary(both),
        "max_loop_stall_ms": round(max(search_stall, preview_stall) * 1000, 1),
        "search": summary(searches),
        "preview": summary(previews),
        "bounded_answers_of_first_50_searches": bounded,
        "baseline_p50_ms": summary(base)["p50_ms"],
        "baseline_p95_ms": summary(base)["p95_ms"],
        "baseline_max_loop_stall_ms": round(base_stall * 1000, 1),
        "baseline_queries": len(sample),
        "baseline_papers_loaded": min(BASELINE_LIMIT, count),
        "fill_seconds": round(fill_seconds, 1),
    }
    return result


def show(name: str, result: dict[str, Any]) -> None:
    print(
        f"{name}: {result['papers']:,} papers, {result['queries']} queries × (search + preview): "
        f"p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, max {result['max_ms']} ms; "
        f"longest loop stall {result['max_loop_stall_ms']} ms"
    )
    print(f"  search {result['search']}, preview {result['preview']}")
    print(
        f"  baseline (load {result['baseline_papers_loaded']:,}, match on the loop; "
        f"{result['baseline_queries']} queries): p50 {result['baseline_p50_ms']} ms, "
        f"p95 {result['baseline_p95_ms']} ms, "
        f"loop stall {result['baseline_max_loop_stall_ms']} ms"
    )


async def postgresql(
    url: str, make: Callable[[], list[tuple[Paper, datetime]]], queries: list[str], baseline: int
) -> dict[str, Any]:
    """The same run in a scratch PostgreSQL database, dropped afterwards."""
    scratch = f"paperwatch_bench_{os.getpid()}"
    admin = create_engine(url)
    async with admin.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'CREATE DATABASE "{scratch}"'))
    try:
        target = make_url(url).set(database=scratch).render_as_string(hide_password=False)
        return await run_on(target, make, queries, baseline)
    finally:
        async with admin.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{scratch}"'))
        await admin.dispose()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    corpus = load_corpus()
    queries = make_queries(corpus, args.queries, random.Random(args.seed))

    def make() -> list[tuple[Paper, datetime]]:
        rng = random.Random(args.seed)
        return spread(make_papers(corpus, args.papers, rng), rng)

    with tempfile.TemporaryDirectory(prefix="pw-bench-search-") as directory:
        url = f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}"
        result = await run_on(url, make, queries, args.baseline_queries)
    show("SQLite", result)
    pg_url = os.environ.get(PG_ENV)
    if pg_url:
        result["postgresql"] = await postgresql(pg_url, make, queries, args.baseline_queries)
        show("PostgreSQL", result["postgresql"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--papers", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--baseline-queries", type=int, default=20)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--no-write", action="store_true", help="print only, keep bench/results as it is")
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "search.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
