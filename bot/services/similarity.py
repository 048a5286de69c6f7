"""Text vectors of the stored papers, for `like:` terms and recommendations.

One TF-IDF vocabulary (`bot.relevance.vectors.TextSpace`) is fitted on every stored paper,
in a worker thread, and kept with the stored papers' vectors. It is fitted again once the
store has grown by `[relevance] refit_growth` since the last fit; a lock keeps two fits from
running at once. A day's batch then costs one `transform`, and its `like:` terms one sparse
matrix product against all liked papers (`bot.relevance.similar.like_scores`), also in a
worker thread, so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import RelevanceSettings
from bot.db.texts import PaperTextRepository
from bot.domain.paper import Paper
from bot.domain.query import Query, liked_ids
from bot.relevance.similar import LikeScores, like_scores
from bot.relevance.vectors import TextSpace
from bot.services.access import UserError

log = logging.getLogger(__name__)

EXTRA_ROWS = 20_000
"""Vectors of papers stored since the last fit, kept until the next fit (then forgotten)."""


@dataclass(slots=True)
class _Fitted:
    """A fitted vocabulary, the vectors of the papers it was fitted on, and later additions."""

    space: TextSpace
    rows: dict[str, int]
    matrix: scipy.sparse.csr_matrix
    stored: int
    """How many papers were stored when it was fitted."""
    extra: dict[str, scipy.sparse.csr_matrix] = field(default_factory=dict)
    """One-row vectors of papers stored after the fit, by id."""


def _fit(papers: list[Paper]) -> _Fitted:
    """Fit the vocabulary on `papers` and keep their vectors (CPU-bound: a worker thread)."""
    space = TextSpace.fit(papers)
    return _Fitted(
        space=space,
        rows={paper.arxiv_id: index for index, paper in enumerate(papers)},
        matrix=space.transform(papers),
        stored=len(papers),
    )


class PaperVectors:
    """The stored papers' text vectors: fitted off the event loop, refitted as the store grows."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: RelevanceSettings) -> None:
        self.sessions = sessions
        self.threshold = settings.like_threshold
        self.refit_growth = settings.refit_growth
        self._fitted: _Fitted | None = None
        self._lock = asyncio.Lock()
        self.fits = 0
        """How many times the vocabulary was fitted (for status and tests)."""

    @asynccontextmanager
    async def _session(self, session: AsyncSession | None) -> AsyncIterator[AsyncSession]:
        if session is not None:
            yield session
            return
        async with self.sessions() as own:
            yield own

    def _due(self, fitted: _Fitted | None, stored: int) -> bool:
        if fitted is None:
            return stored > 0
        return stored > fitted.stored * (1 + self.refit_growth)

    async def _current(self, session: AsyncSession | None = None) -> _Fitted | None:
        """The fitted vocabulary, fitted first when there is none or the store has grown enough."""
        async with self._session(session) as active:
            stored = await PaperTextRepository(active).count()
        if not self._due(self._fitted, stored):
            return self._fitted
        async with self._lock:
            if not self._due(self._fitted, stored):  # another caller fitted it meanwhile
                return self._fitted
            async with self._session(session) as active:
                papers = await PaperTextRepository(active).all_texts()
            if papers:
                self._fitted = await asyncio.to_thread(_fit, papers)
                self.fits += 1
                log.info("text vocabulary fitted on %d stored papers", len(papers))
        return self._fitted

    async def space(self, session: AsyncSession | None = None) -> TextSpace:
        """The current vocabulary; LookupError when no paper is stored yet."""
        fitted = await self._current(session)
        if fitted is None:
            raise LookupError("no paper is stored yet")
        return fitted.space

    async def vectors_of(
        self, arxiv_ids: Iterable[str], session: AsyncSession | None = None
    ) -> tuple[scipy.sparse.csr_matrix, list[str]]:
        """The vectors of the stored papers among `arxiv_ids`: one row per id of the returned list."""
        fitted = await self._current(session)
        if fitted is None:
            return scipy.sparse.csr_matrix((0, 0), dtype=np.float32), []
        return await self._vectors(fitted, list(dict.fromkeys(arxiv_ids)), session)

    async def _vectors(
        self, fitted: _Fitted, wanted: list[str], session: AsyncSession | None
    ) -> tuple[scipy.sparse.csr_matrix, list[str]]:
        missing = [i for i in wanted if i not in fitted.rows and i not in fitted.extra]
        if missing:
            async with self._session(session) as active:
                papers = await PaperTextRepository(active).texts_of(missing)
            if papers:
                matrix = await asyncio.to_thread(fitted.space.transform, papers)
                if len(fitted.extra) + len(papers) > EXTRA_ROWS:
                    fitted.extra.clear()
                for index, paper in enumerate(papers):
                    fitted.extra[paper.arxiv_id] = matrix[index]
        found_fit = [i for i in wanted if i in fitted.rows]
        found_extra = [i for i in wanted if i not in fitted.rows and i in fitted.extra]
        blocks = [fitted.matrix[np.array([fitted.rows[i] for i in found_fit], dtype=np.int64)]]
        blocks.extend(fitted.extra[i] for i in found_extra)
        return scipy.sparse.csr_matrix(scipy.sparse.vstack(blocks, format="csr")), found_fit + found_extra

    async def like_scores(
        self, papers: Sequence[Paper], liked: Iterable[str], session: AsyncSession | None = None
    ) -> LikeScores:
        """Each paper's cosine to each liked paper where at least `like_threshold`: one product."""
        ids = [paper.arxiv_id for paper in papers]
        fitted = await self._current(session)
        wanted = list(dict.fromkeys(liked))
        if fitted is None or not papers or not wanted:
            return LikeScores(paper_ids=tuple(ids), threshold=self.threshold)
        liked_matrix, found = await self._vectors(fitted, wanted, session)
        threshold = self.threshold

        def work() -> LikeScores:
            batch = fitted.space.transform(papers)
            return like_scores(batch, ids, liked_matrix, found, threshold)

        return await asyncio.to_thread(work)

    async def unknown(self, arxiv_ids: Iterable[str], session: AsyncSession | None = None) -> list[str]:
        """The ids among `arxiv_ids` that are not stored, in the order given."""
        wanted = list(dict.fromkeys(arxiv_ids))
        if not wanted:
            return []
        async with self._session(session) as active:
            stored = await PaperTextRepository(active).stored(wanted)
        return [i for i in wanted if i not in stored]


async def check_likes(session: AsyncSession, query: Query) -> None:
    """Refuse a query whose `like:` terms name a paper that is not stored ("unknown paper")."""
    wanted = liked_ids(query)
    if not wanted:
        return
    stored = await PaperTextRepository(session).stored(wanted)
    missing = [arxiv_id for arxiv_id in wanted if arxiv_id not in stored]
    if missing:
        raise UserError(
            f"Unknown paper `{missing[0]}` in `like:{missing[0]}`: paperwatch has not stored it, "
            "so it has no text to compare with. Use the id of a paper it has seen in its feeds "
            "(`/paper search` finds them)."
        )
