"""The metrics endpoint of `[metrics] listen`: Prometheus metrics on /metrics, readiness on /healthz.

It is an aiohttp server in the bot's own event loop, so a scrape reads the metrics where
they are written and never blocks a thread on the database: the outbox gauges come from a
snapshot that a task here refreshes every `refresh_every` seconds. /healthz answers 200
only when every gateway shard of the process is connected and the database answers a
`SELECT 1` within `DB_TIMEOUT` seconds, else 503; the body says which (docs/configuration.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web
from prometheus_client.exposition import choose_encoder
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.config_checks import listen_address
from bot.metrics import Metrics, active
from bot.services.clock import Clock
from bot.tasks import cancel_and_wait

log = logging.getLogger(__name__)

GatewayProbe = Callable[[], tuple[int, int]]
"""(connected, expected): the gateway shards of this process that are connected, and how many it runs."""

OUTBOX_REFRESH = 15.0
"""Seconds between two readings of the outbox for its gauges."""
DB_TIMEOUT = 2.0
"""Seconds the database has to answer the readiness check."""


class MetricsServer:
    def __init__(
        self,
        metrics: Metrics,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        gateway: GatewayProbe | None = None,
        *,
        refresh_every: float = OUTBOX_REFRESH,
    ) -> None:
        self.metrics = metrics
        self.sessions = sessions
        self.gateway = gateway
        """Set by the Discord layer once its client exists; without it the gateway counts as down."""
        self.refresh_every = refresh_every
        metrics.outbox.now = clock.now
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._refresh_failing = False

    async def start(self, host: str, port: int) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self.port = int(self._runner.addresses[0][1])
        self._refresher = asyncio.create_task(self._refresh_loop(), name="metrics-outbox")

    async def close(self) -> None:
        if self._refresher is not None:
            await cancel_and_wait(self._refresher)
        if self._runner is not None:
            await self._runner.cleanup()

    # -- what the endpoints read -------------------------------------------------------------

    async def refresh_outbox(self) -> bool:
        """Read the outbox for its gauges now; False (and the last reading kept) if that failed."""
        try:
            async with self.sessions() as session:
                async with asyncio.timeout(DB_TIMEOUT * 5):
                    await self.metrics.outbox.refresh(session)
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            if not self._refresh_failing:
                log.warning("reading the outbox for the metrics failed: %s", type(exc).__name__)
            self._refresh_failing = True
            return False
        self._refresh_failing = False
        return True

    def shards(self) -> tuple[int, int]:
        """(connected, expected) gateway shards; also what `paperwatch_shards_connected` shows."""
        if self.gateway is None:
            return 0, 1
        connected, expected = self.gateway()
        self.metrics.shards_connected.set(connected)
        return connected, expected

    async def database_problem(self) -> str | None:
        """None when the database answers a trivial query in time, else what went wrong."""
        try:
            async with self.sessions() as session:
                async with asyncio.timeout(DB_TIMEOUT):
                    await session.execute(text("SELECT 1"))
        except TimeoutError:
            return f"no answer within {DB_TIMEOUT:.0f} s"
        except (SQLAlchemyError, OSError) as exc:
            return type(exc).__name__
        return None

    async def readiness(self) -> tuple[bool, str]:
        """Whether the process is ready, and one line saying why (not)."""
        connected, expected = self.shards()
        gateway_ok = expected > 0 and connected == expected
        problem = await self.database_problem()
        gateway = f"gateway {'connected' if gateway_ok else 'not connected'} ({connected}/{expected} shards)"
        database = "database answers" if problem is None else f"database does not answer ({problem})"
        ready = gateway_ok and problem is None
        return ready, f"{'ready' if ready else 'not ready'}: {gateway}; {database}"

    # -- handlers and the refresh task -------------------------------------------------------

    async def _metrics(self, request: web.Request) -> web.Response:
        self.shards()
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encoder(self.metrics.registry), headers={"Content-Type": content_type})

    async def _healthz(self, request: web.Request) -> web.Response:
        ready, line = await self.readiness()
        return web.Response(status=200 if ready else 503, text=line + "\n")

    async def _refresh_loop(self) -> None:
        while True:
            await self.refresh_outbox()
            await asyncio.sleep(self.refresh_every)


async def start_metrics_server(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    gateway: GatewayProbe | None = None,
) -> MetricsServer | None:
    """Serve the active metrics on `[metrics] listen`; None when that is unset."""
    if settings.metrics.listen is None:
        return None
    host, port = listen_address(settings.metrics.listen)
    server = MetricsServer(active(), sessions, clock, gateway)
    try:
        await server.start(host, port)
    except OSError as exc:  # taken, or not an address of this machine: say so, then stop the bot
        log.error("metrics.listen: cannot listen on %s: %s", settings.metrics.listen, exc.strerror or exc)
        await server.close()
        raise
    log.info("serving metrics on http://%s:%d/metrics and readiness on /healthz", host, server.port)
    return server
