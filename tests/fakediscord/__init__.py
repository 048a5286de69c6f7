"""A local Discord for end-to-end tests: REST API v10 + JSON gateway, spoken to by the real discord.py.

Main entry points:

* :class:`FakeDiscord` (``server.py``) — start/close it (or ``async with``), build a world
  (``add_guild``, ``add_channel``, ``add_member`` ...), drive users (``invoke_command``,
  ``autocomplete``, ``click_button``), inject faults (``fail_next``, ``delay``,
  ``close_gateway``, ``invalidate_session``) and inspect what the bot did (``messages``,
  ``requests``, ``commands``).
* :class:`InteractionRecord` — what the bot answered to one interaction (``wait_response``,
  ``wait_reply``, ``wait_followups``).
* :class:`StoredMessage` — a message the fake holds (``content``, ``embeds``, ``nonce``,
  ``allowed_mentions``, ``pings``, ``data``).
* :class:`Perm` — permission bits for ``permissions=`` arguments (``discord.Permissions`` works too).
* :func:`running_client` (``client.py``) — run a plain ``discord.Client`` against the fake.
"""

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
    "CallbackType",
    "ChannelType",
    "CommandNotSynced",
    "CommandSync",
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
    "UploadedFile",
]
