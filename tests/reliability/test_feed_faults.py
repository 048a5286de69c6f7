"""The Hugging Face feed misbehaving while the real bot runs (issue #4, item 2).

Each fault is served by the local feed server (or is a closed port) while the bot polls.
For every one: the bot keeps answering slash commands, retries at most `max_attempts`
times per poll with a pause in between (no tight loop), keeps every paper it already had
and every good entry of the answer, and `/paperwatch status` names the last error until a
poll succeeds again.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import logging
import re
import socket
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from bot.discord.runner import BotApp
from tests.e2e import conftest as e2e
from tests.e2e.conftest import World, reply_text
from tests.feedserver import Fault, load_hf_day

pytestmark = pytest.mark.slow

world = e2e.world  # the end-to-end fixture: real bot, FakeDiscord, local feed server

TODAY = "2025-03-17"  # the harness clock's date: the day the bot polls
MAX_ATTEMPTS = 2  # PAPERWATCH_FEEDS__MAX_ATTEMPTS in the harness settings
HF_PAGE = "https://huggingface.co/papers/"


# --- helpers ---------------------------------------------------------------------------------


def db_rows(world: World, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(world.db, timeout=10)) as conn:
        return conn.execute(sql, params).fetchall()


def stored_ids(world: World) -> set[str]:
    return {row[0] for row in db_rows(world, "SELECT arxiv_id FROM papers")}


def ids_of(entries: list[dict[str, Any]]) -> set[str]:
    return {e["paper"]["id"] for e in entries}


def embed_urls(messages: list[Any]) -> list[str]:
    return [embed["url"] for message in messages for embed in message.data.get("embeds", [])]


def polls_recorded(world: World) -> int:
    """How many HF polls the bot finished (its feed_state row exists once one has)."""
    try:
        rows = db_rows(world, "SELECT count(*) FROM feed_state WHERE last_poll_at IS NOT NULL")
    except sqlite3.OperationalError:  # tables not created yet
        return 0
    return int(rows[0][0])


async def first_poll_done(world: World) -> None:
    await world.wait(lambda: polls_recorded(world) >= 1, timeout=10)


async def status_text(world: World) -> str:
    record = await world.command("paperwatch status", user_id=world.member_id)
    assert record.ephemeral
    return reply_text(record)


def request_times(world: World, since: int) -> list[float]:
    return [when for when, path, _ in world.feeds.requests[since:] if path == "/api/daily_papers"]


def timetable(world: World) -> Any:
    assert world.app is not None and world.app.timetable is not None
    return world.app.timetable


async def poll(world: World, timeout: float = 20) -> None:
    """One HF poll, as the scheduler runs it (bounded, so a hang fails instead of stalling)."""
    await asyncio.wait_for(timetable(world).poll_huggingface(), timeout)


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- whole-answer faults: the poll fails, nothing is lost, the next poll recovers -----------


@dataclass(frozen=True)
class FeedFault:
    name: str
    faults: Callable[[list[dict[str, Any]]], list[Fault]]
    shows: str
    """A regex the status line must match while the error is the last one."""
    attempts: int
    """Requests the failing poll makes (never more than max_attempts)."""
    min_gap: float = 0.0
    """Seconds the bot must wait between two attempts."""
    extra: dict[str, str] = field(default_factory=dict)


HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>We'll be right back</h1><p>Hugging Face is under maintenance.</p></body></html>"
)

WHOLE_ANSWER_FAULTS = [
    FeedFault(
        "timeout",
        lambda day: [Fault(status=200, delay=1.0, times=MAX_ATTEMPTS)],
        r"(?i)time[sd]?[ -]?out",
        MAX_ATTEMPTS,
        min_gap=0.25,  # the 0.3 s timeout itself, at least
        extra={"PAPERWATCH_FEEDS__TIMEOUT": "0.3"},
    ),
    FeedFault(
        "429-retry-after",
        lambda day: [
            Fault(
                status=429,
                body=b'{"error":"Too Many Requests"}',
                headers={"Retry-After": "1"},
                times=MAX_ATTEMPTS,
            )
        ],
        r"\b429\b",
        MAX_ATTEMPTS,
        min_gap=0.9,  # Retry-After: 1 is honoured
    ),
    FeedFault(
        "500",
        lambda day: [Fault(status=500, body=b'{"error":"Internal Error"}', times=MAX_ATTEMPTS)],
        r"\b500\b",
        MAX_ATTEMPTS,
        min_gap=0.05,
    ),
    FeedFault(
        "503",
        lambda day: [
            Fault(status=503, body=b"Service Unavailable", content_type="text/plain", times=MAX_ATTEMPTS)
        ],
        r"\b503\b",
        MAX_ATTEMPTS,
        min_gap=0.05,
    ),
    FeedFault(
        "404-not-retried",
        lambda day: [Fault(status=404, body=b'{"error":"Not Found"}', times=1)],
        r"\b404\b",
        1,  # a 4xx other than 429 will not get better by asking again
    ),
    FeedFault(
        "json-object-with-200",
        lambda day: [Fault(status=200, body=b'{"error":"Invalid date format"}')],
        r"(?i)\bjson\b|\barray\b",
        1,
    ),
    FeedFault(
        "html-page-with-200",
        lambda day: [Fault(status=200, body=HTML_PAGE, content_type="text/html; charset=utf-8")],
        r"(?i)\bhtml\b",
        1,
    ),
    FeedFault(
        "truncated-json",
        lambda day: [Fault(status=200, body=json.dumps(day).encode()[: len(json.dumps(day)) // 2])],
        r"(?i)\bjson\b",
        1,
    ),
]


@pytest.mark.parametrize("case", WHOLE_ANSWER_FAULTS, ids=lambda c: c.name)
async def test_failing_poll_keeps_the_bot_and_the_papers(world: World, case: FeedFault) -> None:
    day = load_hf_day(TODAY)
    world.extra.update(case.extra)
    world.feeds.days[TODAY] = day[:6]
    await world.start_bot()
    await first_poll_done(world)
    assert stored_ids(world) == ids_of(day[:6])
    world.clock.advance(minutes=1)
    await world.command("watch add", query="upvotes>=0", mode="instant")
    world.clock.advance(minutes=1)

    # Six more papers appear on the day, but the feed now answers with the fault.
    world.feeds.days[TODAY] = day
    for fault in case.faults(day):
        world.feeds.fail(fault)
    before = len(world.feeds.requests)
    started = time.monotonic()
    await poll(world, timeout=15)
    times = request_times(world, before)
    assert len(times) == case.attempts <= MAX_ATTEMPTS
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= case.min_gap for gap in gaps), gaps
    assert time.monotonic() - started < 10

    # The bot still answers, names the error, and lost nothing.
    status = await status_text(world)
    assert re.search(case.shows, status), status
    listing = await world.command("watch list")
    assert "upvotes>=0" in reply_text(listing)
    assert stored_ids(world) == ids_of(day[:6])
    assert world.posts() == []

    # No tight loop: nothing is requested until the next scheduled poll.
    await asyncio.sleep(0.6)
    assert len(request_times(world, before)) == case.attempts

    # The next poll works: the six new papers are stored and posted, once each.
    await poll(world)
    assert stored_ids(world) == ids_of(day)
    await world.wait(lambda: len(embed_urls(world.posts())) >= 6)
    await asyncio.sleep(0.3)
    urls = embed_urls(world.posts())
    assert sorted(urls) == sorted(HF_PAGE + i for i in ids_of(day[6:]))
    assert not re.search(case.shows, await status_text(world))


@pytest.mark.parametrize(
    ("status", "headers", "min_gap"),
    [(500, {}, 0.05), (503, {}, 0.05), (429, {"Retry-After": "1"}, 0.9)],
    ids=["500", "503", "429"],
)
async def test_one_transient_error_is_retried_within_the_poll(
    world: World, status: int, headers: dict[str, str], min_gap: float
) -> None:
    day = load_hf_day(TODAY)
    world.feeds.days[TODAY] = day
    world.feeds.fail(Fault(status=status, body=b"{}", headers=headers, times=1))
    await world.start_bot()
    await first_poll_done(world)
    times = request_times(world, 0)
    assert len(times) == 2  # the failure, then the retry that worked
    assert times[1] - times[0] >= min_gap
    assert stored_ids(world) == ids_of(day)
    status_line = await status_text(world)
    assert not re.search(rf"\b{status}\b", status_line), status_line


async def test_persistent_500_with_a_short_poll_interval_is_not_a_tight_loop(world: World) -> None:
    world.extra["PAPERWATCH_FEEDS__HUGGINGFACE__POLL_INTERVAL"] = "0.5"
    world.feeds.fail(Fault(status=500, body=b"{}", times=100_000))
    await world.start_bot()
    started = time.monotonic()
    await asyncio.sleep(2.0)
    elapsed = time.monotonic() - started
    count = len(world.feeds.hf_requests())
    # A poll every 0.5 s, at most MAX_ATTEMPTS requests each, with a pause between them.
    assert 2 <= count <= MAX_ATTEMPTS * (int(elapsed / 0.5) + 2), count
    # Polls do not overlap and each makes MAX_ATTEMPTS requests: the pairs are the retries.
    times = request_times(world, 0)
    retries = [b - a for a, b in zip(times[0::2], times[1::2], strict=False)]
    assert retries and min(retries) >= 0.05, retries
    assert re.search(r"\b500\b", await status_text(world))
    # The feed comes back: the next poll stores the day and clears the error.
    world.feeds.faults.clear()
    world.feeds.days[TODAY] = load_hf_day(TODAY)
    await world.wait(lambda: stored_ids(world) == ids_of(load_hf_day(TODAY)), timeout=5)
    await world.wait(lambda: not db_rows(world, "SELECT 1 FROM feed_state WHERE last_error IS NOT NULL"))
    assert not re.search(r"\b500\b", await status_text(world))


# --- connection refused ----------------------------------------------------------------------


class CountingTransport(httpx.AsyncBaseTransport):
    """The real transport, counting the attempts (a closed port has no server to count them)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.attempts: list[float] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.attempts.append(time.monotonic())
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_connection_refused_keeps_stored_papers_and_shows_the_error(world: World) -> None:
    day = load_hf_day(TODAY)
    world.feeds.days[TODAY] = day
    await world.start_bot()
    await first_poll_done(world)
    await world.stop_bot()
    assert stored_ids(world) == ids_of(day)

    # Restart with the feed URL on a port where nothing listens.
    world.extra["PAPERWATCH_FEEDS__HUGGINGFACE__URL"] = f"http://127.0.0.1:{closed_port()}/api/daily_papers"
    transport = CountingTransport()
    client = httpx.AsyncClient(transport=transport, timeout=2.0, follow_redirects=True)
    try:
        world.app = BotApp(world.settings(), clock=world.clock, http_client=client)
        await world.app.start()
        await world.app.wait_ready()
        await world.wait(lambda: len(transport.attempts) >= MAX_ATTEMPTS, timeout=10)
        await world.wait(
            lambda: bool(db_rows(world, "SELECT 1 FROM feed_state WHERE last_error IS NOT NULL")), timeout=5
        )
        assert len(transport.attempts) == MAX_ATTEMPTS
        assert transport.attempts[1] - transport.attempts[0] >= 0.05

        status = await status_text(world)
        assert re.search(r"(?i)connect|refused", status), status
        # Stored papers are still there and still searchable.
        preview = await world.command("watch test", query="upvotes>=0", user_id=world.member_id)
        assert f"{len(day)} papers" in reply_text(preview)
        assert stored_ids(world) == ids_of(day)

        await asyncio.sleep(0.6)
        assert len(transport.attempts) == MAX_ATTEMPTS  # no retry loop between polls
        await poll(world)
        assert len(transport.attempts) == 2 * MAX_ATTEMPTS
    finally:
        await world.stop_bot()
        await client.aclose()


# --- bad entries and empty days: the poll succeeds -------------------------------------------


def malformed_day() -> tuple[list[dict[str, Any]], set[str], set[str]]:
    """A real day with broken entries mixed in; returns (entries, ids to keep, ids to skip)."""
    real = load_hf_day("2025-07-15")
    template = real[0]

    def variant(new_id: str, **paper_fields: Any) -> dict[str, Any]:
        entry = copy.deepcopy(template)
        entry["paper"]["id"] = new_id
        entry["paper"]["title"] = f"Variant {new_id}"
        entry["title"] = f"Variant {new_id}"
        for key, value in paper_fields.items():
            if value is _DROP:
                entry["paper"].pop(key, None)
                entry.pop(key, None)
            else:
                entry["paper"][key] = value
        return entry

    no_id = copy.deepcopy(template)
    del no_id["paper"]["id"]
    broken = [
        "just a string",
        None,
        17,
        {"title": "an entry without a paper object"},
        {"paper": None},
        {"paper": ["not", "an", "object"]},
        no_id,
        variant("2507.99901", id=2507.99901),  # a number, not an id string
        variant("not-an-arxiv-id"),
        variant("2507.99902", title=_DROP),  # no title anywhere
        variant("2507.99903", title=["a", "list"]) | {"title": None},
    ]
    # Optional fields with the wrong type: the paper is still a paper.
    odd_but_usable = [
        variant(
            "2507.99911",
            upvotes="12",
            authors="Alice Example, Bob Example",
            ai_keywords=7,
            publishedAt=1752537600,
            githubRepo=["not", "a", "url"],
        ),
        variant("2507.99912", summary={"text": "not a string"}, ai_summary=5, upvotes=None),
    ]
    entries: list[Any] = []
    for index, good in enumerate(real):
        entries.append(good)
        if index < len(broken):
            entries.append(broken[index])
    entries.extend(broken[len(real) :])
    entries.extend(odd_but_usable)
    keep = ids_of(real) | ids_of(odd_but_usable)
    skip = {"2507.99901", "not-an-arxiv-id", "2507.99902", "2507.99903"}
    return entries, keep, skip


_DROP = object()


async def test_broken_entries_are_skipped_and_the_rest_delivered(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    entries, keep, skip = malformed_day()
    world.feeds.days[TODAY] = entries
    await world.start_bot()
    await first_poll_done(world)
    stored = stored_ids(world)
    assert not stored & skip
    assert stored == keep

    # Skipped entries are logged with their id where they have one.
    warnings = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    for entry_id in ("2507.99902", "not-an-arxiv-id"):
        assert entry_id in warnings

    # The poll itself is a success and the good papers are delivered, once each.
    status = await status_text(world)
    assert TODAY in status
    assert not db_rows(world, "SELECT 1 FROM feed_state WHERE last_error IS NOT NULL")
    await world.command("watch add", query="upvotes>=0")
    record = await world.command("digest now")
    await world.wait(lambda: "Posted" in reply_text(record), timeout=10)
    urls = embed_urls(world.posts())
    assert sorted(urls) == sorted(HF_PAGE + i for i in keep)


async def test_empty_day_is_not_an_error_and_removes_nothing(world: World) -> None:
    # A weekend: the day answers [] before any paper was seen.
    world.feeds.days.clear()
    await world.start_bot()
    await first_poll_done(world)
    assert stored_ids(world) == set()
    assert not db_rows(world, "SELECT 1 FROM feed_state WHERE last_error IS NOT NULL")
    assert "not polled" not in await status_text(world)

    day = load_hf_day(TODAY)
    world.feeds.days[TODAY] = day
    await poll(world)
    await world.command("watch add", query="upvotes>=0", mode="instant")
    assert stored_ids(world) == ids_of(day)

    # The day is empty again (HF glitch): one request, no error, nothing removed or posted.
    world.feeds.days[TODAY] = []
    before = len(world.feeds.requests)
    await poll(world)
    assert len(request_times(world, before)) == 1
    assert stored_ids(world) == ids_of(day)
    assert not db_rows(world, "SELECT 1 FROM feed_state WHERE last_error IS NOT NULL")
    await asyncio.sleep(0.3)
    assert world.posts() == []
    preview = await world.command("watch test", query="upvotes>=0", user_id=world.member_id)
    assert f"{len(day)} papers" in reply_text(preview)
