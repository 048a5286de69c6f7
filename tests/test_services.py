"""WatchService and ingest end to end on a real, migrated SQLite file with real feeds."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from bot.db.models import DeliveryRow, FeedStateRow, TargetRow, WatchRow
from bot.domain.paper import FeedResult
from bot.services.access import Caller, NotFound, UserError
from bot.services.core import Core
from bot.services.polling import FeedPoller, build_fetcher
from tests.conftest import (
    ARXIV_DIR,
    HF_DIR,
    HF_OVERLAP,
    RSS_ALL,
    START,
    FakeClock,
    expected_matches,
    load_feed,
    raw_entries,
)

GUILD_A, GUILD_B = 100, 200
CH_A1, CH_A2, CH_B1 = 1001, 1002, 2001
ADMIN_A = Caller(user_id=11, guild_id=GUILD_A, channel_id=CH_A1, can_manage=True)
MEMBER_A = Caller(user_id=12, guild_id=GUILD_A, channel_id=CH_A1, can_manage=False)
ADMIN_B = Caller(user_id=21, guild_id=GUILD_B, channel_id=CH_B1, can_manage=True)
JUNE = HF_DIR / "2024-06-21.json"

MakeCore = Callable[..., Awaitable[Core]]


async def deliveries_by_target(core: Core) -> dict[tuple[str, int], dict[str, DeliveryRow]]:
    """{(kind, channel or user id): {paper id: delivery row}}."""
    async with core.sessions() as session:
        rows = await session.execute(select(DeliveryRow, TargetRow).join(TargetRow))
        out: dict[tuple[str, int], dict[str, DeliveryRow]] = {}
        for delivery, target in rows.all():
            key = (target.kind, target.channel_id or target.user_id)
            assert delivery.paper_id not in out.setdefault(key, {}), "two deliveries of one paper"
            out[key][delivery.paper_id] = delivery
        return out


async def paper_ids_for(core: Core, kind: str, ident: int) -> set[str]:
    return set((await deliveries_by_target(core)).get((kind, ident), {}))


async def message_of(call: Awaitable[object]) -> str:
    with pytest.raises(UserError) as caught:
        await call
    return str(caught.value)


# --- adding and listing watches --------------------------------------------------------------


async def test_add_watch_needs_manage_channels(core: Core) -> None:
    text = await message_of(core.watches.add_watch(MEMBER_A, channel_id=CH_A1, query="diffusion"))
    assert "Manage Channels" in text
    assert await core.watches.list_watches(GUILD_A) == []


async def test_add_watch_outside_a_server_is_refused(core: Core) -> None:
    dm = Caller(user_id=11, guild_id=None, channel_id=None, can_manage=True)
    text = await message_of(core.watches.add_watch(dm, channel_id=CH_A1, query="diffusion"))
    assert "/alert add" in text


async def test_add_and_list_watches(core: Core) -> None:
    first = await core.watches.add_watch(ADMIN_A, channel_id=CH_A1, query="diffusion")
    second = await core.watches.add_watch(
        ADMIN_A, channel_id=CH_A2, query='"knowledge distillation" OR distill*', mode="instant", min_upvotes=5
    )
    assert (first.watch.query, first.watch.mode, first.watch.min_upvotes) == ("diffusion", "digest", None)
    assert (second.watch.mode, second.watch.min_upvotes) == ("instant", 5)
    assert first.watch.id != second.watch.id
    listed = await core.watches.list_watches(GUILD_A)
    assert [(w.id, w.channel_id, w.paused) for w in listed] == [
        (first.watch.id, CH_A1, False),
        (second.watch.id, CH_A2, False),
    ]
    assert [w.id for w in await core.watches.list_watches(GUILD_A, CH_A2)] == [second.watch.id]
    assert await core.watches.list_watches(GUILD_B) == []


async def test_bad_mode_and_min_upvotes_are_refused(core: Core) -> None:
    assert "digest" in await message_of(
        core.watches.add_watch(ADMIN_A, channel_id=CH_A1, query="x", mode="hourly")
    )
    assert "min_upvotes" in await message_of(
        core.watches.add_watch(ADMIN_A, channel_id=CH_A1, query="x", min_upvotes=-1)
    )


async def test_add_watch_replies_with_the_last_seven_days(core: Core, clock: FakeClock) -> None:
    clock.set(START - timedelta(days=10))
    await core.ingestor.ingest(load_feed(JUNE))  # first seen ten days ago: too old to show
    clock.set(START)
    await core.ingestor.ingest(load_feed(HF_OVERLAP))
    added = await core.watches.add_watch(ADMIN_A, channel_id=CH_A1, query="model")
    expected = set(expected_matches("model", HF_OVERLAP))
    assert expected, "the fixture should have papers about models"
    assert {p.arxiv_id for p in added.recent} == expected
    upvotes = [p.upvotes for p in added.recent]
    assert upvotes == sorted(upvotes, reverse=True)  # the most upvoted first


# --- limits and query checks -----------------------------------------------------------------


async def test_watches_per_channel_limit(make_core: MakeCore) -> None:
    core = await make_core(PAPERWATCH_LIMITS__WATCHES_PER_CHANNEL="2")
    for query in ("diffusion", "video"):
        await core.watches.add_watch(ADMIN_A, channel_id=CH_A1, query=query)
    text = await message_of(core.watches.add_watch(ADMIN_A, channel_id=CH_A1, query="robots"))
    assert "2 watches" in text
    assert len(await core.watches.list_watches(GUILD_A, CH_A1)) == 2
    await core.watches.add_watch(ADMIN_A, channel_id=CH_A2, query="robots")  # another channel is fine


async def test_alerts_per_user_limit(make_core: MakeCore) -> None:
    core = await make_core(PAPERWATCH_LIMITS__ALERTS_PER_USER="2")
    user = Caller(user_id=31, guild_id=None, channel_id=None)
    for query in ("diffusion", "video"):
        await core.alerts.add_alert(user, query=query)
    text = await message_of(core.alerts.add_alert(user, query="robots"))
    assert "2 alerts" in text
    assert len(await core.alerts.list_alerts(31)) == 2
    await core.alerts.add_alert(Caller(user_id=32, guild_id=None, channel_id=None), query="robots")


async def test_query_length_limit(make_core: MakeCore) -> None:
    core = await make_core(PAPERWATCH_LIMITS__QUERY_LENGTH="40")
    text = await message_of(core.watches.add_watch(ADMIN_A, channel_id=CH_A1, query="word " * 9))
    assert "40" in text
    await core.watches.add_watch(ADMIN_A, channel_id=CH_A1, query="word " * 7)


@pytest.mark.parametrize(
    ("query", "position"),
    [("distill* AND", 12), ("a ) b", 2), ("(diffusion OR", 13), ("title:", 6), ("-video", 0)],
)
async def test_bad_query_names_the_position(core: Core, query: str, position: int) -> None:
    text = await message_of(core.watches.add_watch(ADMIN_A, channel_id=CH_A1, query=query))
    assert f"position {position}" in text
    assert await core.watches.list_watches(GUILD_A) == []


@pytest.mark.parametrize("char", ["\u202e", "\u200b", "\u2066", "\x07", "\x00", "\ufeff"])
async def test_invisible_and_control_characters_are_refused(core: Core, char: str) -> None:
    query = f"diffusion{char}models"
    for call in (
        core.watches.add_watch(ADMIN_A, channel_id=CH_A1, query=query),
        core.alerts.add_alert(ADMIN_A, query=query),
        core.papers.preview(query),
        core.papers.search(query),
    ):
        text = await message_of(call)
        assert f"U+{ord(char):04X}" in text
        assert "position 9" in text
    assert await core.watches.list_watches(GUILD_A) == []
    assert await core.alerts.list_alerts(ADMIN_A.user_id) == []


# --- ids of other guilds and other users -----------------------------------------------------


async def test_foreign_watch_id_answers_like_a_missing_one(core: Core) -> None:
    watch_id = (await core.watches.add_watch(ADMIN_A, channel_id=CH_A1, query="diffusion")).watch.id
    attempts = [
        lambda: core.watches.remove_watch(ADMIN_B, watch_id),
        lambda: core.watches.set_watch_paused(ADMIN_B, watch_id, True),
        lambda: core.watches.set_watch_paused(ADMIN_B, watch_id, False),
        lambda: core.watches.watch_channel(ADMIN_B, watch_id),
    ]
    foreign = []
    for attempt in attempts:
        with pytest.raises(NotFound) as caught:
            await attempt()
        foreign.append(str(caught.value))
    # nothing happened to guild A's watch
    [still] = await core.watches.list_watches(GUILD_A)
    assert (still.id, still.paused) == (watch_id, False)
    await core.watches.remove_watch(ADMIN_A, watch_id)
    missing = []
    for attempt in attempts:
        with pytest.raises(NotFound) as caught:
            await attempt()
        missing.append(str(caught.value))
    assert foreign == missing


async def test_alert_id_is_not_a_watch_id_and_vice_versa(core: Core) -> None:
    alert_id = (await core.alerts.add_alert(ADMIN_A, query="diffusion")).watch.id
    watch_id = (await core.watches.add_watch(ADMIN_A, channel_id=CH_A1, query="video")).watch.id
    with pytest.raises(NotFound) as as_watch:
        await core.watches.remove_watch(ADMIN_A, alert_id)
    with pytest.raises(NotFound) as as_alert:
        await core.alerts.remove_alert(ADMIN_A.user_id, watch_id)
    await core.alerts.remove_alert(ADMIN_A.user_id, alert_id)
    await core.watches.remove_watch(ADMIN_A, watch_id)
    with pytest.raises(NotFound) as gone_watch:
        await core.watches.remove_watch(ADMIN_A, alert_id)
    with pytest.raises(NotFound) as gone_alert:
        await core.alerts.remove_alert(ADMIN_A.user_id, watch_id)
    assert str(as_watch.value) == str(gone_watch.value)
    assert str(as_alert.value) == str(gone_alert.value)


async def test_foreign_alert_id_answers_like_a_missing_one(core: Core) -> None:
    owner, other = 41, 42
    alert_id = (await core.alerts.add_alert(Caller(owner, None, None), query="diffusion")).watch.id
    await core.alerts.add_alert(Caller(other, None, None), query="video")  # the other user has a target too
    with pytest.raises(NotFound) as foreign:
        await core.alerts.remove_alert(other, alert_id)
    assert [a.id for a in await core.alerts.list_alerts(owner)] == [alert_id]
    assert alert_id not in [c for c, _ in await core.alerts.alert_choices(other, "")]
    await core.alerts.remove_alert(owner, alert_id)
    with pytest.raises(NotFound) as missing:
        await core.alerts.remove_alert(other, alert_id)
    assert str(foreign.value) == str(missing.value)


async def test_another_guilds_channel_cannot_be_configured(core: Core) -> None:
    await core.watches.add_watch(ADMIN_A, channel_id=CH_A1, query="diffusion")
    with pytest.raises(NotFound):
        await core.watches.add_watch(ADMIN_B, channel_id=CH_A1, query="video")
    with pytest.raises(NotFound):
        await core.digests.set_digest(ADMIN_B, channel_id=CH_A1, time="07:00", timezone="UTC", days=None)
    with pytest.raises(NotFound):
        await core.digests.set_digest_paused(ADMIN_B, channel_id=CH_A1, paused=True)
    assert [w.query for w in await core.watches.list_watches(GUILD_A)] == ["diffusion"]
    assert await core.watches.list_watches(GUILD_B) == []
    info = await core.digests.show_digest(GUILD_A, CH_A1)
    assert (info.paused, info.schedule.at.strftime("%H:%M")) == (False, "09:00")
    assert (await core.digests.show_digest(GUILD_B, CH_A1)).watches == 0  # guild B learns nothing


# --- pause, resume, remove, choices ----------------------------------------------------------


async def test_pause_and_resume(core: Core, clock: FakeClock) -> None:
    watch_id = (await core.watches.add_watch(ADMIN_A, channel_id=CH_A1, query="model")).watch.id
    paused = await core.watches.set_watch_paused(ADMIN_A, watch_id, True)
    assert paused.paused
    assert [w.paused for w in await core.watches.list_watches(GUILD_A)] == [True]
    clock.advance(hours=1)
    await core.ingestor.ingest(load_feed(JUNE))
    assert await paper_ids_for(core, "channel", CH_A1) == set()
    resumed = await core.watches.set_watch_paused(ADMIN_A, watch_id, False)
    assert not resumed.paused
    clock.advance(hours=1)
    await core.ingestor.ingest(load_feed(HF_OVERLAP))
    assert await paper_ids_for(core, "channel", CH_A1) == set(expected_matches("model", HF_OVERLAP))


async def test_pause_and_remove_need_manage_channels(core: Core) -> None:
    watch_id = (await core.watches.add_watch(ADMIN_A, channel_id=CH_A1, query="model")).watch.id
    member = MEMBER_A
    assert "Manage Channels" in await message_of(core.watches.set_watch_paused(member, watch_id, True))
    assert "Manage Channels" in await message_of(core.watches.remove_watch(member, watch_id))
    [watch] = await core.watches.list_watches(GUILD_A)
    assert not watch.paused


async def test_remove_watch(core: Core) -> None:
    keep = (await core.watches.add_watch(ADMIN_A, channel_id=CH_A1, query="model")).watch.id
    drop = (await core.watches.add_watch(ADMIN_A, channel_id=CH_A1, query="video")).watch.id
    removed = await core.watches.remove_watch(ADMIN_A, drop)
    assert (removed.id, removed.query) == (drop, "video")
    assert [w.id for w in await core.watches.list_watches(GUILD_A)] == [keep]


async def test_watch_choices_this_channel_first_never_other_guilds(core: Core) -> None:
    a1 = (await core.watches.add_watch(ADMIN_A, channel_id=CH_A1, query="diffusion")).watch.id
    a2 = (await core.watches.add_watch(ADMIN_A, channel_id=CH_A2, query="video")).watch.id
    a3 = (await core.watches.add_watch(ADMIN_A, channel_id=CH_A1, query="robots")).watch.id
    b1 = (await core.watches.add_watch(ADMIN_B, channel_id=CH_B1, query="diffusion")).watch.id
    choices = await core.watches.watch_choices(GUILD_A, CH_A2, "")
    assert [c for c, _ in choices] == [a2, a1, a3]
    assert all(label.startswith(f"#{c} ") for c, label in choices)
    assert [c for c, _ in await core.watches.watch_choices(GUILD_A, CH_A1, "diff")] == [a1]
    assert [c for c, _ in await core.watches.watch_choices(GUILD_B, CH_B1, "")] == [b1]
    assert b1 not in [c for c, _ in await core.watches.watch_choices(GUILD_A, CH_A1, str(b1))]


# --- digest schedule -------------------------------------------------------------------------


async def test_digest_set_show_pause_resume(core: Core, clock: FakeClock) -> None:
    await core.watches.add_watch(ADMIN_A, channel_id=CH_A1, query="diffusion")
    # START is Thursday 2024-11-28 17:30 UTC; 08:30 in Paris on weekdays → Friday 07:30 UTC
    info = await core.digests.set_digest(
        ADMIN_A, channel_id=CH_A1, time="08:30", timezone="Europe/Paris", days="mon-fri"
    )
    assert info.next_at == datetime(2024, 11, 29, 7, 30, tzinfo=UTC)
    shown = await core.digests.show_digest(GUILD_A, CH_A1)
    assert shown.schedule.timezone == "Europe/Paris"
    assert shown.schedule.at.strftime("%H:%M") == "08:30"
    assert shown.next_at == info.next_at
    assert shown.watches == 1
    paused = await core.digests.set_digest_paused(ADMIN_A, channel_id=CH_A1, paused=True)
    assert paused.paused
    clock.set(datetime(2024, 11, 29, 12, 0, tzinfo=UTC))  # Friday noon → next is Monday
    resumed = await core.digests.set_digest_paused(ADMIN_A, channel_id=CH_A1, paused=False)
    assert not resumed.paused
    assert resumed.next_at == datetime(2024, 12, 2, 7, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("time", "timezone", "days", "named"),
    [
        ("25:00", "UTC", None, "25:00"),
        ("09:00", "Mars/Olympus_Mons", None, "Mars/Olympus_Mons"),
        ("09:00", "UTC", "funday", "funday"),
    ],
)
async def test_digest_schedule_errors(
    core: Core, time: str, timezone: str, days: str | None, named: str
) -> None:
    text = await message_of(
        core.digests.set_digest(ADMIN_A, channel_id=CH_A1, time=time, timezone=timezone, days=days)
    )
    assert named in text
    text = await message_of(core.alerts.set_alert_schedule(55, time=time, timezone=timezone, days=days))
    assert named in text


async def test_digest_needs_manage_channels(core: Core) -> None:
    text = await message_of(
        core.digests.set_digest(MEMBER_A, channel_id=CH_A1, time="07:00", timezone="UTC", days=None)
    )
    assert "Manage Channels" in text
    assert "Manage Channels" in await message_of(
        core.digests.set_digest_paused(MEMBER_A, channel_id=CH_A1, paused=True)
    )


async def test_alert_schedule(core: Core) -> None:
    await core.alerts.add_alert(Caller(61, None, None), query="diffusion")
    info = await core.alerts.set_alert_schedule(61, time="18:00", timezone="America/New_York", days="sat,sun")
    # from Thursday 2024-11-28: Saturday 18:00 EST = 23:00 UTC
    assert info.next_at == datetime(2024, 11, 30, 23, 0, tzinfo=UTC)


# --- previews, search, papers, status --------------------------------------------------------


async def test_test_query_looks_back_the_given_days(core: Core, clock: FakeClock) -> None:
    clock.set(START - timedelta(days=10))
    await core.ingestor.ingest(load_feed(HF_OVERLAP))
    clock.set(START)
    await core.ingestor.ingest(load_feed(JUNE))
    week = {p.arxiv_id for p in (await core.papers.preview("model", limit=1000)).papers}
    month = {p.arxiv_id for p in (await core.papers.preview("model", days=30, limit=1000)).papers}
    assert week == set(expected_matches("model", JUNE))
    assert month == set(expected_matches("model", JUNE)) | set(expected_matches("model", HF_OVERLAP))
    for days in (0, 91):
        assert "days" in await message_of(core.papers.preview("model", days=days))


async def test_search_and_get_paper(core: Core) -> None:
    await core.ingestor.ingest(load_feed(HF_OVERLAP))
    result = await core.papers.search("model", limit=3)
    found, total = result.papers, result.total
    assert result.complete and result.bound is None
    expected = expected_matches("model", HF_OVERLAP)
    assert total == len(expected)
    assert len(found) == min(3, len(expected))
    assert {p.arxiv_id for p in found} <= set(expected)
    arxiv_id = raw_entries(HF_OVERLAP)[0].arxiv_id
    for raw in (arxiv_id, f"arXiv:{arxiv_id}v2", f"https://arxiv.org/abs/{arxiv_id}"):
        assert (await core.papers.get(raw)).arxiv_id == arxiv_id
    with pytest.raises(NotFound) as missing:
        await core.papers.get("2501.00001")
    assert "2501.00001" in str(missing.value)
    text = await message_of(core.papers.get("not an id"))
    assert "arXiv id" in text


async def test_status(core: Core, clock: FakeClock) -> None:
    await core.watches.add_watch(ADMIN_A, channel_id=CH_A1, query="diffusion")
    await core.watches.add_watch(ADMIN_A, channel_id=CH_A2, query="video")
    await core.watches.add_watch(ADMIN_B, channel_id=CH_B1, query="video")
    await core.ingestor.ingest(load_feed(HF_OVERLAP))
    status = await core.status.status(GUILD_A, CH_A1)
    assert status.papers_today == status.papers_total == len(raw_entries(HF_OVERLAP))
    assert (status.watches_here, status.watches_total) == (2, 3)
    assert status.next_digest_at == datetime(2024, 11, 29, 9, 0, tzinfo=UTC)  # default 09:00 UTC
    clock.set(datetime(2024, 11, 29, 0, 30, tzinfo=UTC))
    assert (await core.status.status(GUILD_A, CH_A1)).papers_today == 0


# --- ingest: matching into deliveries --------------------------------------------------------


async def test_one_delivery_per_target_and_paper(core: Core, clock: FakeClock) -> None:
    queries = {"diffusion": None, "model": None, "video": None}
    for query in queries:
        queries[query] = (await core.watches.add_watch(ADMIN_A, channel_id=CH_A1, query=query)).watch.id
    await core.watches.add_watch(ADMIN_B, channel_id=CH_B1, query="video")
    await core.alerts.add_alert(Caller(71, None, None), query="diffusion", mode="instant")
    clock.advance(minutes=5)
    summary = await core.ingestor.ingest(load_feed(HF_OVERLAP))

    per_query = {q: set(expected_matches(q, HF_OVERLAP)) for q in queries}
    union = set().union(*per_query.values())
    assert union, "the fixture should match something"
    found = await deliveries_by_target(core)
    assert set(found[("channel", CH_A1)]) == union
    for paper_id, row in found[("channel", CH_A1)].items():
        assert sorted(row.watch_ids) == sorted(queries[q] for q in queries if paper_id in per_query[q])
        assert row.status == "pending"
    assert set(found.get(("channel", CH_B1), {})) == per_query["video"]
    assert set(found.get(("user", 71), {})) == per_query["diffusion"]
    assert {r.mode for r in found.get(("user", 71), {}).values()} <= {"instant"}
    total = len(union) + len(per_query["video"]) + len(per_query["diffusion"])
    assert summary.deliveries == total
    assert summary.new == len(raw_entries(HF_OVERLAP))

    listed = {w.query: w.match_count for w in await core.watches.list_watches(GUILD_A, CH_A1)}
    assert listed == {q: len(per_query[q]) for q in queries}

    clock.advance(minutes=5)
    again = await core.ingestor.ingest(load_feed(HF_OVERLAP))
    assert (again.new, again.updated, again.deliveries) == (0, 0, 0)
    assert sum(len(v) for v in (await deliveries_by_target(core)).values()) == total


async def test_min_upvotes_matches_once_the_count_is_reached(core: Core, clock: FakeClock) -> None:
    top = max(e.upvotes for e in raw_entries(HF_OVERLAP))
    floor = top + 3
    await core.watches.add_watch(ADMIN_A, channel_id=CH_A1, query="upvotes>=0", min_upvotes=floor)
    papers = load_feed(HF_OVERLAP).papers
    await core.ingestor.ingest(FeedResult(papers=papers))
    assert await paper_ids_for(core, "channel", CH_A1) == set()

    chosen = papers[5]
    clock.advance(hours=1)
    still_short = replace(chosen, upvotes=floor - 1)
    summary = await core.ingestor.ingest(FeedResult(papers=[still_short]))
    assert summary.updated == 1
    assert await paper_ids_for(core, "channel", CH_A1) == set()

    clock.advance(hours=1)
    summary = await core.ingestor.ingest(FeedResult(papers=[replace(chosen, upvotes=floor)]))
    assert summary.deliveries == 1
    assert await paper_ids_for(core, "channel", CH_A1) == {chosen.arxiv_id}

    clock.advance(hours=1)
    summary = await core.ingestor.ingest(FeedResult(papers=[replace(chosen, upvotes=floor + 10)]))
    assert summary.deliveries == 0
    assert await paper_ids_for(core, "channel", CH_A1) == {chosen.arxiv_id}


async def test_lookback_digest_catches_recent_papers_instant_does_not(core: Core, clock: FakeClock) -> None:
    overlap = {e.arxiv_id for e in raw_entries(HF_OVERLAP)}
    june = {e.arxiv_id for e in raw_entries(JUNE)}
    await core.ingestor.ingest(load_feed(HF_OVERLAP))  # first seen at START

    clock.advance(hours=23)  # within the default 24 h lookback
    await core.watches.add_watch(ADMIN_A, channel_id=CH_A1, query="upvotes>=0")
    await core.watches.add_watch(ADMIN_A, channel_id=CH_A2, query="upvotes>=0", mode="instant")
    await core.alerts.add_alert(Caller(81, None, None), query="upvotes>=0")
    assert await paper_ids_for(core, "channel", CH_A1) == overlap
    assert await paper_ids_for(core, "channel", CH_A2) == set()
    assert await paper_ids_for(core, "user", 81) == overlap

    clock.advance(hours=2)  # 25 h after those papers were first seen
    await core.watches.add_watch(ADMIN_B, channel_id=CH_B1, query="upvotes>=0")
    assert await paper_ids_for(core, "channel", CH_B1) == set()

    clock.advance(minutes=1)
    await core.ingestor.ingest(load_feed(JUNE))  # new papers reach every watch
    assert await paper_ids_for(core, "channel", CH_A1) == overlap | june
    assert await paper_ids_for(core, "channel", CH_A2) == june
    assert await paper_ids_for(core, "channel", CH_B1) == june

    # old papers whose upvotes change later still do not reach watches newer than their lookback
    clock.advance(hours=1)
    bumped = [replace(p, upvotes=p.upvotes + 1) for p in load_feed(HF_OVERLAP).papers]
    summary = await core.ingestor.ingest(FeedResult(papers=bumped))
    assert summary.updated == len(overlap)
    assert await paper_ids_for(core, "channel", CH_A2) == june
    assert await paper_ids_for(core, "channel", CH_B1) == june


async def test_lookback_is_configurable(make_core: MakeCore, clock: FakeClock) -> None:
    core = await make_core(PAPERWATCH_DIGEST__LOOKBACK_HOURS="2")
    await core.ingestor.ingest(load_feed(HF_OVERLAP))
    clock.advance(hours=3)
    await core.watches.add_watch(ADMIN_A, channel_id=CH_A1, query="upvotes>=0")
    assert await paper_ids_for(core, "channel", CH_A1) == set()
    clock.set(START)
    clock.advance(hours=1)
    await core.watches.add_watch(ADMIN_A, channel_id=CH_A2, query="upvotes>=0")
    assert await paper_ids_for(core, "channel", CH_A2) == {e.arxiv_id for e in raw_entries(HF_OVERLAP)}


async def test_watch_rows_record_creator_and_time(core: Core, clock: FakeClock) -> None:
    clock.advance(minutes=7)
    added = await core.watches.add_watch(ADMIN_A, channel_id=CH_A1, query="diffusion")
    async with core.sessions() as session:
        row = await session.get(WatchRow, added.watch.id)
    assert row is not None
    assert row.created_by == ADMIN_A.user_id
    assert row.created_at == START + timedelta(minutes=7)


# --- polling the feeds over HTTP (httpx.MockTransport serving the captured bytes) ------------


class FeedServer:
    """Answers like huggingface.co / rss.arxiv.org would, from the fixture files; records requests."""

    def __init__(self, hf_days: dict[str, bytes] | None = None, rss: dict[str, bytes] | None = None) -> None:
        self.hf_days = hf_days or {}
        self.rss = rss or {}
        self.requests: list[httpx.Request] = []
        self.status: int | None = None
        self.etag = 'W/"hf-2024-11-28"'

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.status is not None:
            return httpx.Response(self.status, text="upstream trouble")
        if request.url.host == "huggingface.co":
            day = request.url.params.get("date", "")
            if int(request.url.params.get("p", "0")) > 0:
                return httpx.Response(200, content=b"[]")
            if request.headers.get("If-None-Match") == self.etag:
                return httpx.Response(304, headers={"ETag": self.etag})
            body = self.hf_days.get(day, b"[]")
            return httpx.Response(
                200, content=body, headers={"ETag": self.etag, "Content-Type": "application/json"}
            )
        if request.url.host == "rss.arxiv.org":
            body = self.rss.get(request.url.path.rsplit("/", 1)[1])
            if body is None:
                return httpx.Response(404)
            return httpx.Response(200, content=body, headers={"Content-Type": "application/rss+xml"})
        return httpx.Response(404)


@pytest.fixture
async def poller_for(core: Core):
    clients: list[httpx.AsyncClient] = []

    def build(server: FeedServer, target: Core | None = None) -> FeedPoller:
        chosen = target or core
        client = httpx.AsyncClient(transport=httpx.MockTransport(server))
        clients.append(client)
        fetcher = build_fetcher(chosen.settings, client)
        return FeedPoller(chosen.settings, fetcher, chosen.sessions, chosen.ingestor, chosen.clock)

    yield build
    for client in clients:
        await client.aclose()


async def feed_state(core: Core, key: str) -> FeedStateRow:
    async with core.sessions() as session:
        row = await session.get(FeedStateRow, key)
    assert row is not None, key
    return row


async def test_poll_hf_stores_papers_and_records_success(core: Core, clock: FakeClock, poller_for) -> None:
    await core.watches.add_watch(ADMIN_A, channel_id=CH_A1, query="video", mode="instant")
    server = FeedServer(hf_days={"2024-11-28": HF_OVERLAP.read_bytes()})
    poller = poller_for(server)
    clock.advance(minutes=1)
    summary = await poller.poll_huggingface([date(2024, 11, 28)])
    assert summary.error is None
    assert summary.new == len(raw_entries(HF_OVERLAP))
    assert summary.instant_targets == {await core.digests.channel_target_id(ADMIN_A, CH_A1)}
    request = server.requests[0]
    assert (request.url.host, request.url.path) == ("huggingface.co", "/api/daily_papers")
    assert request.url.params["date"] == "2024-11-28"
    state = await feed_state(core, "huggingface:2024-11-28")
    assert state.last_success_at == clock.now()
    assert state.last_poll_at == clock.now()
    assert state.last_error is None
    assert await paper_ids_for(core, "channel", CH_A1) == set(expected_matches("video", HF_OVERLAP))
    result = await core.papers.search("upvotes>=0", limit=100)
    found, total = result.papers, result.total
    assert total == len(found) == len(raw_entries(HF_OVERLAP))
    status = await core.status.status(GUILD_A, CH_A1)
    assert [f.last_success_at for f in status.feeds] == [clock.now()]


async def test_poll_sends_the_etag_back_and_accepts_304(core: Core, clock: FakeClock, poller_for) -> None:
    server = FeedServer(hf_days={"2024-11-28": HF_OVERLAP.read_bytes()})
    poller = poller_for(server)
    await poller.poll_huggingface([date(2024, 11, 28)])
    assert "If-None-Match" not in server.requests[0].headers
    clock.advance(minutes=30)
    summary = await poller.poll_huggingface([date(2024, 11, 28)])
    assert server.requests[-1].headers.get("If-None-Match") == server.etag
    assert (summary.new, summary.updated, summary.error) == (0, 0, None)
    state = await feed_state(core, "huggingface:2024-11-28")
    assert state.last_success_at == clock.now()
    assert state.etag == server.etag


async def test_poll_server_error_is_recorded_not_raised(
    make_core: MakeCore, clock: FakeClock, poller_for
) -> None:
    core = await make_core(PAPERWATCH_FEEDS__MAX_ATTEMPTS="1")  # no retry sleeps in this test
    server = FeedServer(hf_days={"2024-11-28": HF_OVERLAP.read_bytes()})
    server.status = 500
    poller = poller_for(server, core)
    summary = await poller.poll_huggingface([date(2024, 11, 28)])
    assert summary.error is not None and "500" in summary.error
    state = await feed_state(core, "huggingface:2024-11-28")
    assert state.last_error is not None and "500" in state.last_error
    assert state.last_error_at == clock.now()
    assert state.last_success_at is None
    assert state.consecutive_failures == 1
    clock.advance(minutes=30)
    await poller.poll_huggingface([date(2024, 11, 28)])
    assert (await feed_state(core, "huggingface:2024-11-28")).consecutive_failures == 2
    status = await core.status.status(None, None)
    assert status.papers_total == 0
    assert any(f.last_error and "500" in f.last_error for f in status.feeds)

    server.status = None  # the feed recovers
    clock.advance(minutes=30)
    summary = await poller.poll_huggingface([date(2024, 11, 28)])
    assert summary.new == len(raw_entries(HF_OVERLAP))
    state = await feed_state(core, "huggingface:2024-11-28")
    assert (state.last_error, state.consecutive_failures, state.last_success_at) == (None, 0, clock.now())


async def test_poll_reads_today_and_the_backfill_days(
    make_core: MakeCore, clock: FakeClock, poller_for
) -> None:
    core = await make_core(PAPERWATCH_FEEDS__HUGGINGFACE__BACKFILL_DAYS="2")
    clock.set(datetime(2024, 11, 28, 12, 0, tzinfo=UTC))
    server = FeedServer(hf_days={"2024-11-28": HF_OVERLAP.read_bytes()})
    summary = await poller_for(server, core).poll_huggingface()
    assert [r.url.params["date"] for r in server.requests] == ["2024-11-26", "2024-11-27", "2024-11-28"]
    assert summary.new == len(raw_entries(HF_OVERLAP))
    for day in ("2024-11-26", "2024-11-27", "2024-11-28"):
        assert (await feed_state(core, f"huggingface:{day}")).last_success_at == clock.now()


async def test_poll_html_instead_of_json_is_an_error(core: Core, poller_for) -> None:
    server = FeedServer(hf_days={"2024-11-28": b"<!DOCTYPE html><html><body>Maintenance</body></html>"})
    summary = await poller_for(server).poll_huggingface([date(2024, 11, 28)])
    assert summary.error is not None and "HTML" in summary.error
    assert (await feed_state(core, "huggingface:2024-11-28")).last_error == summary.error


async def test_poll_arxiv_rss(make_core: MakeCore, clock: FakeClock, poller_for) -> None:
    core = await make_core(PAPERWATCH_FEEDS__ARXIV__CATEGORIES="astro-ph,cs")
    server = FeedServer(rss={"astro-ph+cs": RSS_ALL.read_bytes()})
    summary = await poller_for(server, core).poll_arxiv()
    assert server.requests[0].url.path == "/rss/astro-ph+cs"
    assert summary.error is None
    assert summary.new == len(raw_entries(RSS_ALL))
    assert (await feed_state(core, "arxiv:astro-ph+cs")).last_success_at == clock.now()


async def test_poll_arxiv_error_feed_is_recorded(make_core: MakeCore, poller_for) -> None:
    core = await make_core(PAPERWATCH_FEEDS__ARXIV__CATEGORIES="astroph")
    server = FeedServer(
        rss={"astroph": (ARXIV_DIR / "rss_astroph-bad-archive-error_2024-11-28.xml").read_bytes()}
    )
    summary = await poller_for(server, core).poll_arxiv()
    assert summary.error is not None and "Feed error" in summary.error
    state = await feed_state(core, "arxiv:astroph")
    assert state.last_error == summary.error
    assert state.last_success_at is None


async def test_the_matcher_keeps_a_bounded_number_of_parsed_queries(core: Core) -> None:
    """Parsed queries are kept for the latest matches only; the compiled watches need none."""
    await core.watches.add_watch(ADMIN_A, channel_id=CH_A1, query="diffusion")
    for number in range(core.matcher.PARSED_KEPT + 500):  # queries of watches since removed
        core.matcher.parse(f"topic{number}")
    assert len(core.matcher._parsed) == core.matcher.PARSED_KEPT
    report = await core.ingestor.ingest(load_feed(JUNE))
    assert report.deliveries == len(expected_matches("diffusion", JUNE)) > 0
