"""The running bot serves its metrics and readiness on `[metrics] listen`, against the local Discord."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from bot.discord.runner import BotApp
from bot.metrics import Metrics, install
from tests.e2e.conftest import World
from tests.test_metrics import Samples

pytestmark = pytest.mark.slow

MESSAGES = r"/channels/\d+/messages"
POST_MESSAGE = "POST /channels/{channel_id}/messages"
CALLBACK = "POST /interactions/{interaction_id}/{interaction_token}/callback"


@pytest.fixture
def fresh_metrics() -> Iterator[Metrics]:
    metrics = Metrics()
    previous = install(metrics)
    yield metrics
    install(previous)


async def get(app: BotApp, path: str) -> httpx.Response:
    assert app.metrics_server is not None
    async with httpx.AsyncClient() as client:
        return await client.get(f"http://127.0.0.1:{app.metrics_server.port}{path}")


async def test_readiness_metrics_and_discord_requests_by_route(world: World, fresh_metrics: Metrics) -> None:
    world.extra["PAPERWATCH_METRICS__LISTEN"] = "127.0.0.1:0"
    world.fake.delay("GET", r"/users/@me", 1.0, times=1)  # the login is held back: not connected yet
    world.app = app = BotApp(world.settings(), clock=world.clock)
    await app.start()
    early = await get(app, "/healthz")
    assert early.status_code == 503
    assert early.text.strip() == "not ready: gateway not connected (0/1 shards); database answers"

    await app.wait_ready()
    ready = await get(app, "/healthz")
    assert ready.status_code == 200
    assert ready.text.strip() == "ready: gateway connected (1/1 shards); database answers"

    await world.wait(lambda: len(world.feeds.hf_requests()) >= 1)
    world.fake.fail_next("POST", MESSAGES, 429, retry_after=0.05)
    await world.command("watch add", query="upvotes>=0")
    world.clock.set(datetime(2025, 3, 17, 9, 0, 1, tzinfo=UTC))  # the default digest time
    await world.wait(lambda: len(world.posts()) >= 1)
    await asyncio.sleep(0.4)

    answer = await get(app, "/metrics")
    assert answer.status_code == 200
    seen = Samples(answer.text)
    posts = Counter(r.status for r in world.fake.requests_matching("POST", MESSAGES))
    assert posts[429] == 1
    assert seen.get("paperwatch_discord_requests_total", route=POST_MESSAGE, status="429") == 1
    assert seen.get("paperwatch_discord_requests_total", route=POST_MESSAGE, status="200") == posts[200]
    assert posts[200] == len(world.posts())
    assert seen.get("paperwatch_discord_rate_limited_total", route=POST_MESSAGE, scope="user") == 1
    callbacks = Counter(
        r.status for r in world.fake.requests_matching("POST", r"/interactions/\d+/[^/]+/callback")
    )
    assert sum(callbacks.values()) == 1  # the one command
    for status, count in callbacks.items():
        assert seen.get("paperwatch_discord_requests_total", route=CALLBACK, status=str(status)) == count
    routes = {labels["route"] for labels in seen.labels_of("paperwatch_discord_requests_total")}
    assert "GET /users/@me" in routes
    assert not [route for route in routes if re.search(r"\d{5,}|[A-Z]{3,}[a-z]", route.split(" ", 1)[1])]
    assert seen.get("paperwatch_polls_total", source="huggingface", outcome="ok") == len(
        world.feeds.hf_requests()
    )
    assert seen.get("paperwatch_deliveries_total", outcome="sent") == sum(
        len(p.data.get("embeds", [])) for p in world.posts()
    )
    assert seen.get("paperwatch_leader") == 1
    assert seen.get("paperwatch_shards_connected") == 1
