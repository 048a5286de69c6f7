"""Old claims: find out from the target's history what was posted, before sending again.

Discord deduplicates a nonce for a few minutes only. A claim older than that window (the
bot was down, or Discord kept failing) is never re-sent blindly: the bot reads its own
messages in the target since the claim, records as sent every claimed paper whose embed
it finds there, and gives the rest a fresh claim (new nonce, new time) so they go out once.

Reading changes nothing, and everything found is recorded in one transaction: a crash
between the two leaves the claims as they were, and the next attempt reads again.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.deliveries import DeliveryRepository
from bot.db.models import DeliveryRow, TargetRow
from bot.services.clock import Clock
from bot.services.outbox import Sender, destination_of, make_nonce

log = logging.getLogger(__name__)

DEFAULT_NONCE_WINDOW = 300.0
"""Seconds a claim is re-sent with its own nonce; older claims are checked against history."""

HISTORY_MARGIN = timedelta(minutes=2)
"""History is read from this long before the claim, in case the bot's clock runs ahead of Discord's."""


@dataclass(frozen=True, slots=True)
class Settlement:
    found: int = 0
    """Claimed papers found in the target's history, now recorded as sent."""
    renewed: int = 0
    """Claimed papers not found there, claimed again with a fresh nonce to be sent."""


def embed_urls(arxiv_id: str) -> tuple[str, str]:
    """Every URL a paper's embed can carry: its Hugging Face page, or its arXiv abs page.

    Both are looked for, since a paper may have reached Hugging Face since it was claimed.
    """
    return (f"https://huggingface.co/papers/{arxiv_id}", f"https://arxiv.org/abs/{arxiv_id}")


def found_in_history(papers: Mapping[int, str], history: Mapping[int, Collection[str]]) -> dict[int, int]:
    """Delivery id → id of the earliest message showing its paper, for deliveries (id → arXiv id) seen."""
    first_message: dict[str, int] = {}
    for message_id in sorted(history):
        for url in history[message_id]:
            first_message.setdefault(url, message_id)
    found: dict[int, int] = {}
    for delivery_id, arxiv_id in papers.items():
        shown = [first_message[url] for url in embed_urls(arxiv_id) if url in first_message]
        if shown:
            found[delivery_id] = min(shown)
    return found


def is_stale(row: DeliveryRow, now: datetime, window: timedelta) -> bool:
    return row.claimed_at is None or now - row.claimed_at > window


def is_foreign(row: DeliveryRow, me: str | None) -> bool:
    """Claimed by another process (or an earlier life of this one): never re-sent blindly."""
    return me is not None and row.claimed_by is not None and row.claimed_by != me


async def settle_stale_claims(
    sessions: async_sessionmaker[AsyncSession],
    sender: Sender,
    clock: Clock,
    target_id: int,
    window: timedelta,
    *,
    me: str | None = None,
) -> Settlement:
    """Check a target's claims older than `window` against its history; see the module docstring.

    `me`: this process's id when several share the database; claims made by another process
    are checked against history whatever their age, and the rest claimed again by this one.

    Raises TargetGone or SendError from reading the history; nothing is changed then.
    """
    now = clock.now()
    async with sessions() as session:
        target = await session.get(TargetRow, target_id)
        if target is None or target.paused_reason:
            return Settlement()
        stale = [
            r
            for r in await DeliveryRepository(session).claimed(target_id)
            if is_stale(r, now, window) or is_foreign(r, me)
        ]
        if not stale:
            return Settlement()
        destination = destination_of(target)
        since = min(r.claimed_at or r.created_at for r in stale) - HISTORY_MARGIN
        claims = {r.id: (r.nonce, r.paper_id) for r in stale}

    wanted = {url for _, paper_id in claims.values() for url in embed_urls(paper_id)}
    history = await sender.sent_since(destination, since, wanted)
    found = found_in_history({d: paper for d, (_, paper) in claims.items()}, history)

    async with sessions.begin() as session:
        # the claims as they are now: only the ones unchanged since they were read are settled
        rows = [
            r
            for r in await DeliveryRepository(session).claimed(target_id)
            if r.id in claims and r.nonce == claims[r.id][0]
        ]
        await _record_found(session, rows, found, clock.now())
        renewed = _renew([r for r in rows if r.id not in found], target_id, clock.now(), me)
    settled = Settlement(found=sum(1 for r in rows if r.id in found), renewed=renewed)
    log.info(
        "target %s: %d old claimed papers found already posted, %d to send again",
        target_id,
        settled.found,
        settled.renewed,
    )
    return settled


async def _record_found(
    session: AsyncSession, rows: Sequence[DeliveryRow], found: Mapping[int, int], now: datetime
) -> None:
    by_message: dict[int, list[DeliveryRow]] = {}
    for row in rows:
        if row.id in found:
            by_message.setdefault(found[row.id], []).append(row)
    # a text line (header, "and N more") kept on a found row moves to a row still to be sent
    for row in rows:
        if row.id in found and row.claimed_content:
            heir = next((r for r in rows if r.nonce == row.nonce and r.id not in found), None)
            if heir is not None and not heir.claimed_content:
                heir.claimed_content = row.claimed_content
    await session.flush()
    repo = DeliveryRepository(session)
    for message_id, shown in by_message.items():
        await repo.mark_sent([r.id for r in shown], message_id, now)


def _renew(rows: Sequence[DeliveryRow], target_id: int, now: datetime, me: str | None) -> int:
    """Claim again, one fresh nonce per former message: the old nonce's window is over."""
    groups: dict[str | None, list[DeliveryRow]] = {}
    for row in sorted(rows, key=lambda r: r.id):
        groups.setdefault(row.nonce, []).append(row)
    for group in groups.values():
        # no nonce made before used this first id with this attempt number
        attempt = max(r.attempts for r in group) + 1
        nonce = make_nonce(target_id, group[0].id, attempt)
        content = next((r.claimed_content for r in group if r.claimed_content), None)
        for row in group:
            row.nonce = nonce
            row.claimed_at = now
            row.attempts = attempt
            row.claimed_content = None
            row.claimed_by = me
        group[0].claimed_content = content
    return len(rows)
