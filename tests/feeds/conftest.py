"""Shared helpers for the feed tests: the real captured feed bytes and fake transports."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.domain.paper import FeedResult
from bot.feeds.arxiv_rss import parse_arxiv_rss
from bot.feeds.http import FeedFetcher

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "feeds"
HF_DIR = FIXTURES / "hf_daily"
ARXIV_DIR = FIXTURES / "arxiv"
RSS_ALL = "rss_all-archives_2024-11-28.xml"


@cache
def fixture_bytes(relative: str) -> bytes:
    """The bytes of a captured feed, e.g. `hf_daily/2025-09-30.json`."""
    return (FIXTURES / relative).read_bytes()


def hf_bytes(day: str) -> bytes:
    return fixture_bytes(f"hf_daily/{day}.json")


def arxiv_bytes(name: str) -> bytes:
    return fixture_bytes(f"arxiv/{name}")


@cache
def small_rss() -> bytes:
    """The first 15 items of the real all-archives RSS capture, closed properly."""
    raw = arxiv_bytes(RSS_ALL)
    cut = 0
    for _ in range(16):
        cut = raw.index(b"<item>", cut + 1)
    return raw[:cut].rstrip() + b"\n  </channel>\n</rss>\n"


@pytest.fixture(scope="session")
def rss_all() -> FeedResult:
    return parse_arxiv_rss(arxiv_bytes(RSS_ALL))


class Sleeps:
    """A stand-in for asyncio.sleep that records the delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


class Server:
    """An httpx MockTransport handler that records every request it answers."""

    def __init__(self, answer: Callable[[httpx.Request], httpx.Response]) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def make_fetcher(sleeps: Sleeps):
    """Build a FeedFetcher around a MockTransport; closes the clients afterwards."""
    clients: list[httpx.AsyncClient] = []

    def build(server: Server, **options: Any) -> FeedFetcher:
        client = httpx.AsyncClient(transport=httpx.MockTransport(server))
        clients.append(client)
        options.setdefault("sleep", sleeps)
        options.setdefault("rand", lambda: 0.5)
        return FeedFetcher(client, **options)

    yield build
    for client in clients:
        await client.aclose()
