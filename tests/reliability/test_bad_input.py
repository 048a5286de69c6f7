"""Hostile or odd text in slash command options (issue #4, item 4).

Control characters, invisible and bidirectional characters, Markdown, mass mentions and
very long strings get a clear ephemeral answer (or are stored harmlessly), nothing with
control characters is stored, and no reply that echoes user text can ping anyone.
Hypothesis then throws arbitrary query strings at `/watch test` on the running bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import unicodedata
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e import conftest as e2e
from tests.e2e.conftest import World, reply_text

pytestmark = pytest.mark.slow

world = e2e.world  # the end-to-end fixture: real bot, FakeDiscord, local feed server

ERROR_ID = "Something went wrong"
INVISIBLE = {"Cc", "Cf", "Co", "Cn", "Cs", "Zl", "Zp"}

REFUSED_QUERIES = {
    "nul": "diffusion\x00model",
    "bell": "diff\x07usion",
    "newline": "diffusion\nOR agents",
    "ansi-escape": "\x1b[31mdiffusion\x1b[0m",
    "zero-width-space": "diff\u200busion",
    "rtl-override": "\u202ediffusion",
    "bidi-isolate": "diffusion \u2066agents\u2069",
    "byte-order-mark": "\ufeffdiffusion",
    "too-long": ("diffusion " * 100)[:1000],
}

ODD_BUT_SAFE_QUERIES = {
    "markdown": "**diffusion** OR __agents__ OR ~~robots~~ OR ||spoiler||",
    "masked-link": "[diffusion](https://evil.example/phish) OR agents",
    "everyone": "@everyone diffusion",
    "here": "@here agents",
    "user-mention": "<@123> diffusion",
    "role-mention": "<@&456> diffusion",
    "channel-mention": "<#789> agents",
    "backticks": "`diffusion` OR ``agents``",
}


# --- helpers ---------------------------------------------------------------------------------


def stored_text(world: World) -> list[str]:
    with contextlib.closing(sqlite3.connect(world.db, timeout=10)) as conn:
        rows = conn.execute("SELECT query FROM watches").fetchall()
        rows += conn.execute("SELECT digest_time || ' ' || timezone FROM targets").fetchall()
    return [row[0] for row in rows]


def watch_count(world: World) -> int:
    with contextlib.closing(sqlite3.connect(world.db, timeout=10)) as conn:
        return int(conn.execute("SELECT count(*) FROM watches").fetchone()[0])


def invisible_chars(text: str) -> list[str]:
    return [f"U+{ord(c):04X}" for c in text if unicodedata.category(c) in INVISIBLE and c != "\u200d"]


def echoed_invisible(reply: str) -> list[str]:
    """Control, format and bidi characters a reply carries (line breaks aside)."""
    return [c for line in reply.splitlines() for c in invisible_chars(line)]


def pings_no_one(record: Any) -> None:
    """The callback (and any edit) allows no mentions, and the fake computed none."""
    data = (record.callback or {}).get("data") or {}
    allowed = data.get("allowed_mentions")
    assert allowed is not None, f"reply sent without allowed_mentions: {data}"
    assert not allowed.get("parse"), allowed
    assert not allowed.get("users") and not allowed.get("roles"), allowed
    for edit in record.original_edits:
        if "content" in edit:
            assert edit.get("allowed_mentions", {}).get("parse", []) == [], edit
    message = record.original
    if message is not None:
        assert message.data.get("mention_everyone") is False
        assert message.data.get("mentions") == []
        assert message.data.get("mention_roles") == []


def clear_answer(record: Any) -> str:
    text = reply_text(record)
    assert text.strip(), "no answer"
    assert ERROR_ID not in text, text
    assert "Traceback" not in text
    pings_no_one(record)
    return text


async def polled(world: World) -> None:
    await world.wait(lambda: len(world.feeds.hf_requests()) >= 1, timeout=10)
    await asyncio.sleep(0.2)


# --- fixed inputs ----------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["watch add", "alert add", "watch test", "paper search"])
async def test_invisible_and_control_characters_are_refused_clearly(world: World, command: str) -> None:
    await world.start_bot()
    for name, query in REFUSED_QUERIES.items():
        record = await world.command(command, query=query, user_id=world.admin_id)
        text = clear_answer(record)
        assert record.ephemeral, (name, text)
        if name == "too-long":
            assert "300" in text, text  # names the limit
        elif command != "paper search" or name != "newline":
            # the answer points at the character rather than just "no match"
            assert "U+" in text or "character" in text or "position" in text, (name, text)
    assert watch_count(world) == 0


async def test_odd_queries_are_stored_harmlessly_and_echoed_without_pings(world: World) -> None:
    await world.start_bot()
    await polled(world)
    for name, query in ODD_BUT_SAFE_QUERIES.items():
        for command, user in (("watch add", world.admin_id), ("alert add", world.member_id)):
            record = await world.command(command, query=query, user_id=user)
            text = clear_answer(record)
            if "added" not in text:
                assert record.ephemeral, (name, command, text)  # refused: only the author sees it
    for text in stored_text(world):
        assert not invisible_chars(text), text
    listing = await world.command("watch list", user_id=world.member_id)
    clear_answer(listing)
    assert not echoed_invisible(reply_text(listing))
    alerts = await world.command("alert list", user_id=world.member_id)
    clear_answer(alerts)
    # Whatever was accepted is listed; nothing in a listing or a reply was a live mention.
    assert watch_count(world) >= 1
    for message in world.fake.messages(world.channel_id):
        assert message.data.get("mention_everyone") is False
        assert message.data.get("mentions") == []


@pytest.mark.parametrize(
    ("command", "options"),
    [
        pytest.param("digest set", {"time": "09:00\u202e", "timezone": "UTC"}, id="time-rlo"),
        pytest.param("digest set", {"time": "09:00", "timezone": "Europe/Paris\u200b"}, id="tz-zwsp"),
        pytest.param("digest set", {"time": "09:00", "timezone": "<@123>"}, id="tz-mention"),
        pytest.param("digest set", {"time": "09:00", "timezone": "@everyone"}, id="tz-everyone"),
        pytest.param(
            "digest set",
            {"time": "09:00", "timezone": "UTC", "days": "mon-fri\x00"},
            id="days-nul",
        ),
        pytest.param("digest set", {"time": "\x1b[2J", "timezone": "UTC"}, id="time-ansi"),
        pytest.param("alert schedule", {"time": "07:15", "timezone": "**Asia**/Tokyo"}, id="tz-markdown"),
        pytest.param(
            "alert schedule", {"time": "07:15", "timezone": "Asia/Tokyo", "days": "<@&456>"}, id="days-role"
        ),
        pytest.param("paper show", {"id": "<@123>"}, id="id-mention"),
        pytest.param("paper show", {"id": "@everyone 2503.10970"}, id="id-everyone"),
        pytest.param("paper show", {"id": "2503.\u200b10970"}, id="id-zwsp"),
        pytest.param("paper show", {"id": "2503.10970\u202e"}, id="id-rlo"),
        pytest.param("paper show", {"id": "x" * 100}, id="id-long"),
    ],
)
async def test_other_options_get_a_clear_refusal(world: World, command: str, options: dict[str, Any]) -> None:
    await world.start_bot()
    await world.command("digest set", time="08:00", timezone="UTC")
    before = stored_text(world)
    record = await world.command(command, **options)
    text = clear_answer(record)
    assert record.ephemeral, text
    assert not echoed_invisible(text), text
    assert stored_text(world) == before
    for value in stored_text(world):
        assert not invisible_chars(value)


# --- property: /watch test always answers ----------------------------------------------------

TOKENS = [
    "diffusion",
    "model*",
    '"knowledge distillation"',
    '"',
    "OR",
    "AND",
    "NOT",
    "-",
    "(",
    ")",
    "title:",
    "author:",
    'author:"yann lecun"',
    "category:cs.*",
    "category:",
    "upvotes>=",
    "upvotes>=5",
    "upvotes<",
    "*",
    ":",
    "@everyone",
    "<@123>",
    "\u202e",
    "\u200b",
    "\x00",
    "ﬁ",  # NFKC expands it
    "ǅ",
    "İ",
    "ß",
    "𝔡𝔦𝔣𝔣𝔲𝔰𝔦𝔬𝔫",
    "٣",
    "(" * 20,
    "a" * 290,
]

query_text = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=120),
    st.lists(st.sampled_from(TOKENS), min_size=1, max_size=12).map(" ".join).filter(lambda s: len(s) <= 1000),
    st.lists(st.sampled_from(TOKENS), min_size=1, max_size=12).map("".join).filter(lambda s: len(s) <= 1000),
)

EXAMPLES: list[str] = []


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(query=query_text)
async def test_watch_test_always_answers(world: World, query: str) -> None:
    if world.app is None:
        await world.start_bot()
        await polled(world)
    EXAMPLES.append(query)
    record = await world.command("watch test", query=query, user_id=world.member_id)
    text = clear_answer(record)
    assert record.ephemeral, text


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(query=query_text)
async def test_watch_add_stores_only_clean_queries(world: World, query: str) -> None:
    if world.app is None:
        world.extra["PAPERWATCH_LIMITS__WATCHES_PER_CHANNEL"] = "1000"
        world.extra["PAPERWATCH_LIMITS__WATCHES_PER_GUILD"] = "1000"
        await world.start_bot()
        await polled(world)
    EXAMPLES.append(query)
    before = watch_count(world)
    record = await world.command("watch add", query=query)
    text = clear_answer(record)
    if watch_count(world) == before:
        assert record.ephemeral, text  # a refusal only the author sees
    else:
        assert watch_count(world) == before + 1
    for stored in stored_text(world):
        assert not invisible_chars(stored), repr(stored)
