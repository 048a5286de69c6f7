"""Feedback storage: reading lists, 👍 / 👎, recommendation settings, on SQLite and PostgreSQL.

Everything runs through the real service on a migrated database (a SQLite file, and a fresh
PostgreSQL schema when PAPERWATCH_TEST_PG_URL is set) holding a real fixture day's papers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Connection, delete, func, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.db.engine import session_factory
from bot.db.feedback import feedback_of_users
from bot.db.migrate import alembic_config, upgrade
from bot.db.models import Base, DeliveryRow, FeedbackRow, PaperRow, SavedPaperRow, TargetRow
from bot.db.repo import PaperRepository
from bot.domain.paper import Paper
from bot.services.access import NotFound, UserError
from bot.services.feedback import MIN_POSITIVES, FeedbackService
from tests.conftest import HF_OVERLAP, FakeClock, empty_database, load_feed, raw_entries

ALICE = 111_111_111_111_111_111
BOB = 222_222_222_222_222_222
NOW = datetime(2024, 11, 28, 18, 0, tzinfo=UTC)
FEED_IDS = [entry.arxiv_id for entry in raw_entries(HF_OVERLAP)]
"""The fixture day's ids, read from the file itself."""
UNSTORED = "2401.00001"
assert UNSTORED not in FEED_IDS


# --- engines --------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
async def bare_engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An engine on an empty database: a new SQLite file, or a fresh PostgreSQL schema."""
    async with empty_database(request.param, tmp_path, "pw_feedback") as engine:
        yield engine


@pytest.fixture
async def sessions(bare_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """A migrated database holding the papers of the 2024-11-28 Hugging Face day."""
    await upgrade(bare_engine)
    factory = session_factory(bare_engine)
    async with factory.begin() as session:
        await PaperRepository(session).upsert(load_feed(HF_OVERLAP).papers, NOW)
    return factory


@pytest.fixture
def make_service(
    sessions: async_sessionmaker[AsyncSession], make_settings: Callable[..., Settings]
) -> Callable[..., FeedbackService]:
    def build(clock: FakeClock | None = None, **environ: str) -> FeedbackService:
        return FeedbackService(sessions, make_settings(**environ), clock or FakeClock(NOW))

    return build


@pytest.fixture
def service(make_service: Callable[..., FeedbackService]) -> FeedbackService:
    return make_service()


async def count_rows(sessions: async_sessionmaker[AsyncSession], model: type[Base]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def ids(page: list[tuple[Paper, datetime]]) -> list[str]:
    return [paper.arxiv_id for paper, _ in page]


# --- the reading list -----------------------------------------------------------------------------


async def test_saving_twice_says_already_saved_and_keeps_one_row(
    service: FeedbackService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    paper, already = await service.save(ALICE, FEED_IDS[0])
    assert (paper.arxiv_id, already) == (FEED_IDS[0], False)
    paper, already = await service.save(ALICE, f"https://arxiv.org/abs/{FEED_IDS[0]}v2")
    assert (paper.arxiv_id, already) == (FEED_IDS[0], True)
    assert await count_rows(sessions, SavedPaperRow) == 1
    assert (await service.feedback_of(ALICE)).positives == [FEED_IDS[0]]


async def test_unsave_takes_the_paper_off_and_a_second_unsave_is_refused(service: FeedbackService) -> None:
    await service.save(ALICE, FEED_IDS[0])
    await service.save(ALICE, FEED_IDS[1])
    removed = await service.unsave(ALICE, FEED_IDS[0])
    assert removed.arxiv_id == FEED_IDS[0]
    page, total = await service.saved(ALICE)
    assert (ids(page), total) == ([FEED_IDS[1]], 1)
    with pytest.raises(NotFound, match=FEED_IDS[0].replace(".", r"\.")):
        await service.unsave(ALICE, FEED_IDS[0])


async def test_saved_list_is_newest_first_and_pages(make_service: Callable[..., FeedbackService]) -> None:
    clock = FakeClock(NOW)
    service = make_service(clock)
    chosen = FEED_IDS[:12]
    for arxiv_id in chosen:
        clock.advance(minutes=1)
        await service.save(ALICE, arxiv_id)
    newest_first = list(reversed(chosen))
    pages = []
    for offset in range(0, 15, 5):
        page, total = await service.saved(ALICE, offset, 5)
        assert total == len(chosen)
        pages.append(ids(page))
    assert pages == [newest_first[:5], newest_first[5:10], newest_first[10:]]
    first, _ = await service.saved(ALICE, 0, 2)
    assert [saved_at for _, saved_at in first] == [NOW + timedelta(minutes=12), NOW + timedelta(minutes=11)]


async def test_unknown_or_malformed_papers_are_refused_naming_the_id(
    service: FeedbackService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    for attempt in (service.save(ALICE, UNSTORED), service.rate(ALICE, UNSTORED, 1)):
        with pytest.raises(NotFound, match=UNSTORED.replace(".", r"\.")):
            await attempt
    with pytest.raises(UserError, match="not an arXiv id"):
        await service.save(ALICE, "not a paper")
    with pytest.raises(UserError, match="not an arXiv id"):
        await service.rate(ALICE, "<@123>", -1)
    assert await count_rows(sessions, SavedPaperRow) == 0
    assert await count_rows(sessions, FeedbackRow) == 0


async def test_a_full_reading_list_refuses_a_new_paper_but_not_a_saved_one(
    make_service: Callable[..., FeedbackService],
) -> None:
    service = make_service(PAPERWATCH_LIMITS__SAVED_PER_USER="2")
    await service.save(ALICE, FEED_IDS[0])
    await service.save(ALICE, FEED_IDS[1])
    with pytest.raises(UserError, match=r"already holds 2 papers"):
        await service.save(ALICE, FEED_IDS[2])
    assert (await service.save(ALICE, FEED_IDS[1]))[1] is True
    await service.save(BOB, FEED_IDS[2])  # the cap is per person
    await service.unsave(ALICE, FEED_IDS[0])
    assert (await service.save(ALICE, FEED_IDS[2]))[1] is False


# --- 👍 / 👎 ----------------------------------------------------------------------------------------


async def test_removing_a_like_forgets_it(
    service: FeedbackService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    assert await service.rate(ALICE, FEED_IDS[0], 1, channel_id=42) == 0
    assert (await service.feedback_of(ALICE)).positives == [FEED_IDS[0]]
    assert await service.rate(ALICE, FEED_IDS[0], 0) == 1
    feedback = await service.feedback_of(ALICE)
    assert (feedback.positives, feedback.negatives) == ([], [])
    assert await count_rows(sessions, FeedbackRow) == 0
    assert await service.rate(ALICE, FEED_IDS[0], 0) == 0  # nothing left to remove


async def test_a_dislike_replaces_a_like(
    make_service: Callable[..., FeedbackService], sessions: async_sessionmaker[AsyncSession]
) -> None:
    clock = FakeClock(NOW)
    service = make_service(clock)
    await service.rate(ALICE, FEED_IDS[0], 1, channel_id=42)
    clock.advance(hours=2)
    assert await service.rate(ALICE, FEED_IDS[0], -1) == 1
    feedback = await service.feedback_of(ALICE)
    assert (feedback.positives, feedback.negatives) == ([], [FEED_IDS[0]])
    async with sessions() as session:
        rows = list(await session.scalars(select(FeedbackRow)))
    assert [(r.user_id, r.paper_id, r.value, r.channel_id) for r in rows] == [(ALICE, FEED_IDS[0], -1, None)]
    assert rows[0].created_at == NOW + timedelta(hours=2)
    with pytest.raises(UserError):
        await service.rate(ALICE, FEED_IDS[0], 2)


async def test_a_dislike_outweighs_a_save(service: FeedbackService) -> None:
    await service.save(ALICE, FEED_IDS[0])
    await service.save(ALICE, FEED_IDS[1])
    await service.rate(ALICE, FEED_IDS[1], 1)  # liked and saved: one positive
    await service.rate(ALICE, FEED_IDS[0], -1)
    feedback = await service.feedback_of(ALICE)
    assert (feedback.positives, feedback.negatives) == ([FEED_IDS[1]], [FEED_IDS[0]])


async def test_one_persons_feedback_is_never_anothers(
    service: FeedbackService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await service.save(ALICE, FEED_IDS[0])
    await service.rate(ALICE, FEED_IDS[1], 1)
    await service.rate(ALICE, FEED_IDS[2], -1)
    await service.rate(BOB, FEED_IDS[3], 1)
    bob = await service.feedback_of(BOB)
    assert (bob.positives, bob.negatives) == ([FEED_IDS[3]], [])
    assert await service.saved(BOB) == ([], 0)
    with pytest.raises(NotFound):
        await service.unsave(BOB, FEED_IDS[0])
    assert await service.rate(BOB, FEED_IDS[1], 0) == 0  # removing Bob's vote leaves Alice's
    alice = await service.feedback_of(ALICE)
    assert (alice.positives, alice.negatives) == (sorted(FEED_IDS[:2]), [FEED_IDS[2]])
    async with sessions() as session:
        both = await feedback_of_users(session, [ALICE, BOB, 7])
    assert both[ALICE] == alice
    assert both[BOB] == bob
    assert (both[7].positives, both[7].negatives) == ([], [])


async def test_a_removed_paper_takes_its_feedback_with_it(
    service: FeedbackService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await service.save(ALICE, FEED_IDS[0])
    await service.rate(ALICE, FEED_IDS[0], 1)
    await service.rate(BOB, FEED_IDS[1], -1)
    async with sessions.begin() as session:
        await session.execute(delete(PaperRow).where(PaperRow.arxiv_id == FEED_IDS[0]))
    assert await count_rows(sessions, SavedPaperRow) == 0
    assert await count_rows(sessions, FeedbackRow) == 1


# --- recommendation settings ----------------------------------------------------------------------


async def test_recommendations_need_three_positives(
    service: FeedbackService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    status = await service.set_recommend(ALICE, True)
    assert (status.on, status.per_day, status.positives, status.needed) == (True, 5, 0, MIN_POSITIVES)
    assert not status.sending
    await service.save(ALICE, FEED_IDS[0])
    await service.rate(ALICE, FEED_IDS[1], 1)
    await service.rate(ALICE, FEED_IDS[2], -1)
    status = await service.recommend_status(ALICE)
    assert (status.positives, status.needed) == (2, 1)
    await service.save(ALICE, FEED_IDS[3])
    status = await service.set_recommend(ALICE, True, per_day=12)
    assert (status.on, status.per_day, status.needed, status.sending) == (True, 12, 0, True)
    async with sessions() as session:
        target = await session.scalar(select(TargetRow).where(TargetRow.user_id == ALICE))
    assert target is not None
    assert (target.recommend, target.recommend_per_day) == (True, 12)
    assert target.next_digest_at is not None and target.next_digest_at > NOW  # the DM schedule runs
    status = await service.set_recommend(ALICE, False)
    assert (status.on, status.per_day) == (False, 12)
    assert not (await service.recommend_status(ALICE)).on


async def test_recommend_settings_are_checked_and_off_creates_nothing(
    service: FeedbackService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    for per_day in (0, 26, -3):
        with pytest.raises(UserError, match="from 1 to 25"):
            await service.set_recommend(ALICE, True, per_day)
    status = await service.set_recommend(BOB, False)
    assert (status.on, status.needed) == (False, MIN_POSITIVES)
    assert await count_rows(sessions, TargetRow) == 0


# --- the migration --------------------------------------------------------------------------------


async def test_upgrading_a_populated_database_keeps_its_rows(bare_engine: AsyncEngine) -> None:
    await upgrade(bare_engine, "0003_paper_search")
    factory = session_factory(bare_engine)
    papers = load_feed(HF_OVERLAP).papers
    async with factory.begin() as session:
        await PaperRepository(session).upsert(papers, NOW)
    # rows written as that revision's schema had them; SQLite keeps naive UTC text
    now = NOW.replace(tzinfo=None) if bare_engine.dialect.name == "sqlite" else NOW
    async with bare_engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO targets (id, kind, guild_id, channel_id, user_id, digest_time, timezone,"
                " weekdays, digest_paused, paused_notice_sent, created_at)"
                " VALUES (1, 'user', NULL, 0, :user, '09:00', 'UTC', 127, :no, :no, :now)"
            ),
            {"user": ALICE, "no": False, "now": now},
        )
        await conn.execute(
            text(
                "INSERT INTO deliveries (target_id, paper_id, watch_ids, matched_terms, mode, status,"
                " attempts, created_at) VALUES (1, :paper, '[]', '[]', 'digest', 'pending', 0, :now)"
            ),
            {"paper": FEED_IDS[0], "now": now},
        )
        searchable = await conn.scalar(text("SELECT count(*) FROM paper_search"))
    await upgrade(bare_engine)
    async with bare_engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM papers")) == len(set(FEED_IDS))
        assert await conn.scalar(text("SELECT count(*) FROM paper_search")) == searchable
        target = (await conn.execute(text("SELECT user_id, recommend, recommend_per_day FROM targets"))).one()
        assert (target[0], bool(target[1]), target[2]) == (ALICE, False, 5)
        delivery = (await conn.execute(text("SELECT paper_id, reason FROM deliveries"))).one()
        assert tuple(delivery) == (FEED_IDS[0], None)
    service = FeedbackService(factory, Settings(), FakeClock(NOW))
    await service.save(ALICE, FEED_IDS[0])
    assert (await service.set_recommend(ALICE, True)).needed == MIN_POSITIVES - 1


async def test_the_migration_downgrades_and_upgrades_again(bare_engine: AsyncEngine) -> None:
    await upgrade(bare_engine)
    factory = session_factory(bare_engine)
    async with factory.begin() as session:
        await PaperRepository(session).upsert(load_feed(HF_OVERLAP).papers[:1], NOW)
        target = TargetRow(kind="user", user_id=ALICE, recommend=True)
        session.add(target)
        await session.flush()
        session.add(DeliveryRow(target_id=target.id, paper_id=FEED_IDS[0], reason="close to a liked paper"))
    config = alembic_config(bare_engine.url.render_as_string(hide_password=False))

    def downgrade(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.downgrade(config, "0003_paper_search")

    async with bare_engine.begin() as conn:
        await conn.run_sync(downgrade)
        tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    assert not {"feedback", "saved_papers"} & tables
    async with bare_engine.connect() as conn:  # the tables that lost a column kept their rows
        assert (await conn.execute(text("SELECT user_id FROM targets"))).scalars().all() == [ALICE]
        assert (await conn.execute(text("SELECT paper_id FROM deliveries"))).scalars().all() == [FEED_IDS[0]]
    await upgrade(bare_engine)
    service = FeedbackService(factory, Settings(), FakeClock(NOW))
    assert (await service.save(ALICE, FEED_IDS[0]))[1] is False
