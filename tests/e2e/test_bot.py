"""The running bot's wiring: intents, command sync, paging, errors, the command set itself."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest

from bot.config import load_settings
from bot.discord.client import Cooldown, PaperwatchClient, Services
from bot.discord.commands import add_commands
from tests.e2e.conftest import World, reply_text

pytestmark = pytest.mark.slow

GUILDS_INTENT = 1 << 0

EXPECTED_COMMANDS = {
    "watch": {"add", "list", "remove", "pause", "resume", "test", "export", "import"},
    "alert": {"add", "list", "remove", "schedule", "recommend"},
    "digest": {"set", "show", "now", "pause", "resume"},
    "paper": {"search", "show", "save", "saved", "unsave", "export"},
    "paperwatch": {"status", "stats"},
}


def test_every_documented_command_is_registered_once() -> None:
    settings = load_settings(environ={})
    client = PaperwatchClient(settings)
    services = Services(
        settings=settings,
        watches=None,
        alerts=None,
        digests=None,
        papers=None,
        status=None,
        feedback=None,
        transfer=None,
        export=None,
        stats=None,
        deliverer=None,
        cooldown=Cooldown(0, 10),
    )  # type: ignore[arg-type]
    add_commands(client.tree, services)
    groups = {group.name: group for group in client.tree.get_commands()}
    assert set(groups) == set(EXPECTED_COMMANDS)
    for name, subcommands in EXPECTED_COMMANDS.items():
        names = [command.name for command in groups[name].commands]  # type: ignore[union-attr]
        assert len(names) == len(set(names))
        assert subcommands <= set(names)


async def test_smallest_intents_and_commands_synced_only_when_changed(world: World) -> None:
    await world.start_bot()
    sessions = list(world.fake.sessions.values())
    assert sessions and all(s.intents == GUILDS_INTENT for s in sessions)
    assert len(world.fake.command_syncs) == 1
    synced = {c["name"]: c for c in world.fake.commands()}
    assert set(synced) == set(EXPECTED_COMMANDS)
    add_options = next(o for o in synced["watch"]["options"] if o["name"] == "add")["options"]
    assert [o["name"] for o in add_options] == ["query", "mode", "min_upvotes", "channel"]
    assert all(o["description"] for o in add_options)
    await world.stop_bot()
    await world.start_bot()
    assert len(world.fake.command_syncs) == 1  # same tree: no second sync


async def test_dev_guild_sync_goes_to_that_guild_only(world: World) -> None:
    world.extra["PAPERWATCH_DISCORD__DEV_GUILD_ID"] = str(world.guild_id)
    await world.start_bot()
    await world.fake.wait_synced(world.guild_id)
    assert [s.guild_id for s in world.fake.command_syncs] == [world.guild_id]
    record = await world.command("paperwatch status")
    assert "paperwatch status" in reply_text(record)


async def test_watch_list_pages_with_buttons(world: World) -> None:
    await world.start_bot()
    for number in range(12):
        await world.command("watch add", query=f"topic{number}")
    record = await world.command("watch list", user_id=world.member_id)
    first = reply_text(record)
    assert "Page 1/2" in first
    assert "topic0" in first and "topic11" not in first
    message = await record.wait_reply()
    click = await world.fake.click_button(message, "pw:watchlist:next", world.member_id)
    await click.wait_response()
    second = click.callback["data"]["content"]
    assert "Page 2/2" in second
    assert "topic11" in second and "topic0`" not in second
    stranger = await world.fake.click_button(message, "pw:watchlist:prev", world.admin_id)
    await stranger.wait_response()
    assert "yourself" in (stranger.callback.get("data") or {}).get("content", "")


async def test_unexpected_failure_shows_an_error_id_not_a_traceback(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    await world.start_bot()
    assert world.app is not None and world.app.core is not None

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(world.app.core.status, "status", broken)
    with caplog.at_level(logging.ERROR):
        record = await world.command("paperwatch status")
    text = reply_text(record)
    found = re.search(r"error id `([0-9a-f]{8})`", text)
    assert found, text
    assert "Traceback" not in text and "disk on fire" not in text
    assert any(found.group(1) in r.getMessage() for r in caplog.records)
    assert record.callback["data"]["flags"] & 64


async def test_shutdown_lets_a_command_under_way_answer(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGTERM while a slash command waits on Discord: it finishes before anything is closed."""
    await world.start_bot()
    # Discord takes the reply at once but answers a second late.
    world.fake.delay("POST", r"/interactions/\d+/[^/]+/callback", 1.0, times=1, after_effect=True)
    record = await world.fake.invoke_command(
        world.guild_id, world.channel_id, world.admin_id, "watch add", options={"query": "diffusion"}
    )
    await world.wait(lambda: record.callback is not None)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        await world.stop_bot()
    assert "added" in reply_text(record)
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "CommandTree-invoker" and not t.done()]
