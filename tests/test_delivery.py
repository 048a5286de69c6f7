"""The delivery outbox with a recording Sender standing in for Discord.

Everything else is real: a migrated SQLite file, the real renderer, real fixture papers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot.db.models import DeliveryRow, TargetRow
from bot.discord.embeds import render
from bot.domain.paper import FeedResult
from bot.services.access import Caller
from bot.services.core import Core
from bot.services.delivery import Deliverer
from bot.services.outbox import Destination, OutgoingMessage, Sender, SendError, TargetGone
from tests.conftest import HF_DIR, HF_OVERLAP, FakeClock, expected_matches, load_feed, raw_entries

GUILD = 100
CHANNEL = 1001
ADMIN = Caller(user_id=11, guild_id=GUILD, channel_id=CHANNEL, can_manage=True)
JUNE = HF_DIR / "2024-06-21.json"
NEXT_DIGEST = datetime(2024, 11, 29, 9, 0, tzinfo=UTC)  # default 09:00 UTC, the day after START

MakeCore = Callable[..., Awaitable[Core]]


class RecordingSender(Sender):
    """Discord as the outbox sees it: records posts, honours nonces, fails when told to.

    `fail_on[n]` makes the n-th call (1-based) raise; with `posted_anyway`, the message is
    created first (Discord got it, the answer was lost) and the error raised afterwards.
    Like Discord, a nonce is honoured for `nonce_window` only (measured on `clock`), and the
    history of a destination can be read back (`history_error` makes reading it fail).
    """

    def __init__(
        self, clock: FakeClock | None = None, nonce_window: timedelta = timedelta(minutes=5)
    ) -> None:
        self.clock = clock
        self.nonce_window = nonce_window
        self.history_reads: list[tuple[Destination, datetime]] = []
        self.history_error: Exception | None = None
        self.posted_at: dict[int, datetime] = {}
        self.calls: list[tuple[Destination, OutgoingMessage, str]] = []
        self.posted: list[tuple[Destination, OutgoingMessage, str, int]] = []
        self.notices: list[tuple[Destination, str]] = []
        self.fail_on: dict[int, Exception] = {}
        self.posted_anyway: set[int] = set()
        self._by_nonce: dict[str, int] = {}
        self._next_id = 5_000_000

    async def send(self, destination: Destination, message: OutgoingMessage, nonce: str) -> int:
        self.calls.append((destination, message, nonce))
        number = len(self.calls)
        failure = self.fail_on.get(number)
        if failure is not None and number not in self.posted_anyway:
            raise failure
        if nonce in self._by_nonce and self._honoured(self._by_nonce[nonce]):
            message_id = self._by_nonce[nonce]  # enforce_nonce: Discord answers with the message it made
        else:
            self._next_id += 1
            message_id = self._next_id
            self._by_nonce[nonce] = message_id
            self.posted.append((destination, message, nonce, message_id))
            if self.clock is not None:
                self.posted_at[message_id] = self.clock.now()
        if failure is not None:
            raise failure
        return message_id

    def _honoured(self, message_id: int) -> bool:
        made = self.posted_at.get(message_id)
        return made is None or self.clock is None or self.clock.now() - made <= self.nonce_window

    async def sent_since(
        self, destination: Destination, since: datetime, looking_for: Collection[str]
    ) -> dict[int, frozenset[str]]:
        assert self.clock is not None, "give the sender the clock to read history"
        self.history_reads.append((destination, since))
        if self.history_error is not None:
            raise self.history_error
        return {
            message_id: frozenset(str(e["url"]) for e in message.embeds)
            for where, message, _, message_id in self.posted
            if where.target_id == destination.target_id and self.posted_at[message_id] >= since
        }

    async def notify_paused(self, destination: Destination, reason: str) -> bool:
        self.notices.append((destination, reason))
        return True

    # what the channel shows
    def posted_urls(self) -> list[str]:
        return [str(e["url"]) for _, m, _, _ in self.posted for e in m.embeds]

    def posted_paper_ids(self) -> list[str]:
        return [url.rsplit("/", 1)[1] for url in self.posted_urls()]


def deliverer(core: Core, sender: Sender) -> Deliverer:
    return Deliverer(core.sessions, sender, render, core.clock, max_papers=core.settings.digest.max_papers)


async def rows(core: Core) -> list[DeliveryRow]:
    async with core.sessions() as session:
        return list(await session.scalars(select(DeliveryRow).order_by(DeliveryRow.id)))


async def target_row(core: Core, target_id: int) -> TargetRow:
    async with core.sessions() as session:
        row = await session.get(TargetRow, target_id)
    assert row is not None
    return row


async def channel_with_matches(
    core: Core, clock: FakeClock, query: str = "upvotes>=0", **options: object
) -> int:
    await core.watches.add_watch(ADMIN, channel_id=CHANNEL, query=query, **options)  # type: ignore[arg-type]
    clock.advance(minutes=1)
    await core.ingestor.ingest(load_feed(HF_OVERLAP))
    target_id = await core.digests.channel_target_id(ADMIN, CHANNEL)
    assert target_id is not None
    return target_id


def embed_chars(embed: dict[str, object]) -> int:
    total = len(str(embed.get("title", ""))) + len(str(embed.get("description", "")))
    total += sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", []))  # type: ignore[attr-defined]
    return total + len(str((embed.get("footer") or {}).get("text", "")))  # type: ignore[attr-defined]


def assert_packed(messages: list[OutgoingMessage]) -> None:
    """≤10 embeds and ≤6000 characters per message, and no message left short for nothing."""
    for index, message in enumerate(messages):
        size = sum(embed_chars(e) for e in message.embeds)
        assert 1 <= len(message.embeds) <= 10
        assert size <= 6000
        if index + 1 < len(messages):
            following = embed_chars(messages[index + 1].embeds[0])
            assert len(message.embeds) == 10 or size + following > 6000


def digest_order(path: object = HF_OVERLAP) -> list[str]:
    """docs/delivery.md: upvotes high to low, then newest first; read from the fixture JSON."""

    def key(e: object) -> tuple[int, float, str]:
        published = datetime.fromisoformat(e.published.replace("Z", "+00:00")).timestamp()  # type: ignore[attr-defined]
        return (-e.upvotes, -published, e.arxiv_id)  # type: ignore[attr-defined]

    return [e.arxiv_id for e in sorted(raw_entries(path), key=key)]  # type: ignore[arg-type]


# --- the scheduled digest --------------------------------------------------------------------


async def test_due_digest_posts_each_paper_once_header_first(core: Core, clock: FakeClock) -> None:
    target_id = await channel_with_matches(core, clock)
    sender = RecordingSender()
    outbox = deliverer(core, sender)
    assert (await target_row(core, target_id)).next_digest_at == NEXT_DIGEST

    await outbox.run_due_digests()
    assert sender.calls == []  # not due yet

    clock.set(NEXT_DIGEST)
    report = await outbox.run_due_digests()
    count = len(raw_entries(HF_OVERLAP))
    assert report.papers == count
    assert sender.posted_paper_ids() == digest_order()  # each once, in digest order
    assert [m.content is not None for _, m, _, _ in sender.posted] == [True] + [False] * (
        len(sender.posted) - 1
    )
    header = sender.posted[0][1].content or ""
    assert f"{count} new papers" in header
    assert "`upvotes>=0`" in header
    assert_packed([m for _, m, _, _ in sender.posted])
    assert {d.channel_id for d, _, _, _ in sender.posted} == {CHANNEL}
    assert all(url.startswith("https://huggingface.co/papers/") for url in sender.posted_urls())

    nonces = [nonce for _, _, nonce, _ in sender.posted]
    assert len(set(nonces)) == len(nonces)
    assert all(0 < len(n) <= 25 for n in nonces)

    stored = await rows(core)
    message_of_paper = {
        pid: mid
        for _, m, _, mid in sender.posted
        for pid in (str(e["url"]).rsplit("/", 1)[1] for e in m.embeds)
    }
    assert {r.paper_id: (r.status, r.message_id) for r in stored} == {
        pid: ("sent", mid) for pid, mid in message_of_paper.items()
    }
    assert all(r.sent_at == NEXT_DIGEST for r in stored)

    target = await target_row(core, target_id)
    assert target.next_digest_at == NEXT_DIGEST + timedelta(days=1)
    assert target.last_digest_at == NEXT_DIGEST

    # nothing is posted twice: not by the same run again, not by a later one, not on demand
    await outbox.run_due_digests()
    clock.set(NEXT_DIGEST + timedelta(days=1))
    await outbox.run_due_digests()
    await outbox.deliver_digest(target_id, scheduled=False)
    await outbox.recover()
    assert len(sender.calls) == len(sender.posted)


async def test_cap_posts_the_best_and_keeps_the_rest(make_core: MakeCore, clock: FakeClock) -> None:
    core = await make_core(PAPERWATCH_DIGEST__MAX_PAPERS="5")
    target_id = await channel_with_matches(core, clock)
    sender = RecordingSender()
    outbox = deliverer(core, sender)
    order = digest_order()

    clock.set(NEXT_DIGEST)
    report = await outbox.run_due_digests()
    assert sender.posted_paper_ids() == order[:5]
    assert report.overflow == len(order) - 5
    last = sender.posted[-1][1].content or ""
    assert f"and {len(order) - 5} more" in last
    pending = [r.paper_id for r in await rows(core) if r.status == "pending"]
    assert sorted(pending) == sorted(order[5:])

    clock.set(NEXT_DIGEST + timedelta(days=1))
    await outbox.run_due_digests()
    assert sender.posted_paper_ids() == order[:10]
    assert f"and {len(order) - 10} more" in (sender.posted[-1][1].content or "")
    assert (await target_row(core, target_id)).next_digest_at == NEXT_DIGEST + timedelta(days=2)


async def test_missed_digest_is_posted_once(core: Core, clock: FakeClock) -> None:
    target_id = await channel_with_matches(core, clock)
    sender = RecordingSender()
    outbox = deliverer(core, sender)
    clock.set(datetime(2024, 12, 2, 10, 30, tzinfo=UTC))  # the bot was down for three digests
    await outbox.run_due_digests()
    assert sorted(sender.posted_paper_ids()) == sorted(digest_order())
    posts = len(sender.posted)
    assert sum(1 for _, m, _, _ in sender.posted if m.content) == 1  # one digest, not three
    assert (await target_row(core, target_id)).next_digest_at == datetime(2024, 12, 3, 9, 0, tzinfo=UTC)
    await outbox.run_due_digests()
    assert len(sender.posted) == posts


async def test_digest_follows_the_channel_schedule(core: Core, clock: FakeClock) -> None:
    target_id = await channel_with_matches(core, clock)
    await core.digests.set_digest(ADMIN, channel_id=CHANNEL, time="07:00", timezone="Asia/Tokyo", days="mon")
    sender = RecordingSender()
    outbox = deliverer(core, sender)
    monday_tokyo = datetime(2024, 12, 1, 22, 0, tzinfo=UTC)  # Monday 2024-12-02 07:00 JST
    assert (await target_row(core, target_id)).next_digest_at == monday_tokyo
    clock.set(monday_tokyo - timedelta(seconds=1))
    await outbox.run_due_digests()
    assert sender.calls == []
    clock.set(monday_tokyo)
    await outbox.run_due_digests()
    assert len(sender.posted_paper_ids()) == len(raw_entries(HF_OVERLAP))
    assert (await target_row(core, target_id)).next_digest_at == monday_tokyo + timedelta(days=7)


async def test_paused_digest_posts_nothing_but_keeps_everything(core: Core, clock: FakeClock) -> None:
    await channel_with_matches(core, clock)
    await core.digests.set_digest_paused(ADMIN, channel_id=CHANNEL, paused=True)
    sender = RecordingSender()
    outbox = deliverer(core, sender)
    clock.set(NEXT_DIGEST)
    await outbox.run_due_digests()
    assert sender.calls == []
    assert {r.status for r in await rows(core)} == {"pending"}


# --- failures --------------------------------------------------------------------------------


async def test_send_error_keeps_rows_claimed_and_recover_resends_with_the_same_nonce(
    core: Core, clock: FakeClock
) -> None:
    target_id = await channel_with_matches(core, clock)
    sender = RecordingSender()
    sender.fail_on[2] = SendError("Discord answered HTTP 503")
    outbox = deliverer(core, sender)
    clock.set(NEXT_DIGEST)
    report = await outbox.run_due_digests()
    assert report.retry
    _, failed_message, failed_nonce = sender.calls[1]
    assert len(sender.posted) == 1
    stored = await rows(core)
    first_ids = set(sender.posted[0][1].delivery_ids)
    assert {r.id for r in stored if r.status == "sent"} == first_ids
    claimed = [r for r in stored if r.id not in first_ids]
    assert {r.status for r in claimed} == {"claimed"}  # kept, not released: Discord may have it
    assert {r.id for r in claimed if r.nonce == failed_nonce} == set(failed_message.delivery_ids)
    assert all(r.last_error and "503" in r.last_error for r in claimed if r.nonce == failed_nonce)
    unsent_nonces = {r.nonce for r in claimed}

    clock.advance(seconds=20)
    calls_before = len(sender.calls)
    await outbox.recover()
    resent = {nonce: message for _, message, nonce in sender.calls[calls_before:]}
    assert set(resent) == unsent_nonces  # every unconfirmed message again, each with its own nonce
    assert sorted(resent[failed_nonce].delivery_ids) == sorted(failed_message.delivery_ids)
    assert sorted(sender.posted_paper_ids()) == sorted(digest_order())
    assert {r.status for r in await rows(core)} == {"sent"}
    calls_after = len(sender.calls)
    await outbox.recover()
    await outbox.deliver_digest(target_id, scheduled=False)
    assert len(sender.calls) == calls_after


async def test_lost_messages_are_resent_with_their_header_and_overflow_lines(
    make_core: MakeCore, clock: FakeClock
) -> None:
    order = digest_order()
    cap = len(order) - 2
    assert cap > 10  # two messages: the header on the first, "and 2 more" on the last
    core = await make_core(PAPERWATCH_DIGEST__MAX_PAPERS=str(cap))
    await channel_with_matches(core, clock)
    sender = RecordingSender()
    sender.fail_on[1] = SendError("Discord answered HTTP 503")
    clock.set(NEXT_DIGEST)
    await deliverer(core, sender).run_due_digests()
    assert len(sender.calls) == 1 and not sender.posted
    header = sender.calls[0][1].content
    assert header and str(cap) in header

    # nothing was made; after a restart both claimed messages go out with their text lines
    await deliverer(core, sender).recover()
    contents = [m.content for _, m, _, _ in sender.posted]
    assert len(contents) == 2
    assert contents[0] == header
    assert contents[1] is not None and "and 2 more" in contents[1]
    assert sender.posted_paper_ids() == order[:cap]
    assert all(r.claimed_content is None for r in await rows(core))


async def test_closing_finishes_the_digest_being_sent_and_starts_no_other(
    core: Core, clock: FakeClock
) -> None:
    await core.watches.add_watch(ADMIN, channel_id=CHANNEL + 1, query="upvotes>=0")
    await channel_with_matches(core, clock)  # two channels with the same digest due
    outbox: Deliverer | None = None

    class ClosingSender(RecordingSender):
        async def send(self, destination: Destination, message: OutgoingMessage, nonce: str) -> int:
            assert outbox is not None
            outbox.close()  # SIGTERM arrives while the first message is on its way
            return await super().send(destination, message, nonce)

    sender = ClosingSender()
    outbox = deliverer(core, sender)
    clock.set(NEXT_DIGEST)
    await outbox.run_due_digests()
    assert len({destination.channel_id for destination, _, _ in sender.calls}) == 1
    assert len(sender.calls) > 1  # the digest under way went out whole
    assert sorted(sender.posted_paper_ids()) == sorted(digest_order())
    stored = await rows(core)
    assert {r.status for r in stored} == {"sent", "pending"}  # nothing left half-sent
    await outbox.recover()
    await outbox.flush_instant()
    await outbox.run_due_digests()
    assert len(sender.posted) == len(sender.calls)  # a closed outbox starts nothing

    # the next start posts the other channel's digest, each paper once
    restarted = RecordingSender()
    await deliverer(core, restarted).run_due_digests()
    assert sorted(restarted.posted_paper_ids()) == sorted(digest_order())
    assert {r.status for r in await rows(core)} == {"sent"}


async def test_crash_between_send_and_record_does_not_post_twice(
    make_core: MakeCore, clock: FakeClock
) -> None:
    core = await make_core()
    await channel_with_matches(core, clock)
    sender = RecordingSender()
    sender.fail_on[1] = SendError("network error: ServerDisconnectedError")
    sender.posted_anyway.add(1)  # Discord made the message; the bot never heard back
    clock.set(NEXT_DIGEST)
    await deliverer(core, sender).run_due_digests()
    first_nonce, first_id = sender.posted[0][2], sender.posted[0][3]
    await core.close()

    # a restart: a new process on the same database re-sends what was not confirmed
    restarted = await make_core()
    clock.advance(minutes=4)  # back within the nonce window: re-sent with the same nonce
    await deliverer(restarted, sender).recover()
    assert [c[2] for c in sender.calls].count(first_nonce) == 2
    assert sorted(sender.posted_paper_ids()) == sorted(digest_order())  # each paper on screen once
    stored = await rows(restarted)
    assert {r.status for r in stored} == {"sent"}
    assert {r.message_id for r in stored if r.nonce == first_nonce} == {first_id}


async def test_target_gone_pauses_watches_keeps_papers_and_tells_once(core: Core, clock: FakeClock) -> None:
    target_id = await channel_with_matches(core, clock)
    other = await core.watches.add_watch(ADMIN, channel_id=CHANNEL, query="diffusion")
    sender = RecordingSender()
    sender.fail_on[2] = TargetGone("the bot lost permission to post there")
    outbox = deliverer(core, sender)
    clock.set(NEXT_DIGEST)
    report = await outbox.run_due_digests()
    assert report.paused
    first_batch = sender.posted_paper_ids()
    assert first_batch == digest_order()[: len(sender.posted[0][1].embeds)]
    stored = await rows(core)
    assert sorted(r.paper_id for r in stored if r.status == "sent") == sorted(first_batch)
    unsent = [r for r in stored if r.status != "sent"]
    assert {r.status for r in unsent} == {"pending"}  # released, nothing lost
    assert len(unsent) == len(raw_entries(HF_OVERLAP)) - len(first_batch)
    assert all(r.nonce is None for r in unsent)

    watches = await core.watches.list_watches(GUILD)
    assert [w.paused for w in watches] == [True, True]
    assert all(w.paused_reason == "the bot lost permission to post there" for w in watches)
    assert len(sender.notices) == 1
    assert sender.notices[0][0].channel_id == CHANNEL

    # later runs neither post nor tell the guild again, even with new papers arriving
    clock.set(NEXT_DIGEST + timedelta(days=1))
    await core.ingestor.ingest(load_feed(JUNE))
    await outbox.run_due_digests()
    await outbox.deliver_digest(target_id, scheduled=False)
    await outbox.flush_instant()
    await outbox.recover()
    assert len(sender.calls) == 2
    assert len(sender.notices) == 1

    # resuming a watch brings the held papers back, each posted once
    await core.watches.set_watch_paused(ADMIN, other.watch.id, False)
    while (await outbox.deliver_digest(target_id, scheduled=False)).papers:  # `/digest now` past the cap
        pass
    posted = sender.posted_paper_ids()
    assert len(posted) == len(set(posted))
    assert set(posted) >= set(digest_order())
    assert set(posted) == {r.paper_id for r in await rows(core)}
    assert {r.status for r in await rows(core)} == {"sent"}


async def test_closed_dms_pause_alerts_and_show_in_alert_list(core: Core, clock: FakeClock) -> None:
    user = Caller(user_id=77, guild_id=None, channel_id=None)
    alert = await core.alerts.add_alert(user, query="diffusion")
    clock.advance(minutes=1)
    await core.ingestor.ingest(load_feed(HF_OVERLAP))
    sender = RecordingSender()
    sender.fail_on[1] = TargetGone("their DMs are closed")
    outbox = deliverer(core, sender)
    clock.set(NEXT_DIGEST)
    await outbox.run_due_digests()
    destination = sender.calls[0][0]
    assert (destination.kind, destination.user_id) == ("user", 77)
    assert sender.notices == []  # there is no guild to tell
    [listed] = await core.alerts.list_alerts(77)
    assert (listed.id, listed.paused, listed.paused_reason) == (alert.watch.id, True, "their DMs are closed")
    assert await core.alerts.alert_paused_reason(77) == "their DMs are closed"
    assert {r.status for r in await rows(core)} == {"pending"}

    assert await core.alerts.resume_alerts(77) == 1
    [listed] = await core.alerts.list_alerts(77)
    assert not listed.paused
    target_id = destination.target_id
    await outbox.deliver_digest(target_id, scheduled=False)
    assert sorted(sender.posted_paper_ids()) == sorted(expected_matches("diffusion", HF_OVERLAP))


# --- instant posts ---------------------------------------------------------------------------


async def test_instant_watch_posts_on_ingest_and_never_again(core: Core, clock: FakeClock) -> None:
    await core.watches.add_watch(ADMIN, channel_id=CHANNEL, query="video", mode="instant")
    clock.advance(minutes=1)
    summary = await core.ingestor.ingest(load_feed(HF_OVERLAP))
    target_id = await core.digests.channel_target_id(ADMIN, CHANNEL)
    assert summary.instant_targets == {target_id}
    sender = RecordingSender()
    outbox = deliverer(core, sender)
    await outbox.flush_instant(sorted(summary.instant_targets))
    assert sorted(sender.posted_paper_ids()) == sorted(expected_matches("video", HF_OVERLAP))
    assert "`video`" in (sender.posted[0][1].content or "")
    posts = len(sender.posted)
    await outbox.flush_instant()
    clock.set(NEXT_DIGEST)
    await outbox.run_due_digests()
    assert len(sender.posted) == posts


# --- removed watches -------------------------------------------------------------------------


async def test_papers_of_removed_watches_do_not_resurface(core: Core, clock: FakeClock) -> None:
    old = await core.watches.add_watch(ADMIN, channel_id=CHANNEL, query="video")
    clock.advance(minutes=1)
    await core.ingestor.ingest(load_feed(HF_OVERLAP))
    await core.watches.remove_watch(ADMIN, old.watch.id)
    clock.advance(days=3)  # well past the lookback: the new watch catches nothing old
    await core.watches.add_watch(ADMIN, channel_id=CHANNEL, query="robot")
    target_id = await core.digests.channel_target_id(ADMIN, CHANNEL)
    assert target_id is not None
    sender = RecordingSender()
    await deliverer(core, sender).deliver_digest(target_id, scheduled=False)
    assert sender.posted_paper_ids() == []


async def test_resend_after_papers_grew_still_shows_every_paper(core: Core, clock: FakeClock) -> None:
    await channel_with_matches(core, clock)
    sender = RecordingSender()
    sender.fail_on[1] = SendError("Discord answered HTTP 502")
    outbox = deliverer(core, sender)
    clock.set(NEXT_DIGEST)
    await outbox.run_due_digests()
    failed = sender.calls[0][1]
    assert len(failed.embeds) > 1

    # before the retry, arXiv announces revised versions of those papers with longer titles
    async with core.sessions() as session:
        claimed = [
            r.paper_id for r in await session.scalars(select(DeliveryRow)) if r.id in failed.delivery_ids
        ]
    revised = [
        replace(
            p, title=(p.title + " (revised and extended version) " * 8)[:250], version=(p.version or 1) + 1
        )
        for p in load_feed(HF_OVERLAP).papers
        if p.arxiv_id in claimed
    ]
    clock.advance(minutes=1)
    await core.ingestor.ingest(FeedResult(papers=revised))

    await outbox.recover()
    await outbox.recover()
    assert sorted(sender.posted_paper_ids()) == sorted(digest_order())


# --- what the footer says --------------------------------------------------------------------


def footer_parts(embed: dict[str, object]) -> dict[str, str]:
    """{"#7": "`distill*` → distillation", …} from a footer "matched #7 …; #9 …"."""
    text = str(embed["footer"]["text"])  # type: ignore[index]
    assert text.startswith("matched ")
    parts = {}
    for part in text.removeprefix("matched ").split("; "):
        label, _, words = part.partition(" ")
        parts[label] = words
    return parts


async def test_footer_names_each_watch_with_its_words(core: Core, clock: FakeClock) -> None:
    diffusion = (await core.watches.add_watch(ADMIN, channel_id=CHANNEL, query="diffusion")).watch.id
    clock.advance(minutes=1)
    await core.ingestor.ingest(load_feed(HF_OVERLAP))
    sender = RecordingSender()
    clock.set(NEXT_DIGEST)
    await deliverer(core, sender).run_due_digests()
    embeds = [e for _, m, _, _ in sender.posted for e in m.embeds]
    assert len(embeds) == len(expected_matches("diffusion", HF_OVERLAP))
    for embed in embeds:
        parts = footer_parts(embed)
        assert list(parts) == [f"#{diffusion}"]
        assert "`diffusion` → diffusion" in parts[f"#{diffusion}"]


async def test_footer_credits_each_watch_only_with_its_own_words(core: Core, clock: FakeClock) -> None:
    diffusion = (await core.watches.add_watch(ADMIN, channel_id=CHANNEL, query="diffusion")).watch.id
    video = (await core.watches.add_watch(ADMIN, channel_id=CHANNEL, query="video")).watch.id
    clock.advance(minutes=1)
    await core.ingestor.ingest(load_feed(HF_OVERLAP))
    both = set(expected_matches("diffusion", HF_OVERLAP)) & set(expected_matches("video", HF_OVERLAP))
    assert both, "the fixture has papers about video diffusion"
    sender = RecordingSender()
    clock.set(NEXT_DIGEST)
    await deliverer(core, sender).run_due_digests()
    checked = 0
    for _, message, _, _ in sender.posted:
        for embed in message.embeds:
            if str(embed["url"]).rsplit("/", 1)[1] not in both:
                continue
            parts = footer_parts(embed)
            assert set(parts) == {f"#{diffusion}", f"#{video}"}
            assert "`video`" not in parts[f"#{diffusion}"]
            assert "`diffusion`" not in parts[f"#{video}"]
            checked += 1
    assert checked == len(both)


async def test_resuming_after_the_bot_paused_a_channel_restarts_all_its_watches(
    core: Core, clock: FakeClock
) -> None:
    first = (await core.watches.add_watch(ADMIN, channel_id=CHANNEL, query="diffusion")).watch.id
    await core.watches.add_watch(ADMIN, channel_id=CHANNEL, query="video")
    clock.advance(minutes=1)
    await core.ingestor.ingest(load_feed(HF_OVERLAP))
    sender = RecordingSender()
    sender.fail_on[1] = TargetGone("the channel was deleted")
    clock.set(NEXT_DIGEST)
    await deliverer(core, sender).run_due_digests()
    assert all(w.paused for w in await core.watches.list_watches(GUILD))
    await core.watches.set_watch_paused(ADMIN, first, False)  # what the notice asks admins to do
    assert [w.paused for w in await core.watches.list_watches(GUILD)] == [False, False]
