"""/watch export and /watch import through the real bot, discord.py and the local Discord."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from tests.e2e.conftest import World
from tests.fakediscord import Perm, Upload

pytestmark = pytest.mark.slow

EPHEMERAL = 64


def other_guild(world: World) -> tuple[int, int, int]:
    """A second server the bot is in: (guild id, its channel, an admin there)."""
    guild = world.fake.add_guild("Other lab", channels=("imports",))
    admin = world.fake.add_member(guild.id, username="other-admin", permissions=Perm.MANAGE_CHANNELS)
    return guild.id, guild.channel_ids[0], admin.user_id


def exported(record: Any) -> tuple[str, dict[str, Any]]:
    (upload,) = record.files
    return upload.filename, tomllib.loads(upload.text)


async def test_export_then_import_into_another_guild_round_trips_every_watch(world: World) -> None:
    guild_b, channel_b, admin_b = other_guild(world)
    await world.start_bot()
    await world.command("watch add", query="diffusion")
    await world.command(
        "watch add", query='"knowledge distillation" OR distill*', mode="instant", min_upvotes=5
    )
    await world.command("watch add", query="title:agents -survey", min_upvotes=0)
    await world.command("watch pause", watch=3)  # ids count from 1 in a new database
    await world.command("digest set", time="07:30", timezone="Europe/Paris", days="mon-fri")

    record = await world.command("watch export", user_id=world.member_id)  # anyone may export
    reply = await record.wait_reply()
    assert reply.ephemeral and f"<#{world.channel_id}>" in reply.content
    filename, document = exported(record)
    assert filename == "watches-papers.toml"
    assert document["digest"] == {"time": "07:30", "timezone": "Europe/Paris", "days": "mon,tue,wed,thu,fri"}
    assert [(w["query"], w["mode"], w.get("min_upvotes"), w["paused"]) for w in document["watch"]] == [
        ("diffusion", "digest", None, False),
        ('"knowledge distillation" OR distill*', "instant", 5, False),
        ("title:agents -survey", "digest", 0, True),
    ]

    imported = await world.command(
        "watch import", guild_id=guild_b, channel_id=channel_b, user_id=admin_b, file=record.files[0]
    )
    answer = await imported.wait_reply()
    assert answer.ephemeral and answer.content.startswith(f"Imported 3 watches into <#{channel_b}>:")
    assert world.fake.attachments.downloads  # the bot fetched the attachment from the local Discord

    again = await world.command("watch export", guild_id=guild_b, channel_id=channel_b, user_id=admin_b)
    filename_b, document_b = exported(again)
    assert filename_b == "watches-imports.toml"
    assert document_b["watch"] == document["watch"] and document_b["digest"] == document["digest"]


async def test_an_import_with_one_bad_line_imports_nothing_and_names_the_line(world: World) -> None:
    await world.start_bot()
    text = "\n".join(
        [
            "[[watch]]",
            'query = "diffusion"',
            "",
            "[[watch]]",
            'query = "robotics"',
            'mode = "hourly"',
            "",
            "[[watch]]",
            'query = "agents"',
        ]
    )
    record = await world.command("watch import", file=Upload("watches.toml", text.encode()))
    answer = await record.wait_reply()
    assert answer.ephemeral
    lines = answer.content.split("\n")
    assert lines[0] == "Nothing was imported from `watches.toml`; fix this and attach it again:"
    assert lines[1:] == ["• line 4 (`robotics`): The mode is `digest` or `instant`."]
    listed = await world.command("watch list")
    assert listed.reply.content.startswith("No watches")


async def test_a_member_without_manage_channels_cannot_import(world: World) -> None:
    await world.start_bot()
    upload = Upload("watches.toml", b'[[watch]]\nquery = "diffusion"\n')
    record = await world.command("watch import", user_id=world.member_id, file=upload)
    answer = await record.wait_reply()
    assert answer.ephemeral and "Manage Channels" in answer.content
    assert world.fake.attachments.downloads == []  # refused before the file was even fetched
    # the same file in a channel where the member does manage channels is accepted
    world.fake.set_overwrite(world.other_channel_id, world.member_id, allow=Perm.MANAGE_CHANNELS)
    record = await world.command(
        "watch import", user_id=world.member_id, file=upload, channel=world.other_channel_id
    )
    assert (await record.wait_reply()).content.startswith(
        f"Imported 1 watch into <#{world.other_channel_id}>"
    )


async def test_exporting_a_channel_without_watches_says_so(world: World) -> None:
    await world.start_bot()
    record = await world.command("watch export", channel=world.other_channel_id)
    reply = await record.wait_reply()
    assert reply.ephemeral and reply.content == f"<#{world.other_channel_id}> has no watches to export."
    assert record.files == []


async def test_an_oversized_file_is_refused_without_downloading_it(world: World) -> None:
    await world.start_bot()
    record = await world.command("watch import", file=Upload("big.toml", b"#" * (64 * 1024 + 1)))
    answer = await record.wait_reply()
    assert answer.ephemeral and "65,537 bytes" in answer.content and "65,536" in answer.content
    assert world.fake.attachments.downloads == []
