"""The outbox's rows: each paper's delivery to a target, from pending to sent.

A repository like those of bot/db/repo.py: it flushes, never commits; services own transactions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import (
    DELIVERY_CLAIMED,
    DELIVERY_PENDING,
    DELIVERY_SENT,
    DeliveryRow,
)


class DeliveryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_pending(self, rows: Sequence[dict[str, object]]) -> int:
        """Insert pending deliveries, ignoring (target, paper) pairs already recorded."""
        if not rows:
            return 0
        dialect = self.session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        total = 0
        for start in range(0, len(rows), 500):
            chunk = list(rows[start : start + 500])
            stmt = insert(DeliveryRow).values(chunk)
            stmt = stmt.on_conflict_do_nothing(index_elements=["target_id", "paper_id"])
            result = await self.session.execute(stmt)
            total += max(getattr(result, "rowcount", 0) or 0, 0)
        return total

    async def existing_pairs(
        self, target_ids: Iterable[int], paper_ids: Iterable[str]
    ) -> set[tuple[int, str]]:
        targets = list(set(target_ids))
        papers = list(set(paper_ids))
        found: set[tuple[int, str]] = set()
        if not targets or not papers:
            return found
        for start in range(0, len(papers), 500):
            rows = await self.session.execute(
                select(DeliveryRow.target_id, DeliveryRow.paper_id).where(
                    DeliveryRow.target_id.in_(targets), DeliveryRow.paper_id.in_(papers[start : start + 500])
                )
            )
            found.update((t, p) for t, p in rows.all())
        return found

    async def pending_for_target(self, target_id: int, *, mode: str | None = None) -> list[DeliveryRow]:
        stmt = select(DeliveryRow).where(
            DeliveryRow.target_id == target_id, DeliveryRow.status == DELIVERY_PENDING
        )
        if mode is not None:
            stmt = stmt.where(DeliveryRow.mode == mode)
        return list(await self.session.scalars(stmt.order_by(DeliveryRow.id)))

    async def claimed(self, target_id: int | None = None) -> list[DeliveryRow]:
        stmt = select(DeliveryRow).where(DeliveryRow.status == DELIVERY_CLAIMED)
        if target_id is not None:
            stmt = stmt.where(DeliveryRow.target_id == target_id)
        return list(await self.session.scalars(stmt.order_by(DeliveryRow.id)))

    async def status_of(self, target_id: int, paper_id: str) -> str | None:
        """The delivery of a paper to a target: pending, claimed, sent or failed; None if none."""
        return await self.session.scalar(
            select(DeliveryRow.status).where(
                DeliveryRow.target_id == target_id, DeliveryRow.paper_id == paper_id
            )
        )

    async def targets_with_pending(self, mode: str) -> list[int]:
        rows = await self.session.scalars(
            select(DeliveryRow.target_id)
            .where(DeliveryRow.status == DELIVERY_PENDING, DeliveryRow.mode == mode)
            .distinct()
        )
        return list(rows)

    async def targets_with_claimed(self) -> list[int]:
        rows = await self.session.scalars(
            select(DeliveryRow.target_id).where(DeliveryRow.status == DELIVERY_CLAIMED).distinct()
        )
        return list(rows)

    async def mark_sent(self, ids: Sequence[int], message_id: int | None, now: datetime) -> None:
        await self.session.execute(
            update(DeliveryRow)
            .where(DeliveryRow.id.in_(list(ids)))
            .values(
                status=DELIVERY_SENT,
                message_id=message_id,
                sent_at=now,
                last_error=None,
                claimed_content=None,
            )
        )

    async def release(self, ids: Sequence[int], error: str) -> None:
        """Give claimed deliveries back to the queue after a failed send."""
        await self.session.execute(
            update(DeliveryRow)
            .where(DeliveryRow.id.in_(list(ids)))
            .values(
                status=DELIVERY_PENDING,
                nonce=None,
                claimed_at=None,
                claimed_content=None,
                last_error=error[:500],
            )
        )

    async def forget_watch(self, target_id: int, watch_id: int) -> None:
        """A watch is removed: drop pending deliveries only it matched, and its name from the rest."""
        for row in await self.pending_for_target(target_id):
            ids = list(row.watch_ids or [])
            if watch_id not in ids:
                continue
            remaining = [w for w in ids if w != watch_id]
            if not remaining:
                await self.session.delete(row)
                continue
            row.watch_ids = remaining
            row.watch_id = remaining[0]
            row.matched_terms = [t for t in (row.matched_terms or []) if t and t[0] != str(watch_id)]
        await self.session.flush()
