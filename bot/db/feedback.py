"""Repositories for what users tell the bot about papers: 👍 / 👎 votes and their reading lists.

Like every repository they flush, never commit: the service owns the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import FeedbackRow, PaperRow, SavedPaperRow
from bot.db.repo import paper_from_row
from bot.domain.paper import Paper

LIKE = 1
DISLIKE = -1

_CHUNK = 500


@dataclass(slots=True)
class UserFeedback:
    """One user's feedback as the recommender reads it.

    `positives` are the papers the user 👍'd or saved; `negatives` the papers they 👎'd. A paper
    that is both saved and 👎'd counts as a negative only: the vote is the explicit judgement.
    Both lists are sorted, so the same feedback always reads the same.
    """

    positives: list[str] = field(default_factory=list)
    negatives: list[str] = field(default_factory=list)


def combine(votes: dict[str, int], saved: Iterable[str]) -> UserFeedback:
    negatives = {paper for paper, value in votes.items() if value < 0}
    positives = {paper for paper, value in votes.items() if value > 0} | set(saved)
    return UserFeedback(positives=sorted(positives - negatives), negatives=sorted(negatives))


def _is_postgresql(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


class FeedbackRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def value(self, user_id: int, paper_id: str) -> int | None:
        return await self.session.scalar(
            select(FeedbackRow.value).where(FeedbackRow.user_id == user_id, FeedbackRow.paper_id == paper_id)
        )

    async def set(
        self, user_id: int, paper_id: str, value: int, *, channel_id: int | None, now: datetime
    ) -> int | None:
        """Record a vote, replacing the user's earlier vote on the paper; returns that earlier one."""
        if value not in (LIKE, DISLIKE):
            raise ValueError(f"a vote is {LIKE} or {DISLIKE}, not {value}")
        previous = await self.value(user_id, paper_id)
        insert = pg_insert if _is_postgresql(self.session) else sqlite_insert
        stmt = insert(FeedbackRow).values(
            user_id=user_id, paper_id=paper_id, value=value, channel_id=channel_id, created_at=now
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["user_id", "paper_id"],
            set_={"value": value, "channel_id": channel_id, "created_at": now},
        )
        await self.session.execute(stmt)
        return previous

    async def remove(self, user_id: int, paper_id: str) -> int | None:
        """Forget the user's vote on the paper; returns the vote there was, if any."""
        previous = await self.value(user_id, paper_id)
        if previous is not None:
            await self.session.execute(
                delete(FeedbackRow).where(FeedbackRow.user_id == user_id, FeedbackRow.paper_id == paper_id)
            )
        return previous

    async def votes(self, user_id: int) -> dict[str, int]:
        rows = await self.session.execute(
            select(FeedbackRow.paper_id, FeedbackRow.value).where(FeedbackRow.user_id == user_id)
        )
        return {str(paper): int(value) for paper, value in rows.all()}

    async def votes_of_users(self, user_ids: Iterable[int]) -> dict[int, dict[str, int]]:
        users = sorted(set(user_ids))
        out: dict[int, dict[str, int]] = {user: {} for user in users}
        for start in range(0, len(users), _CHUNK):
            rows = await self.session.execute(
                select(FeedbackRow.user_id, FeedbackRow.paper_id, FeedbackRow.value).where(
                    FeedbackRow.user_id.in_(users[start : start + _CHUNK])
                )
            )
            for user, paper, value in rows.all():
                out[user][paper] = value
        return out


class SavedPaperRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, user_id: int, paper_id: str, now: datetime) -> bool:
        """Put a paper on the user's reading list; False when it was already there."""
        insert = pg_insert if _is_postgresql(self.session) else sqlite_insert
        stmt = insert(SavedPaperRow).values(user_id=user_id, paper_id=paper_id, saved_at=now)
        stmt = stmt.on_conflict_do_nothing(index_elements=["user_id", "paper_id"])
        result = await self.session.execute(stmt)
        return bool(getattr(result, "rowcount", 0))

    async def remove(self, user_id: int, paper_id: str) -> bool:
        """Take a paper off the user's reading list; False when it was not on it."""
        result = await self.session.execute(
            delete(SavedPaperRow).where(SavedPaperRow.user_id == user_id, SavedPaperRow.paper_id == paper_id)
        )
        return bool(getattr(result, "rowcount", 0))

    async def has(self, user_id: int, paper_id: str) -> bool:
        found = await self.session.scalar(
            select(SavedPaperRow.id).where(
                SavedPaperRow.user_id == user_id, SavedPaperRow.paper_id == paper_id
            )
        )
        return found is not None

    async def count(self, user_id: int) -> int:
        total = await self.session.scalar(
            select(func.count()).select_from(SavedPaperRow).where(SavedPaperRow.user_id == user_id)
        )
        return int(total or 0)

    async def page(self, user_id: int, offset: int, limit: int) -> list[tuple[Paper, datetime]]:
        """The user's saved papers, the most recently saved first."""
        rows = await self.session.execute(
            select(PaperRow, SavedPaperRow.saved_at)
            .join(PaperRow, PaperRow.arxiv_id == SavedPaperRow.paper_id)
            .where(SavedPaperRow.user_id == user_id)
            .order_by(SavedPaperRow.saved_at.desc(), SavedPaperRow.id.desc())
            .offset(max(offset, 0))
            .limit(max(limit, 0))
        )
        return [(paper_from_row(row), saved_at) for row, saved_at in rows.all()]

    async def ids(self, user_id: int) -> list[str]:
        rows = await self.session.scalars(
            select(SavedPaperRow.paper_id).where(SavedPaperRow.user_id == user_id)
        )
        return list(rows)

    async def ids_of_users(self, user_ids: Iterable[int]) -> dict[int, list[str]]:
        users = sorted(set(user_ids))
        out: dict[int, list[str]] = {user: [] for user in users}
        for start in range(0, len(users), _CHUNK):
            rows = await self.session.execute(
                select(SavedPaperRow.user_id, SavedPaperRow.paper_id).where(
                    SavedPaperRow.user_id.in_(users[start : start + _CHUNK])
                )
            )
            for user, paper in rows.all():
                out[user].append(paper)
        return out


async def feedback_of_users(session: AsyncSession, user_ids: Iterable[int]) -> dict[int, UserFeedback]:
    """Each user's positives and negatives, read in a few queries for any number of users."""
    users = list(user_ids)
    votes = await FeedbackRepository(session).votes_of_users(users)
    saved = await SavedPaperRepository(session).ids_of_users(users)
    return {user: combine(votes.get(user, {}), saved.get(user, ())) for user in set(users)}
