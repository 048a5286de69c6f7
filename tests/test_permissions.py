"""The bot's permissions in a channel, computed from REST answers for guilds this process has
no gateway cache for: the algorithm on hand-written payloads, then the reads against the
local Discord (its own, separately written permission model is the reference there)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import discord
import pytest

from bot.discord.endpoints import endpoints
from bot.discord.permissions import RestPermissions, channel_permissions, permissions_from_payloads
from tests.fakediscord import ChannelType, FakeDiscord, Perm
from tests.fakediscord.model import compute_permissions

GUILD = 1000
OWNER = 7
BOT = 42
ROLE_READERS = 2000
ROLE_ADMINS = 2001
EVERYONE_BITS = Perm.VIEW_CHANNEL | Perm.SEND_MESSAGES | Perm.READ_MESSAGE_HISTORY
ROLES = {GUILD: EVERYONE_BITS, ROLE_READERS: Perm.EMBED_LINKS, ROLE_ADMINS: Perm.ADMINISTRATOR}


def overwrite(target: int, kind: int, *, allow: int = 0, deny: int = 0) -> dict[str, Any]:
    return {"id": str(target), "type": kind, "allow": str(allow), "deny": str(deny)}


def perms(
    member_id: int = BOT, roles: tuple[int, ...] = (), overwrites: tuple[Mapping[str, Any], ...] = ()
) -> int:
    return channel_permissions(
        guild_id=GUILD,
        owner_id=OWNER,
        roles=ROLES,
        member_id=member_id,
        member_roles=roles,
        overwrites=overwrites,
    ).value


HIDDEN = (overwrite(GUILD, 0, deny=Perm.VIEW_CHANNEL | Perm.READ_MESSAGE_HISTORY),)


def test_the_owner_has_everything_whatever_the_overwrites() -> None:
    assert perms(OWNER, overwrites=(*HIDDEN, overwrite(OWNER, 1, deny=Perm.READ_MESSAGE_HISTORY))) == (
        discord.Permissions.all().value
    )
    assert not discord.Permissions(perms(BOT, overwrites=HIDDEN)).read_message_history


def test_an_administrator_role_bypasses_every_channel_overwrite() -> None:
    denied = (*HIDDEN, overwrite(BOT, 1, deny=Perm.READ_MESSAGE_HISTORY))
    result = discord.Permissions(perms(roles=(ROLE_ADMINS,), overwrites=denied))
    assert result.administrator and result.read_message_history and result.view_channel


def test_a_deny_on_everyone_is_overridden_by_an_allow_on_a_role_of_the_member() -> None:
    allowed = overwrite(ROLE_READERS, 0, allow=Perm.VIEW_CHANNEL | Perm.READ_MESSAGE_HISTORY)
    with_role = discord.Permissions(perms(roles=(ROLE_READERS,), overwrites=(*HIDDEN, allowed)))
    assert with_role.view_channel and with_role.read_message_history
    assert with_role.embed_links and with_role.send_messages  # the base, untouched by the overwrites
    without_role = discord.Permissions(perms(overwrites=(*HIDDEN, allowed)))
    assert not without_role.view_channel and not without_role.read_message_history


def test_role_overwrites_are_combined_before_applying_allow_wins_over_deny() -> None:
    other = 2002
    both = (
        overwrite(ROLE_READERS, 0, deny=Perm.READ_MESSAGE_HISTORY),
        overwrite(other, 0, allow=Perm.READ_MESSAGE_HISTORY),
    )
    assert perms(roles=(ROLE_READERS, other), overwrites=both) & Perm.READ_MESSAGE_HISTORY
    assert not perms(roles=(ROLE_READERS,), overwrites=both) & Perm.READ_MESSAGE_HISTORY


def test_a_member_specific_deny_wins_over_a_role_allow() -> None:
    overwrites = (
        overwrite(ROLE_READERS, 0, allow=Perm.READ_MESSAGE_HISTORY),
        overwrite(BOT, 1, deny=Perm.READ_MESSAGE_HISTORY),
        overwrite(OWNER + 1, 1, allow=Perm.MANAGE_MESSAGES),  # someone else's: no effect on the bot
    )
    result = discord.Permissions(perms(roles=(ROLE_READERS,), overwrites=overwrites))
    assert result.view_channel and result.send_messages
    assert not result.read_message_history and not result.manage_messages


def test_without_view_channel_nothing_of_the_channel_remains() -> None:
    hidden = overwrite(BOT, 1, deny=Perm.VIEW_CHANNEL)
    result = discord.Permissions(perms(roles=(ROLE_READERS,), overwrites=(hidden,)))
    assert not result.view_channel
    assert not result.read_message_history and not result.send_messages and not result.embed_links


def test_payloads_as_the_api_gives_them() -> None:
    guild = {
        "id": str(GUILD),
        "owner_id": str(OWNER),
        "roles": [{"id": str(rid), "permissions": str(bits)} for rid, bits in ROLES.items()],
    }
    member = {"roles": [str(ROLE_READERS)], "user": {"id": str(BOT)}}
    channel = {
        "id": "5",
        "guild_id": str(GUILD),
        "permission_overwrites": [overwrite(BOT, 1, deny=Perm.SEND_MESSAGES)],
    }
    result = permissions_from_payloads(guild, member, channel, BOT)
    assert result.value == (EVERYONE_BITS | Perm.EMBED_LINKS) & ~Perm.SEND_MESSAGES


# --- the reads, against the local Discord ------------------------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        yield server


@pytest.fixture
async def http(fake: FakeDiscord) -> AsyncIterator[discord.http.HTTPClient]:
    with endpoints(fake.api_base, fake.gateway_url):
        client = discord.http.HTTPClient(discord.utils.MISSING)
        await client.static_login(fake.token)
        try:
            yield client
        finally:
            await client.close()


def reads(fake: FakeDiscord) -> int:
    return sum(1 for r in fake.requests if r.method == "GET" and not r.path.startswith("/users/@me"))


async def test_reads_agree_with_discords_model_and_are_reused_for_a_while(
    fake: FakeDiscord, http: discord.http.HTTPClient
) -> None:
    guild = fake.add_guild("Lab", channels=("papers", "quiet", "hidden"))
    papers, quiet, hidden = guild.channel_ids
    readers = fake.add_role(guild.id, "readers", Perm.MANAGE_MESSAGES)
    fake.guilds[guild.id].members[fake.bot_user.id].roles.append(readers.id)
    fake.set_overwrite(quiet, guild.id, deny=Perm.READ_MESSAGE_HISTORY)
    fake.set_overwrite(quiet, readers.id, allow=Perm.READ_MESSAGE_HISTORY)
    fake.set_overwrite(hidden, fake.bot_user.id, deny=Perm.READ_MESSAGE_HISTORY)
    now = [0.0]
    rest = RestPermissions(http, ttl=60, clock=lambda: now[0])
    bot = fake.bot_user.id
    for channel_id in (papers, quiet, hidden):
        expected = compute_permissions(fake.guilds[guild.id], bot, fake.channels[channel_id])
        assert (await rest.in_channel(channel_id, bot)).value == expected
    assert (await rest.in_channel(quiet, bot)).read_message_history
    assert not (await rest.in_channel(hidden, bot)).read_message_history

    before = reads(fake)
    fake.allow_channel(hidden)
    now[0] = 59.0
    assert not (await rest.in_channel(hidden, bot)).read_message_history  # still the answer read
    assert reads(fake) == before
    now[0] = 61.0
    assert (await rest.in_channel(hidden, bot)).read_message_history
    assert reads(fake) == before + 3


async def test_a_thread_takes_its_parents_overwrites(
    fake: FakeDiscord, http: discord.http.HTTPClient
) -> None:
    guild = fake.add_guild("Lab", channels=("papers",))
    parent = guild.channel_ids[0]
    thread = fake.add_channel(guild.id, "weekly", type=ChannelType.PUBLIC_THREAD, parent_id=parent)
    fake.set_overwrite(parent, fake.bot_user.id, deny=Perm.READ_MESSAGE_HISTORY)
    result = await RestPermissions(http).in_channel(thread.id, fake.bot_user.id)
    assert result.view_channel and not result.read_message_history
    paths = [r.path for r in fake.requests if r.method == "GET"]
    assert f"/channels/{parent}" in paths


async def test_a_channel_the_bot_cannot_see_or_a_guild_it_left_is_refused(
    fake: FakeDiscord, http: discord.http.HTTPClient
) -> None:
    guild = fake.add_guild("Lab", channels=("papers", "secret"))
    papers, secret = guild.channel_ids
    fake.forbid_channel(secret, hide=True)
    rest = RestPermissions(http)
    with pytest.raises(discord.Forbidden):
        await rest.in_channel(secret, fake.bot_user.id)
    fake.remove_guild(guild.id)
    with pytest.raises(discord.Forbidden):
        await rest.in_channel(papers, fake.bot_user.id)
    with pytest.raises(discord.NotFound):
        await rest.in_channel(fake.new_id(), fake.bot_user.id)
