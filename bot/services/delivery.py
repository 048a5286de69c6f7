"""Delivery: the outbox that posts each (target, paper) exactly once.

A delivery row is claimed and given a nonce in a committed transaction before anything is
sent; the message goes out with that nonce and `enforce_nonce`, so Discord answers a repeat
with the message it already made; the row is marked sent with the message id afterwards.
Rows still claimed after a crash are re-sent with the same nonce when the bot starts, as
long as Discord still honours that nonce (`nonce_window`); older claims are first checked
against the target's history (bot/services/reconcile.py) and only what is not there is sent.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import metrics
from bot.db.deliveries import DeliveryRepository
from bot.db.models import (
    DELIVERY_CLAIMED,
    DELIVERY_FAILED,
    MODE_INSTANT,
    MODE_SAVED,
    TARGET_CHANNEL,
    DeliveryRow,
    TargetRow,
)
from bot.db.repo import BotStateRepository, TargetRepository, WatchRepository
from bot.domain.digest import Digest, announces_more
from bot.domain.schedule import Schedule, parse_time
from bot.services.clock import Clock
from bot.services.compose import compose_rows
from bot.services.fanout import TargetWork
from bot.services.leases import Leases, due_in_turns, unclaim
from bot.services.outbox import (
    NEXT_CLOSING,
    NEXT_EMPTY,
    NEXT_GONE,
    NEXT_PAUSED,
    Destination,
    MessageRejected,
    NextPage,
    OutgoingMessage,
    Sender,
    SendError,
    TargetGone,
    destination_of,
    make_nonce,
    page_at,
)
from bot.services.reconcile import DEFAULT_NONCE_WINDOW, settle_stale_claims

log = logging.getLogger(__name__)

HOLD_WAIT = 10.0
"""Seconds a command (`/digest now`, Next papers) waits for another process to finish with the target."""

Renderer = Callable[[Digest, str], list[OutgoingMessage]]
"""Turns a digest into messages; the second argument is "digest", "instant", "saved" or "resend"."""


@dataclass(slots=True)
class DeliveryReport:
    messages: int = 0
    papers: int = 0
    overflow: int = 0
    paused: bool = False
    retry: bool = False
    found_sent: int = 0
    """Papers of old claims found already posted in the target's history, and recorded."""
    errors: list[str] = field(default_factory=list)


class Deliverer:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        sender: Sender,
        renderer: Renderer,
        clock: Clock,
        *,
        max_papers: int,
        nonce_window: float = DEFAULT_NONCE_WINDOW,
        before_digests: Callable[[Sequence[int]], Awaitable[object]] | None = None,
        leases: Leases | None = None,
        concurrency: int = 64,
    ) -> None:
        self.sessions = sessions
        self.before_digests = before_digests
        """Run with the due targets before their digests go out (recommendations add papers there)."""
        self.sender = sender
        self.renderer = renderer
        self.clock = clock
        self.max_papers = max_papers
        self.nonce_window = timedelta(seconds=nonce_window)
        """How long a claim is re-sent with its own nonce; Discord must honour it at least as long."""
        self.leases = leases
        """Several processes (PostgreSQL): targets are held under a lease; None = this process alone."""
        self.process_id = leases.process_id if leases is not None else None
        self.work = TargetWork(leases, concurrency=concurrency)
        """One piece of work per target at a time, many targets at once (bot/services/fanout.py)."""
        self._closing = False

    def close(self) -> None:
        """Start no new target: the digest or post being sent finishes, the rest wait.

        What is pending stays pending, and goes out when the bot starts again.
        """
        self._closing = True

    @contextlib.asynccontextmanager
    async def idle(self, timeout: float = 10.0) -> AsyncIterator[None]:
        """Wait (up to `timeout`) for the sends under way to finish, and start no other."""
        async with self.work.quiet(timeout) as drained:
            if not drained:
                log.warning("a send was still under way at shutdown; it is re-sent at next start")
            yield

    # -- entry points ----------------------------------------------------------------------

    async def recover(self) -> DeliveryReport:
        """Re-send every message that was claimed but not confirmed (old claims: what history lacks).

        With several processes, the claims of targets another live process holds are left to it.
        """
        report = DeliveryReport()
        async with self.sessions() as session:
            target_ids = await DeliveryRepository(session).targets_with_claimed()
        if self.leases is not None:
            target_ids = await self.leases.takeable(target_ids)

        async def one(target_id: int) -> None:
            async with self.work.hold(target_id) as mine:
                if mine and not self._closing:
                    await self._resend_claimed(target_id, report)

        await self.work.each(target_ids, one)
        return report

    async def run_due_digests(self) -> DeliveryReport:
        """Post the digest of every target whose scheduled time has come (and catch up)."""
        report = DeliveryReport()
        now = self.clock.now()
        if self._closing:
            return report
        if self.leases is not None:
            await due_in_turns(self.leases, now, self.work.concurrency, self._digests, report)
            return report
        async with self.sessions() as session:
            due = [t.id for t in await TargetRepository(session).due_digests(now)]
        await self._digests(due, report)
        return report

    async def _digests(self, due: Sequence[int], report: DeliveryReport) -> None:
        if due and self.before_digests is not None and not self._closing:
            try:
                await self.before_digests(due)
            except Exception:  # the digests still go out, without what the hook would add
                log.exception("preparing the digests of %d targets failed", len(due))

        async def one(target_id: int) -> None:
            _merge(report, await self.deliver_digest(target_id, scheduled=True))

        await self.work.each(due, one)

    async def flush_instant(
        self, target_ids: Sequence[int] | None = None, *, mode: str = MODE_INSTANT
    ) -> DeliveryReport:
        """Post what does not wait for a digest: the pending deliveries of `mode` (instant posts,
        or saved papers' DMs) to the targets named; with none named, both, wherever they wait."""
        report = DeliveryReport()
        modes: dict[int, list[str]] = {}
        if target_ids is None:
            async with self.sessions() as session:
                repository = DeliveryRepository(session)
                for kind in (MODE_INSTANT, MODE_SAVED):
                    for target_id in await repository.targets_with_pending(kind):
                        modes.setdefault(target_id, []).append(kind)
        else:
            modes = {target_id: [mode] for target_id in target_ids}

        async def one(target_id: int) -> None:
            async with self.work.hold(target_id) as mine:
                if mine and not self._closing:
                    await self._resend_claimed(target_id, report)
                    for kind in modes[target_id]:
                        await self._deliver(target_id, kind, report, scheduled=False)

        await self.work.each(sorted(modes), one)
        return report

    async def deliver_digest(self, target_id: int, *, scheduled: bool) -> DeliveryReport:
        """Post a target's pending papers now; `scheduled` also moves its next digest time."""
        report = DeliveryReport()
        async with self.work.hold(target_id, wait=0.0 if scheduled else HOLD_WAIT) as mine:
            if self._closing or not mine:
                return report
            await self._resend_claimed(target_id, report)
            await self._deliver(target_id, "digest", report, scheduled=scheduled)
        return report

    async def post_next_page(self, target_id: int, after_delivery: int) -> NextPage:
        """Post the next page of a digest whose message (first delivery `after_delivery`) said "and N more".

        Exactly once per page: the page's key is recorded in the same transaction that claims
        its papers, under the target's lock, so a second click (or one from another process)
        finds it and is told where the page went instead of posting another.
        """
        key = f"next-page:{target_id}:{after_delivery}"
        report = DeliveryReport()
        async with self.work.hold(target_id, wait=HOLD_WAIT) as mine:
            if self._closing or not mine:
                return NextPage(NEXT_CLOSING)
            await self._resend_claimed(target_id, report)
            async with self.sessions.begin() as session:
                target = await session.get(TargetRow, target_id, with_for_update=True)
                if target is None:
                    return NextPage(NEXT_GONE)
                state = BotStateRepository(session)
                posted = await state.get(key)
                if posted is not None:
                    return await page_at(session, target, int(posted), already=True)
                if target.paused_reason:
                    return NextPage(NEXT_PAUSED, reason=target.paused_reason)
                rows = await DeliveryRepository(session).pending_for_target(target_id)
                if not rows:
                    return NextPage(NEXT_EMPTY)
                messages = await self._claim(session, rows, "digest", report, self.clock.now())
                first = min(messages[0][0].delivery_ids)
                await state.set(key, str(first))
                destination = destination_of(target)
            await self._send_all(destination, messages, report)
        async with self.sessions() as session:
            target = await session.get(TargetRow, target_id)
            if target is None:  # pragma: no cover - deleted while posting
                return NextPage(NEXT_GONE)
            page = await page_at(session, target, first, already=False)
        return replace(page, papers=report.papers, more=report.overflow)

    # -- the outbox ------------------------------------------------------------------------

    async def _deliver(self, target_id: int, kind: str, report: DeliveryReport, *, scheduled: bool) -> None:
        now = self.clock.now()
        messages: list[tuple[OutgoingMessage, str]] = []
        async with self.sessions.begin() as session:
            target = await session.get(TargetRow, target_id, with_for_update=True)
            if target is None:
                return
            before = (target.next_digest_at, target.last_digest_at)
            if scheduled:
                schedule = Schedule(parse_time(target.digest_time), target.timezone, target.weekdays)
                target.next_digest_at = (
                    schedule.next_after(now)
                    if target.recommend or await _has_watches(session, target)
                    else None
                )
                target.last_digest_at = now
            if target.paused_reason or (scheduled and target.digest_paused):
                return
            mode = kind if kind in (MODE_INSTANT, MODE_SAVED) else None
            rows = await DeliveryRepository(session).pending_for_target(target_id, mode=mode)
            if not rows:
                return
            messages = await self._claim(session, rows, kind, report, now)
            destination = destination_of(target)
        if self._closing:  # closed while claiming: this target had not started, it waits for the next start
            ids = [d for message, _ in messages for d in message.delivery_ids]
            await unclaim(self.sessions, target_id, ids, before if scheduled else None)
            report.overflow = 0
            return
        await self._send_all(destination, messages, report)

    async def _claim(
        self,
        session: AsyncSession,
        rows: Sequence[DeliveryRow],
        kind: str,
        report: DeliveryReport,
        now: datetime,
    ) -> list[tuple[OutgoingMessage, str]]:
        """Render the pending rows (the first `max_papers`) and claim each message's rows with its nonce."""
        messages: list[tuple[OutgoingMessage, str]] = []
        digest = await compose_rows(session, rows, self.max_papers)
        report.overflow += digest.overflow
        by_id = {row.id: row for row in rows}
        for message in self.renderer(digest, kind):
            first = min(message.delivery_ids)
            attempt = by_id[first].attempts + 1
            nonce = make_nonce(by_id[first].target_id, first, attempt)
            for delivery_id in message.delivery_ids:
                row = by_id[delivery_id]
                row.status = DELIVERY_CLAIMED
                row.nonce = nonce
                row.claimed_at = now
                row.attempts += 1
                row.claimed_by = self.process_id
            by_id[first].claimed_content = message.content
            messages.append((message, nonce))
        return messages

    async def _resend_claimed(self, target_id: int, report: DeliveryReport) -> None:
        if not await self._settle_stale(target_id, report):
            return
        async with self.sessions() as session:
            target = await session.get(TargetRow, target_id)
            rows = await DeliveryRepository(session).claimed(target_id)
            if target is None or not rows:
                return
            if target.paused_reason:
                return
            groups: dict[str, list[DeliveryRow]] = {}
            for row in rows:
                groups.setdefault(row.nonce or "", []).append(row)
            messages: list[tuple[OutgoingMessage, str]] = []
            for nonce, group in sorted(groups.items(), key=lambda item: item[1][0].id):
                content = next((row.claimed_content for row in group if row.claimed_content), None)
                digest = await compose_rows(session, group, len(group))
                # the message said "and N more": its re-send keeps the Next papers button
                digest = replace(digest, overflow=1 if announces_more(content) else 0)
                for message in self.renderer(digest, "resend"):
                    messages.append((replace(message, content=content), nonce))
            destination = destination_of(target)
        await self._send_all(destination, messages, report, resending=True)

    async def _settle_stale(self, target_id: int, report: DeliveryReport) -> bool:
        """Settle claims older than the nonce window against history; False if that must wait."""
        try:
            settled = await settle_stale_claims(
                self.sessions, self.sender, self.clock, target_id, self.nonce_window, me=self.process_id
            )
        except TargetGone as gone:
            async with self.sessions() as session:
                target = await session.get(TargetRow, target_id)
            if target is None:
                return False
            log.warning("target %s: its history cannot be read (%s); pausing its watches", target_id, gone)
            await self._pause(destination_of(target), gone.reason, [])
            report.paused = True
            report.errors.append(gone.reason)
            return False
        except SendError as exc:
            log.warning("target %s: reading its history failed, will retry: %s", target_id, exc)
            async with self.sessions() as session:
                ids = [row.id for row in await DeliveryRepository(session).claimed(target_id)]
            await self._note_error(ids, f"reading the history failed: {exc}")
            report.retry = True
            report.errors.append(str(exc))
            return False
        report.found_sent += settled.found
        metrics.record_deliveries(metrics.ALREADY_SENT, settled.found)
        return True

    async def _send_all(
        self,
        destination: Destination,
        messages: list[tuple[OutgoingMessage, str]],
        report: DeliveryReport,
        *,
        resending: bool = False,
    ) -> None:
        """Send in order; `resending`: these were claimed before, and Discord may hold some already."""
        for index, (message, nonce) in enumerate(messages):
            try:
                message_id = await self.sender.send(destination, message, nonce)
            except TargetGone as gone:
                log.warning(
                    "target %s refuses messages (%s); pausing its watches", destination.target_id, gone
                )
                # a fresh claim was not posted: back to the queue. A claim sent before may
                # have been posted: it stays claimed, and is checked against history on resume.
                unsent = [] if resending else [d for m, _ in messages[index:] for d in m.delivery_ids]
                await self._pause(destination, gone.reason, unsent)
                metrics.record_deliveries(
                    metrics.TARGET_GONE, sum(len(m.delivery_ids) for m, _ in messages[index:])
                )
                report.paused = True
                report.errors.append(gone.reason)
                return
            except MessageRejected as exc:
                log.error("Discord refused a message for target %s: %s", destination.target_id, exc)
                await self._fail(list(message.delivery_ids), str(exc))
                metrics.record_deliveries(metrics.REJECTED, len(message.delivery_ids))
                report.errors.append(str(exc))
                continue
            except SendError as exc:
                log.warning("sending to target %s failed, will retry: %s", destination.target_id, exc)
                await self._note_error([d for m, _ in messages[index:] for d in m.delivery_ids], str(exc))
                metrics.record_deliveries(
                    metrics.RETRY, sum(len(m.delivery_ids) for m, _ in messages[index:])
                )
                report.retry = True
                report.errors.append(str(exc))
                return
            async with self.sessions.begin() as session:
                await DeliveryRepository(session).mark_sent(
                    message.delivery_ids, message_id, self.clock.now()
                )
            report.messages += 1
            report.papers += len(message.delivery_ids)
            metrics.record_deliveries(metrics.SENT, len(message.delivery_ids))

    async def _fail(self, ids: list[int], error: str) -> None:
        """Set aside deliveries whose message Discord refuses; they stay stored, marked failed."""
        async with self.sessions.begin() as session:
            rows = await session.scalars(select(DeliveryRow).where(DeliveryRow.id.in_(ids)))
            for row in rows:
                row.status = DELIVERY_FAILED
                row.claimed_content = None
                row.last_error = error[:500]

    async def _note_error(self, ids: list[int], error: str) -> None:
        async with self.sessions.begin() as session:
            rows = await session.scalars(select(DeliveryRow).where(DeliveryRow.id.in_(ids)))
            for row in rows:
                row.last_error = error[:500]

    async def _pause(self, destination: Destination, reason: str, unsent: list[int]) -> None:
        async with self.sessions.begin() as session:
            target = await session.get(TargetRow, destination.target_id)
            if target is None:
                return
            await DeliveryRepository(session).release(unsent, reason)
            target.paused_reason = reason
            notify = not target.paused_notice_sent
            target.paused_notice_sent = True
        if notify and destination.kind == TARGET_CHANNEL:
            try:
                await self.sender.notify_paused(destination, reason)
            except Exception:  # the notice is a courtesy; its failure changes nothing stored
                log.exception("could not tell guild %s that a channel was paused", destination.guild_id)


async def _has_watches(session: AsyncSession, target: TargetRow) -> bool:
    return await WatchRepository(session).count_for_target(target.id) > 0


def _merge(into: DeliveryReport, part: DeliveryReport) -> None:
    into.messages += part.messages
    into.papers += part.papers
    into.overflow += part.overflow
    into.paused = into.paused or part.paused
    into.retry = into.retry or part.retry
    into.errors.extend(part.errors)
