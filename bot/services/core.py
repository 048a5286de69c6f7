"""The services wired together over one database, shared by the command line and the bot."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.db.engine import create_engine, session_factory
from bot.db.migrate import upgrade
from bot.services.alerts import AlertService
from bot.services.clock import Clock, SystemClock
from bot.services.digests import DigestService
from bot.services.feedback import FeedbackService
from bot.services.ingest import Ingestor
from bot.services.matching import WatchMatcher
from bot.services.papers import PaperService
from bot.services.similarity import PaperVectors
from bot.services.status import StatusService
from bot.services.subscriptions import Subscriptions
from bot.services.transfer import TransferService
from bot.services.watches import WatchService


@dataclass(slots=True)
class Core:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    matcher: WatchMatcher
    ingestor: Ingestor
    watches: WatchService
    alerts: AlertService
    digests: DigestService
    papers: PaperService
    status: StatusService
    feedback: FeedbackService
    transfer: TransferService
    vectors: PaperVectors
    """The stored papers' text vectors (`like:` terms, recommendations)."""

    @classmethod
    async def open(cls, settings: Settings, *, clock: Clock | None = None, migrate: bool = True) -> Core:
        database = settings.database
        engine = create_engine(
            database.url, echo=database.echo, pool_size=database.pool_size, max_overflow=database.max_overflow
        )
        if migrate:
            await upgrade(engine)
        sessions = session_factory(engine)
        clock = clock or SystemClock()
        vectors = PaperVectors(sessions, settings.relevance)
        matcher = WatchMatcher(
            clock=clock,
            lookback_hours=settings.digest.lookback_hours,
            query_length=settings.limits.query_length,
            vectors=vectors,
        )
        papers = PaperService(sessions, settings, matcher, clock)
        subscriptions = Subscriptions(settings, matcher, papers, clock)
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            clock=clock,
            matcher=matcher,
            ingestor=Ingestor(sessions, matcher, clock),
            watches=WatchService(sessions, settings, subscriptions),
            alerts=AlertService(sessions, settings, subscriptions),
            digests=DigestService(sessions, settings, clock),
            papers=papers,
            status=StatusService(sessions, clock),
            feedback=FeedbackService(sessions, settings, clock),
            transfer=TransferService(sessions, settings, subscriptions),
            vectors=vectors,
        )

    async def close(self) -> None:
        await self.engine.dispose()
