"""Storage: Alembic migrations on SQLite (and PostgreSQL when available), repositories, merging."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.db import repo as repo_module
from bot.db.deliveries import DeliveryRepository
from bot.db.engine import create_engine, session_factory
from bot.db.migrate import alembic_config, current_revision, upgrade
from bot.db.models import Base, DeliveryRow, PaperRow, TargetRow, WatchRow
from bot.db.repo import PaperRepository, TargetRepository, WatchRepository
from bot.db.search_index import search_tables
from bot.domain.paper import ARXIV, HF, Paper
from bot.services.core import Core
from tests.conftest import (
    ARXIV_DIR,
    HF_DIR,
    HF_OVERLAP,
    RSS_ALL,
    empty_database,
    load_feed,
    raw_entries,
    sqlite_url,
)

NOW = datetime(2024, 11, 28, 18, 0, tzinfo=UTC)
OVERLAP_IDS = {  # SOURCES.md: the 13 papers of hf_daily/2024-11-28.json also in the RSS capture
    "2411.17949",
    "2411.18613",
    "2411.17945",
    "2411.18279",
    "2411.17786",
    "2411.17787",
    "2411.18197",
    "2411.17769",
    "2411.18363",
    "2411.18462",
    "2411.17991",
    "2411.18412",
    "2411.18104",
}
TABLES = set(Base.metadata.tables)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


async def table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


# --- engines: a SQLite file always, PostgreSQL when PAPERWATCH_TEST_PG_URL is set -------------


@pytest.fixture
async def sqlite_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(sqlite_url(tmp_path))
    yield engine
    await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An engine on an empty database: a new SQLite file, or a fresh PostgreSQL schema."""
    async with empty_database(request.param, tmp_path, "pw_test") as engine:
        yield engine


# --- migrations ------------------------------------------------------------------------------


async def test_upgrade_creates_every_table_at_head(empty_engine: AsyncEngine) -> None:
    assert await table_names(empty_engine) == set()
    assert await current_revision(empty_engine) is None
    await upgrade(empty_engine)
    search = search_tables(empty_engine.dialect.name)
    assert await table_names(empty_engine) == TABLES | search | {"alembic_version"}
    assert await current_revision(empty_engine) == head_revision()


async def test_migrated_schema_matches_the_models(empty_engine: AsyncEngine) -> None:
    await upgrade(empty_engine)

    search = search_tables(empty_engine.dialect.name)

    def modelled(name: str | None, kind: str, _parent: object) -> bool:
        return not (kind == "table" and name in search)  # the search index is SQL the models do not hold

    def differences(conn: object) -> list[object]:
        context = MigrationContext.configure(  # type: ignore[arg-type]
            conn, opts={"compare_type": True, "include_name": modelled}
        )
        return compare_metadata(context, Base.metadata)

    async with empty_engine.connect() as conn:
        diff = await conn.run_sync(differences)
    assert diff == [], "the models and the migrations disagree; generate a migration"


async def test_upgrade_twice_is_a_no_op(sqlite_engine: AsyncEngine) -> None:
    await upgrade(sqlite_engine)

    async def schema() -> list[tuple[str, str]]:
        async with sqlite_engine.connect() as conn:
            rows = await conn.execute(text("SELECT name, sql FROM sqlite_master ORDER BY name"))
            return [tuple(row) for row in rows]

    before = await schema()
    await upgrade(sqlite_engine)
    assert await schema() == before
    assert await current_revision(sqlite_engine) == head_revision()


async def test_rows_survive_rerunning_upgrade(tmp_path: Path) -> None:
    engine = create_engine(sqlite_url(tmp_path))
    await upgrade(engine)
    papers = load_feed(HF_OVERLAP).papers
    sessions = session_factory(engine)
    async with sessions.begin() as session:
        await PaperRepository(session).upsert(papers, NOW)
        target = await TargetRepository(session).ensure_channel(1, 10, digest_time="09:00", timezone="UTC")
        watch = WatchRow(target_id=target.id, query="diffusion", created_by=5, created_at=NOW)
        session.add(watch)
        await session.flush()
        await DeliveryRepository(session).add_pending(
            [{"target_id": target.id, "paper_id": papers[0].arxiv_id, "watch_id": watch.id, "watch_ids": []}]
        )
    await engine.dispose()

    # a new process: a new engine on the same file, upgrade again, then read everything back
    engine = create_engine(sqlite_url(tmp_path))
    try:
        await upgrade(engine)
        sessions = session_factory(engine)
        async with sessions() as session:
            stored = await PaperRepository(session).get_many(p.arxiv_id for p in papers)
            assert stored == {p.arxiv_id: p for p in papers}
            assert len(list(await session.scalars(select(TargetRow)))) == 1
            assert [w.query for w in await session.scalars(select(WatchRow))] == ["diffusion"]
            deliveries = list(await session.scalars(select(DeliveryRow)))
            assert [(d.paper_id, d.status) for d in deliveries] == [(papers[0].arxiv_id, "pending")]
    finally:
        await engine.dispose()


async def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_engine: AsyncEngine) -> None:
    await upgrade(sqlite_engine)
    async with sqlite_engine.connect() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar_one().lower() == "wal"
        assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one() == 1
        assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar_one() > 0
        assert (await conn.execute(text("PRAGMA cache_size"))).scalar_one() == -256  # KiB, kept small
    sessions = session_factory(sqlite_engine)
    with pytest.raises(IntegrityError):
        async with sessions.begin() as session:
            session.add(WatchRow(target_id=999, query="orphan", created_by=1, created_at=NOW))


async def test_duplicate_target_paper_delivery_is_an_integrity_error(sqlite_engine: AsyncEngine) -> None:
    await upgrade(sqlite_engine)
    sessions = session_factory(sqlite_engine)
    paper = load_feed(HF_OVERLAP).papers[0]
    async with sessions.begin() as session:
        await PaperRepository(session).upsert([paper], NOW)
        target = await TargetRepository(session).ensure_channel(1, 10, digest_time="09:00", timezone="UTC")
        target_id = target.id
        session.add(DeliveryRow(target_id=target_id, paper_id=paper.arxiv_id))
    with pytest.raises(IntegrityError):
        async with sessions.begin() as session:
            session.add(DeliveryRow(target_id=target_id, paper_id=paper.arxiv_id))
    async with sessions() as session:
        # the repository's own insert ignores the duplicate instead
        assert (
            await DeliveryRepository(session).add_pending(
                [{"target_id": target_id, "paper_id": paper.arxiv_id}]
            )
            == 0
        )
        await session.commit()
        count = len(list(await session.scalars(select(DeliveryRow))))
    assert count == 1


# --- papers: round trip, merge, change detection ---------------------------------------------


def round_trip_samples() -> list[Paper]:
    """Every paper of one HF file of each schema era, plus arXiv RSS and both API layouts."""
    rss = load_feed(RSS_ALL).papers
    return [
        *load_feed(HF_DIR / "2024-06-21.json").papers,  # 2024 schema, LaTeX titles
        *load_feed(HF_DIR / "2025-07-15.json").papers,  # ai_summary, ai_keywords, github, project
        *load_feed(HF_DIR / "2025-12-25.json").papers,  # 358 authors
        *rss[:40],
        *[p for p in rss if p.announce_type == "cross"][:3],
        *load_feed(ARXIV_DIR / "api_search_testing_s0_m10_2026-04-12.xml").papers,
        *load_feed(ARXIV_DIR / "api_search_au-del_maestro_2016-10-09.xml").papers,
        *load_feed(ARXIV_DIR / "api_idlist_astro-ph_0601001_2026-05-11.xml").papers,  # old-style id
    ]


def assert_same_paper(stored: Paper | None, original: Paper) -> None:
    assert stored is not None, original.arxiv_id
    for name in Paper.__dataclass_fields__:
        if name == "first_seen_at":
            continue
        assert getattr(stored, name) == getattr(original, name), (original.arxiv_id, name)


async def test_papers_of_every_source_round_trip(empty_engine: AsyncEngine) -> None:
    await upgrade(empty_engine)
    samples = round_trip_samples()
    assert {HF, ARXIV} == {s for p in samples for s in p.sources}
    assert any("/" in p.arxiv_id for p in samples)  # the old-style id is among them
    assert max(len(p.authors) for p in samples) >= 358
    sessions = session_factory(empty_engine)
    async with sessions.begin() as session:
        outcome = await PaperRepository(session).upsert(samples, NOW)
    assert len(outcome.new) == len({p.arxiv_id for p in samples})
    assert outcome.changed == []
    async with sessions() as session:
        repo = PaperRepository(session)
        for original in samples:
            stored = await repo.get(original.arxiv_id)
            assert_same_paper(stored, original)
            assert stored is not None
            assert stored.first_seen_at == NOW
            assert stored.first_seen_at.tzinfo is not None
            if original.published_at is not None:
                assert stored.published_at is not None
                assert stored.published_at.utcoffset() == timedelta(0)


async def test_unicode_and_long_author_lists_survive(sqlite_engine: AsyncEngine) -> None:
    await upgrade(sqlite_engine)
    day = load_feed(HF_DIR / "2026-06-03.json").papers  # titles starting with Ψ and α
    assert any(p.title.startswith(("Ψ", "α")) for p in day)
    sessions = session_factory(sqlite_engine)
    async with sessions.begin() as session:
        await PaperRepository(session).upsert(day, NOW)
    async with sessions() as session:
        stored = await PaperRepository(session).get_many(p.arxiv_id for p in day)
    assert [stored[p.arxiv_id].title for p in day] == [p.title for p in day]


async def test_hf_and_rss_sightings_merge_into_one_row(empty_engine: AsyncEngine) -> None:
    await upgrade(empty_engine)
    hf = load_feed(HF_OVERLAP).papers
    rss = load_feed(RSS_ALL).papers
    hf_ids = {p.arxiv_id for p in hf}
    rss_ids = {p.arxiv_id for p in rss}
    assert hf_ids & rss_ids == OVERLAP_IDS
    sessions = session_factory(empty_engine)
    async with sessions.begin() as session:
        await PaperRepository(session).upsert(hf, NOW)
    async with sessions.begin() as session:
        outcome = await PaperRepository(session).upsert(rss, NOW + timedelta(hours=1))
    assert len(outcome.new) == len(rss_ids - hf_ids)
    assert {p.arxiv_id for p in outcome.changed} == OVERLAP_IDS  # they gained a source
    async with sessions() as session:
        repo = PaperRepository(session)
        assert await repo.count() == len(hf_ids | rss_ids)
        by_id_hf = {p.arxiv_id: p for p in hf}
        by_id_rss = {p.arxiv_id: p for p in rss}
        upvotes = {e.arxiv_id: e.upvotes for e in raw_entries(HF_OVERLAP)}
        for arxiv_id in OVERLAP_IDS:
            stored = await repo.get(arxiv_id)
            assert stored is not None
            assert stored.sources == {HF, ARXIV}
            assert stored.upvotes == upvotes[arxiv_id]  # the arXiv sighting has none; HF's count stays
            assert stored.categories == by_id_rss[arxiv_id].categories  # only arXiv knows them
            assert stored.url == f"https://huggingface.co/papers/{arxiv_id}"
            assert stored.first_seen_at == NOW  # first seen on HF, an hour before the RSS
            assert " ".join(stored.title.split()) == " ".join(by_id_hf[arxiv_id].title.split())
        rows = await session.scalars(select(PaperRow.arxiv_id).where(PaperRow.arxiv_id.in_(OVERLAP_IDS)))
        assert sorted(rows) == sorted(OVERLAP_IDS)


async def test_merge_order_does_not_matter_for_sources_and_upvotes(sqlite_engine: AsyncEngine) -> None:
    await upgrade(sqlite_engine)
    hf = [p for p in load_feed(HF_OVERLAP).papers if p.arxiv_id in OVERLAP_IDS]
    rss = [p for p in load_feed(RSS_ALL).papers if p.arxiv_id in OVERLAP_IDS]
    sessions = session_factory(sqlite_engine)
    async with sessions.begin() as session:
        await PaperRepository(session).upsert(rss, NOW)  # arXiv first this time
    async with sessions.begin() as session:
        await PaperRepository(session).upsert(hf, NOW + timedelta(hours=1))
    upvotes = {e.arxiv_id: e.upvotes for e in raw_entries(HF_OVERLAP)}
    async with sessions() as session:
        stored = await PaperRepository(session).get_many(OVERLAP_IDS)
    assert {k: (v.sources, v.upvotes) for k, v in stored.items()} == {
        k: (frozenset({HF, ARXIV}), upvotes[k]) for k in OVERLAP_IDS
    }


async def test_reupsert_with_more_upvotes_is_reported_as_changed(sqlite_engine: AsyncEngine) -> None:
    await upgrade(sqlite_engine)
    papers = load_feed(HF_OVERLAP).papers
    sessions = session_factory(sqlite_engine)
    async with sessions.begin() as session:
        await PaperRepository(session).upsert(papers, NOW)
    bumped = replace(papers[3], upvotes=papers[3].upvotes + 17)
    later = NOW + timedelta(hours=2)
    async with sessions.begin() as session:
        outcome = await PaperRepository(session).upsert([*papers[:3], bumped, *papers[4:]], later)
    assert outcome.new == []
    assert [p.arxiv_id for p in outcome.changed] == [bumped.arxiv_id]
    assert outcome.changed[0].upvotes == papers[3].upvotes + 17
    assert outcome.unchanged == len(papers) - 1
    async with sessions() as session:
        stored = await PaperRepository(session).get(bumped.arxiv_id)
        row = await session.get(PaperRow, bumped.arxiv_id)
    assert stored is not None and row is not None
    assert stored.upvotes == papers[3].upvotes + 17
    assert stored.first_seen_at == NOW  # first seen does not move
    assert row.updated_at == later


async def test_same_batch_upserted_again_is_unchanged(sqlite_engine: AsyncEngine) -> None:
    await upgrade(sqlite_engine)
    papers = load_feed(HF_DIR / "2025-09-30.json").papers
    sessions = session_factory(sqlite_engine)
    async with sessions.begin() as session:
        first = await PaperRepository(session).upsert(papers, NOW)
    async with sessions.begin() as session:
        second = await PaperRepository(session).upsert(papers, NOW + timedelta(hours=1))
    assert len(first.new) == len(raw_entries(HF_DIR / "2025-09-30.json")) == 50
    assert (second.new, second.changed, second.unchanged) == ([], [], 50)


async def test_core_open_migrates_the_configured_database(
    settings, db_url: str, clock, tmp_path: Path
) -> None:
    assert settings.database.url == db_url
    core = await Core.open(settings, clock=clock)
    try:
        assert await table_names(core.engine) == TABLES | search_tables("sqlite") | {"alembic_version"}
        assert await current_revision(core.engine) == head_revision()
    finally:
        await core.close()
    assert (tmp_path / "pw.db").is_file()


async def test_core_open_without_migrating_leaves_the_database_alone(
    make_settings, clock, tmp_path: Path
) -> None:
    settings = make_settings(PAPERWATCH_DATABASE__URL=sqlite_url(tmp_path / "bare"))
    core = await Core.open(settings, clock=clock, migrate=False)
    try:
        assert await table_names(core.engine) == set()
    finally:
        await core.close()


# --- the watches an ingest matches against ----------------------------------------------------


async def test_active_watches_are_read_in_slices_without_the_paused(
    empty_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More watches than one slice: every active one comes back once, by id, with its values."""
    monkeypatch.setattr(repo_module, "ACTIVE_SLICE", 7)
    await upgrade(empty_engine)
    sessions = session_factory(empty_engine)
    created = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    async with sessions.begin() as session:
        session.add_all([TargetRow(id=t, kind="channel", channel_id=100 + t) for t in (1, 2)])
        await session.flush()
        session.add_all(
            WatchRow(
                target_id=1 + i % 2,
                query=f"topic{i}",
                mode="instant" if i % 3 == 0 else "digest",
                min_upvotes=i if i % 4 == 0 else None,
                created_by=5,
                created_at=created + timedelta(minutes=i),
                paused=i % 5 == 0,
            )
            for i in range(1, 31)
        )
    async with sessions() as session:
        active = await WatchRepository(session).active()
    kept = [i for i in range(1, 31) if i % 5 != 0]
    assert [w.query for w in active] == [f"topic{i}" for i in kept]
    assert [w.id for w in active] == sorted(w.id for w in active)
    for watch, i in zip(active, kept, strict=True):
        assert watch.target_id == 1 + i % 2
        assert watch.mode == ("instant" if i % 3 == 0 else "digest")
        assert watch.min_upvotes == (i if i % 4 == 0 else None)
        assert watch.created_at == created + timedelta(minutes=i)
