"""Benchmark: relevance beyond keywords. Writes bench/results/relevance.json.

Run from the repository root:

    .venv/bin/python -m bench.bench_relevance [--part NAME ...] [--seed S]

Each part adds its own fields to bench/results/relevance.json (read, updated, written
back, so parts run separately keep each other's figures):

- `matching`: 2,000 new papers against 100,000 watches, 5,000 of them with a `like:` term
  over 1,000 distinct liked papers, the vocabulary fitted beforehand on 20,000 stored
  papers. `match_seconds` is the whole batch (compiling the watches, the `like:` product,
  indexing the papers, matching); `like_seconds` the `like:` part of it (one `transform`
  of the batch, one sparse product against all liked papers, thresholding into bitmaps).
  Targets: under 2.5 s, peak RSS under 500 MB. The `like:` bitmaps are checked against
  cosines computed pair by pair with scikit-learn.
- `like`: on the arXiv RSS listing (1,504 papers; the model reads title and abstract only,
  the categories are hidden), every paper is liked in turn; `like_same_category` is the share
  of its `like:` results whose primary arXiv category is the liked paper's.
- `recommend` and `quality`: "recommended for you", see bench/bench_recommend.py.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import resource
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse
from sklearn.metrics.pairwise import cosine_similarity

from bench import bench_recommend
from bench.bench_match import RSS, WatchMaker, load_corpus, make_papers
from bot.config import RelevanceSettings
from bot.domain.batch import PaperBatch
from bot.domain.paper import Paper
from bot.domain.parser import parse_query
from bot.domain.query import Query
from bot.domain.watchset import WatchSet
from bot.feeds.detect import parse_feed_file
from bot.relevance.similar import like_scores
from bot.relevance.vectors import TextSpace

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "relevance.json"
THRESHOLD = RelevanceSettings().like_threshold

Part = Callable[[argparse.Namespace], dict[str, Any]]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- matching ---------------------------------------------------------------------------------


def like_watches(
    liked: list[str], maker: WatchMaker, count: int, first_id: int, rng: random.Random
) -> list[tuple[int, Query, int | None]]:
    """`count` watches with a `like:` term, in the shapes people write."""
    made: list[tuple[int, Query, int | None]] = []
    for number in range(count):
        one, other = liked[number % len(liked)], rng.choice(liked)  # each liked paper at least once
        shape = rng.random()
        if shape < 0.5:
            text = f"like:{one}"
        elif shape < 0.7:
            text = f"like:{one} -{maker.term()}"
        elif shape < 0.9:
            text = f"like:{one} OR like:{other}"
        else:
            text = f"{maker.term()} OR like:{one}"
        made.append((first_id + number, parse_query(text), None))
    return made


def bench_matching(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    corpus = load_corpus()
    stored = make_papers(corpus, args.stored, rng)
    # synthetic new papers (real titles, real abstract sentences), none a copy of a stored one
    fresh = make_papers(corpus, args.stored + args.papers, random.Random(args.seed + 1))[-args.papers :]
    batch_papers = [replace(p, arxiv_id=f"8888.{n:05d}") for n, p in enumerate(fresh)]
    maker = WatchMaker(corpus, rng)
    liked = [p.arxiv_id for p in rng.sample(stored, args.liked)]
    plain = maker.watches(args.watches - args.like_watches)
    watches = plain + like_watches(liked, maker, args.like_watches, len(plain) + 1, rng)
    rng.shuffle(watches)

    fit_started = time.perf_counter()
    space = TextSpace.fit(stored)
    stored_matrix = space.transform(stored)
    rows = {p.arxiv_id: i for i, p in enumerate(stored)}
    fit_seconds = time.perf_counter() - fit_started
    gc.collect()

    started = time.perf_counter()
    watch_set = WatchSet.build(watches)
    like_started = time.perf_counter()
    wanted = watch_set.liked_ids
    liked_matrix = scipy.sparse.csr_matrix(stored_matrix[np.array([rows[i] for i in wanted])])
    batch_matrix = space.transform(batch_papers)
    scores = like_scores(batch_matrix, [p.arxiv_id for p in batch_papers], liked_matrix, wanted, THRESHOLD)
    bits = scores.bits
    like_seconds = time.perf_counter() - like_started
    batch = PaperBatch.build(batch_papers, bits)
    matched = watch_set.match(batch)
    seconds = time.perf_counter() - started

    # the bitmaps against cosines computed pair by pair, for a sample of liked papers
    direct = cosine_similarity(liked_matrix[:50].astype(np.float64), batch_matrix.astype(np.float64))
    for row, liked_id in enumerate(wanted[:50]):
        expected = {int(j) for j in np.flatnonzero(direct[row] >= THRESHOLD + 1e-4)}
        borderline = {int(j) for j in np.flatnonzero(np.abs(direct[row] - THRESHOLD) < 1e-4)}
        got = {j for j in range(len(batch_papers)) if bits.get(liked_id, 0) >> j & 1}
        if not expected <= got <= expected | borderline:
            raise SystemExit(f"like: bitmap of {liked_id} disagrees with the direct cosine")
    like_ids = {w for w, q, _ in watches if "like:" in q.source}
    return {
        "match_papers": len(batch_papers),
        "match_watches": len(watches),
        "match_like_watches": len(like_ids),
        "match_liked_papers": len(wanted),
        "match_stored_papers": len(stored),
        "match_fit_seconds": round(fit_seconds, 2),
        "match_seconds": round(seconds, 3),
        "like_seconds": round(like_seconds, 3),
        "match_like_pairs": sum(len(found) for found in scores.scores.values()),
        "match_like_watches_matching": sum(1 for w in matched if w in like_ids),
        "match_watches_matching": len(matched),
        "match_peak_rss_mb": round(peak_rss_mb(), 1),
        # the one-minute load of the (2-core) machine meanwhile: a busy machine slows every figure
        "match_load_average": round(os.getloadavg()[0], 2),
    }


# --- like: quality ------------------------------------------------------------------------------


def bench_like(args: argparse.Namespace) -> dict[str, Any]:
    papers = [p for p in parse_feed_file(RSS).papers if p.categories]
    hidden = [Paper(arxiv_id=p.arxiv_id, title=p.title, abstract=p.abstract) for p in papers]
    space = TextSpace.fit(hidden)
    matrix = space.transform(hidden)
    ids = [p.arxiv_id for p in hidden]
    scores = like_scores(matrix, ids, matrix, ids, THRESHOLD)
    primary = [p.categories[0] for p in papers]
    archive = [c.split(".")[0] for c in primary]
    same = same_archive = results = 0
    for liked_id, found in scores.scores.items():
        liked = ids.index(liked_id)
        results += len(found)
        same += sum(primary[j] == primary[liked] for j in found)
        same_archive += sum(archive[j] == archive[liked] for j in found)
    return {
        "like_papers": len(papers),
        "like_threshold": THRESHOLD,
        "like_papers_with_results": len(scores.scores),
        "like_results": results,
        "like_same_category": round(same / results, 3) if results else None,
        "like_same_archive": round(same_archive / results, 3) if results else None,
    }


PARTS: dict[str, Part] = {
    "matching": bench_matching,
    "like": bench_like,
    "recommend": bench_recommend.bench_recommend,
    "quality": bench_recommend.bench_quality,
}


def merge(fields: dict[str, Any]) -> dict[str, Any]:
    """Add `fields` to bench/results/relevance.json, keeping the other parts' figures."""
    current: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    current.update(fields)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    return current


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--part", action="append", choices=sorted(PARTS), help="default: every part")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--papers", type=int, default=2_000)
    parser.add_argument("--watches", type=int, default=100_000)
    parser.add_argument("--like-watches", type=int, default=5_000)
    parser.add_argument("--liked", type=int, default=1_000)
    parser.add_argument("--stored", type=int, default=20_000)
    bench_recommend.add_arguments(parser)
    args = parser.parse_args()
    for name in args.part or list(PARTS):
        fields = PARTS[name](args)
        merge(fields)
        for key, value in fields.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
