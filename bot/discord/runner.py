"""`paperwatch run`: migrate, wire the services, connect, and shut down cleanly on a signal."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
from typing import Any

import httpx

from bot.config import Settings
from bot.discord.client import Cooldown, PaperwatchClient, Services
from bot.discord.embeds import render
from bot.discord.endpoints import apply_endpoints
from bot.discord.observe import gateway_probe
from bot.discord.sender import DiscordSender
from bot.discord.shards import build_client
from bot.metrics_server import MetricsServer, start_metrics_server
from bot.services.clock import Clock, clock_from_env
from bot.services.core import Core
from bot.services.delivery import Deliverer
from bot.services.export import ExportService
from bot.services.fanout import TokenBucket
from bot.services.leader import Leadership
from bot.services.leases import Leases
from bot.services.paper_actions import PaperActions
from bot.services.polling import FeedPoller, build_fetcher, build_http_client
from bot.services.recommend import Recommender
from bot.services.scheduling import Timetable, finish_or_cancel
from bot.services.stats import StatsService
from bot.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class TokenFilter(logging.Filter):
    """Replaces the bot token wherever it would appear in a log record.

    The message with its arguments, the formatted traceback of `log.exception` and the stack
    of `stack_info=True` are all scrubbed before any handler formats the record.
    """

    MASK = "********"

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.token:
            return True
        message = record.getMessage()
        if self.token in message:
            record.msg = message.replace(self.token, self.MASK)
            record.args = None
        if record.exc_info and not record.exc_text:
            # what Formatter.format would do; a formatter reuses exc_text once it is set
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = record.exc_text.replace(self.token, self.MASK)
        if record.stack_info:
            record.stack_info = record.stack_info.replace(self.token, self.MASK)
        return True


_TRACEBACKS = logging.Formatter()


class BotApp:
    """The running bot: database, HTTP client, scheduler and Discord client, started and stopped together."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._given_http = http_client
        self.core: Core | None = None
        self.http: httpx.AsyncClient | None = None
        self.client: PaperwatchClient | None = None
        self.deliverer: Deliverer | None = None
        self.timetable: Timetable | None = None
        self.task: asyncio.Task[None] | None = None
        self.metrics_server: MetricsServer | None = None
        self.leadership: Leadership | None = None
        self.leases: Leases | None = None
        self.bucket: TokenBucket | None = None
        self.recommender: Recommender | None = None
        self.counted: asyncio.Task[None] | None = None
        """Ends the hold-off on sends once every other process counts this one."""

    async def start(self) -> None:
        settings = self.settings
        apply_endpoints(settings.discord.api_base, settings.discord.gateway_url)
        self.core = core = await Core.open(settings, clock=self.clock)
        self.http = self._given_http or build_http_client(settings)
        self.client = client = build_client(settings, core.engine)
        self.metrics_server = await start_metrics_server(
            settings, core.sessions, core.clock, gateway_probe(client)
        )
        scaleout = settings.scaleout
        budget = settings.discord.max_requests_per_second
        self.bucket = bucket = TokenBucket(budget)
        if core.engine.dialect.name == "postgresql":  # several processes may share the database
            self.leases = Leases(
                core.sessions,
                heartbeat_interval=scaleout.heartbeat_interval,
                lease=scaleout.lease,
                on_share=lambda live: bucket.set_rate(budget / live),
            )
            await self.leases.start()
            # the others count this process at their next heartbeat; till then their shares fill
            # the budget. One that has not beaten in two intervals is dead or too busy to send much.
            hold = 2 * scaleout.heartbeat_interval
            bucket.hold_off(hold)
            self.counted = asyncio.create_task(self._resume_when_counted(self.leases, bucket, hold))
            log.info("process %s, one of %d running", self.leases.process_id, self.leases.live)
        self.recommender = Recommender(
            core.sessions, core.vectors, core.clock, cutoff=settings.relevance.recommend_cutoff
        )
        await self.recommender.start()
        self.deliverer = Deliverer(
            core.sessions,
            DiscordSender(client, bucket.take),
            render,
            core.clock,
            max_papers=settings.digest.max_papers,
            nonce_window=settings.discord.nonce_window,
            before_digests=self.recommender.prepare,
            leases=self.leases,
            concurrency=scaleout.max_concurrent_targets,
        )
        poller = FeedPoller(
            settings, build_fetcher(settings, self.http), core.sessions, core.ingestor, core.clock
        )
        self.leadership = leadership = Leadership(
            core.engine, retry_interval=scaleout.leader_retry, check_interval=scaleout.leader_check
        )
        self.timetable = Timetable(settings, poller, self.deliverer, leader=leadership)
        leadership.on_change = self.timetable.leadership_changed
        await leadership.start()
        client.attach(
            Services(
                settings=settings,
                watches=core.watches,
                alerts=core.alerts,
                digests=core.digests,
                papers=core.papers,
                status=core.status,
                feedback=core.feedback,
                transfer=core.transfer,
                export=ExportService(core.feedback),
                stats=StatsService(core.sessions, core.clock),
                deliverer=self.deliverer,
                cooldown=Cooldown(settings.limits.command_cooldown, settings.limits.commands_per_minute),
                lookups=Cooldown(settings.limits.lookup_cooldown, settings.limits.lookups_per_minute),
                actions=PaperActions(core.sessions, core.feedback, core.watches, self.deliverer),
                clicks=click_pace(settings),
            ),
            self.timetable,
        )
        self.task = asyncio.create_task(client.start(settings.token.reveal()), name="discord-client")

    @staticmethod
    async def _resume_when_counted(leases: Leases, bucket: TokenBucket, timeout: float) -> None:
        try:
            if not await leases.counted_by_all(timeout):
                log.info("a process did not count this one within %.0f s; sending anyway", timeout)
        except Exception:  # the database is away; the hold-off runs out by itself
            log.exception("could not check that the other processes count this one")
        else:
            bucket.resume()

    async def wait_ready(self, timeout: float = 10.0) -> None:
        assert self.client is not None and self.task is not None
        ready = asyncio.create_task(self.client.wait_until_ready())
        done, _ = await asyncio.wait({ready, self.task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if ready not in done:
            ready.cancel()
            if self.task in done and self.task.exception() is not None:
                raise RuntimeError("the bot stopped before it was ready") from self.task.exception()
            raise TimeoutError("the bot did not become ready in time")

    async def stop(self) -> None:
        """Stop polling, let a send under way finish, close Discord, HTTP and the database."""
        log.info("shutting down with %d asyncio tasks open", len(asyncio.all_tasks()))
        if self.timetable is not None:
            self.timetable.pause()
        if self.deliverer is not None:
            self.deliverer.close()
        # slash commands and button clicks under way answer before Discord is closed
        interactions = [t for t in asyncio.all_tasks() if t.get_name().startswith(_INTERACTION_TASKS)]
        await finish_or_cancel(interactions, "commands", grace=COMMANDS_GRACE, timeout=1.0)
        if self.timetable is not None:
            await self.timetable.shutdown()
        if self.deliverer is not None:
            # a send still under way (a `/digest now` past its grace) finishes and is recorded
            async with self.deliverer.idle():
                if self.client is not None:
                    await self.client.close()
        elif self.client is not None:
            await self.client.close()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        if self.http is not None and self._given_http is None:
            await self.http.aclose()
        if self.metrics_server is not None:
            await self.metrics_server.close()
        if self.recommender is not None:
            await self.recommender.close()  # its worker processes
        if self.leadership is not None:
            await self.leadership.stop()
        if self.counted is not None:
            await cancel_and_wait(self.counted)
        if self.leases is not None:
            with contextlib.suppress(Exception):  # the leases run out by themselves
                await self.leases.stop()
        if self.core is not None:
            await self.core.close()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        log.info(
            "stopped; %d other asyncio tasks still open%s",
            len(others),
            f": {', '.join(sorted(_describe(t) for t in others))}" if others else "",
        )


def _describe(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    return f"{task.get_name()} ({getattr(coro, '__qualname__', type(coro).__name__)})"


# How long shutdown waits for slash commands and button clicks under way to answer.
COMMANDS_GRACE = 5.0
_INTERACTION_TASKS = ("CommandTree-invoker", "discord-ui-view-dispatch-", "discord-ui-dynamic-item-")


def click_pace(settings: Settings) -> Cooldown:
    """Clicks on paper components: a quarter of the lookup gap, twice the lookups a minute."""
    return Cooldown(settings.limits.lookup_cooldown / 4, settings.limits.lookups_per_minute * 2)


def run_bot(settings: Settings) -> int:
    return asyncio.run(serve(settings, clock=clock_from_env(os.environ)))


async def serve(settings: Settings, *, clock: Clock | None = None) -> int:
    """Run until SIGINT/SIGTERM; returns the process exit code."""
    token_filter = TokenFilter(settings.token.reveal())
    for handler in logging.getLogger().handlers:
        handler.addFilter(token_filter)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    app = BotApp(settings, clock=clock)
    code = 0
    try:
        await app.start()
        # What start-up made (imported modules, settings, the app) is never garbage: leave it
        # out of the collector's full passes, which would otherwise walk it all and hold the
        # event loop 60-130 ms each time on a 2-core machine (bench/bench_search.py).
        gc.freeze()
        assert app.task is not None
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({app.task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if app.task in done and app.task.exception() is not None:
            log.error("the Discord connection ended: %s", app.task.exception())
            code = 1
    finally:
        await app.stop()
    return code
