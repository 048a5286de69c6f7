"""Repositories: queries over one session. They flush, never commit; services own transactions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import (
    TARGET_CHANNEL,
    TARGET_USER,
    BotStateRow,
    FeedStateRow,
    PaperRow,
    TargetRow,
    WatchRow,
    utcnow,
)
from bot.db.search_index import write_documents
from bot.domain.paper import Paper


def paper_from_row(row: PaperRow) -> Paper:
    return Paper(
        arxiv_id=row.arxiv_id,
        title=row.title,
        abstract=row.abstract,
        authors=tuple(row.authors or ()),
        published_at=row.published_at,
        sources=frozenset(row.sources or ()),
        categories=tuple(row.categories or ()),
        upvotes=row.upvotes,
        comments=row.comments,
        ai_summary=row.ai_summary,
        ai_keywords=tuple(row.ai_keywords or ()),
        github_url=row.github_url,
        project_url=row.project_url,
        hf_date=row.hf_date,
        announce_type=row.announce_type,
        version=row.version,
        first_seen_at=row.first_seen_at,
    )


def _fill_row(row: PaperRow, paper: Paper) -> None:
    row.title = paper.title
    row.abstract = paper.abstract
    row.authors = list(paper.authors)
    row.published_at = paper.published_at
    row.sources = sorted(paper.sources)
    row.categories = list(paper.categories)
    row.upvotes = paper.upvotes
    row.comments = paper.comments
    row.ai_summary = paper.ai_summary
    row.ai_keywords = list(paper.ai_keywords)
    row.github_url = paper.github_url
    row.project_url = paper.project_url
    row.hf_date = paper.hf_date
    row.announce_type = paper.announce_type
    row.version = paper.version


def _searched_text(paper: Paper) -> tuple[object, ...]:
    """What the search index holds of a paper (an upvote re-poll leaves it as it is)."""
    return (paper.title, paper.abstract, paper.authors, paper.categories)


ACTIVE_SLICE = 2_000
"""Watches read per slice by `WatchRepository.active` (the event loop runs between slices)."""


@dataclass(frozen=True, slots=True)
class ActiveWatch:
    """What matching needs of a watch that is not paused."""

    id: int
    target_id: int
    query: str
    mode: str
    min_upvotes: int | None
    created_at: datetime


@dataclass(slots=True)
class UpsertOutcome:
    new: list[Paper]
    changed: list[Paper]
    """Papers already stored whose stored fields changed (upvotes, comments, new source…)."""
    unchanged: int


class PaperRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def upsert(self, papers: Sequence[Paper], now: datetime | None = None) -> UpsertOutcome:
        """Store papers, merging each with what is already stored under its id."""
        now = now or utcnow()
        merged: dict[str, Paper] = {}
        for paper in papers:
            seen = merged.get(paper.arxiv_id)
            merged[paper.arxiv_id] = seen.merged_with(paper) if seen else paper
        existing: dict[str, PaperRow] = {}
        ids = list(merged)
        for start in range(0, len(ids), 500):
            rows = await self.session.scalars(
                select(PaperRow).where(PaperRow.arxiv_id.in_(ids[start : start + 500]))
            )
            existing.update({row.arxiv_id: row for row in rows})
        outcome = UpsertOutcome(new=[], changed=[], unchanged=0)
        reindexed: list[Paper] = []  # new papers, and stored ones whose words changed
        for arxiv_id, paper in merged.items():
            row = existing.get(arxiv_id)
            if row is None:
                row = PaperRow(arxiv_id=arxiv_id, first_seen_at=now, updated_at=now)
                _fill_row(row, paper)
                self.session.add(row)
                outcome.new.append(paper_from_row(row))
                reindexed.append(outcome.new[-1])
                continue
            before = paper_from_row(row)
            after = before.merged_with(paper)
            if after == before:
                outcome.unchanged += 1
                continue
            _fill_row(row, after)
            row.updated_at = now
            outcome.changed.append(paper_from_row(row))
            if _searched_text(after) != _searched_text(before):
                reindexed.append(after)
        await self.session.flush()
        await write_documents(self.session, reindexed)
        return outcome

    async def get(self, arxiv_id: str) -> Paper | None:
        row = await self.session.get(PaperRow, arxiv_id)
        return paper_from_row(row) if row else None

    async def get_many(self, ids: Iterable[str]) -> dict[str, Paper]:
        wanted = list(dict.fromkeys(ids))
        out: dict[str, Paper] = {}
        for start in range(0, len(wanted), 500):
            rows = await self.session.scalars(
                select(PaperRow).where(PaperRow.arxiv_id.in_(wanted[start : start + 500]))
            )
            out.update({row.arxiv_id: paper_from_row(row) for row in rows})
        return out

    async def seen_since(self, since: datetime, limit: int = 20_000) -> list[Paper]:
        rows = await self.session.scalars(
            select(PaperRow)
            .where(PaperRow.first_seen_at >= since)
            .order_by(PaperRow.first_seen_at.desc())
            .limit(limit)
        )
        return [paper_from_row(row) for row in rows]

    async def count_since(self, since: datetime) -> int:
        total = await self.session.scalar(
            select(func.count()).select_from(PaperRow).where(PaperRow.first_seen_at >= since)
        )
        return int(total or 0)

    async def count(self) -> int:
        return int(await self.session.scalar(select(func.count()).select_from(PaperRow)) or 0)


class TargetRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def channel(self, channel_id: int) -> TargetRow | None:
        return await self.session.scalar(
            select(TargetRow).where(TargetRow.kind == TARGET_CHANNEL, TargetRow.channel_id == channel_id)
        )

    async def user(self, user_id: int) -> TargetRow | None:
        return await self.session.scalar(
            select(TargetRow).where(TargetRow.kind == TARGET_USER, TargetRow.user_id == user_id)
        )

    async def get(self, target_id: int) -> TargetRow | None:
        return await self.session.get(TargetRow, target_id)

    async def ensure_channel(
        self, guild_id: int, channel_id: int, *, digest_time: str, timezone: str
    ) -> TargetRow:
        row = await self.channel(channel_id)
        if row is None:
            row = TargetRow(
                kind=TARGET_CHANNEL,
                guild_id=guild_id,
                channel_id=channel_id,
                user_id=0,
                digest_time=digest_time,
                timezone=timezone,
            )
            self.session.add(row)
            await self.session.flush()
        return row

    async def ensure_user(self, user_id: int, *, digest_time: str, timezone: str) -> TargetRow:
        row = await self.user(user_id)
        if row is None:
            row = TargetRow(
                kind=TARGET_USER,
                guild_id=None,
                channel_id=0,
                user_id=user_id,
                digest_time=digest_time,
                timezone=timezone,
            )
            self.session.add(row)
            await self.session.flush()
        return row

    async def due_digests(self, now: datetime, limit: int = 500) -> list[TargetRow]:
        rows = await self.session.scalars(
            select(TargetRow)
            .where(TargetRow.next_digest_at.is_not(None), TargetRow.next_digest_at <= now)
            .order_by(TargetRow.next_digest_at)
            .limit(limit)
        )
        return list(rows)

    async def next_digest(self, guild_id: int | None = None) -> datetime | None:
        stmt = select(func.min(TargetRow.next_digest_at)).where(TargetRow.digest_paused.is_(False))
        if guild_id is not None:
            stmt = stmt.where(TargetRow.guild_id == guild_id)
        return await self.session.scalar(stmt)


class WatchRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, watch_id: int) -> WatchRow | None:
        return await self.session.get(WatchRow, watch_id)

    async def for_target(self, target_id: int) -> list[WatchRow]:
        return list(
            await self.session.scalars(
                select(WatchRow).where(WatchRow.target_id == target_id).order_by(WatchRow.id)
            )
        )

    async def count_for_target(self, target_id: int) -> int:
        total = await self.session.scalar(
            select(func.count()).select_from(WatchRow).where(WatchRow.target_id == target_id)
        )
        return int(total or 0)

    async def count_in_guild(self, guild_id: int) -> int:
        total = await self.session.scalar(
            select(func.count())
            .select_from(WatchRow)
            .join(TargetRow, TargetRow.id == WatchRow.target_id)
            .where(TargetRow.guild_id == guild_id)
        )
        return int(total or 0)

    async def in_guild(self, guild_id: int) -> list[tuple[WatchRow, TargetRow]]:
        rows = await self.session.execute(
            select(WatchRow, TargetRow)
            .join(TargetRow, TargetRow.id == WatchRow.target_id)
            .where(TargetRow.guild_id == guild_id)
            .order_by(WatchRow.id)
        )
        return [(w, t) for w, t in rows.all()]

    async def active(self) -> list[ActiveWatch]:
        """Every watch that is not paused, by id: what the matcher needs of each, as plain values.

        Read in slices of `ACTIVE_SLICE` rows, and without building ORM objects: each ingest
        reads them all, and at 100,000 watches loading whole rows held the event loop for 2 s.
        """
        result = await self.session.stream(
            select(
                WatchRow.id,
                WatchRow.target_id,
                WatchRow.query,
                WatchRow.mode,
                WatchRow.min_upvotes,
                WatchRow.created_at,
            )
            .where(WatchRow.paused.is_(False))
            .order_by(WatchRow.id)
            .execution_options(yield_per=ACTIVE_SLICE)
        )
        watches: list[ActiveWatch] = []
        async for part in result.partitions(ACTIVE_SLICE):
            watches.extend(ActiveWatch(*row) for row in part)
        return watches

    async def count(self) -> int:
        return int(await self.session.scalar(select(func.count()).select_from(WatchRow)) or 0)

    async def add_matches(self, counts: dict[int, int]) -> None:
        """Add to each watch's match count, in one statement run for all of them."""
        if not counts:
            return
        table = cast(Table, WatchRow.__table__)
        stmt = (
            update(table)
            .where(table.c.id == bindparam("watch_id"))
            .values(match_count=table.c.match_count + bindparam("added"))
        )
        await self.session.execute(
            stmt, [{"watch_id": watch_id, "added": count} for watch_id, count in counts.items()]
        )


class FeedStateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, key: str, source: str) -> FeedStateRow:
        row = await self.session.get(FeedStateRow, key)
        if row is None:
            row = FeedStateRow(key=key, source=source, consecutive_failures=0)
            self.session.add(row)
            await self.session.flush()
        return row


class BotStateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, key: str) -> str | None:
        row = await self.session.get(BotStateRow, key)
        return row.value if row else None

    async def set(self, key: str, value: str) -> None:
        row = await self.session.get(BotStateRow, key)
        if row is None:
            self.session.add(BotStateRow(key=key, value=value))
        else:
            row.value = value
        await self.session.flush()
