"""Guilds and users are isolated from each other (docs/commands.md, "Permissions"; issue #4, item 3).

Interactions are crafted the way a modified client or a replayed payload could send them:
ids of another guild's watches or another user's alerts, a channel of another guild,
permissions without Manage Channels. Each is refused, a foreign id exactly like an id
that does not exist, and nothing stored changes. Limits and the cooldown hold, and the
bot token never reaches a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e import conftest as e2e
from tests.e2e.conftest import World, reply_text
from tests.fakediscord.interactions import InteractionType, nest_options, resolve_path
from tests.fakediscord.model import Perm
from tests.feedserver import Fault, load_hf_day

pytestmark = pytest.mark.slow

world = e2e.world  # the end-to-end fixture: real bot, FakeDiscord, local feed server

MESSAGES = r"/channels/\d+/messages"
MISSING = 987_654  # an id no watch or alert has
NO_MANAGE_CHANNELS = Perm.ALL & ~Perm.MANAGE_CHANNELS & ~Perm.ADMINISTRATOR
"""Everything else (Manage Server, Manage Roles ...), but not Manage Channels."""


# --- helpers ---------------------------------------------------------------------------------


def snapshot(world: World) -> dict[str, list[tuple[Any, ...]]]:
    """Every stored row a command could change."""
    with contextlib.closing(sqlite3.connect(world.db, timeout=10)) as conn:
        return {
            table: sorted(conn.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
            for table in ("targets", "watches", "deliveries")
        }


def count(world: World, sql: str, *params: object) -> int:
    with contextlib.closing(sqlite3.connect(world.db, timeout=10)) as conn:
        return int(conn.execute(sql, params).fetchone()[0])


@dataclass
class Other:
    """A second guild with its own admin, channel and watch."""

    guild_id: int
    channel_id: int
    channel_name: str
    admin_id: int
    watch_id: int = 0
    query: str = "crystallography"


async def invoke(
    world: World,
    name: str,
    *,
    guild_id: int | None = None,
    channel_id: int | None = None,
    user_id: int | None = None,
    permissions: int | None = None,
    **options: Any,
) -> Any:
    record = await world.fake.invoke_command(
        guild_id or world.guild_id,
        channel_id or world.channel_id,
        user_id or world.admin_id,
        name,
        options=options,
        permissions=permissions,
    )
    await record.wait_response()
    return record


async def invoke_with_channel(
    world: World, name: str, channel_option: int, channel_name: str, **options: Any
) -> Any:
    """Run `name` as the admin of the first guild with a `channel` option naming any channel id.

    Discord itself only offers the guild's own channels, so the payload is built here: the
    options are resolved for a channel of this guild, then the id and name are swapped in.
    """
    fake = world.fake
    command, path, scope_guild = fake._command_for(world.guild_id, name, None, None)
    _, leaf_defs = resolve_path(command, path)
    channel = fake._interaction_channel(world.guild_id, world.channel_id, world.admin_id)
    placeholder = world.other_channel_id
    leaf, resolved = fake._build_options(
        leaf_defs,
        {**options, "channel": placeholder},
        world.guild_id,
        channel,
        world.admin_id,
        focused=None,
    )
    for option in leaf:
        if option["name"] == "channel":
            option["value"] = str(channel_option)
    entry = resolved["channels"].pop(str(placeholder))
    entry.update(id=str(channel_option), name=channel_name)
    resolved["channels"][str(channel_option)] = entry
    data: dict[str, Any] = {
        "id": command["id"],
        "name": command["name"],
        "type": 1,
        "options": nest_options(command, path, leaf),
        "resolved": resolved,
    }
    if scope_guild is not None:
        data["guild_id"] = str(scope_guild)
    payload = fake._interaction_payload(
        InteractionType.APPLICATION_COMMAND,
        data,
        world.guild_id,
        channel,
        world.admin_id,
        None,
        None,
        "en-US",
    )
    record = fake._dispatch_interaction(payload, world.guild_id)
    await record.wait_response()
    return record


def refused_alike(foreign: Any, missing: Any, foreign_id: int, missing_id: int) -> None:
    """A refusal for someone else's id says exactly what it says for an id that does not exist."""
    assert foreign.ephemeral and missing.ephemeral
    assert "Something went wrong" not in reply_text(missing)
    expected = reply_text(missing).replace(f"#{missing_id}", f"#{foreign_id}")
    assert reply_text(foreign) == expected
    assert reply_text(foreign) != ""


@pytest.fixture
async def two_guilds(world: World) -> AsyncIterator[Other]:
    guild = world.fake.add_guild("Other lab", channels=("their-papers",))
    admin = world.fake.add_member(
        guild.id, username="their-admin", permissions=Perm.MANAGE_CHANNELS | Perm.SEND_MESSAGES
    )
    other = Other(guild.id, guild.channel_ids[0], "their-papers", admin.user_id)
    await world.start_bot()
    mine = await world.command("watch add", query="diffusion")
    assert "added" in reply_text(mine)
    theirs = await invoke(
        world,
        "watch add",
        guild_id=other.guild_id,
        channel_id=other.channel_id,
        user_id=other.admin_id,
        query=other.query,
    )
    assert "added" in reply_text(theirs)
    other.watch_id = int(re.search(r"#(\d+)", reply_text(theirs)).group(1))  # type: ignore[union-attr]
    assert other.watch_id != 1
    yield other


# --- ids of another guild / another user -----------------------------------------------------


@pytest.mark.parametrize("action", ["remove", "pause", "resume"])
async def test_another_guilds_watch_id_is_refused_like_a_missing_one(
    world: World, two_guilds: Other, action: str
) -> None:
    other = two_guilds
    before = snapshot(world)
    for user, permissions in ((world.admin_id, None), (world.member_id, NO_MANAGE_CHANNELS)):
        foreign = await invoke(
            world, f"watch {action}", user_id=user, permissions=permissions, watch=other.watch_id
        )
        missing = await invoke(world, f"watch {action}", user_id=user, permissions=permissions, watch=MISSING)
        refused_alike(foreign, missing, other.watch_id, MISSING)
    assert snapshot(world) == before
    # Their admin still sees their watch, unpaused.
    listing = await invoke(world, "watch list", guild_id=other.guild_id, channel_id=other.channel_id)
    assert other.query in reply_text(listing)
    assert "paused" not in reply_text(listing)


async def test_another_users_alert_id_is_refused_like_a_missing_one(world: World) -> None:
    await world.start_bot()
    added = await world.command("alert add", user_id=world.member_id, query="agent*")
    alert_id = int(re.search(r"#(\d+)", reply_text(added)).group(1))  # type: ignore[union-attr]
    await world.command("alert add", user_id=world.admin_id, query="robot*")
    before = snapshot(world)
    foreign = await world.command("alert remove", user_id=world.admin_id, alert=alert_id)
    missing = await world.command("alert remove", user_id=world.admin_id, alert=MISSING)
    refused_alike(foreign, missing, alert_id, MISSING)
    # The same from a DM with the bot.
    dm_foreign = await world.fake.invoke_command(
        None, None, world.admin_id, "alert remove", options={"alert": alert_id}
    )
    dm_missing = await world.fake.invoke_command(
        None, None, world.admin_id, "alert remove", options={"alert": MISSING}
    )
    await dm_foreign.wait_response()
    await dm_missing.wait_response()
    refused_alike(dm_foreign, dm_missing, alert_id, MISSING)
    assert snapshot(world) == before
    assert "agent*" in reply_text(await world.command("alert list", user_id=world.member_id))


async def test_autocomplete_offers_only_own_guild_watches_and_own_alerts(
    world: World, two_guilds: Other
) -> None:
    other = two_guilds
    await world.command("alert add", user_id=world.member_id, query="agent*")
    await invoke(
        world,
        "alert add",
        guild_id=other.guild_id,
        channel_id=other.channel_id,
        user_id=other.admin_id,
        query="robot*",
    )

    def ids(choices: list[dict[str, Any]]) -> set[int]:
        return {int(c["value"]) for c in choices}

    for action in ("remove", "pause", "resume"):
        for typed in ("", str(other.watch_id), other.query[:6], "#"):
            mine = await world.fake.autocomplete(
                world.guild_id, world.channel_id, world.admin_id, f"watch {action}", options={"watch": typed}
            )
            assert other.watch_id not in ids(mine)
            assert not any(other.query in c["name"] for c in mine)
            theirs = await world.fake.autocomplete(
                other.guild_id, other.channel_id, other.admin_id, f"watch {action}", options={"watch": typed}
            )
            assert 1 not in ids(theirs)
            assert not any("diffusion" in c["name"] for c in theirs)
    own = await world.fake.autocomplete(
        world.guild_id, world.channel_id, world.admin_id, "watch remove", options={"watch": ""}
    )
    assert ids(own) == {1}  # the check above is not vacuous

    for typed in ("", "agent", "robot", "1", "2", "3", "4"):
        choices = await world.fake.autocomplete(
            world.guild_id, world.channel_id, world.admin_id, "alert remove", options={"alert": typed}
        )
        assert not any("agent" in c["name"] or "robot" in c["name"] for c in choices), choices
    member_choices = await world.fake.autocomplete(
        world.guild_id, world.channel_id, world.member_id, "alert remove", options={"alert": ""}
    )
    assert len(member_choices) == 1
    assert "agent*" in member_choices[0]["name"]


@pytest.mark.parametrize("command", ["watch add", "watch list"])
async def test_a_channel_of_another_guild_is_refused(world: World, two_guilds: Other, command: str) -> None:
    other = two_guilds
    before = snapshot(world)
    options = {"query": "transformers"} if command == "watch add" else {}
    foreign = await invoke_with_channel(world, command, other.channel_id, other.channel_name, **options)
    unknown_id = world.fake.new_id()
    missing = await invoke_with_channel(world, command, unknown_id, other.channel_name, **options)
    assert foreign.ephemeral and missing.ephemeral
    assert reply_text(foreign) == reply_text(missing).replace(str(unknown_id), str(other.channel_id))
    assert "Something went wrong" not in reply_text(foreign)
    assert other.query not in reply_text(foreign)
    assert snapshot(world) == before
    assert count(world, "SELECT count(*) FROM targets WHERE channel_id = ?", other.channel_id) == 1


# --- Manage Channels, checked by the bot itself ----------------------------------------------

CHANGING_COMMANDS: list[tuple[str, dict[str, Any]]] = [
    ("watch add", {"query": "transformers"}),
    ("watch remove", {"watch": 1}),
    ("watch pause", {"watch": 1}),
    ("watch resume", {"watch": 1}),
    ("digest set", {"time": "06:30", "timezone": "Asia/Tokyo"}),
    ("digest now", {}),
    ("digest pause", {}),
    ("digest resume", {}),
]


async def test_every_changing_command_needs_manage_channels(world: World) -> None:
    world.feeds.days["2025-03-17"] = load_hf_day("2025-03-17")
    await world.start_bot()
    await world.wait(lambda: len(world.feeds.hf_requests()) >= 1)
    await asyncio.sleep(0.2)
    await world.command("watch add", query="upvotes>=0")
    await world.command("watch pause", watch=1)
    before = snapshot(world)
    assert before["deliveries"], "the watch should have papers waiting"
    posts_before = len(world.fake.requests_matching("POST", MESSAGES))
    # The member sees the commands only because the payload says so; and the admin, whose
    # Manage Channels this channel takes away (an overwrite, as Discord reports it).
    for user in (world.member_id, world.admin_id):
        for name, options in CHANGING_COMMANDS:
            record = await invoke(world, name, user_id=user, permissions=NO_MANAGE_CHANNELS, **options)
            text = reply_text(record)
            assert record.ephemeral, (name, text)
            assert "Manage Channels" in text, (name, text)
    await asyncio.sleep(0.3)
    assert snapshot(world) == before
    assert len(world.fake.requests_matching("POST", MESSAGES)) == posts_before


async def test_manage_channels_is_checked_in_the_target_channel(world: World) -> None:
    await world.start_bot()
    await world.command("watch add", query="agents", channel=world.other_channel_id)
    # The admin keeps Manage Channels here but loses it in the other channel.
    world.fake.set_overwrite(world.other_channel_id, world.admin_id, deny=Perm.MANAGE_CHANNELS)
    await asyncio.sleep(0.1)
    before = snapshot(world)
    add = await world.command("watch add", query="diffusion", channel=world.other_channel_id)
    assert add.ephemeral and "Manage Channels" in reply_text(add)
    for action in ("remove", "pause"):
        record = await world.command(f"watch {action}", watch=1)
        assert record.ephemeral and "Manage Channels" in reply_text(record), reply_text(record)
    assert snapshot(world) == before
    # Here it still works.
    assert "added" in reply_text(await world.command("watch add", query="diffusion"))


# --- limits and pacing -----------------------------------------------------------------------


async def test_watch_and_alert_limits_hold(world: World) -> None:
    world.extra.update(
        {"PAPERWATCH_LIMITS__WATCHES_PER_CHANNEL": "2", "PAPERWATCH_LIMITS__ALERTS_PER_USER": "2"}
    )
    await world.start_bot()
    for query in ("diffusion", "agents"):
        assert "added" in reply_text(await world.command("watch add", query=query))
    third = await world.command("watch add", query="robots")
    assert third.ephemeral and "robots" not in reply_text(await world.command("watch list"))
    assert count(world, "SELECT count(*) FROM watches") == 2
    # Paused watches count too; removing one frees a place.
    await world.command("watch pause", watch=1)
    assert (await world.command("watch add", query="robots")).ephemeral
    assert "added" in reply_text(
        await world.command("watch add", query="robots", channel=world.other_channel_id)
    )
    await world.command("watch remove", watch=2)
    assert "added" in reply_text(await world.command("watch add", query="robots"))

    for query in ("agent*", "distill*"):
        added = await world.command("alert add", user_id=world.member_id, query=query)
        assert "Alert" in reply_text(added)
    refused = await world.command("alert add", user_id=world.member_id, query="robots")
    assert refused.ephemeral and "robots" not in reply_text(
        await world.command("alert list", user_id=world.member_id)
    )
    alerts = "SELECT count(*) FROM watches w JOIN targets t ON t.id = w.target_id WHERE t.kind != 'channel'"
    assert count(world, alerts) == 2
    assert "Alert" in reply_text(await world.command("alert add", user_id=world.admin_id, query="robots"))
    assert count(world, alerts) == 3


async def test_cooldown_refuses_a_second_change_right_after_the_first(world: World) -> None:
    world.extra["PAPERWATCH_LIMITS__COMMAND_COOLDOWN"] = "5"
    await world.start_bot()
    first = await world.command("watch add", query="diffusion")
    assert "added" in reply_text(first)
    before = snapshot(world)
    for name, options in [
        ("watch add", {"query": "agents"}),
        ("watch pause", {"watch": 1}),
        ("digest set", {"time": "07:00", "timezone": "UTC"}),
    ]:
        record = await world.command(name, **options)
        assert record.ephemeral, name
        assert re.search(r"\d+ ?s\b", reply_text(record)), reply_text(record)  # says how long to wait
    assert snapshot(world) == before
    # Looking is not changing, and another person is not slowed down.
    assert "diffusion" in reply_text(await world.command("watch list"))
    assert "Alert" in reply_text(await world.command("alert add", user_id=world.member_id, query="agents"))


# --- the token never reaches a log -----------------------------------------------------------


async def test_token_never_appears_in_logs_or_messages(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("discord", "discord.http", "discord.gateway", "discord.client", "bot", "httpx"):
        caplog.set_level(logging.DEBUG, logger=name)
    token = world.fake.token
    world.feeds.fail(Fault(status=500, body=b"{}", times=2))  # the first poll fails
    await world.start_bot()
    await world.wait(lambda: len(world.feeds.hf_requests()) >= 2, timeout=10)
    world.feeds.days["2025-03-17"] = load_hf_day("2025-07-15")
    assert world.app is not None and world.app.timetable is not None
    await asyncio.wait_for(world.app.timetable.poll_huggingface(), 20)

    await world.command("watch add", query="a OR")  # bad query
    await world.command("watch add", query="upvotes>=0")
    await world.command("watch add", query="upvotes>=0", channel=world.other_channel_id)
    world.fake.fail_next("POST", MESSAGES, 429, retry_after=0.2, times=1)
    record = await world.command("digest now")
    await world.wait(lambda: bool(record.original_edits), timeout=10)
    world.fake.forbid_channel(world.other_channel_id)  # 403
    record = await world.command("digest now", channel_id=world.other_channel_id)
    await world.wait(lambda: bool(record.original_edits), timeout=10)
    await world.fake.close_gateway(4000)
    await world.fake.wait_resumed(1, timeout=10)
    await world.command("paperwatch status")
    await world.stop_bot()

    assert len(caplog.records) > 20  # DEBUG output really was captured
    assert any(r.name.startswith("discord") for r in caplog.records)
    assert token not in caplog.text
    for record in caplog.records:
        assert token not in record.getMessage()
        assert token not in repr(record.args)
        assert token not in (record.exc_text or "")
    for request in world.fake.requests:
        assert token not in repr(request.json)
    for channel_id in (world.channel_id, world.other_channel_id):
        for message in world.fake.messages(channel_id):
            assert token not in repr(message.data)
