"""End-to-end harness: the real bot (BotApp) and discord.py against the local Discord and feeds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings, load_settings
from bot.discord.runner import BotApp
from tests.fakediscord.model import Perm
from tests.fakediscord.server import FakeDiscord
from tests.feedserver import FeedServer, load_hf_day

START = datetime(2025, 3, 17, 7, 0, tzinfo=UTC)
"""A Monday morning; the fixture day 2025-03-17 is 'today' for the bot."""


class MovableClock:
    def __init__(self, start: datetime) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def set(self, moment: datetime) -> None:
        self.current = moment

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


def bot_settings(fake: FakeDiscord, feeds: FeedServer, db: Path, **extra: str) -> Settings:
    environ = {
        "DISCORD_TOKEN": fake.token,
        "PAPERWATCH_DISCORD__API_BASE": fake.api_base,
        "PAPERWATCH_DISCORD__GATEWAY_URL": fake.gateway_url,
        "PAPERWATCH_DISCORD__GUILD_READY_TIMEOUT": "0.05",
        "PAPERWATCH_DISCORD__IDENTIFY_DELAY": "0",
        "PAPERWATCH_DATABASE__URL": f"sqlite+aiosqlite:///{db}",
        "PAPERWATCH_FEEDS__HUGGINGFACE__URL": feeds.hf_url,
        "PAPERWATCH_FEEDS__HUGGINGFACE__POLL_INTERVAL": "3600",
        "PAPERWATCH_FEEDS__HUGGINGFACE__BACKFILL_DAYS": "0",
        "PAPERWATCH_FEEDS__ARXIV__RSS_URL": feeds.rss_url,
        "PAPERWATCH_FEEDS__MAX_ATTEMPTS": "2",
        "PAPERWATCH_FEEDS__TIMEOUT": "2",
        "PAPERWATCH_DIGEST__CHECK_INTERVAL": "0.1",
        "PAPERWATCH_LIMITS__COMMAND_COOLDOWN": "0",
        "PAPERWATCH_LIMITS__COMMANDS_PER_MINUTE": "1000",
        "PAPERWATCH_LIMITS__LOOKUP_COOLDOWN": "0",
        "PAPERWATCH_LIMITS__LOOKUPS_PER_MINUTE": "1000",
    }
    environ.update(extra)
    return load_settings(environ=environ)


@dataclass
class World:
    fake: FakeDiscord
    feeds: FeedServer
    clock: MovableClock
    db: Path
    guild_id: int
    channel_id: int
    other_channel_id: int
    admin_id: int
    member_id: int
    app: BotApp | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def settings(self) -> Settings:
        return bot_settings(self.fake, self.feeds, self.db, **self.extra)

    async def start_bot(self) -> BotApp:
        self.app = BotApp(self.settings(), clock=self.clock)
        await self.app.start()
        await self.app.wait_ready()
        await self.fake.wait_for(lambda: bool(self.fake.command_syncs), timeout=5)
        return self.app

    async def stop_bot(self) -> None:
        if self.app is not None:
            await self.app.stop()
            self.app = None

    async def command(
        self,
        name: str,
        *,
        user_id: int | None = None,
        channel_id: int | None = None,
        guild_id: int | None = None,
        **options: Any,
    ) -> Any:
        """Run a slash command as the admin (by default) in the main channel; return the record.

        Another guild's channel needs `guild_id` too; an ATTACHMENT option takes an
        `Upload(filename, data)` or a file the bot posted (`record.files[0]`)."""
        record = await self.fake.invoke_command(
            guild_id or self.guild_id,
            channel_id or self.channel_id,
            user_id or self.admin_id,
            name,
            options=options,
        )
        await record.wait_response()
        return record

    async def click(
        self, message: Any, custom_id: str, *, user_id: int | None = None, permissions: int | None = None
    ) -> Any:
        """Click a button of a message the bot posted, as the admin by default; return the record
        once the bot called back (then `wait_reply`, `wait_update` or `wait_followups`)."""
        record = await self.fake.click_button(
            message, custom_id, user_id or self.admin_id, permissions=permissions
        )
        await record.wait_response()
        return record

    async def pick(
        self,
        message: Any,
        custom_id: str,
        *values: str,
        user_id: int | None = None,
        permissions: int | None = None,
    ) -> Any:
        """Pick `values` in a select menu of a message the bot posted; like `click`."""
        record = await self.fake.select_option(
            message, custom_id, list(values), user_id or self.admin_id, permissions=permissions
        )
        await record.wait_response()
        return record

    async def wait(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("condition not reached")
            await asyncio.sleep(0.02)

    def posts(self, channel_id: int | None = None) -> list[Any]:
        """Bot messages in a channel, interaction replies excluded."""
        return self.fake.messages(channel_id or self.channel_id, include_interaction_replies=False)


def reply_text(record: Any) -> str:
    data = record.callback.get("data") or {}
    text = data.get("content") or ""
    if record.original_edits:
        text += "\n" + "\n".join(str(edit.get("content", "")) for edit in record.original_edits)
    return text


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    fake = FakeDiscord()
    await fake.start()
    feeds = FeedServer()
    await feeds.start()
    feeds.days["2025-03-17"] = load_hf_day("2025-03-17")
    guild = fake.add_guild("Reading group", channels=("papers", "general"))
    admin = fake.add_member(guild.id, username="admin", permissions=Perm.MANAGE_CHANNELS | Perm.SEND_MESSAGES)
    member = fake.add_member(guild.id, username="reader")
    world = World(
        fake=fake,
        feeds=feeds,
        clock=MovableClock(START),
        db=tmp_path / "paperwatch.db",
        guild_id=guild.id,
        channel_id=guild.channel_ids[0],
        other_channel_id=guild.channel_ids[1],
        admin_id=admin.user_id,
        member_id=member.user_id,
    )
    try:
        yield world
    finally:
        await world.stop_bot()
        await feeds.close()
        await fake.close()
