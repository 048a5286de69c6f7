"""`like:` in the batch matcher and the reference evaluator, against cosines computed here.

The expected cosines come from scikit-learn directly, with the settings docs/relevance.md
states (title twice and abstract; word 1–2-grams, sublinear tf, English stop words,
min_df 2, max_df 0.5), not through paperwatch's own vectors.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics.pairwise import cosine_similarity

from bot.config import RelevanceSettings
from bot.domain.batch import PaperBatch, iter_bits
from bot.domain.matcher import explain, matches
from bot.domain.paper import Paper
from bot.domain.parser import parse_query
from bot.domain.watchset import WatchSet
from bot.feeds.detect import parse_feed_file
from bot.relevance.similar import like_scores, offline_like_scores
from bot.relevance.vectors import TextSpace

THRESHOLD = RelevanceSettings().like_threshold
NEAR = 1e-4
"""Cosines this close to the threshold may fall either side in single precision."""


@pytest.fixture(scope="module")
def rss() -> list[Paper]:
    feeds = Path(__file__).resolve().parent.parent / "fixtures" / "feeds"
    return parse_feed_file(feeds / "arxiv" / "rss_all-archives_2024-11-28.xml").papers


@pytest.fixture(scope="module")
def direct(rss: list[Paper]) -> np.ndarray:
    """Every pair's cosine, computed by scikit-learn from the documented settings."""
    vectorizer = TfidfVectorizer(
        ngram_range=(1, 2), sublinear_tf=True, stop_words="english", min_df=2, max_df=0.5
    )
    matrix = vectorizer.fit_transform([f"{p.title} {p.title} {p.abstract}" for p in rss])
    return cosine_similarity(matrix)


def liked_sample(rss: list[Paper], direct: np.ndarray, count: int = 40) -> list[int]:
    """Papers with at least one neighbour over the threshold, and some without."""
    np.fill_diagonal(direct, 0)
    with_neighbours = [i for i in range(len(rss)) if direct[i].max() >= THRESHOLD]
    np.fill_diagonal(direct, 1)
    rng = random.Random(9)
    return rng.sample(with_neighbours, count // 2) + rng.sample(range(len(rss)), count // 2)


def expected_like(direct: np.ndarray, liked: int) -> tuple[set[int], set[int]]:
    """(surely like, borderline): every paper but the liked one at or over the threshold."""
    row = direct[liked]
    sure = {j for j in np.flatnonzero(row >= THRESHOLD + NEAR) if j != liked}
    near = {j for j in np.flatnonzero(np.abs(row - THRESHOLD) < NEAR) if j != liked}
    return sure, near


def test_batch_like_equals_the_direct_cosine(rss: list[Paper], direct: np.ndarray) -> None:
    liked = liked_sample(rss, direct)
    ids = [p.arxiv_id for p in rss]
    scores = offline_like_scores(rss, [ids[i] for i in liked], THRESHOLD)
    watches = [(n, parse_query(f"like:{ids[i]}"), None) for n, i in enumerate(liked)]
    matched = WatchSet.build(watches).match(PaperBatch.build(rss, scores.bits))
    non_empty = 0
    for n, i in enumerate(liked):
        sure, near = expected_like(direct, i)
        got = set(iter_bits(matched.get(n, 0)))
        assert sure <= got <= sure | near, ids[i]
        assert i not in got
        non_empty += bool(got)
    assert non_empty >= len(liked) // 2


def test_like_combines_with_other_terms(rss: list[Paper], direct: np.ndarray) -> None:
    liked = liked_sample(rss, direct, 10)[:5]
    ids = [p.arxiv_id for p in rss]
    scores = offline_like_scores(rss, [ids[i] for i in liked], THRESHOLD)
    a, b = liked[0], liked[1]
    queries = [
        parse_query(f"like:{ids[a]}"),
        parse_query(f"like:{ids[a]} OR like:{ids[b]}"),
        parse_query(f"like:{ids[a]} -model"),
        parse_query(f"like:{ids[a]} category:{rss[a].categories[0]}"),
        parse_query("model"),
    ]
    matched = WatchSet.build([(n, q, None) for n, q in enumerate(queries)]).match(
        PaperBatch.build(rss, scores.bits)
    )
    like_a, either, without, same_category, model = (set(iter_bits(matched.get(n, 0))) for n in range(5))
    sure_a, near_a = expected_like(direct, a)
    sure_b, near_b = expected_like(direct, b)
    assert sure_a <= like_a <= sure_a | near_a
    assert sure_a | sure_b <= either <= sure_a | sure_b | near_a | near_b
    assert without == like_a - model
    assert same_category == {i for i in like_a if rss[a].categories[0] in rss[i].categories}


def test_the_reference_evaluator_agrees_with_the_batch(rss: list[Paper], direct: np.ndarray) -> None:
    liked = liked_sample(rss, direct, 12)
    ids = [p.arxiv_id for p in rss]
    scores = offline_like_scores(rss, [ids[i] for i in liked], THRESHOLD)
    batch = PaperBatch.build(rss, scores.bits)
    for i in liked:
        query = parse_query(f"like:{ids[i]} OR like:{ids[liked[0]]}")
        bits = WatchSet.build([(0, query, None)]).match(batch).get(0, 0)
        by_reference = {j for j, p in enumerate(rss) if matches(query, p, like=scores.for_paper(p))}
        assert by_reference == set(iter_bits(bits))


def test_matched_because_shows_the_cosine(rss: list[Paper], direct: np.ndarray) -> None:
    liked = liked_sample(rss, direct, 10)[0]
    ids = [p.arxiv_id for p in rss]
    scores = offline_like_scores(rss, [ids[liked]], THRESHOLD)
    query = parse_query(f"like:{ids[liked]}")
    found = [j for j, p in enumerate(rss) if matches(query, p, like=scores.for_paper(p))]
    assert found
    for j in found:
        ((term, word),) = explain(query, rss[j], like=scores.for_paper(rss[j]))
        assert term == f"like:{ids[liked]}"
        assert abs(float(word) - direct[liked, j]) <= 0.006


def test_a_paper_is_never_like_itself(rss: list[Paper]) -> None:
    paper = rss[0]
    twin = Paper(arxiv_id="2411.99999", title=paper.title, abstract=paper.abstract)
    papers = [paper, twin, *rss[1:40]]
    scores = offline_like_scores(papers, [paper.arxiv_id], THRESHOLD)
    query = parse_query(f"like:{paper.arxiv_id}")
    # its twin is like it (cosine 1), the paper itself is not
    assert scores.cosine(paper.arxiv_id, 1) == pytest.approx(1.0, abs=1e-5)
    assert scores.cosine(paper.arxiv_id, 0) is None
    assert not matches(query, paper, like=lambda liked_id: 1.0)
    assert matches(query, twin, like=lambda liked_id: 1.0)
    # even a bitmap that claims the paper is like itself does not make it so
    batch = PaperBatch.build(papers, {paper.arxiv_id: 0b11})
    assert WatchSet.build([(0, query, None)]).match(batch) == {0: 0b10}


def test_without_scores_like_matches_nothing(rss: list[Paper]) -> None:
    query = parse_query(f"like:{rss[0].arxiv_id} OR model")
    plain = parse_query("model")
    assert [matches(query, p) for p in rss[:50]] == [matches(plain, p) for p in rss[:50]]


def test_a_refit_on_the_same_papers_gives_the_same_matches(rss: list[Paper]) -> None:
    ids = [p.arxiv_id for p in rss]
    liked = ids[::50]
    runs = []
    for order in (rss, list(reversed(rss))):
        space = TextSpace.fit(order)
        batch = space.transform(rss)
        liked_rows = space.transform([rss[ids.index(i)] for i in liked])
        runs.append(like_scores(batch, ids, liked_rows, liked, THRESHOLD))
    assert runs[0].bits == runs[1].bits
    for liked_id, found in runs[0].scores.items():
        assert found == pytest.approx(runs[1].scores[liked_id], abs=1e-6)
