"""The local Discord's components and attachments, proven with the real discord.py client."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands

from tests.fakediscord import FakeDiscord, FakeGuild, Perm, Upload
from tests.fakediscord.client import running_client
from tests.fakediscord.components import check_pick, validate_components
from tests.fakediscord.errors import FormErrors


class PickView(discord.ui.View):
    """A select and a few buttons, each answering with a different callback type."""

    def __init__(self) -> None:
        super().__init__(timeout=30)

    @discord.ui.select(
        custom_id="pick:paper",
        placeholder="Pick a paper…",
        options=[discord.SelectOption(label=f"Paper {i}", value=f"2503.0000{i}") for i in range(3)],
    )
    async def pick(self, interaction: discord.Interaction, select: discord.ui.Select[PickView]) -> None:
        perms = interaction.permissions.manage_channels
        await interaction.response.send_message(
            f"{interaction.user.id} picked {select.values} manage={perms}", ephemeral=True
        )

    @discord.ui.button(label="Defer", custom_id="pick:defer")
    async def defer(self, interaction: discord.Interaction, button: discord.ui.Button[PickView]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await interaction.followup.send("deferred answer", ephemeral=True)
        await interaction.followup.send("second follow-up", ephemeral=True)

    @discord.ui.button(label="Quiet", custom_id="pick:quiet")
    async def quiet(self, interaction: discord.Interaction, button: discord.ui.Button[PickView]) -> None:
        await interaction.response.defer()  # DEFERRED_UPDATE_MESSAGE for a component
        await interaction.edit_original_response(content="edited later")

    @discord.ui.button(label="Update", custom_id="pick:update")
    async def update(self, interaction: discord.Interaction, button: discord.ui.Button[PickView]) -> None:
        await interaction.response.edit_message(content="updated", view=None)


class FileBot(discord.Client):
    def __init__(self, guild_id: int) -> None:
        super().__init__(intents=discord.Intents(guilds=True), guild_ready_timeout=0.05)
        self.guild_id = guild_id
        self.tree = app_commands.CommandTree(self)
        guild = discord.Object(guild_id)

        @app_commands.command(name="panel", description="Post a pick panel")
        async def panel(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("panel", view=PickView())

        @app_commands.command(name="echo", description="Read an attached file and send it back reversed")
        async def echo(interaction: discord.Interaction, file: discord.Attachment) -> None:
            data = await file.read()
            await interaction.response.send_message(
                f"{file.filename}: {len(data)} bytes",
                file=discord.File(io.BytesIO(data[::-1]), "reversed.txt"),
                ephemeral=True,
            )

        @app_commands.command(name="later", description="Defer, then follow up with a file")
        async def later(interaction: discord.Interaction) -> None:
            await interaction.response.defer(ephemeral=True)
            await interaction.followup.send("here", file=discord.File(io.BytesIO(b"a,b\n"), "x.csv"))

        for command in (panel, echo, later):
            self.tree.add_command(command, guild=guild)

    async def setup_hook(self) -> None:
        await self.tree.sync(guild=discord.Object(self.guild_id))

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """No 5 s sleep before a re-IDENTIFY in tests."""


@pytest.fixture
async def world() -> AsyncIterator[tuple[FakeDiscord, FakeGuild, FileBot]]:
    async with FakeDiscord() as fake:
        guild = fake.add_guild(name="Lab", channels=("general",))
        async with running_client(FileBot(guild.id), fake) as client:
            yield fake, guild, client
        assert fake.unknown_requests == []


async def _post(fake: FakeDiscord, channel_id: int, body: dict[str, Any]) -> tuple[int, Any]:
    """A raw REST call as the bot, bypassing discord.py's own checks."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{fake.api_base}/channels/{channel_id}/messages",
            json=body,
            headers={"Authorization": f"Bot {fake.token}"},
        ) as response,
    ):
        return response.status, await response.json()


def button(custom_id: str, label: str = "Go", **extra: Any) -> dict[str, Any]:
    return {"type": 2, "style": 1, "label": label, "custom_id": custom_id, **extra}


def select(custom_id: str, count: int, **extra: Any) -> dict[str, Any]:
    options = [{"label": f"option {i}", "value": f"v{i}"} for i in range(count)]
    return {"type": 3, "custom_id": custom_id, "options": options, **extra}


def row(*components: dict[str, Any]) -> dict[str, Any]:
    return {"type": 1, "components": list(components)}


def errors_of(components: list[dict[str, Any]], *, v2: bool = False) -> dict[str, Any]:
    errors = FormErrors()
    validate_components(components, errors, v2=v2)
    return errors.tree


def codes_at(tree: dict[str, Any], *path: str | int) -> list[str]:
    node = tree
    for part in path:
        node = node.get(str(part), {})
    return [e["code"] for e in node.get("_errors", [])]


# --------------------------------------------------------------------------- the limits


def test_a_message_at_every_limit_passes() -> None:
    rows = [row(select("s", 25, placeholder="p" * 150, max_values=25))]
    rows += [row(*(button(f"b{r}{i}", "x" * 80) for i in range(5))) for r in range(3)]
    rows.append(row(button("c" * 100), {"type": 2, "style": 5, "label": "Open", "url": "https://x.org"}))
    assert errors_of(rows) == {}


@pytest.mark.parametrize(
    ("components", "path", "code"),
    [
        ([row(button(f"b{i}")) for i in range(6)], ("components",), "BASE_TYPE_MAX_LENGTH"),
        (
            [row(*(button(f"b{i}") for i in range(6)))],
            ("components", 0, "components"),
            "BASE_TYPE_BAD_LENGTH",
        ),
        ([row()], ("components", 0, "components"), "BASE_TYPE_BAD_LENGTH"),
        (
            [row(select("s", 2), button("b"))],
            ("components", 0, "components"),
            "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
        ),
        ([row(select("s", 26))], ("components", 0, "components", 0, "options"), "BASE_TYPE_BAD_LENGTH"),
        ([row(select("s", 0))], ("components", 0, "components", 0, "options"), "BASE_TYPE_BAD_LENGTH"),
        ([row(button("b", "x" * 81))], ("components", 0, "components", 0, "label"), "BASE_TYPE_MAX_LENGTH"),
        ([row(button("c" * 101))], ("components", 0, "components", 0, "custom_id"), "BASE_TYPE_BAD_LENGTH"),
        ([row(button(""))], ("components", 0, "components", 0, "custom_id"), "BASE_TYPE_BAD_LENGTH"),
        (
            [row(select("s", 2, placeholder="p" * 151))],
            ("components", 0, "components", 0, "placeholder"),
            "BASE_TYPE_MAX_LENGTH",
        ),
        (
            [row(select("s", 2, max_values=3))],
            ("components", 0, "components", 0, "max_values"),
            "SELECT_COMPONENT_MAX_VALUES_EXCEEDS_OPTIONS",
        ),
        (
            [row(button("same")), row(button("same"))],
            ("components", 1, "components", 0, "custom_id"),
            "COMPONENT_CUSTOM_ID_DUPLICATED",
        ),
        ([button("alone")], ("components", 0, "type"), "BASE_TYPE_CHOICES"),
        (
            [row({"type": 2, "style": 5, "label": "x", "url": "https://x.org", "custom_id": "c"})],
            ("components", 0, "components", 0, "custom_id"),
            "BUTTON_COMPONENT_CUSTOM_ID_FORBIDDEN",
        ),
        (
            [row({"type": 2, "style": 1, "custom_id": "c"})],
            ("components", 0, "components", 0, "label"),
            "BUTTON_COMPONENT_LABEL_OR_EMOJI_REQUIRED",
        ),
    ],
)
def test_each_limit_is_refused_at_its_path(
    components: list[dict[str, Any]], path: tuple[str | int, ...], code: str
) -> None:
    assert code in codes_at(errors_of(components), *path)


def test_select_option_texts_and_duplicates() -> None:
    menu = select("s", 3)
    menu["options"][0]["label"] = "l" * 101
    menu["options"][1]["value"] = "v" * 101
    menu["options"][2]["description"] = "d" * 101
    menu["options"].append({"label": "again", "value": "v0"})
    tree = errors_of([row(menu)])
    options = ("components", 0, "components", 0, "options")
    assert codes_at(tree, *options, 0, "label") == ["BASE_TYPE_BAD_LENGTH"]
    assert codes_at(tree, *options, 1, "value") == ["BASE_TYPE_BAD_LENGTH"]
    assert codes_at(tree, *options, 2, "description") == ["BASE_TYPE_MAX_LENGTH"]
    assert codes_at(tree, *options, 3, "value") == ["SELECT_COMPONENT_OPTION_VALUE_DUPLICATED"]


def test_v2_counts_every_component() -> None:
    text = [{"type": 10, "content": "x"} for _ in range(39)]
    assert errors_of([{"type": 17, "components": text}], v2=True) == {}
    tree = errors_of([{"type": 17, "components": [*text, {"type": 10, "content": "y"}]}], v2=True)
    assert codes_at(tree, "components") == ["COMPONENT_MAX_TOTAL_COMPONENTS_EXCEEDED"]


def test_picks_the_client_would_not_allow() -> None:
    menu = select("s", 3, min_values=1, max_values=2)
    assert check_pick(menu, ["v0", "v2"]) is None
    assert check_pick(menu, []) is not None
    assert check_pick(menu, ["v0", "v1", "v2"]) is not None
    assert check_pick(menu, ["nope"]) is not None
    assert check_pick(menu, ["v1", "v1"]) is not None


async def test_the_server_refuses_bad_components_with_400(
    world: tuple[FakeDiscord, FakeGuild, FileBot],
) -> None:
    fake, guild, _ = world
    cid = guild.default_channel_id or 0
    status, body = await _post(
        fake, cid, {"content": "x", "components": [row(button(f"b{i}")) for i in range(6)]}
    )
    assert status == 400 and body["code"] == 50035
    assert body["errors"]["components"]["_errors"][0]["code"] == "BASE_TYPE_MAX_LENGTH"
    status, body = await _post(fake, cid, {"content": "x", "components": [row(select("s", 26))]})
    assert status == 400
    assert "options" in body["errors"]["components"]["0"]["components"]["0"]
    assert fake.messages(cid) == []
    status, _ = await _post(fake, cid, {"content": "ok", "components": [row(select("s", 25))]})
    assert status == 200 and len(fake.messages(cid)) == 1


async def test_discord_py_sees_the_400_as_an_http_exception(
    world: tuple[FakeDiscord, FakeGuild, FileBot],
) -> None:
    _, guild, client = world
    channel = client.get_channel(guild.default_channel_id or 0)
    assert isinstance(channel, discord.TextChannel)
    view = discord.ui.View()
    view.add_item(discord.ui.Button(label="x" * 81, custom_id="long"))
    with pytest.raises(discord.HTTPException) as refused:
        await channel.send("too long a label", view=view)
    assert refused.value.status == 400 and refused.value.code == 50035


# --------------------------------------------------------------------------- clicks and picks


async def test_pick_sends_a_type_3_interaction_with_values_and_the_message(
    world: tuple[FakeDiscord, FakeGuild, FileBot],
) -> None:
    fake, guild, _ = world
    user = fake.add_member(guild.id, username="ana")
    posted = await (await fake.invoke_command(guild.id, None, user.user_id, "panel")).wait_reply()
    record = await fake.select_option(
        posted, "pick:paper", ["2503.00001"], user.user_id, permissions=Perm.MANAGE_CHANNELS
    )
    answer = await record.wait_reply()
    assert answer.ephemeral and answer.content == f"{user.user_id} picked ['2503.00001'] manage=True"
    assert record.payload["type"] == 3
    data = record.payload["data"]
    assert data == {"custom_id": "pick:paper", "component_type": 3, "values": ["2503.00001"]}
    assert record.payload["message"]["id"] == str(posted.id)
    assert record.payload["message"]["components"] == posted.components
    assert answer.data["interaction_metadata"]["interacted_message_id"] == str(posted.id)
    with pytest.raises(ValueError, match="cannot be picked"):
        await fake.select_option(posted, "pick:paper", ["9999.99999"], user.user_id)


async def test_deferred_reply_update_and_deferred_update(
    world: tuple[FakeDiscord, FakeGuild, FileBot],
) -> None:
    fake, guild, _ = world
    user = fake.add_member(guild.id, username="bo").user_id
    posted = await (await fake.invoke_command(guild.id, None, user, "panel")).wait_reply()

    deferred = await fake.click_button(posted, "pick:defer", user)
    assert (await deferred.wait_response())["type"] == 5
    await deferred.wait_followups(2)
    assert deferred.text == "deferred answer\nsecond follow-up"
    assert all(m.ephemeral for m in deferred.messages)

    quiet = await fake.click_button(posted, "pick:quiet", user)
    assert (await quiet.wait_update()).content == "edited later"
    assert quiet.callback_type == 6 and posted.content == "edited later"

    updated = await fake.click_button(posted, "pick:update", user)
    message = await updated.wait_update()
    assert updated.callback_type == 7 and message is posted
    assert posted.content == "updated" and posted.components == []


# --------------------------------------------------------------------------- attachments


async def test_attachment_option_is_downloadable_and_file_replies_keep_their_bytes(
    world: tuple[FakeDiscord, FakeGuild, FileBot],
) -> None:
    fake, guild, _ = world
    user = fake.add_member(guild.id, username="cy").user_id
    upload = Upload("watches.toml", b'[[watch]]\nquery = "diffusion"\n')
    record = await fake.invoke_command(guild.id, None, user, "echo", options={"file": upload})
    reply = await record.wait_reply()
    assert reply.content == f"watches.toml: {len(upload.data)} bytes"
    resolved = record.payload["data"]["resolved"]["attachments"]
    (attachment_id, attachment) = next(iter(resolved.items()))
    assert record.payload["data"]["options"][0] == {"name": "file", "type": 11, "value": attachment_id}
    assert attachment["filename"] == "watches.toml" and attachment["size"] == len(upload.data)
    assert attachment["url"].startswith(fake.base_url) and attachment["ephemeral"] is True
    assert fake.attachments.downloads == [int(attachment_id)]
    # the reply's file: multipart payload_json + files[0], bytes kept and served
    (sent,) = record.files
    assert sent.filename == "reversed.txt" and sent.data == upload.data[::-1]
    url = reply.data["attachments"][0]["url"]
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200 and await response.read() == upload.data[::-1]
    # a file the bot posted can be attached back by a user
    again = await fake.invoke_command(guild.id, None, user, "echo", options={"file": sent})
    assert (await again.wait_reply()).files[0].data == upload.data


async def test_expired_attachment_answers_404(world: tuple[FakeDiscord, FakeGuild, FileBot]) -> None:
    fake, _, _ = world
    stored = fake.attachments.add(1, "gone.txt", "text/plain", b"x")
    url = fake.attachments.payload(stored)["url"]
    fake.attachments.expire(stored.id)
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            assert response.status == 404
        async with session.get(url.replace("gone.txt", "other.txt")) as response:
            assert response.status == 404


async def test_followup_file_after_a_deferral(world: tuple[FakeDiscord, FakeGuild, FileBot]) -> None:
    fake, guild, _ = world
    record = await fake.invoke_command(guild.id, None, fake.add_user("dee").id, "later")
    reply = await record.wait_reply()
    assert reply.content == "here" and reply.ephemeral
    assert [(f.filename, f.data) for f in record.files] == [("x.csv", b"a,b\n")]
