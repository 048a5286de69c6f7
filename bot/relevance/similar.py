"""`like:` for a whole batch: one sparse matrix product against every liked paper at once.

The rows of a `TextSpace` are L2-normalised, so `liked @ batch.T` holds every cosine
between a liked paper and a batch paper. Thresholded, each liked paper's row becomes the
bitmap of batch papers similar to it (bit i is `papers[i]`), which the batch matcher
uses as the bitmap of that `like:` leaf.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse

from bot.domain.matcher import LikeScore
from bot.domain.paper import Paper
from bot.relevance.vectors import TextSpace


@dataclass(frozen=True, slots=True)
class LikeScores:
    """The cosines of a batch's papers to liked papers, where at least the threshold."""

    paper_ids: tuple[str, ...]
    """The batch, in order: bit i of a bitmap is `paper_ids[i]`."""
    threshold: float
    scores: dict[str, dict[int, float]] = field(default_factory=dict)
    """Liked paper id → {batch position: cosine}, only cosines at least the threshold."""
    positions: dict[str, int] = field(default_factory=dict)
    """Batch paper id → its position."""

    @property
    def bits(self) -> dict[str, int]:
        """Liked paper id → bitmap of the batch papers similar to it (never itself)."""
        return {liked: _bitmap(found, len(self.paper_ids)) for liked, found in self.scores.items() if found}

    def cosine(self, liked_id: str, position: int) -> float | None:
        """The cosine of batch paper `position` to a liked paper, when at least the threshold."""
        found = self.scores.get(liked_id)
        return None if found is None else found.get(position)

    def like_score(self, position: int) -> LikeScore:
        """The per-paper function the reference evaluator and `explain` take."""

        def score(liked_id: str) -> float | None:
            return self.cosine(liked_id, position)

        return score

    def for_paper(self, paper: Paper) -> LikeScore:
        """`like_score` of a batch paper, found by its id; nothing is like a paper outside the batch."""
        position = self.positions.get(paper.arxiv_id)
        if position is None:
            return lambda liked_id: None
        return self.like_score(position)


def like_scores(
    batch: scipy.sparse.csr_matrix,
    paper_ids: Sequence[str],
    liked: scipy.sparse.csr_matrix,
    liked_ids: Sequence[str],
    threshold: float,
) -> LikeScores:
    """Every liked paper against every batch paper in one sparse product, thresholded.

    `batch` and `liked` are rows of the same `TextSpace` (L2-normalised). A liked paper that
    is itself in the batch is not similar to itself.
    """
    positions = {paper_id: index for index, paper_id in enumerate(paper_ids)}
    result = LikeScores(paper_ids=tuple(paper_ids), threshold=threshold, positions=positions)
    if batch.shape[0] == 0 or liked.shape[0] == 0:
        return result
    product = scipy.sparse.csr_matrix(liked @ batch.T)
    keep = product.data >= threshold
    indptr, indices, data = product.indptr, product.indices, product.data
    for row, liked_id in enumerate(liked_ids):
        start, end = indptr[row], indptr[row + 1]
        chosen = keep[start:end]
        if not chosen.any():
            continue
        columns = indices[start:end][chosen]
        values = data[start:end][chosen]
        found = dict(zip(columns.tolist(), values.astype(np.float64).tolist(), strict=True))
        itself = positions.get(liked_id)
        if itself is not None:
            found.pop(itself, None)
        if found:
            result.scores.setdefault(liked_id, {}).update(found)
    return result


def _bitmap(positions: dict[int, float], size: int) -> int:
    """An int whose bit i is set for each position i."""
    flags = np.zeros(size, dtype=bool)
    flags[list(positions)] = True
    return int.from_bytes(np.packbits(flags, bitorder="little").tobytes(), "little")


def offline_like_scores(papers: Sequence[Paper], liked_ids: Sequence[str], threshold: float) -> LikeScores:
    """`like:` scores with no database: the vocabulary is fitted on `papers` themselves.

    Liked ids that are not among `papers` like nothing.
    """
    ids = [paper.arxiv_id for paper in papers]
    positions = {paper_id: index for index, paper_id in enumerate(ids)}
    present = [liked for liked in dict.fromkeys(liked_ids) if liked in positions]
    if not papers or not present:
        return LikeScores(paper_ids=tuple(ids), threshold=threshold, positions=positions)
    batch = TextSpace.fit(papers).transform(papers)
    liked = batch[np.array([positions[liked] for liked in present], dtype=np.int64)]
    return like_scores(batch, ids, scipy.sparse.csr_matrix(liked), present, threshold)
