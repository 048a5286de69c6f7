"""Ingest: store a batch of papers and record what they match, in one transaction."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import metrics
from bot.db.repo import PaperRepository
from bot.domain.paper import FeedResult
from bot.services.clock import Clock
from bot.services.matching import WatchMatcher

log = logging.getLogger(__name__)

# Another process (the `paperwatch fetch` CLI, a second worker) may store the same new paper
# between our read and our insert; the transaction is then run again and merges with its row.
WRITE_ATTEMPTS = 4


@dataclass(slots=True)
class IngestSummary:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    deliveries: int = 0
    instant_targets: set[int] = field(default_factory=set)
    error: str | None = None

    def add(self, other: IngestSummary) -> None:
        self.new += other.new
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.skipped += other.skipped
        self.deliveries += other.deliveries
        self.instant_targets |= other.instant_targets
        self.error = other.error or self.error

    def line(self) -> str:
        text = f"{self.new} new, {self.updated} updated, {self.skipped} skipped"
        if self.deliveries:
            text += f", {self.deliveries} deliveries queued"
        if self.error:
            text += f" (feed error: {self.error})"
        return text


class Ingestor:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], matcher: WatchMatcher, clock: Clock
    ) -> None:
        self.sessions = sessions
        self.matcher = matcher
        self.clock = clock

    async def ingest(self, result: FeedResult) -> IngestSummary:
        """Store the papers of one feed result; new and changed ones are matched at once."""
        summary = IngestSummary(skipped=len(result.skipped), error=result.error)
        for entry in result.skipped:
            log.warning("skipped feed entry %s: %s", entry.entry_id, entry.reason)
        if not result.papers:
            return summary
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                async with self.sessions.begin() as session:
                    outcome = await PaperRepository(session).upsert(result.papers, self.clock.now())
                    report = await self.matcher.record(session, outcome.new + outcome.changed)
                break
            except (IntegrityError, OperationalError) as exc:
                if attempt == WRITE_ATTEMPTS or not _is_write_conflict(exc):
                    raise
                log.info("another writer stored the same papers; storing again (attempt %d)", attempt + 1)
        metrics.record_papers(len(outcome.new), len(outcome.changed))
        summary.new = len(outcome.new)
        summary.updated = len(outcome.changed)
        summary.unchanged = outcome.unchanged
        summary.deliveries = report.deliveries
        summary.instant_targets = report.instant_targets
        return summary


def _is_write_conflict(exc: IntegrityError | OperationalError) -> bool:
    """A unique key taken by a concurrent writer, or a lock it held past the busy timeout."""
    if isinstance(exc, IntegrityError):
        return True
    text = str(exc.orig).lower()
    return "locked" in text or "busy" in text
