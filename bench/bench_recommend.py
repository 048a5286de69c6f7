"""Benchmark parts for "recommended for you" (run through bench/bench_relevance.py).

- `recommend`: 1,000 users with 5 to 50 feedback papers each (about four in five 👍 or saved,
  the rest 👎), 50,000 stored papers and one day of 2,000 new ones, in a SQLite file. The real
  Recommender adds every user's picks to the outbox, as at their DM schedule:
  `recommend_seconds` is the whole round (reading feedback, vectors, training, scoring,
  recording), `recommend_user_p95_ms` the 95th percentile of one user's training and scoring,
  `recommend_max_loop_stall_ms` the longest an event-loop probe task (waking every 5 ms)
  waited meanwhile. Targets: under 60 s, stalls under 100 ms. The worker processes are started
  before, as the bot starts them (`recommend_workers`; 0: they could not start, a thread did the work);
  `recommend_load_average` is the machine's one-minute load average at the end.
- `quality`: the arXiv RSS listing (1,504 papers; title and abstract only, categories hidden).
  For each of the 20 primary categories with the most papers, a simulated user likes 5 random
  papers of it and dislikes 5 of another of the 20; every other paper of the file is ranked. A
  ranked paper is relevant when the liked category is among its categories. `precision_at_5`
  and `precision_at_10` are the recommender's (same vocabulary, model and smoothing as the
  bot), averaged over 5 seeds; beside it, with the very same likes, dislikes and candidates:
  arxiv-sanity's recipe (its TF-IDF of 1–2-grams, `LinearSVC(class_weight="balanced")`
  trained on the liked papers against every other paper) and a random ranking.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC
from sqlalchemy import insert

from bench.bench_match import RSS, load_corpus, make_papers
from bench.probe import StallProbe
from bot.config import RelevanceSettings
from bot.db.engine import create_engine, session_factory
from bot.db.migrate import upgrade
from bot.db.models import TARGET_USER, FeedbackRow, PaperRow, SavedPaperRow, TargetRow
from bot.domain.paper import Paper
from bot.feeds.detect import parse_feed_file
from bot.relevance.recommend import BACKGROUND, Neighbours, sample_background, train
from bot.relevance.vectors import TextSpace
from bot.services.recommend import Recommender
from bot.services.similarity import PaperVectors

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class _Clock:
    def now(self) -> datetime:
        return NOW


# --- recommend: throughput and the event loop ------------------------------------------------------


async def _fill(url: str, stored: list[Paper], new: list[Paper], users: int, rng: random.Random) -> list[int]:
    engine = create_engine(url)
    await upgrade(engine)
    sessions = session_factory(engine)

    def row(paper: Paper, seen: datetime) -> dict[str, Any]:
        return {
            "arxiv_id": paper.arxiv_id, "title": paper.title, "abstract": paper.abstract,
            "authors": list(paper.authors), "first_seen_at": seen, "updated_at": seen,
            "sources": sorted(paper.sources), "categories": [], "ai_keywords": [],
        }  # fmt: skip

    old = NOW - timedelta(days=3)
    fresh = NOW - timedelta(hours=6)
    rows = [row(p, old) for p in stored] + [row(p, fresh) for p in new]
    async with sessions.begin() as session:
        for start in range(0, len(rows), 2_000):
            await session.execute(insert(PaperRow), rows[start : start + 2_000])
    ids = [p.arxiv_id for p in stored]
    targets, votes, saves = [], [], []
    for user in range(1, users + 1):
        targets.append({
            "kind": TARGET_USER, "channel_id": 0, "user_id": user, "digest_time": "09:00",
            "timezone": "UTC", "recommend": True, "recommend_per_day": 5, "next_digest_at": NOW,
            "created_at": old,
        })  # fmt: skip
        start = rng.randrange(len(ids) - 500)
        topic = ids[start : start + 500]  # a user's papers come from one stretch of the store
        for paper in rng.sample(topic, rng.randint(5, 50)):
            draw = rng.random()
            if draw < 0.4:
                saves.append({"user_id": user, "paper_id": paper, "saved_at": old})
            else:
                votes.append(
                    {"user_id": user, "paper_id": paper, "value": 1 if draw < 0.8 else -1, "created_at": old}
                )
    async with sessions.begin() as session:
        await session.execute(insert(TargetRow), targets)
        for start in range(0, len(votes), 5_000):
            await session.execute(insert(FeedbackRow), votes[start : start + 5_000])
        for start in range(0, len(saves), 5_000):
            await session.execute(insert(SavedPaperRow), saves[start : start + 5_000])
    await engine.dispose()
    return list(range(1, users + 1))


async def _round(url: str) -> dict[str, Any]:
    engine = create_engine(url)
    sessions = session_factory(engine)
    vectors = PaperVectors(sessions, RelevanceSettings())
    recommender = Recommender(sessions, vectors, _Clock(), cutoff=RelevanceSettings().recommend_cutoff)
    await recommender.start()  # as the bot does when it starts
    gc.collect()
    gc.freeze()  # as `paperwatch run` does once started (bot/discord/runner.py)
    await vectors.space()  # the bot keeps the fitted vocabulary; fitting is not part of a round
    from sqlalchemy import select

    with StallProbe() as probe:
        started = time.perf_counter()
        async with sessions() as session:
            target_ids = list(await session.scalars(select(TargetRow.id)))
        report = await recommender.prepare(target_ids)
        seconds = time.perf_counter() - started
    load = os.getloadavg()[0]  # other processes on the machine slow the round down
    in_thread = recommender.workers.in_thread
    await recommender.close()
    await engine.dispose()
    per_user = np.array(report.seconds_per_user) * 1000
    return {
        "recommend_seconds": round(seconds, 2),
        "recommend_users": report.users,
        "recommend_papers": report.papers,
        "recommend_user_p95_ms": round(float(np.percentile(per_user, 95)), 1),
        "recommend_user_p50_ms": round(float(np.percentile(per_user, 50)), 1),
        "recommend_max_loop_stall_ms": round(probe.worst * 1000, 1),
        "recommend_workers": 0 if in_thread else recommender.workers.processes,
        "recommend_load_average": round(load, 2),
    }


def bench_recommend(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    papers = make_papers(load_corpus(), args.rec_stored + args.rec_new, rng)
    stored, new = papers[: args.rec_stored], papers[args.rec_stored :]
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}"
        asyncio.run(_fill(url, stored, new, args.rec_users, rng))
        del papers, stored, new  # the bench's own copies: the bot holds none of them
        return asyncio.run(_round(url))


# --- quality: the arXiv categories as ground truth ----------------------------------------------


def _sanity_vectors(papers: list[Paper]) -> Any:
    """arxiv-sanity-lite's TF-IDF settings."""
    vectorizer = TfidfVectorizer(
        strip_accents="unicode", lowercase=True, analyzer="word", stop_words="english",
        token_pattern=r"(?u)\b[a-zA-Z_][a-zA-Z0-9_]+\b", ngram_range=(1, 2), sublinear_tf=True,
        max_df=0.1, min_df=5,
    )  # fmt: skip
    return vectorizer.fit_transform([f"{p.title} | {p.abstract}" for p in papers]).tocsr()


def bench_quality(args: argparse.Namespace) -> dict[str, Any]:
    papers = list(parse_feed_file(RSS).papers)
    primary = np.array([p.categories[0] if p.categories else "" for p in papers])
    categories = [set(p.categories) for p in papers]
    top = [c for c, _ in Counter(primary[primary != ""]).most_common(20)]
    count = len(papers)
    ours = TextSpace.fit(papers).transform(papers)
    sanity = _sanity_vectors(papers)
    found: dict[str, list[float]] = {k: [] for k in ("p5", "p10", "svm5", "svm10", "random5", "random10")}
    for seed in range(5):
        rng = np.random.default_rng(seed)
        for category in top:
            other = str(rng.choice([c for c in top if c != category]))
            liked = rng.choice(np.flatnonzero(primary == category), 5, replace=False)
            disliked = rng.choice(np.flatnonzero(primary == other), 5, replace=False)
            labelled = np.concatenate([liked, disliked])
            rest = np.setdiff1d(np.arange(count), labelled)
            relevant = np.array([category in categories[i] for i in rest])
            # ours: the bot's model and smoothing
            background = sample_background(count, BACKGROUND, seed, labelled)
            model = train(ours[liked], ours[disliked], ours[background])
            candidates = ours[rest]
            scores = model.scores(candidates, Neighbours.of(candidates))
            # arxiv-sanity: liked papers against every other paper of the file
            labels = np.zeros(count, dtype=int)
            labels[liked] = 1
            svm = LinearSVC(class_weight="balanced", max_iter=10_000, tol=1e-6, C=0.01).fit(sanity, labels)
            baseline = svm.decision_function(sanity[rest])
            shuffled = rng.random(rest.size)
            for name, ranking in (("p", scores), ("svm", baseline), ("random", shuffled)):
                order = np.argsort(-ranking, kind="stable")
                found[f"{name}5"].append(float(relevant[order[:5]].mean()))
                found[f"{name}10"].append(float(relevant[order[:10]].mean()))
    ceiling = _supervised_ceiling(ours, categories, top)
    mean = {k: round(float(np.mean(v)), 3) for k, v in found.items()}
    return {
        **ceiling,
        "precision_at_5": mean["p5"],
        "precision_at_10": mean["p10"],
        "baseline_svm_precision_at_5": mean["svm5"],
        "baseline_svm_precision_at_10": mean["svm10"],
        "random_precision_at_5": mean["random5"],
        "random_precision_at_10": mean["random10"],
        "quality_runs": len(found["p5"]),
    }


def _supervised_ceiling(vectors: Any, categories: list[set[str]], top: list[str]) -> dict[str, Any]:
    """What the same features reach with every label of half the file, not 5 likes and 5 dislikes.

    For each seed the file is split in two halves; for each category a class-balanced logistic
    regression learns "in this category or not" from every paper of the first half (hundreds of
    labels, cross-listings included) and ranks the second half. The precision it reaches bounds
    what any model on these text features can be expected to reach from a handful of examples.
    """
    count = vectors.shape[0]
    found: dict[str, list[float]] = {"p5": [], "p10": []}
    for seed in range(5):
        order = np.random.default_rng(seed).permutation(count)
        train_rows, test_rows = order[: count // 2], order[count // 2 :]
        for category in top:
            labels = np.array([category in c for c in categories])
            model = LogisticRegression(C=10.0, class_weight="balanced", max_iter=3_000)
            model.fit(vectors[train_rows], labels[train_rows])
            margins = model.decision_function(vectors[test_rows])
            ranked = labels[test_rows][np.argsort(-margins, kind="stable")]
            found["p5"].append(float(ranked[:5].mean()))
            found["p10"].append(float(ranked[:10].mean()))
    return {
        "supervised_ceiling_precision_at_5": round(float(np.mean(found["p5"])), 3),
        "supervised_ceiling_precision_at_10": round(float(np.mean(found["p10"])), 3),
        "supervised_ceiling_training_papers": int(count // 2),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rec-users", type=int, default=1_000)
    parser.add_argument("--rec-stored", type=int, default=50_000)
    parser.add_argument("--rec-new", type=int, default=2_000)
