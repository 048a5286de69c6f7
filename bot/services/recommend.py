"""The "recommended for you" DM digest: each user's model, trained and run at their DM schedule.

Just before the due digests go out (`Deliverer.before_digests`), every due user target with
recommendations on and at least `MIN_POSITIVES` liked papers (👍 or saved) gets a model of its
own feedback (`bot.relevance.recommend`), trained against their 👎 and a random sample of
stored papers. It ranks the papers first seen since the user's last recommendations (the last
day, the first time), leaves out every paper already delivered to them, and adds at most
`recommend_per_day` above the cut-off as pending deliveries of their DM target, each with the
"why" line in `reason`. The outbox then sends them with the digest: exactly once, with a
nonce, no allowed mentions (docs/delivery.md).

Training and scoring run in worker processes (`bot.services.workers.WorkerPool`, started
with the bot and closed with it), a batch of users at a time: scikit-learn holds the
interpreter lock for much of its work, so in a thread it would hold the event loop too. A
worker is sent arrays only: the day's candidates and their neighbours once per batch, and just
the rows its users train on. Where no worker process can start, the same work runs in a worker
thread. Building the arrays runs in a thread too, so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import scipy.sparse
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.deliveries import DeliveryRepository
from bot.db.feedback import UserFeedback, feedback_of_users
from bot.db.models import DELIVERY_PENDING, MODE_DIGEST, TARGET_USER, PaperRow, TargetRow
from bot.relevance.recommend import (
    BACKGROUND,
    MIN_POSITIVES,
    Batch,
    Neighbours,
    Recommendation,
    UserJob,
    run_batch,
    sample_background,
)
from bot.services.clock import Clock
from bot.services.similarity import PaperVectors
from bot.services.workers import WorkerPool

log = logging.getLogger(__name__)


FIRST_LOOKBACK = timedelta(days=1)
"""The first time, papers first seen in the last day are the candidates."""
MAX_CANDIDATES = 20_000
"""At most this many of the newest papers are ranked in one round."""
USERS_PER_BATCH = 50
"""Users trained in one call to a worker."""
TITLE_CHARS = 120
VECTOR_SLICE = 1_000
"""Paper vectors asked for at once."""
FEEDBACK_SLICE = 100
"""Users whose feedback is read at once."""
RECORD_SLICE = 100
"""Deliveries (or targets) written by one statement: building a statement holds the event loop."""


@dataclass(slots=True)
class RecommendReport:
    users: int = 0
    """Users whose model ran."""
    papers: int = 0
    """Recommended papers added to DM digests."""
    too_few: int = 0
    """Users with recommendations on but fewer than `MIN_POSITIVES` liked papers."""
    seconds_per_user: list[float] = field(default_factory=list)


@dataclass(slots=True)
class _Day:
    """What every user of a round shares: the vectors, the candidates and their neighbours."""

    matrix: scipy.sparse.csr_matrix
    rows: np.ndarray
    """The candidates' rows of `matrix`."""
    seen: np.ndarray
    """When each candidate was first seen (POSIX seconds)."""
    row_of: dict[str, int]
    sample: np.ndarray
    """Rows of the stored papers drawn as background for this round."""
    candidates: scipy.sparse.csr_matrix
    neighbours: Neighbours | None = None


@dataclass(frozen=True, slots=True)
class _User:
    target_id: int
    user_id: int
    per_day: int
    since: float
    positives: list[str]
    negatives: list[str]
    delivered: list[int]
    """Candidate positions already delivered to the user."""


def why_line(titles: Sequence[str]) -> str:
    """ "close to “A” and “B”": the liked papers a recommendation is closest to."""
    quoted = [f"“{_short(t)}”" for t in titles]
    return "close to " + " and ".join(quoted) if quoted else "close to the papers you liked"


def _short(title: str) -> str:
    flat = " ".join(title.split())
    return flat if len(flat) <= TITLE_CHARS else flat[: TITLE_CHARS - 1].rstrip() + "…"


def _batch(day: _Day, users: Sequence[_User], background: int, cutoff: float) -> Batch:
    """The arrays a worker needs for `users`: only the rows they train on (a worker thread)."""
    assert day.neighbours is not None
    wanted: list[np.ndarray] = [day.sample]
    plans = []
    for user in users:
        positives = np.array([day.row_of[p] for p in user.positives if p in day.row_of], dtype=np.int64)
        negatives = np.array([day.row_of[p] for p in user.negatives if p in day.row_of], dtype=np.int64)
        pool = np.setdiff1d(day.sample, np.concatenate([positives, negatives]))
        chosen = pool[sample_background(pool.size, background, zlib.crc32(str(user.user_id).encode()))]
        allowed = np.setdiff1d(
            np.flatnonzero(day.seen >= user.since), np.array(user.delivered, dtype=np.int64)
        )
        wanted.extend((positives, negatives))
        plans.append((positives, negatives, chosen, allowed, user.per_day))
    rows = np.unique(np.concatenate(wanted))  # sorted: a row's place is found by searchsorted

    def local(found: np.ndarray) -> np.ndarray:
        return np.searchsorted(rows, found).astype(np.int64)

    jobs = tuple(
        UserJob(local(positives), local(negatives), local(chosen), allowed, per_day)
        for positives, negatives, chosen, allowed, per_day in plans
    )
    return Batch(
        rows=scipy.sparse.csr_matrix(day.matrix[rows]),
        candidates=day.candidates,
        neighbours=day.neighbours,
        cutoff=cutoff,
        users=jobs,
    )


class Recommender:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        vectors: PaperVectors,
        clock: Clock,
        *,
        cutoff: float,
        background: int = BACKGROUND,
        workers: WorkerPool | None = None,
    ) -> None:
        self.sessions = sessions
        self.vectors = vectors
        self.clock = clock
        self.cutoff = cutoff
        self.background = background
        self.workers = workers if workers is not None else WorkerPool()

    async def start(self) -> None:
        """Start the worker processes (at the bot's start, before the paper vectors are loaded)."""
        await self.workers.start()

    async def close(self) -> None:
        """Stop the worker processes."""
        await self.workers.close()

    async def prepare(self, target_ids: Sequence[int]) -> RecommendReport:
        """Add the recommendations of the due user targets among `target_ids` to their outbox."""
        report = RecommendReport()
        now = self.clock.now()
        async with self.sessions() as session:
            targets = await _recommending(session, target_ids)
            if not targets:
                return report
            feedback: dict[int, UserFeedback] = {}
            user_ids = [t.user_id for t in targets]
            for start in range(0, len(user_ids), FEEDBACK_SLICE):  # its rows are read on the loop
                feedback.update(await feedback_of_users(session, user_ids[start : start + FEEDBACK_SLICE]))
            ready = []
            for target in targets:
                if len(feedback[target.user_id].positives) >= MIN_POSITIVES:
                    ready.append(target)
                else:
                    report.too_few += 1
            if not ready:
                return report
            since = {t.id: t.last_recommended_at or now - FIRST_LOOKBACK for t in ready}
            fresh = await _first_seen_since(session, min(since.values()), now)
            delivered = await DeliveryRepository(session).existing_pairs(
                [t.id for t in ready], [paper_id for paper_id, _ in fresh]
            )
            sample = await _random_ids(session, self.background * 2)
        labelled = {p for t in ready for fb in [feedback[t.user_id]] for p in (*fb.positives, *fb.negatives)}
        candidate_ids = [paper_id for paper_id, _ in fresh if paper_id not in labelled]
        matrix, found = await self._vectors([*candidate_ids, *sorted(labelled), *sample])
        day, candidate_ids, users = await asyncio.to_thread(
            _plan, matrix, found, candidate_ids, fresh, delivered, sample, ready, feedback, since
        )
        day.neighbours = await self.workers.run(Neighbours.of, day.candidates)
        slots = asyncio.Semaphore(max(self.workers.processes, 1) + 1)  # keep every worker busy

        async def run(batch: list[_User]) -> list[tuple[list[Recommendation], float]]:
            async with slots:
                arrays = await asyncio.to_thread(_batch, day, batch, self.background, self.cutoff)
                return await self.workers.run(run_batch, arrays)

        batches = [users[start : start + USERS_PER_BATCH] for start in range(0, len(users), USERS_PER_BATCH)]
        picks: dict[int, list[Recommendation]] = {}
        for batch, results in zip(batches, await asyncio.gather(*map(run, batches)), strict=True):
            for user, (found_, seconds) in zip(batch, results, strict=True):
                picks[user.target_id] = found_
                report.seconds_per_user.append(seconds)
        report.users = len(users)
        report.papers = await self._record(ready, feedback, picks, candidate_ids, now)
        log.info("recommendations: %d papers for %d users", report.papers, report.users)
        return report

    async def _vectors(self, ids: list[str]) -> tuple[scipy.sparse.csr_matrix, list[str]]:
        """The stored vectors of `ids`, asked for a slice at a time so the loop is never held long."""
        blocks: list[scipy.sparse.csr_matrix] = []
        found: list[str] = []
        for start in range(0, len(ids), VECTOR_SLICE):
            block, ids_found = await self.vectors.vectors_of(ids[start : start + VECTOR_SLICE])
            if ids_found:
                blocks.append(block)
                found.extend(ids_found)
        if not blocks:
            return scipy.sparse.csr_matrix((0, 0), dtype=np.float32), []
        matrix = await asyncio.to_thread(scipy.sparse.vstack, blocks, format="csr")
        return scipy.sparse.csr_matrix(matrix), found

    async def _record(
        self,
        targets: list[TargetRow],
        feedback: dict[int, UserFeedback],
        picks: dict[int, list[Recommendation]],
        candidate_ids: list[str],
        now: datetime,
    ) -> int:
        """Add the picks as pending DM deliveries with their why line; note when this ran."""
        liked = {t.id: feedback[t.user_id].positives for t in targets}
        added = 0
        async with self.sessions.begin() as session:
            wanted = {liked[t][i] for t, found in picks.items() for r in found for i in r.closest}
            titles = await _titles(session, wanted)
            rows: list[dict[str, object]] = []
            for target in targets:
                for pick in picks.get(target.id, []):
                    names = [titles.get(liked[target.id][i], liked[target.id][i]) for i in pick.closest]
                    rows.append(
                        {
                            "target_id": target.id,
                            "paper_id": candidate_ids[pick.index],
                            "watch_id": None,
                            "watch_ids": [],
                            "matched_terms": [],
                            "mode": MODE_DIGEST,
                            "status": DELIVERY_PENDING,
                            "reason": why_line(names),
                            "created_at": now,
                        }
                    )
            repository = DeliveryRepository(session)
            for start in range(0, len(rows), RECORD_SLICE):  # each statement is compiled on the loop
                added += await repository.add_pending(rows[start : start + RECORD_SLICE])
            ran = [t.id for t in targets if t.id in picks]
            for start in range(0, len(ran), RECORD_SLICE):
                await session.execute(
                    update(TargetRow)
                    .where(TargetRow.id.in_(ran[start : start + RECORD_SLICE]))
                    .values(last_recommended_at=now)
                )
        return added


def _plan(
    matrix: scipy.sparse.csr_matrix,
    found: list[str],
    candidate_ids: list[str],
    fresh: list[tuple[str, datetime]],
    delivered: Iterable[tuple[int, str]],
    sample: list[str],
    ready: list[TargetRow],
    feedback: dict[int, UserFeedback],
    since: dict[int, datetime],
) -> tuple[_Day, list[str], list[_User]]:
    """The round's shared arrays and each user's plain description (a worker thread)."""
    row_of = {paper_id: row for row, paper_id in enumerate(found)}
    candidate_ids = [p for p in candidate_ids if p in row_of]
    position = {paper_id: i for i, paper_id in enumerate(candidate_ids)}
    seen = dict(fresh)
    sent: dict[int, list[int]] = {}
    for target_id, paper_id in delivered:
        if paper_id in position:
            sent.setdefault(target_id, []).append(position[paper_id])
    rows = np.array([row_of[p] for p in candidate_ids], dtype=np.int64)
    day = _Day(
        matrix=matrix,
        rows=rows,
        seen=np.array([seen[p].timestamp() for p in candidate_ids], dtype=np.float64),
        row_of=row_of,
        sample=np.array([row_of[p] for p in sample if p in row_of], dtype=np.int64),
        candidates=scipy.sparse.csr_matrix(matrix[rows]),
    )
    users = [
        _User(
            target_id=t.id,
            user_id=t.user_id,
            per_day=t.recommend_per_day,
            since=since[t.id].timestamp(),
            positives=feedback[t.user_id].positives,
            negatives=feedback[t.user_id].negatives,
            delivered=sent.get(t.id, []),
        )
        for t in ready
    ]
    return day, candidate_ids, users


async def _recommending(session: AsyncSession, target_ids: Sequence[int]) -> list[TargetRow]:
    rows = await session.scalars(
        select(TargetRow)
        .where(
            TargetRow.id.in_(list(target_ids)),
            TargetRow.kind == TARGET_USER,
            TargetRow.recommend.is_(True),
            TargetRow.paused_reason.is_(None),
        )
        .order_by(TargetRow.id)
    )
    return list(rows)


async def _first_seen_since(
    session: AsyncSession, since: datetime, now: datetime
) -> list[tuple[str, datetime]]:
    rows = await session.execute(
        select(PaperRow.arxiv_id, PaperRow.first_seen_at)
        .where(PaperRow.first_seen_at >= since, PaperRow.first_seen_at <= now)
        .order_by(PaperRow.first_seen_at.desc(), PaperRow.arxiv_id)
        .limit(MAX_CANDIDATES)
    )
    return [(str(i), seen) for i, seen in rows.all()]


async def _random_ids(session: AsyncSession, count: int) -> list[str]:
    """A random sample of stored paper ids (one per round, shared by its users)."""
    rows = await session.scalars(select(PaperRow.arxiv_id).order_by(func.random()).limit(count))
    return sorted(rows)


async def _titles(session: AsyncSession, ids: set[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = await session.execute(select(PaperRow.arxiv_id, PaperRow.title).where(PaperRow.arxiv_id.in_(ids)))
    return {str(i): str(t) for i, t in rows.all()}
