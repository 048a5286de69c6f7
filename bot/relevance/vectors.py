"""TF-IDF vectors of papers' title and abstract, in one vocabulary fitted on the stored papers.

`like:` terms compare papers by the cosine of these vectors; the recommender trains on them.
Rows are L2-normalised, so the cosine of two papers is the dot product of their rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse
from sklearn.feature_extraction.text import TfidfVectorizer

from bot.domain.paper import Paper

NGRAM_RANGE = (1, 2)
MIN_DF = 2
"""A term must occur in at least this many papers (when the store has enough of them)."""
MAX_DF = 0.5
"""A term in more than this share of papers says nothing about a topic."""
TITLE_REPEAT = 2
"""The title counts this many times: it names the topic more densely than the abstract."""


def paper_text(paper: Paper) -> str:
    """The text a paper is compared by: its title (weighted) and its abstract."""
    return " ".join([paper.title] * TITLE_REPEAT + [paper.abstract])


@dataclass
class TextSpace:
    """A fitted TF-IDF vocabulary: one row per paper, comparable by dot product."""

    vectorizer: TfidfVectorizer
    fitted_count: int

    @classmethod
    def fit(cls, papers: Sequence[Paper]) -> TextSpace:
        """Learn the vocabulary and document frequencies from `papers` (CPU-bound)."""
        min_df = MIN_DF if len(papers) >= 50 else 1
        vectorizer = TfidfVectorizer(
            ngram_range=NGRAM_RANGE,
            sublinear_tf=True,
            stop_words="english",
            min_df=min_df,
            max_df=MAX_DF if len(papers) >= 50 else 1.0,
            dtype=np.float32,
        )
        vectorizer.fit([paper_text(p) for p in papers])
        return cls(vectorizer=vectorizer, fitted_count=len(papers))

    def transform(self, papers: Sequence[Paper]) -> scipy.sparse.csr_matrix:
        """One L2-normalised row per paper, in the order given."""
        matrix = self.vectorizer.transform([paper_text(p) for p in papers])
        return scipy.sparse.csr_matrix(matrix)

    @property
    def fitted_on(self) -> int:
        """How many papers the vocabulary was fitted on."""
        return self.fitted_count
