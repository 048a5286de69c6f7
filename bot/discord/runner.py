"""`paperwatch run`: migrate, wire the services, connect, and shut down cleanly on a signal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from bot.config import Settings
from bot.discord.client import Cooldown, PaperwatchClient, Services
from bot.discord.embeds import render
from bot.discord.endpoints import apply_endpoints
from bot.discord.sender import DiscordSender
from bot.services.clock import Clock
from bot.services.core import Core
from bot.services.delivery import Deliverer
from bot.services.polling import FeedPoller, build_fetcher, build_http_client
from bot.services.scheduling import Timetable

log = logging.getLogger(__name__)


class TokenFilter(logging.Filter):
    """Replaces the bot token wherever it would appear in a log record."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        if self.token and self.token in record.getMessage():
            record.msg = record.getMessage().replace(self.token, "********")
            record.args = None
        return True


def run_bot(settings: Settings) -> int:
    return asyncio.run(serve(settings))


async def serve(settings: Settings, *, clock: Clock | None = None, stop: asyncio.Event | None = None) -> int:
    """Run until SIGINT/SIGTERM (or `stop` is set); returns the process exit code."""
    token_filter = TokenFilter(settings.token.reveal())
    for handler in logging.getLogger().handlers:
        handler.addFilter(token_filter)
    apply_endpoints(settings.discord.api_base, settings.discord.gateway_url)
    core = await Core.open(settings, clock=clock)
    http = build_http_client(settings)
    client = PaperwatchClient(settings)
    deliverer = Deliverer(
        core.sessions, DiscordSender(client), render, core.clock, max_papers=settings.digest.max_papers
    )
    poller = FeedPoller(settings, build_fetcher(settings, http), core.sessions, core.ingestor, core.clock)
    timetable = Timetable(settings, poller, deliverer)
    services = Services(
        settings=settings,
        watches=core.watches,
        deliverer=deliverer,
        cooldown=Cooldown(settings.limits.command_cooldown, settings.limits.commands_per_minute),
    )
    client.attach(services, timetable)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    runner = asyncio.create_task(client.start(settings.token.reveal()), name="discord-client")
    stopper = asyncio.create_task(stop.wait(), name="stop-signal")
    code = 0
    try:
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if runner in done and runner.exception() is not None:
            log.error("the Discord connection ended: %s", runner.exception())
            code = 1
    finally:
        log.info("shutting down")
        timetable.shutdown()
        async with deliverer.idle():
            await client.close()
        for task in (runner, stopper):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await http.aclose()
        await core.close()
    return code
