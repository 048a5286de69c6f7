"""Exactly once after an outage longer than Discord's nonce window (docs/delivery.md).

Discord deduplicates `enforce_nonce` for a few minutes only. Here the local Discord honours
a nonce for WINDOW seconds and the bot is told the same (`[discord] nonce_window`), so an
"outage of hours" takes a second: a message is stored by Discord, its answer never reaches
the bot, the bot is killed, and it comes back after the window. A blind re-send with the
old nonce would post the message a second time; the bot must read its own posts back from
the channel's (or DM's) history, record what it finds, and send only the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fakediscord.model import Perm, StoredMessage
from tests.fakediscord.server import FakeDiscord, RecordedRequest
from tests.feedserver import FeedServer, load_hf_day
from tests.reliability.crash_helpers import (
    MESSAGES,
    BotProcess,
    CrashWorld,
    Target,
    bot_environ,
    command,
    delivery_rows,
    delivery_statuses,
    exactly_once_problems,
    nonce_of,
    paper_url,
    show_on_failure,
    stored_unanswered,
    today_iso,
)

pytestmark = pytest.mark.slow

WINDOW = 1.0
"""Seconds the local Discord honours a nonce, and the bot's `nonce_window`."""
DAY = "2025-09-30"
"""50 real papers: a digest of five messages of ten."""


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[CrashWorld]:
    fake = FakeDiscord(nonce_window=WINDOW)
    await fake.start()
    feeds = FeedServer()
    await feeds.start()
    db = tmp_path / "paperwatch.db"
    env = bot_environ(
        fake, feeds, db, PAPERWATCH_DIGEST__MAX_PAPERS="100", PAPERWATCH_DISCORD__NONCE_WINDOW=str(WINDOW)
    )
    bot = BotProcess(env, tmp_path, tmp_path / "bot.log")
    world = CrashWorld(fake=fake, feeds=feeds, bot=bot, db=db)
    try:
        yield world
    finally:
        await bot.close()
        await feeds.close()
        await fake.close()


def history_reads(world: CrashWorld, channel_id: int) -> list[RecordedRequest]:
    """This process's reads of a channel's messages since a moment (`after=`)."""
    return [
        r
        for r in world.life_requests()
        if r.method == "GET" and r.path == f"/channels/{channel_id}/messages" and "after" in r.query
    ]


async def lose_first_answer_and_kill(world: CrashWorld) -> StoredMessage:
    """The first message of the send under way is stored by Discord, its answer is held back, and
    the bot is killed; then an outage longer than the nonce window. Returns the stored message."""
    await world.until(lambda: stored_unanswered(1)(world), 20, "the first message stored, unanswered")
    await world.kill("first message stored by Discord, answer not received")
    world.fake.clear_faults()
    [lost] = [m for messages in world.target_messages().values() for m in messages]
    await asyncio.sleep(WINDOW + 0.5)
    return lost


async def finish_and_check(world: CrashWorld, lost: StoredMessage, expected: set[str]) -> None:
    """Restarted after the outage: every paper once, the lost message's papers recorded from history."""
    await world.start()
    await world.until(
        lambda: world.all_delivered(expected) and delivery_statuses(world.db) == Counter(sent=len(expected)),
        30,
        "every paper delivered and recorded",
    )
    code, _ = await world.terminate(15)
    assert code == 0
    problems = exactly_once_problems(world.urls_by_target(), expected)
    assert not problems, "\n".join(problems)
    assert history_reads(world, lost.channel_id), "the history was not read"
    assert all(int(r.query["after"]) < lost.id for r in history_reads(world, lost.channel_id))
    # the lost message was never re-sent under its old nonce; its papers carry its id
    assert all(nonce_of(r) != lost.nonce for r in world.life_posts())
    lost_urls = {str(e["url"]) for e in lost.embeds}
    rows = {f"https://huggingface.co/papers/{r['paper_id']}": r for r in delivery_rows(world.db)}
    assert {rows[url]["message_id"] for url in lost_urls} == {lost.id}


@dataclass
class LostDigest:
    """A channel digest whose first message Discord made but whose answer was lost."""

    entries: list[dict[str, Any]]
    guild_id: int
    channel_id: int
    admin_id: int
    lost: StoredMessage


async def lose_a_channel_digest(world: CrashWorld) -> LostDigest:
    """A watch on every paper of the day in #papers, `/digest now`, and the bot killed once
    Discord has stored the first message but before its answer arrives."""
    entries = load_hf_day(DAY)
    world.expected = {paper_url(e) for e in entries}
    fake = world.fake
    guild = fake.add_guild("Reading group", channels=("papers",))
    admin = fake.add_member(guild.id, username="admin", permissions=Perm.MANAGE_CHANNELS | Perm.SEND_MESSAGES)
    channel_id = guild.channel_ids[0]
    world.targets = [Target("#papers", channel_id=channel_id)]
    world.feeds.days[today_iso()] = entries
    with show_on_failure(world):
        await world.start()
        await world.wait_ready()
        await world.until(lambda: bool(fake.commands()), 10, "the commands to be synced")
        text = await command(world, guild.id, channel_id, admin.user_id, "watch add", query="upvotes>=0")
        assert "added" in text, text
        await world.until(
            lambda: delivery_statuses(world.db) == Counter(pending=len(entries)), 20, "the papers matched"
        )
        fake.delay("POST", MESSAGES, 0.5, after_effect=True)
        await fake.invoke_command(guild.id, channel_id, admin.user_id, "digest now")
        lost = await lose_first_answer_and_kill(world)
    return LostDigest(entries, guild.id, channel_id, admin.user_id, lost)


async def test_channel_digest_after_an_outage_longer_than_the_nonce_window(world: CrashWorld) -> None:
    day = await lose_a_channel_digest(world)
    entries, expected, lost = day.entries, world.expected, day.lost

    with show_on_failure(world):
        assert len(lost.embeds) == 10 and "50 new papers" in lost.content
        assert delivery_statuses(world.db) == Counter(claimed=len(entries))

        await finish_and_check(world, lost, expected)
        messages = world.target_messages()["#papers"]
        assert len(messages) == 5
        assert [m.content for m in messages].count(lost.content) == 1  # the header once


@pytest.mark.parametrize("where", ["channel", "dm"])
async def test_instant_post_after_an_outage_longer_than_the_nonce_window(
    world: CrashWorld, where: str
) -> None:
    entries = load_hf_day(DAY)
    expected = world.expected = {paper_url(e) for e in entries}
    fake = world.fake
    guild = fake.add_guild("Reading group", channels=("papers",))
    admin = fake.add_member(guild.id, username="admin", permissions=Perm.MANAGE_CHANNELS | Perm.SEND_MESSAGES)
    reader = fake.add_member(guild.id, username="reader")
    channel_id = guild.channel_ids[0]
    world.targets = (
        [Target("#papers", channel_id=channel_id)]
        if where == "channel"
        else [Target("@reader", user_id=reader.user_id)]
    )
    world.feeds.days[today_iso()] = []

    with show_on_failure(world):
        # an instant watch (or DM alert) first; the papers appear after it
        await world.start()
        await world.wait_ready()
        await world.until(lambda: bool(fake.commands()), 10, "the commands to be synced")
        if where == "channel":
            text = await command(
                world, guild.id, channel_id, admin.user_id, "watch add", query="upvotes>=0", mode="instant"
            )
        else:
            text = await command(
                world, guild.id, channel_id, reader.user_id, "alert add", query="upvotes>=0", mode="instant"
            )
        assert "added" in text, text
        code, _ = await world.terminate(15)
        assert code == 0

        # the poll at the next start finds them and posts at once; the first answer is lost
        world.feeds.days[today_iso()] = entries
        fake.delay("POST", MESSAGES, 0.5, after_effect=True)
        await world.start()
        lost = await lose_first_answer_and_kill(world)
        assert len(lost.embeds) == 10 and "New for" in lost.content
        if where == "dm":
            assert lost.channel_id == fake.dm_channel(reader.user_id).id

        await finish_and_check(world, lost, expected)


async def test_crash_between_reading_the_history_and_recording_it(world: CrashWorld) -> None:
    day = await lose_a_channel_digest(world)
    expected, fake, lost, channel_id = world.expected, world.fake, day.lost, day.channel_id

    with show_on_failure(world):
        claims = {(r["id"], r["nonce"], r["claimed_at"]) for r in delivery_rows(world.db)}

        # The next start reads the history; while Discord answers, the test takes the database's
        # write lock, so the bot has the answer but cannot record it; then it is killed.
        fake.delay("GET", MESSAGES, 0.3, times=1)
        await world.start()
        await world.until(
            lambda: any(r.status is None for r in history_reads(world, channel_id)), 20, "the history read"
        )
        with contextlib.closing(sqlite3.connect(world.db, timeout=5, isolation_level=None)) as blocker:
            blocker.execute("BEGIN IMMEDIATE")
            await world.until(
                lambda: all(r.status == 200 for r in history_reads(world, channel_id)),
                5,
                "the history answered",
            )
            await asyncio.sleep(0.5)  # the bot reads the page and waits for the lock to record it
            await world.kill("history read, nothing recorded yet")
            blocker.execute("ROLLBACK")
        assert {(r["id"], r["nonce"], r["claimed_at"]) for r in delivery_rows(world.db)} == claims
        assert len(world.target_messages()["#papers"]) == 1

        await finish_and_check(world, lost, expected)


@pytest.mark.parametrize("refusal", ["403", "no Read Message History"])
async def test_unreadable_history_pauses_the_channel_until_resumed(world: CrashWorld, refusal: str) -> None:
    day = await lose_a_channel_digest(world)
    entries, expected, fake, lost = day.entries, world.expected, world.fake, day.lost
    guild_id, channel_id, admin_id = day.guild_id, day.channel_id, day.admin_id

    with show_on_failure(world):
        # Discord refuses the read (403), or answers an empty list because Read Message
        # History was taken away: neither may be taken as "nothing was posted"
        if refusal == "403":
            rule = fake.fail_next("GET", rf"/channels/{channel_id}/messages", 403, code=50001, times=None)
        else:
            fake.hide_history(channel_id)
        await world.start()
        await world.wait_ready()
        await world.until(lambda: paused_reason(world.db) is not None, 20, "the channel paused")
        await asyncio.sleep(1.0)  # five delivery checks: none may post
        assert world.life_posts() == []
        assert delivery_statuses(world.db) == Counter(claimed=len(entries))  # kept for later
        [watch_id] = [w for (w,) in query(world.db, "SELECT id FROM watches")]
        text = await command(world, guild_id, channel_id, admin_id, "watch list")
        assert "paused" in text.lower(), text

        # the permission comes back and the watch is resumed: the history decides
        if refusal == "403":
            rule.cancel()
        else:
            fake.allow_channel(channel_id)
        text = await command(world, guild_id, channel_id, admin_id, "watch resume", watch=watch_id)
        world.fake.clear_faults()
        await world.until(
            lambda: (
                world.all_delivered(expected) and delivery_statuses(world.db) == Counter(sent=len(expected))
            ),
            30,
            f"every paper delivered after resuming ({text})",
        )
        problems = exactly_once_problems(world.urls_by_target(), expected)
        assert not problems, "\n".join(problems)
        assert all(nonce_of(r) != lost.nonce for r in world.life_posts())


def query(db: Path, sql: str) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        return conn.execute(sql).fetchall()


def paused_reason(db: Path) -> object:
    [(reason,)] = query(db, "SELECT paused_reason FROM targets")
    return reason
