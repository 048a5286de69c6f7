"""Claims older than Discord's nonce window: checked against the target's history, never re-sent blindly.

The recording Sender from tests/test_delivery.py stands in for Discord, with Discord's
habits that matter here: a nonce is honoured for five minutes only, and a destination's
history can be read back. Everything else is real (migrated SQLite, renderer, fixture papers).
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from bot.services.access import Caller
from bot.services.core import Core
from bot.services.delivery import Deliverer
from bot.services.outbox import Destination, SendError, TargetGone
from bot.services.reconcile import HISTORY_MARGIN, embed_urls, found_in_history
from tests.conftest import HF_OVERLAP, FakeClock, expected_matches, load_feed
from tests.test_delivery import (
    ADMIN,
    CHANNEL,
    NEXT_DIGEST,
    MakeCore,
    RecordingSender,
    channel_with_matches,
    deliverer,
    digest_order,
    rows,
    target_row,
)

OUTAGE = timedelta(hours=3)
"""Far longer than the five minutes Discord honours a nonce for."""


class Crash(BaseException):
    """The process dies here: nothing after this point runs, nothing catches it."""


def sender_losing_first_answer(clock: FakeClock, *, posted: bool) -> RecordingSender:
    """Discord gets the first message (or not), and the bot never hears back."""
    sender = RecordingSender(clock)
    sender.fail_on[1] = SendError("network error: ServerDisconnectedError")
    if posted:
        sender.posted_anyway.add(1)
    return sender


async def digest_with_a_lost_answer(core: Core, clock: FakeClock) -> RecordingSender:
    """A channel's digest posted at its time, Discord storing the first message whose answer is lost."""
    await channel_with_matches(core, clock)
    sender = sender_losing_first_answer(clock, posted=True)
    clock.set(NEXT_DIGEST)
    await deliverer(core, sender).run_due_digests()
    return sender


def assert_each_paper_once(sender: RecordingSender, expected: list[str]) -> None:
    counts = Counter(sender.posted_paper_ids())
    assert sorted(counts) == sorted(expected)
    assert set(counts.values()) == {1}, [p for p, n in counts.items() if n > 1]


# --- matching history to claims ----------------------------------------------------------------


def test_a_paper_is_found_under_either_url_its_embed_may_have_carried() -> None:
    hf, abs_ = embed_urls("2411.00001")
    assert hf == "https://huggingface.co/papers/2411.00001"
    assert abs_ == "https://arxiv.org/abs/2411.00001"
    history = {
        900: frozenset({"https://arxiv.org/abs/2411.00001", "https://huggingface.co/papers/2411.00002"}),
        700: frozenset({"https://huggingface.co/papers/2411.00002"}),  # an older copy: the first wins
        950: frozenset({"https://huggingface.co/papers/2411.000033"}),  # another paper whose id starts alike
    }
    papers = {1: "2411.00001", 2: "2411.00002", 3: "2411.00003"}
    assert found_in_history(papers, history) == {1: 900, 2: 700}
    assert found_in_history(papers, {}) == {}


# --- answer lost, then an outage longer than the nonce window ----------------------------------


async def test_digest_message_posted_but_unconfirmed_is_recorded_from_history_and_the_rest_sent_once(
    make_core: MakeCore, clock: FakeClock
) -> None:
    core = await make_core()
    target_id = await channel_with_matches(core, clock)
    sender = sender_losing_first_answer(clock, posted=True)
    clock.set(NEXT_DIGEST)
    await deliverer(core, sender).run_due_digests()
    [(_, first, first_nonce, first_id)] = sender.posted
    claimed = {r.id: r.nonce for r in await rows(core) if r.status == "claimed"}
    assert len(claimed) == len(digest_order())  # every message claimed, only the first on Discord
    await core.close()

    # the bot comes back three hours later: a blind re-send would post the first message again
    clock.advance(OUTAGE)
    restarted = await make_core()
    report = await deliverer(restarted, sender).recover()

    assert_each_paper_once(sender, digest_order())
    [(where, since)] = sender.history_reads
    assert where.target_id == target_id
    assert since == NEXT_DIGEST - HISTORY_MARGIN
    assert report.found_sent == len(first.delivery_ids)
    stored = {r.id: r for r in await rows(restarted)}
    assert {r.status for r in stored.values()} == {"sent"}
    assert {stored[d].message_id for d in first.delivery_ids} == {first_id}
    assert {stored[d].nonce for d in first.delivery_ids} == {first_nonce}  # recorded as it was
    # the rest went out under fresh nonces: the old ones mean nothing to Discord any more
    resent = sender.calls[2:]
    assert resent and all(nonce not in claimed.values() for _, _, nonce in resent)
    assert all(len(nonce) <= 25 for _, _, nonce in resent)
    # and nothing more happens on the next checks
    calls = len(sender.calls)
    await deliverer(restarted, sender).recover()
    assert len(sender.calls) == calls and len(sender.history_reads) == 1


async def test_digest_lost_before_discord_stored_it_is_sent_again_with_its_header(
    make_core: MakeCore, clock: FakeClock
) -> None:
    core = await make_core()
    await channel_with_matches(core, clock)
    sender = sender_losing_first_answer(clock, posted=False)
    clock.set(NEXT_DIGEST)
    await deliverer(core, sender).run_due_digests()
    assert sender.posted == []
    header = sender.calls[0][1].content
    assert header and f"{len(digest_order())} new papers" in header

    clock.advance(OUTAGE)
    await deliverer(core, sender).recover()
    assert_each_paper_once(sender, digest_order())
    assert sender.posted[0][1].content == header  # the header, once, on the first message
    assert [m.content for _, m, _, _ in sender.posted[1:]] == [None] * (len(sender.posted) - 1)
    assert {r.status for r in await rows(core)} == {"sent"}


async def test_instant_post_and_dm_alert_after_an_outage(core: Core, clock: FakeClock) -> None:
    await core.watches.add_watch(ADMIN, channel_id=CHANNEL, query="video", mode="instant")
    user = Caller(user_id=77, guild_id=None, channel_id=None)
    await core.alerts.add_alert(user, query="diffusion", mode="instant")
    clock.advance(minutes=1)
    summary = await core.ingestor.ingest(load_feed(HF_OVERLAP))
    sender = RecordingSender(clock)
    # each target's first message reaches Discord, and the answer is lost
    sender.fail_on[1] = SendError("Discord answered HTTP 503")
    sender.fail_on[2] = SendError("Discord answered HTTP 503")
    sender.posted_anyway.update({1, 2})
    await deliverer(core, sender).flush_instant(sorted(summary.instant_targets))
    assert len(sender.posted) == 2
    assert {d.kind for d, _, _, _ in sender.posted} == {"channel", "user"}

    clock.advance(OUTAGE)
    await deliverer(core, sender).recover()
    by_kind: dict[str, Counter[str]] = {"channel": Counter(), "user": Counter()}
    for destination, message, _, _ in sender.posted:
        by_kind[destination.kind].update(str(e["url"]).rsplit("/", 1)[1] for e in message.embeds)
    assert sorted(by_kind["channel"]) == sorted(expected_matches("video", HF_OVERLAP))
    assert sorted(by_kind["user"]) == sorted(expected_matches("diffusion", HF_OVERLAP))
    assert set(by_kind["channel"].values()) == set(by_kind["user"].values()) == {1}
    assert {d.kind for d, _ in sender.history_reads} == {"channel", "user"}
    assert {r.status for r in await rows(core)} == {"sent"}


async def test_claims_inside_the_window_are_resent_with_their_nonce_without_reading_history(
    core: Core, clock: FakeClock
) -> None:
    sender = await digest_with_a_lost_answer(core, clock)
    [(_, _, first_nonce, first_id)] = sender.posted
    clock.advance(minutes=4)
    await deliverer(core, sender).recover()
    assert sender.history_reads == []
    assert [nonce for _, _, nonce in sender.calls].count(first_nonce) == 2
    assert_each_paper_once(sender, digest_order())
    assert first_id in {r.message_id for r in await rows(core)}


async def test_a_setting_shorter_than_discords_window_checks_history_sooner(
    core: Core, clock: FakeClock
) -> None:
    await channel_with_matches(core, clock)
    sender = sender_losing_first_answer(clock, posted=True)
    clock.set(NEXT_DIGEST)
    outbox = Deliverer(
        core.sessions, sender, deliverer(core, sender).renderer, clock, max_papers=25, nonce_window=30
    )
    await outbox.run_due_digests()
    clock.advance(seconds=31)
    await outbox.recover()
    assert len(sender.history_reads) == 1
    assert_each_paper_once(sender, digest_order())


# --- a crash between reading the history and recording it -------------------------------------


async def test_crash_after_reading_history_changes_nothing_and_the_next_start_finishes(
    make_core: MakeCore, clock: FakeClock
) -> None:
    core = await make_core()
    sender = await digest_with_a_lost_answer(core, clock)
    before = {r.id: (r.status, r.nonce, r.claimed_at, r.attempts) for r in await rows(core)}

    class DyingAfterTheRead(RecordingSender):
        async def sent_since(
            self, destination: Destination, since: object, looking_for: object
        ) -> dict[int, frozenset[str]]:
            seen = await sender.sent_since(destination, since, looking_for)  # type: ignore[arg-type]
            assert seen  # the lost message is there
            raise Crash

    clock.advance(OUTAGE)
    with pytest.raises(Crash):
        await deliverer(core, DyingAfterTheRead(clock)).recover()
    await core.close()
    restarted = await make_core()
    assert {r.id: (r.status, r.nonce, r.claimed_at, r.attempts) for r in await rows(restarted)} == before

    clock.advance(minutes=1)
    await deliverer(restarted, sender).recover()
    assert len(sender.history_reads) == 2  # read again, from the same claim
    assert sender.history_reads[0][1] == sender.history_reads[1][1]
    assert_each_paper_once(sender, digest_order())
    assert {r.status for r in await rows(restarted)} == {"sent"}


async def test_crash_after_renewing_claims_resends_them_under_the_new_nonce(
    core: Core, clock: FakeClock
) -> None:
    sender = await digest_with_a_lost_answer(core, clock)
    clock.advance(OUTAGE)

    class DyingOnTheFirstResend(RecordingSender):
        async def sent_since(
            self, destination: Destination, since: object, looking_for: object
        ) -> dict[int, frozenset[str]]:
            return await sender.sent_since(destination, since, looking_for)  # type: ignore[arg-type]

        async def send(self, destination: Destination, message: object, nonce: str) -> int:
            await sender.send(destination, message, nonce)  # type: ignore[arg-type]
            raise Crash  # Discord made it; the bot died before recording it

    with pytest.raises(Crash):
        await deliverer(core, DyingOnTheFirstResend(clock)).recover()
    renewed = [r for r in await rows(core) if r.status == "claimed"]
    assert renewed and all(r.claimed_at == clock.now() for r in renewed)
    clock.advance(minutes=1)  # back inside the new claim's window: its nonce dedupes
    await deliverer(core, sender).recover()
    assert len(sender.history_reads) == 1
    assert_each_paper_once(sender, digest_order())
    assert {r.status for r in await rows(core)} == {"sent"}


# --- history that cannot be read --------------------------------------------------------------


async def test_history_refused_pauses_the_channel_and_keeps_the_claims_for_later(
    core: Core, clock: FakeClock
) -> None:
    target_id = await channel_with_matches(core, clock)
    other = await core.watches.add_watch(ADMIN, channel_id=CHANNEL, query="diffusion")
    sender = sender_losing_first_answer(clock, posted=True)
    clock.set(NEXT_DIGEST)
    outbox = deliverer(core, sender)
    await outbox.run_due_digests()
    calls = len(sender.calls)

    clock.advance(OUTAGE)
    sender.history_error = TargetGone("the bot may not read the channel's message history")
    report = await outbox.recover()
    assert report.paused and len(sender.calls) == calls  # nothing re-sent blindly
    assert (await target_row(core, target_id)).paused_reason == sender.history_error.reason
    assert len(sender.notices) == 1
    assert {r.status for r in await rows(core)} == {"claimed"}  # not released: Discord holds some
    await outbox.recover()
    await outbox.deliver_digest(target_id, scheduled=False)
    assert len(sender.calls) == calls and len(sender.notices) == 1

    # permission given back and the watches resumed: the history decides, each paper once
    sender.history_error = None
    await core.watches.set_watch_paused(ADMIN, other.watch.id, False)
    await outbox.recover()
    assert_each_paper_once(sender, digest_order())
    assert {r.status for r in await rows(core)} == {"sent"}


async def test_history_read_failing_for_now_sends_nothing_and_retries(core: Core, clock: FakeClock) -> None:
    await channel_with_matches(core, clock)
    sender = sender_losing_first_answer(clock, posted=True)
    clock.set(NEXT_DIGEST)
    outbox = deliverer(core, sender)
    await outbox.run_due_digests()
    calls = len(sender.calls)
    clock.advance(OUTAGE)
    sender.history_error = SendError("Discord answered HTTP 503")
    report = await outbox.recover()
    assert report.retry and not report.paused and len(sender.calls) == calls
    stored = await rows(core)
    assert {r.status for r in stored} == {"claimed"}
    assert all(r.last_error and "503" in r.last_error for r in stored)

    sender.history_error = None
    await outbox.recover()
    assert_each_paper_once(sender, digest_order())
    assert {r.status for r in await rows(core)} == {"sent"}
