"""The timetable: feed polls on their intervals, and a frequent check for due digests.

Digest times live in the database (`targets.next_digest_at`), so a schedule survives
restarts, and a digest whose time passed while the bot was down is posted at the first
check after it starts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.config import Settings
from bot.services.delivery import Deliverer
from bot.services.ingest import IngestSummary
from bot.services.polling import FeedPoller

log = logging.getLogger(__name__)


class SkippedRunFilter(logging.Filter):
    """APScheduler warns each time a job is still running when its next run comes.

    Every job here runs one at a time by design (a long digest round simply delays the next
    check), so that notice is logged at DEBUG instead.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if "maximum number of running instances reached" not in record.getMessage():
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


SKIPPED_RUNS = SkippedRunFilter()


async def finish_or_cancel(
    tasks: Iterable[asyncio.Task[Any]], what: str, *, grace: float, timeout: float
) -> None:
    """Let `tasks` end on their own for up to `grace` seconds, then cancel the rest.

    Shutdown waits up to `timeout` more for the cancelled ones to unwind, so none of them
    still uses the database or Discord when those are closed.
    """
    running = [task for task in tasks if not task.done()]
    if not running:
        return
    _, late = await asyncio.wait(running, timeout=grace)
    if not late:
        return
    for task in late:
        task.cancel()
    _, stuck = await asyncio.wait(late, timeout=timeout)
    log.warning("%d %s were cancelled at shutdown; %d did not stop", len(late), what, len(stuck))


class Timetable:
    def __init__(
        self,
        settings: Settings,
        poller: FeedPoller,
        deliverer: Deliverer,
        *,
        check_interval: float | None = None,
        leader: Callable[[], bool] | None = None,
    ) -> None:
        self.settings = settings
        self.poller = poller
        self.deliverer = deliverer
        self.leader = leader
        """Whether this process polls the feeds now (bot/services/leader.py); None = always."""
        self.check_interval = check_interval or settings.digest.check_interval
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self._running: set[asyncio.Task[object]] = set()
        logging.getLogger("apscheduler.scheduler").addFilter(SKIPPED_RUNS)

    def start(self) -> None:
        feeds = self.settings.feeds
        now = datetime.now(UTC)
        if feeds.huggingface.enabled:
            self._every(feeds.huggingface.poll_interval, self.poll_huggingface, "poll-huggingface", now)
        if feeds.arxiv.enabled:
            self._every(feeds.arxiv.poll_interval, self.poll_arxiv, "poll-arxiv", now)
        self._every(self.check_interval, self.check, "deliveries", now, jittered=False)
        self.scheduler.start()

    def _every(
        self,
        seconds: float,
        job: Callable[[], Awaitable[object]],
        name: str,
        first: datetime,
        *,
        jittered: bool = True,
    ) -> None:
        """Run `job` every `seconds` (polls get the configured jitter), one run at a time."""
        running = self._running
        jitter = seconds * self.settings.feeds.jitter if jittered else 0

        async def tracked() -> object:
            task = asyncio.current_task()
            if task is not None:
                running.add(task)
            try:
                return await job()
            except asyncio.CancelledError:  # only shutdown cancels a job; nothing to report
                log.info("%s stopped by shutdown", name)
                return None
            finally:
                running.discard(task)

        self.scheduler.add_job(
            tracked,
            IntervalTrigger(seconds=seconds, jitter=int(jitter) or None),
            id=name,
            name=name,
            next_run_time=first,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )

    def pause(self) -> None:
        """Start no new job; the ones running go on."""
        if self.scheduler.running:
            self.scheduler.pause()

    async def shutdown(self, grace: float = 5.0, timeout: float = 5.0) -> None:
        """Stop the scheduler once the jobs running have ended, waiting up to `grace` seconds.

        A job is cancelled only past the grace: a query cut short leaves its database
        connection to be torn down while the database is being closed. Call
        `Deliverer.close` first, so the jobs end soon. An unconfirmed send stays claimed and
        goes out with its nonce at the next start.
        """
        self.pause()
        await finish_or_cancel(self._running, "scheduled jobs", grace=grace, timeout=timeout)
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
            await asyncio.sleep(0)  # AsyncIOScheduler shuts down on the loop's next turn

    async def poll_huggingface(self) -> IngestSummary:
        if not self._leading():
            return IngestSummary()
        return await self._after_poll(await self.poller.poll_huggingface())

    async def poll_arxiv(self) -> IngestSummary:
        if not self._leading():
            return IngestSummary()
        return await self._after_poll(await self.poller.poll_arxiv())

    def _leading(self) -> bool:
        return self.leader is None or self.leader()

    def leadership_changed(self, leading: bool) -> None:
        """A process that just took the lead polls at once: the old leader may have died mid-interval."""
        if not leading or not self.scheduler.running:
            return
        now = datetime.now(UTC)
        for name in ("poll-huggingface", "poll-arxiv"):
            if self.scheduler.get_job(name) is not None:
                self.scheduler.modify_job(name, next_run_time=now)

    async def _after_poll(self, summary: IngestSummary) -> IngestSummary:
        if summary.instant_targets:
            await self.deliverer.flush_instant(sorted(summary.instant_targets))
        return summary

    async def check(self) -> None:
        """Retry unconfirmed and instant posts, then post every digest that is due."""
        try:
            await self.deliverer.recover()
            await self.deliverer.flush_instant()
            await self.deliverer.run_due_digests()
        except Exception:
            log.exception("delivery check failed; it runs again in %.0f s", self.check_interval)
