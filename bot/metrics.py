"""What the bot counts for Prometheus: polls, papers, matches, deliveries, Discord requests.

The services record through the small functions at the end of this module; they go to the
process's active `Metrics`, which keeps its own `CollectorRegistry` (never the library's
global one), so a test can install a fresh set. The outbox gauges are read from an
`OutboxSnapshot` that the metrics endpoint (bot/metrics_server.py) refreshes from the
database on a timer: a scrape never waits on the database. The metric names and what they
mean are listed in docs/configuration.md (`[metrics]`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import (
    DELIVERY_CLAIMED,
    DELIVERY_PENDING,
    MODE_DIGEST,
    MODE_INSTANT,
    MODE_SAVED,
    DeliveryRow,
    TargetRow,
)

POLL_OK = "ok"
POLL_ERROR = "error"

SENT = "sent"
"""Delivery outcomes: posted and confirmed by Discord."""
ALREADY_SENT = "already_sent"
"""An old unconfirmed claim found posted in the target's history, and recorded as sent."""
REJECTED = "rejected"
"""Discord refused the message itself (HTTP 400); the deliveries are set aside as failed."""
TARGET_GONE = "target_gone"
"""The channel or DM refuses for good; the target is paused and its deliveries wait."""
RETRY = "retry"
"""Sending failed for now (rate limit, 5xx, network); the deliveries are tried again later."""


@dataclass(slots=True)
class OutboxSnapshot:
    """The outbox as last read from the database: waiting deliveries per mode, unconfirmed claims."""

    pending: dict[str, int] = field(default_factory=dict)
    oldest_pending: dict[str, datetime] = field(default_factory=dict)
    claimed: int = 0
    taken_at: datetime | None = None
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    """The clock that dates deliveries (the service clock), for the age of the oldest one."""

    async def refresh(self, session: AsyncSession) -> None:
        """Read the outbox; deliveries of paused targets (and paused digests) are not counted."""
        waiting = and_(
            DeliveryRow.status == DELIVERY_PENDING,
            TargetRow.paused_reason.is_(None),
            or_(DeliveryRow.mode.in_((MODE_INSTANT, MODE_SAVED)), TargetRow.digest_paused.is_(False)),
        )
        rows = await session.execute(
            select(DeliveryRow.mode, func.count(), func.min(DeliveryRow.created_at))
            .join(TargetRow, TargetRow.id == DeliveryRow.target_id)
            .where(waiting)
            .group_by(DeliveryRow.mode)
        )
        pending: dict[str, int] = {}
        oldest: dict[str, datetime] = {}
        for mode, count, first in rows:
            pending[mode] = int(count)
            if first is not None:
                oldest[mode] = first
        claimed = await session.scalar(
            select(func.count()).select_from(DeliveryRow).where(DeliveryRow.status == DELIVERY_CLAIMED)
        )
        self.pending, self.oldest_pending, self.claimed = pending, oldest, int(claimed or 0)
        self.taken_at = self.now()


class OutboxCollector(Collector):
    """Outbox depth and the age of its oldest waiting delivery, from the last snapshot."""

    def __init__(self, snapshot: OutboxSnapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot
        if snap.taken_at is None:  # not read yet: say nothing rather than a false zero
            return
        pending = GaugeMetricFamily(
            "paperwatch_outbox_pending",
            "Deliveries waiting to be posted, by mode (instant, digest or saved); paused targets not counted",
            labels=["mode"],
        )
        age = GaugeMetricFamily(
            "paperwatch_outbox_oldest_pending_seconds",
            "Age of the oldest waiting delivery, by mode (0 when none waits)",
            labels=["mode"],
        )
        now = snap.now()
        for mode in (MODE_INSTANT, MODE_DIGEST, MODE_SAVED):
            pending.add_metric([mode], snap.pending.get(mode, 0))
            first = snap.oldest_pending.get(mode)
            age.add_metric([mode], max(0.0, (now - first).total_seconds()) if first else 0.0)
        yield pending
        yield age
        yield GaugeMetricFamily(
            "paperwatch_outbox_claimed",
            "Messages claimed for sending and not yet confirmed by Discord",
            value=snap.claimed,
        )


class Metrics:
    """The metrics of one process, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.polls = Counter(
            "paperwatch_polls",
            "Feed polls (one per Hugging Face day or arXiv listing), by source and outcome (ok or error)",
            ["source", "outcome"],
            registry=registry,
        )
        self.papers = Counter(
            "paperwatch_papers_ingested",
            "Papers stored from the feeds: new ones, and updated known ones",
            ["kind"],
            registry=registry,
        )
        self.matches = Counter(
            "paperwatch_matches",
            "New matches recorded: one per (channel or person, paper), each one delivery to make",
            registry=registry,
        )
        self.deliveries = Counter(
            "paperwatch_deliveries",
            "Deliveries (one paper for one channel or person) by outcome: "
            "sent, already_sent, rejected, target_gone, retry",
            ["outcome"],
            registry=registry,
        )
        self.discord_requests = Counter(
            "paperwatch_discord_requests",
            "REST requests to Discord by route and HTTP status (error: no answer)",
            ["route", "status"],
            registry=registry,
        )
        self.discord_rate_limited = Counter(
            "paperwatch_discord_rate_limited",
            "HTTP 429 answers from Discord by route and scope (user, shared, global)",
            ["route", "scope"],
            registry=registry,
        )
        self.leader = Gauge(
            "paperwatch_leader",
            "1 while this process polls the feeds and matches new papers, else 0",
            registry=registry,
        )
        self.shards_connected = Gauge(
            "paperwatch_shards_connected",
            "Gateway shards of this process that are connected to Discord",
            registry=registry,
        )
        self.outbox = OutboxSnapshot()
        registry.register(OutboxCollector(self.outbox))
        for kind in ("new", "updated"):  # known label values start at 0, so rates work from the start
            self.papers.labels(kind=kind)
        for outcome in (SENT, ALREADY_SENT, REJECTED, TARGET_GONE, RETRY):
            self.deliveries.labels(outcome=outcome)


_active = Metrics()


def active() -> Metrics:
    """The metrics the services record into."""
    return _active


def install(metrics: Metrics) -> Metrics:
    """Make `metrics` the active set; returns the one it replaces."""
    global _active
    previous, _active = _active, metrics
    return previous


# --- what the services call -------------------------------------------------------------------


def record_poll(source: str, error: str | None) -> None:
    _active.polls.labels(source=source, outcome=POLL_ERROR if error else POLL_OK).inc()


def record_papers(new: int, updated: int) -> None:
    _active.papers.labels(kind="new").inc(new)
    _active.papers.labels(kind="updated").inc(updated)


def record_matches(count: int) -> None:
    _active.matches.inc(count)


def record_deliveries(outcome: str, count: int) -> None:
    if count:
        _active.deliveries.labels(outcome=outcome).inc(count)


def record_discord_request(route: str, status: int | None, scope: str | None = None) -> None:
    """One REST request to Discord; `route` is its template, never a raw id; `status` None = no answer."""
    _active.discord_requests.labels(route=route, status=str(status) if status else "error").inc()
    if status == 429:
        _active.discord_rate_limited.labels(route=route, scope=scope or "unknown").inc()


def set_leader(leading: bool) -> None:
    _active.leader.set(1 if leading else 0)


def set_shards_connected(count: int) -> None:
    _active.shards_connected.set(count)
