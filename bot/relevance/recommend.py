"""A per-user model of what a person likes, and the day's papers ranked by it.

Pure code over text vectors (rows of `bot.relevance.vectors.TextSpace`, L2-normalised): it
knows neither Discord nor the database. The model is a class-balanced logistic regression of
the user's positives (👍 and saved papers) against their 👎 and a random sample of other
stored papers, taken as unlabelled background. Its margin on each candidate is then smoothed
over the candidates' nearest neighbours among themselves (a paper whose closest papers of the
day also score well ranks higher), and turned into a score from 0 to 1. Each recommendation
names the one or two liked papers it is closest to (cosine), for the "why" line.

The choices (and what else was measured) are in docs/relevance.md, "Recommendations".
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from bot.domain.paper import Paper
from bot.relevance.vectors import TextSpace

MIN_POSITIVES = 3
"""A model needs at least this many liked papers; with fewer, nothing is recommended."""
BACKGROUND = 200
"""Stored papers sampled as unlabelled negatives for each model."""
REGULARISATION = 1.0
"""Inverse regularisation strength `C` of the logistic regression."""
NEIGHBOURS = 5
"""How many of its nearest fellow candidates smooth a candidate's margin."""
SMOOTHING = 0.5
"""Weight of the neighbours' mean margin against the paper's own."""
SECOND_WHY = 0.5
"""The second-closest liked paper is named too when its cosine is at least this share of the first's."""
_BLOCK = 1024
"""Candidate rows compared with all candidates at once while finding neighbours (bounds memory)."""


class TooFewPositivesError(ValueError):
    """Fewer than `MIN_POSITIVES` liked papers: no model is trained."""

    def __init__(self, positives: int) -> None:
        self.positives = positives
        self.needed = MIN_POSITIVES - positives
        super().__init__(f"{positives} liked papers; a model needs at least {MIN_POSITIVES}")


@dataclass(frozen=True, slots=True)
class Recommendation:
    index: int
    """The candidate's row in the candidate matrix."""
    score: float
    """From 0 to 1: how sure the model is the user would like it."""
    closest: tuple[int, ...]
    """Rows of the positives matrix the candidate is closest to, nearest first (one or two)."""
    cosines: tuple[float, ...]
    """The candidate's cosine to each of `closest`."""


@dataclass(frozen=True, slots=True)
class Neighbours:
    """Each candidate's nearest fellow candidates and their cosines: one batch, every user."""

    index: np.ndarray
    weight: np.ndarray

    @classmethod
    def of(cls, candidates: scipy.sparse.csr_matrix, k: int = NEIGHBOURS) -> Neighbours:
        count = candidates.shape[0]
        k = max(min(k, count - 1), 0)
        index = np.zeros((count, k), dtype=np.int64)
        weight = np.zeros((count, k), dtype=np.float32)
        if k == 0:
            return cls(index=index, weight=weight)
        transposed = candidates.T.tocsc()
        for start in range(0, count, _BLOCK):
            stop = min(start + _BLOCK, count)
            block = np.asarray((candidates[start:stop] @ transposed).todense(), dtype=np.float32)
            block[np.arange(stop - start), np.arange(start, stop)] = -1.0  # never its own neighbour
            nearest = np.argpartition(-block, k - 1, axis=1)[:, :k]
            index[start:stop] = nearest
            weight[start:stop] = np.clip(np.take_along_axis(block, nearest, axis=1), 0.0, None)
        return cls(index=index, weight=weight)

    def smooth(self, margins: np.ndarray, share: float = SMOOTHING) -> np.ndarray:
        """Each margin moved towards the cosine-weighted mean margin of its neighbours."""
        if self.index.shape[1] == 0 or share <= 0:
            return margins
        total = self.weight.sum(axis=1)
        around = (self.weight * margins[self.index]).sum(axis=1) / np.where(total > 0, total, 1.0)
        mixed = (1 - share) * margins + share * around
        return np.where(total > 0, mixed, margins)


@dataclass(frozen=True, slots=True)
class UserModel:
    weights: np.ndarray
    """One weight per term of the vocabulary (zero for the terms training never saw)."""
    intercept: float
    positives: scipy.sparse.csr_matrix

    def margins(self, candidates: scipy.sparse.csr_matrix) -> np.ndarray:
        return np.asarray(candidates @ self.weights, dtype=np.float64).ravel() + self.intercept

    def scores(self, candidates: scipy.sparse.csr_matrix, neighbours: Neighbours | None = None) -> np.ndarray:
        """Each candidate's score from 0 to 1 (the smoothed margin through a logistic)."""
        if candidates.shape[0] == 0:
            return np.zeros(0)
        margins = self.margins(candidates)
        if neighbours is not None:
            margins = neighbours.smooth(margins)
        scores: np.ndarray = 1.0 / (1.0 + np.exp(-margins))
        return scores


def train(
    positives: scipy.sparse.csr_matrix,
    negatives: scipy.sparse.csr_matrix,
    background: scipy.sparse.csr_matrix,
) -> UserModel:
    """Fit the user's model; `TooFewPositivesError` below `MIN_POSITIVES` liked papers (CPU-bound)."""
    if positives.shape[0] < MIN_POSITIVES:
        raise TooFewPositivesError(positives.shape[0])
    blocks = [m for m in (positives, negatives, background) if m.shape[0]]
    rows = scipy.sparse.vstack(blocks, format="csr")
    labels = np.zeros(rows.shape[0], dtype=np.int64)
    labels[: positives.shape[0]] = 1
    if labels.min() == 1:
        raise ValueError("a model needs some negatives or background papers")
    # Terms absent from every training row get no weight under L2 regularisation, so the
    # model is fitted on the columns the rows use: the same model, a far smaller problem.
    used = np.unique(rows.indices)
    classifier = LogisticRegression(C=REGULARISATION, class_weight="balanced", max_iter=1000)
    classifier.fit(rows[:, used], labels)
    weights = np.zeros(rows.shape[1], dtype=np.float64)
    weights[used] = classifier.coef_.ravel()
    return UserModel(
        weights=weights,
        intercept=float(classifier.intercept_[0]),
        positives=scipy.sparse.csr_matrix(positives),
    )


def closest_liked(
    candidate: scipy.sparse.csr_matrix, positives: scipy.sparse.csr_matrix
) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """The one or two positives (rows) a candidate (one row) is closest to, with their cosines."""
    cosines = np.asarray((candidate @ positives.T).todense(), dtype=np.float64).ravel()
    if cosines.size == 0:
        return (), ()
    order = np.argsort(-cosines, kind="stable")[:2]
    chosen = [int(order[0])]
    if len(order) > 1 and cosines[order[1]] > 0 and cosines[order[1]] >= SECOND_WHY * cosines[order[0]]:
        chosen.append(int(order[1]))
    return tuple(chosen), tuple(float(cosines[i]) for i in chosen)


def rank(
    model: UserModel,
    candidates: scipy.sparse.csr_matrix,
    *,
    top: int,
    cutoff: float = 0.0,
    neighbours: Neighbours | None = None,
    allowed: Sequence[int] | np.ndarray | None = None,
) -> list[Recommendation]:
    """The `top` candidates scoring at least `cutoff`, best first; `allowed`: only these rows."""
    scores = model.scores(candidates, neighbours)
    rows = np.arange(scores.size) if allowed is None else np.asarray(allowed, dtype=np.int64)
    rows = rows[scores[rows] >= cutoff] if rows.size else rows
    if top <= 0 or rows.size == 0:
        return []
    best = rows[np.lexsort((rows, -scores[rows]))][:top]  # ties: the earlier row first
    out = []
    for row in best:
        closest, cosines = closest_liked(candidates[int(row)], model.positives)
        out.append(Recommendation(int(row), float(scores[row]), closest, cosines))
    return out


def recommend(
    positives: scipy.sparse.csr_matrix,
    negatives: scipy.sparse.csr_matrix,
    background: scipy.sparse.csr_matrix,
    candidates: scipy.sparse.csr_matrix,
    *,
    per_day: int,
    cutoff: float = 0.0,
    neighbours: Neighbours | None = None,
    allowed: Sequence[int] | np.ndarray | None = None,
) -> list[Recommendation]:
    """Train on the user's feedback and return the best `per_day` candidates above `cutoff`."""
    model = train(positives, negatives, background)
    return rank(model, candidates, top=per_day, cutoff=cutoff, neighbours=neighbours, allowed=allowed)


@dataclass(frozen=True, slots=True)
class UserJob:
    """One user's share of a `Batch`: row numbers of `Batch.rows`, and the candidates allowed."""

    positives: np.ndarray
    negatives: np.ndarray
    background: np.ndarray
    allowed: np.ndarray
    """Candidate rows the user may be recommended (first seen since their last time, not yet sent)."""
    per_day: int


@dataclass(frozen=True, slots=True)
class Batch:
    """Several users' training and ranking, in arrays only: what a worker process is sent.

    `rows` holds just the papers these users train on (their feedback and the round's
    background sample); the day's candidates and their neighbours are shared by every user.
    """

    rows: scipy.sparse.csr_matrix
    candidates: scipy.sparse.csr_matrix
    neighbours: Neighbours
    cutoff: float
    users: tuple[UserJob, ...]


WORKER_NICENESS = 10
"""How much lower a worker process's CPU priority is: the bot's own process comes first."""


def start_worker() -> None:
    """Start of a worker process: a lower priority, and one BLAS/OpenMP thread (they share the cores)."""
    with contextlib.suppress(OSError, AttributeError):  # not every system lets a process lower it
        os.nice(WORKER_NICENESS)
    threadpool_limits(1)


def run_batch(batch: Batch) -> list[tuple[list[Recommendation], float]]:
    """Each user's recommendations and the seconds their training and ranking took (CPU-bound).

    A user whose liked papers have no text, or who has nothing to contrast them with, gets none.
    """
    out: list[tuple[list[Recommendation], float]] = []
    for user in batch.users:
        started = time.perf_counter()
        found: list[Recommendation] = []
        if user.allowed.size:
            try:
                model = train(
                    batch.rows[user.positives], batch.rows[user.negatives], batch.rows[user.background]
                )
            except ValueError:
                model = None
            if model is not None:
                found = rank(
                    model,
                    batch.candidates,
                    top=user.per_day,
                    cutoff=batch.cutoff,
                    neighbours=batch.neighbours,
                    allowed=user.allowed,
                )
        out.append((found, time.perf_counter() - started))
    return out


def sample_background(count: int, size: int, seed: int, exclude: Sequence[int] = ()) -> np.ndarray:
    """`size` distinct rows out of `count`, none of `exclude`, the same for the same seed."""
    rng = np.random.default_rng(seed)
    pool = np.setdiff1d(np.arange(count), np.asarray(exclude, dtype=np.int64))
    if pool.size <= size:
        return pool
    return np.sort(rng.choice(pool, size, replace=False))


@dataclass(frozen=True, slots=True)
class PaperPick:
    paper: Paper
    score: float
    closest: tuple[Paper, ...]
    """The liked papers it is closest to, nearest first."""


def recommend_papers(
    store: Sequence[Paper],
    liked: Sequence[Paper],
    disliked: Sequence[Paper],
    candidates: Sequence[Paper],
    *,
    top: int,
    cutoff: float = 0.0,
    seed: int = 0,
) -> list[PaperPick]:
    """Offline: fit the vocabulary on `store`, train on the liked and disliked papers, rank `candidates`.

    The background sample is drawn from `store`, leaving out the liked and disliked papers.
    """
    if len(liked) < MIN_POSITIVES:
        raise TooFewPositivesError(len(liked))
    space = TextSpace.fit(store)
    labelled = {paper.arxiv_id for paper in (*liked, *disliked)}
    rows = sample_background(
        len(store), BACKGROUND, seed, [i for i, p in enumerate(store) if p.arxiv_id in labelled]
    )
    positives = space.transform(liked)
    empty = scipy.sparse.csr_matrix((0, positives.shape[1]), dtype=positives.dtype)
    negatives = space.transform(disliked) if disliked else empty
    background = space.transform([store[int(i)] for i in rows]) if rows.size else empty
    matrix = space.transform(candidates)
    found = recommend(
        positives, negatives, background, matrix, per_day=top, cutoff=cutoff, neighbours=Neighbours.of(matrix)
    )
    return [PaperPick(candidates[r.index], r.score, tuple(liked[i] for i in r.closest)) for r in found]
