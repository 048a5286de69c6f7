"""A local Discord for end-to-end tests: REST API v10 + JSON gateway, spoken to by the real discord.py.

Start one, build a world, point the bot at it, drive users, inspect what the bot did::

    from tests.fakediscord import FakeDiscord, Perm

    async with FakeDiscord() as fake:                       # 127.0.0.1, free port
        guild = fake.add_guild(name="Lab", channels=("general", "papers"))
        alice = fake.add_member(guild.id, username="alice", permissions=Perm.MANAGE_CHANNELS)
        # bot config: api_base=fake.api_base, gateway_url=fake.gateway_url, DISCORD_TOKEN=fake.token
        ...start the bot (guild_ready_timeout ~0.05)...
        await fake.wait_connected()
        await fake.wait_synced(guild_id=None)              # or the dev guild id
        record = await fake.invoke_command(guild.id, guild.default_channel_id, alice.user_id,
                                           "watch", subcommand="add", options={"query": "diffusion"})
        reply = await record.wait_reply()                   # StoredMessage: .ephemeral, .content, .embeds
        posts = await fake.wait_messages(guild.channel_ids[1], count=2)

Modules:

* ``server``: :class:`FakeDiscord` — lifecycle, world building (``add_guild``, ``add_channel``,
  ``add_member``, ``delete_channel``, ``forbid_channel``, ``hide_history``, ``close_dms`` ...), users
  (``invoke_command``, ``autocomplete``, ``click_button``, ``select_option``), faults
  (``fail_next``, ``delay``, ``close_gateway``, ``drop_gateway``, ``invalidate_session``,
  ``request_reconnect``), inspection (``messages``, ``requests``, ``unknown_requests``,
  ``commands``, ``interactions``, counters) and waiting (``wait_for`` and friends).
* ``interactions``: :class:`InteractionRecord` — the bot's answer to one interaction
  (``wait_reply``, ``wait_update`` for a component's message, ``wait_followups``, ``text``, ``files``).
* ``components``: Discord's component limits (5 action rows, 5 buttons or one select a row,
  25 options, 80-character labels, 100-character custom ids ...), refused with 400 like Discord.
* ``attachments``: uploaded files' bytes served at their attachment urls; :class:`Upload` is a
  file a user attaches to an ATTACHMENT option (``options={"file": Upload("a.toml", data)}``).
* ``model``: :class:`StoredMessage` (``content``, ``embeds``, ``nonce``, ``allowed_mentions``,
  ``pings``, ``data`` = the API object), :class:`Perm` bits, guild/channel/user records.
* ``client``: ``running_client(client, fake)`` — run a plain ``discord.Client`` against the fake.
* ``shards``: ``fake.shards`` — IDENTIFY rules (4010 invalid shard, 4011 sharding required, op 9
  over ``max_concurrency`` per ``identify_interval`` when set), every IDENTIFY recorded with its
  time (``accepted()``, ``gaps()``), and what ``GET /gateway/bot`` answers.
* ``ratelimit``: ``fake.global_limit = GlobalRateLimit(50)`` — Discord's global requests-per-second
  limit, answered with ``global: true`` 429s (off by default).

discord.py facts the fake relies on / tests must know:

* JSON responses need ``Content-Type`` exactly ``application/json`` or discord.py treats them
  as text; 429s need a ``Via`` header or discord.py treats them as a Cloudflare ban.
* ``Client.connect`` goes straight to ``DiscordWebSocket.DEFAULT_GATEWAY`` (no ``GET
  /gateway/bot``; only ``AutoShardedClient`` asks), resumes at READY's ``resume_gateway_url``.
* ``Client.before_identify_hook`` sleeps 5 s before every non-initial IDENTIFY (after op 9,
  a failed RESUME, and for every shard but the first) — override it in tests.
* READY waits ``guild_ready_timeout`` (default 2 s) after the last GUILD_CREATE.
* ``Messageable.send(nonce=...)`` always sends ``enforce_nonce: true`` (no separate option).
* ``enforce_nonce`` deduplicates for ``FakeDiscord(nonce_window=...)`` seconds (default 300),
  counted from the first message, like Discord's few minutes; ``advance_clock`` lets time pass.
* ``GET /channels/{id}/messages`` is newest first with ``limit`` (1-100), ``before``, ``after``,
  ``around``; without Read Message History it answers an empty list (not an error), and fetched
  messages carry no ``nonce``, as on Discord.
* discord.py retries 500/502/504 (sleeping 1 s, 3 s ...) but raises ``DiscordServerError`` on 503.
"""

from .attachments import AttachmentStore, Upload
from .components import ButtonStyle, ComponentType
from .errors import DiscordHTTPError, FaultRule
from .gateway import GatewayConnection, GatewaySession
from .interactions import CallbackType, CommandNotSynced, InteractionRecord, InteractionType, OptionType
from .model import (
    ChannelType,
    FakeChannel,
    FakeGuild,
    FakeMember,
    FakeRole,
    FakeUser,
    MessageFlags,
    Overwrite,
    Perm,
    Pings,
    StoredMessage,
    UploadedFile,
)
from .server import CommandSync, FakeDiscord, RecordedRequest

__all__ = [
    "AttachmentStore",
    "ButtonStyle",
    "CallbackType",
    "ChannelType",
    "CommandNotSynced",
    "CommandSync",
    "ComponentType",
    "DiscordHTTPError",
    "FakeChannel",
    "FakeDiscord",
    "FakeGuild",
    "FakeMember",
    "FakeRole",
    "FakeUser",
    "FaultRule",
    "GatewayConnection",
    "GatewaySession",
    "InteractionRecord",
    "InteractionType",
    "MessageFlags",
    "OptionType",
    "Overwrite",
    "Perm",
    "Pings",
    "RecordedRequest",
    "StoredMessage",
    "Upload",
    "UploadedFile",
]
