"""Polling the feeds: fetch, remember validators and errors, ingest what came back."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import date, timedelta

import httpx
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import metrics
from bot.config import Settings
from bot.db.repo import FeedStateRepository
from bot.domain.paper import FeedResult
from bot.feeds.arxiv_rss import fetch_arxiv_rss
from bot.feeds.hf import fetch_hf_day
from bot.feeds.http import FeedError, FeedFetcher, FeedValidators
from bot.services.clock import Clock
from bot.services.ingest import Ingestor, IngestSummary

log = logging.getLogger(__name__)

_Fetch = Callable[[FeedValidators | None], Awaitable[tuple[FeedResult, FeedValidators | None]]]

SOURCE_HF = "huggingface"
SOURCE_ARXIV = "arxiv"


def build_fetcher(settings: Settings, client: httpx.AsyncClient) -> FeedFetcher:
    return FeedFetcher(
        client,
        max_bytes=settings.feeds.max_bytes,
        max_attempts=settings.feeds.max_attempts,
    )


def build_http_client(settings: Settings) -> httpx.AsyncClient:
    """The one HTTP client of the process."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.feeds.timeout),
        follow_redirects=True,
        limits=httpx.Limits(max_connections=10, max_keepalive_connections=5),
    )


class FeedPoller:
    def __init__(
        self,
        settings: Settings,
        fetcher: FeedFetcher,
        sessions: async_sessionmaker[AsyncSession],
        ingestor: Ingestor,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.fetcher = fetcher
        self.sessions = sessions
        self.ingestor = ingestor
        self.clock = clock

    async def poll_huggingface(self, days: list[date] | None = None) -> IngestSummary:
        """Today's Daily Papers, and the days before it that a downtime may have missed."""
        hf = self.settings.feeds.huggingface
        if days is None:
            today = self.clock.now().date()
            days = [today - timedelta(days=back) for back in range(hf.backfill_days, -1, -1)]
        total = IngestSummary()
        for day in days:

            async def fetch(
                validators: FeedValidators | None, day: date = day
            ) -> tuple[FeedResult, FeedValidators | None]:
                return await fetch_hf_day(
                    self.fetcher, hf.url, day, page_size=hf.page_size, validators=validators
                )

            total.add(await self._poll(f"{SOURCE_HF}:{day.isoformat()}", SOURCE_HF, fetch))
        return total

    async def poll_arxiv(self) -> IngestSummary:
        arxiv = self.settings.feeds.arxiv

        async def fetch(validators: FeedValidators | None) -> tuple[FeedResult, FeedValidators | None]:
            return await fetch_arxiv_rss(self.fetcher, arxiv.rss_url, arxiv.categories, validators=validators)

        return await self._poll(f"{SOURCE_ARXIV}:{'+'.join(arxiv.categories)}", SOURCE_ARXIV, fetch)

    async def _poll(self, key: str, source: str, fetch: _Fetch) -> IngestSummary:
        async with self.sessions.begin() as session:
            state = await FeedStateRepository(session).get(key, source)
            validators = (
                FeedValidators(state.etag, state.last_modified) if state.etag or state.last_modified else None
            )
        error: str | None = None
        summary = IngestSummary()
        new_validators: FeedValidators | None = None
        try:
            result, new_validators = await fetch(validators)
        except FeedError as exc:
            error = str(exc)
        except ValueError as exc:
            error = f"bad feed settings: {exc}"
        else:
            try:
                summary = await self.ingestor.ingest(result)
            except SQLAlchemyError as exc:
                # Nothing of this batch was stored; a failed poll keeps the old validators, so
                # the next poll fetches the same papers again.
                log.exception("storing the papers of %s failed", key)
                error = f"storing papers failed: {type(exc).__name__}"
            else:
                error = result.error
        now = self.clock.now()
        async with self.sessions.begin() as session:
            state = await FeedStateRepository(session).get(key, source)
            state.last_poll_at = now
            if error:
                state.last_error = error[:1000]
                state.last_error_at = now
                state.consecutive_failures += 1
                log.warning("polling %s failed (%d in a row): %s", key, state.consecutive_failures, error)
            else:
                state.last_success_at = now
                state.consecutive_failures = 0
                state.last_error = None
                if new_validators is not None:
                    state.etag = new_validators.etag
                    state.last_modified = new_validators.last_modified
        summary.error = error
        metrics.record_poll(source, error)
        if summary.new or summary.updated:
            log.info("polled %s: %s", key, summary.line())
        return summary
