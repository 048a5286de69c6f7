"""What the outbox speaks of: destinations, messages, nonces, and how sending can fail.

The delivery service (bot/services/delivery.py) and the reconciliation of old claims
(bot/services/reconcile.py) share these; the Discord layer implements `Sender`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import DeliveryRow, TargetRow

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
NONCE_MAX = 25


class SendError(Exception):
    """Sending (or reading history) failed in a way that may succeed later: 429, 5xx, network."""


class MessageRejected(Exception):  # noqa: N818 - names what Discord did
    """Discord refused the message itself (HTTP 400): sending it again cannot succeed."""


class TargetGone(Exception):  # noqa: N818 - names what happened to the target
    """The destination refuses for good: channel deleted, permission lost, DMs closed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Destination:
    target_id: int
    kind: str
    guild_id: int | None
    channel_id: int
    user_id: int


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    content: str | None
    embeds: list[dict[str, object]]
    delivery_ids: tuple[int, ...]
    components: list[dict[str, object]] = field(default_factory=list)
    """Action rows (the "Pick a paper…" select, Next papers): rendered again on every re-send."""


NEXT_POSTED = "posted"
NEXT_ALREADY = "already"
NEXT_EMPTY = "empty"
NEXT_PAUSED = "paused"
NEXT_GONE = "gone"
NEXT_CLOSING = "closing"


@dataclass(frozen=True, slots=True)
class NextPage:
    """What a Next papers click did: posted the page now, found it posted before, or why not."""

    outcome: str
    guild_id: int | None = None
    channel_id: int | None = None
    message_id: int | None = None
    """Where the page begins, once Discord confirmed it (None in DMs' links or while unconfirmed)."""
    papers: int = 0
    more: int = 0
    reason: str | None = None


class Sender:
    """Where messages go; the Discord layer provides the real one."""

    async def send(self, destination: Destination, message: OutgoingMessage, nonce: str) -> int:
        """Post `message` with `nonce` (enforced); return the message id."""
        raise NotImplementedError

    async def sent_since(
        self, destination: Destination, since: datetime, looking_for: Collection[str]
    ) -> dict[int, frozenset[str]]:
        """The bot's own posts in `destination` made after `since`: message id → its embeds' URLs.

        Reads the whole history since then (oldest pages first), or stops once every URL of
        `looking_for` was seen. Raises TargetGone when the history cannot be read (the channel
        is gone, or the bot may not read it) and SendError when reading may work later.
        """
        raise NotImplementedError

    async def notify_paused(self, destination: Destination, reason: str) -> bool:
        """Tell the guild (once) that a channel's watches were paused; True if told."""
        return False


def make_nonce(target_id: int, first_delivery_id: int, attempt: int) -> str:
    """A short, unique-per-message nonce (Discord allows 25 characters)."""
    nonce = f"pw{_b36(target_id)}.{_b36(first_delivery_id)}.{_b36(attempt)}"
    if len(nonce) > NONCE_MAX:  # pragma: no cover - needs ids beyond 36**10
        raise ValueError("delivery ids too large for a nonce")
    return nonce


def _b36(number: int) -> str:
    if number == 0:
        return "0"
    digits = []
    while number:
        number, rest = divmod(number, 36)
        digits.append(_ALPHABET[rest])
    return "".join(reversed(digits))


def destination_of(target: TargetRow) -> Destination:
    return Destination(target.id, target.kind, target.guild_id, target.channel_id, target.user_id)


async def page_at(session: AsyncSession, target: TargetRow, first: int, *, already: bool) -> NextPage:
    """The answer to a Next papers click: the page was posted now (`already` False) or before."""
    row = await session.get(DeliveryRow, first)
    return NextPage(
        NEXT_ALREADY if already else NEXT_POSTED,
        guild_id=target.guild_id,
        channel_id=target.channel_id,
        message_id=row.message_id if row is not None else None,
    )
