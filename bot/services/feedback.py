"""What a person tells the bot about papers: their reading list, 👍 / 👎, and recommendations.

Only stored papers can be saved or rated: an id is read with the arXiv id rules and refused,
naming it, when paperwatch has never seen that paper. Feedback is per person and never shown to
anyone else. The "recommended for you" digest (docs/relevance.md) learns from it once a person
has at least `MIN_POSITIVES` positive papers (👍 or saved).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.db.feedback import DISLIKE, LIKE, FeedbackRepository, SavedPaperRepository, UserFeedback, combine
from bot.db.models import PaperRow, TargetRow
from bot.db.repo import PaperRepository, TargetRepository, paper_from_row
from bot.domain.paper import Paper, normalize_arxiv_id
from bot.services.access import NotFound, UserError, schedule_defaults
from bot.services.clock import Clock
from bot.services.digests import target_schedule

MIN_POSITIVES = 3
"""Positive papers (👍 or saved) a person needs before recommendations are sent."""
DEFAULT_PER_DAY = 5
MAX_PER_DAY = 25

__all__ = [
    "DEFAULT_PER_DAY",
    "MAX_PER_DAY",
    "MIN_POSITIVES",
    "FeedbackService",
    "RecommendStatus",
    "UserFeedback",
]


@dataclass(frozen=True, slots=True)
class RecommendStatus:
    on: bool
    per_day: int
    positives: int
    """The person's positive papers: 👍'd or saved (a 👎 takes a paper out)."""
    needed: int
    """How many more positive papers are needed before anything is sent; 0 when enough."""

    @property
    def sending(self) -> bool:
        return self.on and self.needed == 0


def _arxiv_id(raw_id: str) -> str:
    arxiv_id = normalize_arxiv_id(raw_id[:100])
    if arxiv_id is None:
        raise UserError("That is not an arXiv id; ids look like `2403.01234` or `hep-th/9901001`.")
    return arxiv_id


async def _stored(session: AsyncSession, raw_id: str) -> Paper:
    arxiv_id = _arxiv_id(raw_id)
    row = await session.get(PaperRow, arxiv_id)
    if row is None:
        raise NotFound(f"paperwatch has not seen `{arxiv_id}` in its feeds.")
    return paper_from_row(row)


class FeedbackService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings, clock: Clock) -> None:
        self.sessions = sessions
        self.settings = settings
        self.clock = clock

    # --- the reading list -----------------------------------------------------------------

    async def save(self, user_id: int, raw_id: str) -> tuple[Paper, bool]:
        """Put a stored paper on the person's reading list; the flag says it was already there."""
        async with self.sessions.begin() as session:
            paper = await _stored(session, raw_id)
            saved = SavedPaperRepository(session)
            limit = self.settings.limits.saved_per_user
            if not await saved.has(user_id, paper.arxiv_id) and await saved.count(user_id) >= limit:
                raise UserError(
                    f"Your reading list already holds {limit:,} papers, the most allowed. "
                    "Remove one with `/paper unsave` first."
                )
            added = await saved.add(user_id, paper.arxiv_id, self.clock.now())
            return paper, not added

    async def unsave(self, user_id: int, raw_id: str) -> Paper:
        """Take a paper off the person's reading list."""
        arxiv_id = _arxiv_id(raw_id)
        async with self.sessions.begin() as session:
            if not await SavedPaperRepository(session).remove(user_id, arxiv_id):
                raise NotFound(f"`{arxiv_id}` is not on your reading list. `/paper saved` shows it.")
            paper = await PaperRepository(session).get(arxiv_id)
        if paper is None:  # pragma: no cover - a saved paper is a stored paper (foreign key)
            raise NotFound(f"paperwatch has not seen `{arxiv_id}` in its feeds.")
        return paper

    async def saved(
        self, user_id: int, offset: int = 0, limit: int = 10
    ) -> tuple[list[tuple[Paper, datetime]], int]:
        """One page of the person's reading list, the most recently saved first, and its length."""
        async with self.sessions() as session:
            saved = SavedPaperRepository(session)
            return await saved.page(user_id, offset, limit), await saved.count(user_id)

    # --- 👍 / 👎 ---------------------------------------------------------------------------

    async def rate(self, user_id: int, raw_id: str, value: int, channel_id: int | None = None) -> int:
        """Record 👍 (1) or 👎 (-1), replacing the person's earlier vote, or remove it (0).

        Returns the earlier vote (0 when there was none), so a caller can say what changed.
        """
        if value not in (LIKE, DISLIKE, 0):
            raise UserError("A rating is 👍, 👎 or nothing.")
        async with self.sessions.begin() as session:
            votes = FeedbackRepository(session)
            if value == 0:
                previous = await votes.remove(user_id, _arxiv_id(raw_id))
            else:
                paper = await _stored(session, raw_id)
                previous = await votes.set(
                    user_id, paper.arxiv_id, value, channel_id=channel_id, now=self.clock.now()
                )
        return previous or 0

    async def feedback_of(self, user_id: int) -> UserFeedback:
        async with self.sessions() as session:
            return await _feedback(session, user_id)

    # --- recommendations ------------------------------------------------------------------

    async def set_recommend(self, user_id: int, on: bool, per_day: int | None = None) -> RecommendStatus:
        """Turn the person's "recommended for you" digest on or off (and set how many a day)."""
        if per_day is not None and not 1 <= per_day <= MAX_PER_DAY:
            raise UserError(f"`per_day` is a number from 1 to {MAX_PER_DAY}.")
        async with self.sessions.begin() as session:
            targets = TargetRepository(session)
            target = await (
                targets.ensure_user(user_id, **schedule_defaults(self.settings))
                if on
                else targets.user(user_id)
            )
            if target is None:  # off, for someone who never turned it on
                return _status(None, await _feedback(session, user_id))
            target.recommend = on
            if per_day is not None:
                target.recommend_per_day = per_day
            if on and target.next_digest_at is None:
                target.next_digest_at = target_schedule(target).next_after(self.clock.now())
            return _status(target, await _feedback(session, user_id))

    async def recommend_status(self, user_id: int) -> RecommendStatus:
        async with self.sessions() as session:
            target = await TargetRepository(session).user(user_id)
            return _status(target, await _feedback(session, user_id))


async def _feedback(session: AsyncSession, user_id: int) -> UserFeedback:
    votes = await FeedbackRepository(session).votes(user_id)
    return combine(votes, await SavedPaperRepository(session).ids(user_id))


def _status(target: TargetRow | None, feedback: UserFeedback) -> RecommendStatus:
    positives = len(feedback.positives)
    return RecommendStatus(
        on=bool(target and target.recommend),
        per_day=target.recommend_per_day if target else DEFAULT_PER_DAY,
        positives=positives,
        needed=max(MIN_POSITIVES - positives, 0),
    )
