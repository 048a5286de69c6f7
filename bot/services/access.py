"""Who is asking, and what they may touch: shared by every use-case behind the commands.

The Discord layer turns an interaction into a `Caller`. Every id a caller names is checked
against the caller's own guild (channels, watches) or own user (alerts); an id that belongs to
someone else gets exactly the answer of an id that does not exist.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.db.models import TargetRow
from bot.db.repo import TargetRepository
from bot.domain.parser import parse_query
from bot.domain.query import ParseError, Query

_FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn"}


class UserError(Exception):
    """A refusal to show the user as it is: short, without internals."""


class NotFound(UserError):  # noqa: N818 - reads as the answer the user gets
    pass


@dataclass(frozen=True, slots=True)
class Caller:
    user_id: int
    guild_id: int | None
    channel_id: int | None
    can_manage: bool = False
    """Whether the member has Manage Channels in the target channel, as checked by the bot."""


def require_manage(caller: Caller) -> None:
    if not caller.can_manage:
        raise UserError("You need the **Manage Channels** permission in that channel to do this.")


def require_guild(caller: Caller, refusal: str) -> int:
    """The caller's guild id; `refusal` is the answer when the command came from a DM."""
    if caller.guild_id is None:
        raise UserError(refusal)
    return caller.guild_id


def schedule_defaults(settings: Settings) -> dict[str, str]:
    """The digest schedule a new channel or user starts with."""
    return {"digest_time": settings.digest.time, "timezone": settings.digest.timezone}


async def own_channel(
    session: AsyncSession, caller: Caller, channel_id: int, settings: Settings
) -> TargetRow:
    """The channel's target row, created on first use; refused unless it is in the caller's guild."""
    if caller.guild_id is None:
        raise NotFound("That channel is not in this server.")
    target = await TargetRepository(session).ensure_channel(
        caller.guild_id, channel_id, **schedule_defaults(settings)
    )
    if target.guild_id != caller.guild_id:
        raise NotFound("That channel is not in this server.")
    return target


def clean_text(text: str, *, limit: int, what: str) -> str:
    """Refuse control, format (zero-width, bidi override) and unassigned characters."""
    value = text.strip()
    if not value:
        raise UserError(f"The {what} is empty.")
    if len(value) > limit:
        raise UserError(f"The {what} is {len(value)} characters long; the limit is {limit}.")
    for index, char in enumerate(value):
        if unicodedata.category(char) in _FORBIDDEN_CATEGORIES and char not in "\u200d":
            raise UserError(
                f"The {what} contains an invisible or control character (U+{ord(char):04X}) "
                f"at position {index}; please retype it."
            )
    return value


def parse_user_query(text: str, settings: Settings) -> Query:
    """A query typed by a user, checked and parsed; refusals say where and what was expected."""
    limit = settings.limits.query_length
    value = clean_text(text, limit=limit, what="query")
    try:
        return parse_query(value, max_length=limit)
    except ParseError as exc:
        raise UserError(f"That query does not parse: {exc}") from None
