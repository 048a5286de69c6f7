"""The metrics endpoint over real HTTP: a real SQLite database, real feeds served on 127.0.0.1,
the real services, and a recording sender in Discord's place.

Expected values come from the fixture files (read by tests/conftest.py without the bot's
parsers) and from what the sender saw, never from the code under test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bot.config import Settings
from bot.config_checks import ConfigError, listen_address
from bot.db.engine import create_engine, session_factory
from bot.discord.embeds import render
from bot.discord.observe import route_template
from bot.metrics import Metrics, install
from bot.metrics_server import MetricsServer, start_metrics_server
from bot.services.access import Caller
from bot.services.core import Core
from bot.services.delivery import Deliverer
from bot.services.outbox import MessageRejected, SendError, TargetGone
from bot.services.polling import FeedPoller, build_fetcher, build_http_client
from tests.conftest import HF_OVERLAP, FakeClock, expected_matches, load_feed, raw_entries
from tests.feedserver import Fault, FeedServer, load_hf_day
from tests.test_delivery import RecordingSender

GUILD = 100
DAY = date(2024, 11, 28)  # HF_OVERLAP's day


class Samples:
    """The samples of one scrape, looked up by name and labels."""

    def __init__(self, text: str) -> None:
        self.values: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.values[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def get(self, name: str, **labels: str) -> float | None:
        return self.values.get((name, frozenset(labels.items())))

    def labels_of(self, name: str) -> list[dict[str, str]]:
        return [dict(labels) for (found, labels) in self.values if found == name]


async def scrape(server: MetricsServer) -> Samples:
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"http://127.0.0.1:{server.port}/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return Samples(answer.text)


async def healthz(server: MetricsServer) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(f"http://127.0.0.1:{server.port}/healthz")


@pytest.fixture
def fresh_metrics() -> Iterator[Metrics]:
    metrics = Metrics()
    previous = install(metrics)
    yield metrics
    install(previous)


@pytest.fixture
async def feeds() -> AsyncIterator[FeedServer]:
    async with FeedServer() as server:
        server.days[DAY.isoformat()] = load_hf_day(DAY.isoformat())
        yield server


@pytest.fixture
async def servers() -> AsyncIterator[list[MetricsServer]]:
    started: list[MetricsServer] = []
    yield started
    for server in started:
        await server.close()


async def serve(
    servers: list[MetricsServer], metrics: Metrics, core: Core, gateway: Callable[[], tuple[int, int]] | None
) -> MetricsServer:
    server = MetricsServer(metrics, core.sessions, core.clock, gateway, refresh_every=3600)
    await server.start("127.0.0.1", 0)
    servers.append(server)
    return server


async def watch(core: Core, channel_id: int, query: str, mode: str = "digest") -> int:
    caller = Caller(user_id=11, guild_id=GUILD, channel_id=channel_id, can_manage=True)
    await core.watches.add_watch(caller, channel_id=channel_id, query=query, mode=mode)
    target_id = await core.digests.channel_target_id(caller, channel_id)
    assert target_id is not None
    return target_id


def deliverer(core: Core, sender: RecordingSender) -> Deliverer:
    return Deliverer(core.sessions, sender, render, core.clock, max_papers=core.settings.digest.max_papers)


async def test_polls_papers_matches_deliveries_and_the_outbox(
    make_core: Callable[..., Awaitable[Core]],
    clock: FakeClock,
    feeds: FeedServer,
    fresh_metrics: Metrics,
    servers: list[MetricsServer],
) -> None:
    core = await make_core(
        PAPERWATCH_FEEDS__HUGGINGFACE__URL=feeds.hf_url,
        PAPERWATCH_FEEDS__MAX_ATTEMPTS="1",
        PAPERWATCH_DIGEST__MAX_PAPERS="50",
    )
    digest = await watch(core, 2001, "video")
    instant = await watch(core, 2002, "diffusion", mode="instant")
    gone = await watch(core, 2003, "agent")
    refused = await watch(core, 2004, "benchmark")
    server = await serve(servers, fresh_metrics, core, None)

    clock.advance(minutes=1)
    http = build_http_client(core.settings)
    try:
        poller = FeedPoller(
            core.settings, build_fetcher(core.settings, http), core.sessions, core.ingestor, clock
        )
        await poller.poll_huggingface([DAY - timedelta(days=1), DAY])  # an empty day, then the fixture
        feeds.fail(Fault(status=500))
        await poller.poll_huggingface([DAY])
    finally:
        await http.aclose()
    clock.advance(minutes=10)
    await server.refresh_outbox()
    seen = await scrape(server)

    papers = len(raw_entries(HF_OVERLAP))
    counts = {q: len(expected_matches(q, HF_OVERLAP)) for q in ("video", "diffusion", "agent", "benchmark")}
    assert min(counts.values()) > 0
    assert seen.get("paperwatch_polls_total", source="huggingface", outcome="ok") == 2
    assert seen.get("paperwatch_polls_total", source="huggingface", outcome="error") == 1
    assert seen.get("paperwatch_papers_ingested_total", kind="new") == papers
    assert seen.get("paperwatch_papers_ingested_total", kind="updated") == 0
    assert seen.get("paperwatch_matches_total") == sum(counts.values())
    digest_waiting = counts["video"] + counts["agent"] + counts["benchmark"]
    assert seen.get("paperwatch_outbox_pending", mode="digest") == digest_waiting
    assert seen.get("paperwatch_outbox_pending", mode="instant") == counts["diffusion"]
    assert seen.get("paperwatch_outbox_oldest_pending_seconds", mode="digest") == 600
    assert seen.get("paperwatch_outbox_oldest_pending_seconds", mode="instant") == 600
    assert seen.get("paperwatch_outbox_claimed") == 0
    assert seen.get("paperwatch_deliveries_total", outcome="sent") == 0

    # one channel's digest goes out; the instant posts fail once, then go out
    await deliverer(core, RecordingSender(clock)).deliver_digest(digest, scheduled=False)
    flaky = RecordingSender(clock)
    flaky.fail_on[1] = SendError("Discord answered HTTP 502")
    await deliverer(core, flaky).flush_instant([instant])
    await deliverer(core, flaky).flush_instant([instant])
    # one channel was deleted; in the other, Discord refuses the message
    vanished = RecordingSender(clock)
    vanished.fail_on[1] = TargetGone("the channel was deleted")
    await deliverer(core, vanished).deliver_digest(gone, scheduled=False)
    refusing = RecordingSender(clock)
    refusing.fail_on[1] = MessageRejected("Discord refused the message")
    await deliverer(core, refusing).deliver_digest(refused, scheduled=False)
    await server.refresh_outbox()
    seen = await scrape(server)

    rejected = len(refusing.calls[0][1].delivery_ids)
    posted_by_refusing = sum(len(m.delivery_ids) for _, m, _, _ in refusing.posted)
    assert rejected + posted_by_refusing == counts["benchmark"]
    assert seen.get("paperwatch_deliveries_total", outcome="sent") == (
        counts["video"] + counts["diffusion"] + posted_by_refusing
    )
    assert seen.get("paperwatch_deliveries_total", outcome="retry") == counts["diffusion"]
    assert seen.get("paperwatch_deliveries_total", outcome="target_gone") == counts["agent"]
    assert seen.get("paperwatch_deliveries_total", outcome="rejected") == rejected
    assert seen.get("paperwatch_deliveries_total", outcome="already_sent") == 0
    # nothing waits any more: delivered, set aside, or held by a paused channel (not counted)
    assert seen.get("paperwatch_outbox_pending", mode="digest") == 0
    assert seen.get("paperwatch_outbox_pending", mode="instant") == 0
    assert seen.get("paperwatch_outbox_oldest_pending_seconds", mode="digest") == 0
    assert seen.get("paperwatch_outbox_claimed") == 0


async def test_oldest_pending_age_follows_the_service_clock(
    core: Core, clock: FakeClock, fresh_metrics: Metrics, servers: list[MetricsServer]
) -> None:
    """The age is computed at each scrape from the last reading, so it grows between readings."""
    await watch(core, 2001, "video")
    clock.advance(minutes=1)
    await core.ingestor.ingest(load_feed(HF_OVERLAP))
    server = await serve(servers, fresh_metrics, core, None)
    await server.refresh_outbox()
    first = (await scrape(server)).get("paperwatch_outbox_oldest_pending_seconds", mode="digest")
    clock.advance(hours=2)
    second = (await scrape(server)).get("paperwatch_outbox_oldest_pending_seconds", mode="digest")
    assert first == 0
    assert second == 2 * 3600


async def test_no_outbox_figures_before_the_first_reading(
    core: Core, fresh_metrics: Metrics, servers: list[MetricsServer]
) -> None:
    server = MetricsServer(fresh_metrics, core.sessions, core.clock, None, refresh_every=3600)
    unread = Samples(generate_latest(fresh_metrics.registry).decode())
    assert unread.get("paperwatch_outbox_pending", mode="digest") is None  # no false zero
    assert unread.get("paperwatch_deliveries_total", outcome="sent") == 0
    await server.start("127.0.0.1", 0)
    servers.append(server)
    for _ in range(200):  # the outbox is read as soon as the endpoint starts
        if fresh_metrics.outbox.taken_at is not None:
            break
        await asyncio.sleep(0.01)
    assert (await scrape(server)).get("paperwatch_outbox_pending", mode="digest") == 0


async def test_healthz_needs_the_gateway_and_the_database(
    core: Core, tmp_path: Path, fresh_metrics: Metrics, servers: list[MetricsServer]
) -> None:
    gateway = {"connected": 0, "expected": 1}
    server = await serve(servers, fresh_metrics, core, lambda: (gateway["connected"], gateway["expected"]))
    before = await healthz(server)
    assert before.status_code == 503
    assert before.text.strip() == "not ready: gateway not connected (0/1 shards); database answers"
    gateway["connected"] = 1
    after = await healthz(server)
    assert after.status_code == 200
    assert after.text.strip() == "ready: gateway connected (1/1 shards); database answers"
    assert (await scrape(server)).get("paperwatch_shards_connected") == 1
    # two shards, one down
    gateway.update(connected=1, expected=2)
    assert (await healthz(server)).status_code == 503
    # a database that cannot be opened: its path is a directory
    (tmp_path / "not-a-file.db").mkdir()
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/not-a-file.db")
    try:
        broken = MetricsServer(fresh_metrics, session_factory(engine), core.clock, lambda: (1, 1))
        await broken.start("127.0.0.1", 0)
        servers.append(broken)
        answer = await healthz(broken)
        assert answer.status_code == 503
        assert answer.text.startswith("not ready: gateway connected (1/1 shards); database does not answer (")
        assert await broken.refresh_outbox() is False
    finally:
        await engine.dispose()


async def test_without_a_gateway_probe_the_process_is_not_ready(
    core: Core, fresh_metrics: Metrics, servers: list[MetricsServer]
) -> None:
    server = await serve(servers, fresh_metrics, core, None)
    assert (await healthz(server)).status_code == 503


async def test_the_endpoint_is_off_unless_listen_is_set(
    make_settings: Callable[..., Settings], core: Core, servers: list[MetricsServer]
) -> None:
    assert await start_metrics_server(make_settings(), core.sessions, core.clock) is None
    on = await start_metrics_server(
        make_settings(PAPERWATCH_METRICS__LISTEN="127.0.0.1:0"), core.sessions, core.clock
    )
    assert on is not None
    servers.append(on)
    assert on.port > 0
    assert (await healthz(on)).status_code == 503


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:9108", ("127.0.0.1", 9108)), ("[::1]:9108", ("::1", 9108)), ("0.0.0.0:0", ("0.0.0.0", 0))],
)
def test_listen_addresses(text: str, expected: tuple[str, int]) -> None:
    assert listen_address(text) == expected


@pytest.mark.parametrize("text", ["9108", "localhost", ":9108", "host:port", "host:70000"])
def test_bad_listen_addresses_are_refused(make_settings: Callable[..., Settings], text: str) -> None:
    with pytest.raises(ConfigError, match=r"metrics\.listen: expected HOST:PORT"):
        make_settings(PAPERWATCH_METRICS__LISTEN=text)


@pytest.mark.parametrize(
    ("method", "path", "route"),
    [
        ("POST", "/channels/1234567890/messages", "POST /channels/{channel_id}/messages"),
        ("GET", "/channels/1234567890/messages", "GET /channels/{channel_id}/messages"),
        ("GET", "/users/@me", "GET /users/@me"),
        ("POST", "/users/@me/channels", "POST /users/@me/channels"),
        ("PUT", "/applications/42/commands", "PUT /applications/{application_id}/commands"),
        (
            "PUT",
            "/applications/42/guilds/77/commands",
            "PUT /applications/{application_id}/guilds/{guild_id}/commands",
        ),
        (
            "POST",
            "/interactions/99887766/aW50ZXJhY3Rpb246OTk4ODc3NjY6Rk9P/callback",
            "POST /interactions/{interaction_id}/{interaction_token}/callback",
        ),
        (
            "PATCH",
            "/webhooks/42/aW50ZXJhY3Rpb24.6OTk4/messages/@original",
            "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/@original",
        ),
        (
            "PUT",
            "/channels/5/messages/6/reactions/%F0%9F%91%8D/@me",
            "PUT /channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me",
        ),
        ("GET", "/guilds/77/audit-logs", "GET /guilds/{guild_id}/audit-logs"),
        ("GET", "/invites/AbCdEf", "GET /invites/{param}"),
    ],
)
def test_routes_are_labelled_by_their_template(method: str, path: str, route: str) -> None:
    assert route_template(method, path) == route


async def test_a_taken_address_stops_the_start_with_a_message(
    make_settings: Callable[..., Settings],
    core: Core,
    servers: list[MetricsServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = await start_metrics_server(
        make_settings(PAPERWATCH_METRICS__LISTEN="127.0.0.1:0"), core.sessions, core.clock
    )
    assert first is not None
    servers.append(first)
    taken = f"127.0.0.1:{first.port}"
    with pytest.raises(OSError):
        await start_metrics_server(make_settings(PAPERWATCH_METRICS__LISTEN=taken), core.sessions, core.clock)
    assert f"metrics.listen: cannot listen on {taken}" in caplog.text
