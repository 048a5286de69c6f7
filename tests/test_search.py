"""Search through the full-text index: the same papers as matching every stored paper, always.

Every fixture feed is stored in a real database (a SQLite file; PostgreSQL too when
PAPERWATCH_TEST_PG_URL is set). For several hundred queries of every kind, built from the
fixtures' own words, the index-preselected search must return exactly the ids that the
reference matcher finds when it is run on every stored paper.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.db.candidates import Plan, driving_text, fetch_candidates, paper_of
from bot.db.engine import create_engine, session_factory
from bot.db.migrate import upgrade
from bot.db.models import PaperRow
from bot.db.repo import PaperRepository
from bot.db.search import candidate_filter, uses_index
from bot.domain.matcher import PaperWords, matches, paper_words
from bot.domain.paper import ARXIV, HF, Paper
from bot.domain.parser import parse_query
from bot.domain.query import Query
from bot.domain.text import words
from bot.services.core import Core
from tests.conftest import ALL_FEED_FILES, HF_OVERLAP, empty_database, load_feed, sqlite_url

NOW = datetime(2024, 11, 28, 18, 0, tzinfo=UTC)

# Papers whose text the databases' own tokenizers would read differently from the query
# language (casefold, NFKC, accents, scripts, long words, odd categories).
ODD_PAPERS = [
    Paper(
        "9901.00001",
        "Straße networks for ﬁne-tuning",
        "We study 𝐱-vectors and CAFÉ queries.",
        ("Ǆemal Ölçer",),
    ),
    Paper(
        "9901.00002", "Cafe models", "Plain cafe text about entities and a model.", ("Jane Doe", "Yann LeCun")
    ),
    Paper(
        "9901.00003",
        "Ωmega ΣΊΣΥΦΟΣ",
        "Greek ΣΊΣΥΦΟΣ sisyphos ς and Cherokee ᏣᎳᎩ text",
        categories=("math.GR",),
    ),
    Paper("9901.00004", "A" * 250 + " long word", "x" * 300 + " tail", categories=("weird.cat-1", "cs.CL")),
    Paper(
        "9901.00005",
        "Soft-NMS for GPT-4 and queries",
        "The query's status on classes.",
        categories=("cs.CV",),
    ),
]

FIXED_QUERIES = [
    "model",
    "models",
    "query",
    "queries",
    "status",
    "class",
    "strasse",
    "straße",
    "fine",
    "ﬁne-tuning",
    "x",
    "𝐱",
    "café",
    "cafe",
    "CAFÉ",
    "ǆemal",
    "author:ölçer",
    'author:"yann lecun"',
    "author:lecun",
    "σίσυφος",
    "ᏣᎳᎩ",
    "a" * 250,
    "a" * 210 + "*",
    "x" * 300,
    "soft-nms",
    "gpt-4",
    "category:weird.cat-1",
    "category:weird.*",
    "category:CS.cl",
    "category:cs.*",
    "category:math.*",
    "upvotes>=50",
    "upvotes<1 model",
    "upvotes=0 OR diffusion",
    "distill*",
    "title:distill*",
    '"knowledge distillation"',
    'title:"language model"',
    'abstract:"large language models"',
    "diffusion -video",
    "NOT video diffusion",
    "(video OR image) -diffusion",
    "agent* benchmark",
    "title:agent OR abstract:agents",
    "reasoning (math OR code) upvotes>=10",
    "-(video OR image) model",
    "category:cs.* -category:cs.CV",
    "model OR upvotes>=100",
]


# --- a real database with every fixture paper -------------------------------------------------


async def _store_fixtures(sessions: async_sessionmaker[AsyncSession]) -> None:
    moment = NOW - timedelta(days=len(ALL_FEED_FILES))
    for path in ALL_FEED_FILES:
        papers = load_feed(path).papers
        if not papers:
            continue
        async with sessions.begin() as session:
            await PaperRepository(session).upsert(papers, moment)
        moment += timedelta(days=1)
    async with sessions.begin() as session:
        await PaperRepository(session).upsert(ODD_PAPERS, NOW)


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """A migrated database: a SQLite file, or a fresh PostgreSQL schema."""
    async with empty_database(request.param, tmp_path, "pw_search") as found:
        await upgrade(found)
        yield found


@pytest.fixture
async def stored(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    sessions = session_factory(engine)
    await _store_fixtures(sessions)
    return sessions


async def all_papers(sessions: async_sessionmaker[AsyncSession]) -> list[Paper]:
    async with sessions() as session:
        return await PaperRepository(session).seen_since(datetime(1970, 1, 1, tzinfo=UTC), limit=10**9)


_TEXTS: dict[Paper, PaperWords] = {}


def _text(paper: Paper) -> PaperWords:
    """A paper's words, computed once per test session (the reference matcher is slow without)."""
    found = _TEXTS.get(paper)
    if found is None:
        found = _TEXTS[paper] = paper_words(paper)
    return found


def reference_ids(query: Query, papers: list[Paper], min_upvotes: int | None = None) -> set[str]:
    """The load-everything answer: the reference matcher on every stored paper."""
    return {p.arxiv_id for p in papers if matches(query, p, min_upvotes, _text(p))}


async def searched_ids(
    sessions: async_sessionmaker[AsyncSession],
    query: Query,
    *,
    since: datetime | None = None,
    min_upvotes: int | None = None,
    plan: Plan | None = None,
) -> tuple[set[str], set[str]]:
    """(candidate ids, exact matches among them) through the index, with no count bound.

    The candidates hold only the columns the query reads, so a column the matcher needs and
    the fetch left out shows as a missed match."""
    async with sessions() as session:
        found = await fetch_candidates(
            session, query, since=since, limit=10**6, min_upvotes=min_upvotes, plan=plan
        )
    assert found.complete
    if plan is not None and found.plan != plan:  # only a filter with no text every paper needs
        assert driving_text(candidate_filter(query, "sqlite"))[0] is None
    papers = [paper_of(row) for row in found.rows]
    return {p.arxiv_id for p in papers}, {
        p.arxiv_id for p in papers if matches(query, p, min_upvotes, _text(p))
    }


# --- queries of every kind from the fixtures' vocabulary ------------------------------------------


def generated_queries(papers: list[Paper], count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    vocabulary = sorted({w for p in papers for w in words(p.title) + words(p.abstract)[:60] if len(w) > 2})
    authors = sorted({name for p in papers for name in p.authors if words(name)})
    categories = sorted({c for p in papers for c in p.categories})

    def word() -> str:
        chosen = rng.choice(vocabulary)
        return chosen + "s" if rng.random() < 0.2 and not chosen.endswith("s") else chosen

    def phrase() -> str:
        paper = rng.choice(papers)
        found = words(paper.title if rng.random() < 0.5 else paper.abstract)
        start = rng.randrange(max(1, len(found) - 1))
        return '"' + " ".join(found[start : start + rng.randint(2, 3)]) + '"'

    def leaf() -> str:
        kind = rng.randrange(10)
        if kind == 0:
            return phrase()
        if kind == 1:
            return word()[: rng.randint(3, 6)] + "*"
        if kind == 2:
            return f"{rng.choice(['title', 'abstract'])}:{word()}"
        if kind == 3:
            name = rng.choice(authors)
            return f'author:"{name}"' if rng.random() < 0.5 else f"author:{rng.choice(words(name))}"
        if kind == 4 and categories:
            category = rng.choice(categories)
            return f"category:{category.split('.')[0]}.*" if rng.random() < 0.3 else f"category:{category}"
        if kind == 5:
            return f"upvotes{rng.choice(['>=', '>', '<', '<=', '='])}{rng.choice([0, 1, 5, 20, 100])}"
        return word()

    queries: list[str] = []
    while len(queries) < count:
        shape = rng.randrange(6)
        if shape == 0:
            text_ = leaf()
        elif shape == 1:
            text_ = f"{leaf()} {leaf()}"
        elif shape == 2:
            text_ = f"{leaf()} OR {leaf()}"
        elif shape == 3:
            text_ = f"{leaf()} -{leaf()}"
        elif shape == 4:
            text_ = f"({leaf()} OR {leaf()}) {leaf()}"
        else:
            text_ = f"{leaf()} NOT ({leaf()} OR {leaf()})"
        try:
            parse_query(text_)
        except Exception:
            continue
        queries.append(text_)
    return queries


# --- the index finds what the matcher finds ---------------------------------------------------------


async def test_indexed_search_equals_matching_every_stored_paper(
    engine: AsyncEngine, stored: async_sessionmaker[AsyncSession]
) -> None:
    papers = await all_papers(stored)
    assert len(papers) > 300
    queries = FIXED_QUERIES + generated_queries(papers, 400)
    narrowed = 0
    for raw in queries:
        query = parse_query(raw)
        expected = reference_ids(query, papers)
        candidates, found = await searched_ids(stored, query, plan="from the index")
        assert expected <= candidates, f"{raw!r}: the index missed {sorted(expected - candidates)[:5]}"
        assert found == expected, raw
        assert await searched_ids(stored, query, plan="in order") == (candidates, found), raw
        if uses_index(candidate_filter(query, engine.dialect.name)):
            narrowed += len(candidates) < len(papers)
    assert narrowed > len(queries) * 0.7  # the index did narrow most of them


async def test_odd_words_are_found_as_the_query_language_reads_them(
    stored: async_sessionmaker[AsyncSession],
) -> None:
    cases = {
        "strasse": {"9901.00001"},  # casefold: ß is ss
        "fine": {"9901.00001"},  # NFKC: the ﬁ ligature is f i
        "x": {"9901.00001"},  # NFKC: 𝐱 is x
        "café": {"9901.00001"},  # accents kept, case folded
        "cafe": {"9901.00002"},
        "entity": {"9901.00002"},  # entities → entity
        "author:ǆemal": {"9901.00001"},  # NFKC: the ǆ digraph is d ž
        "author:ölçer": {"9901.00001"},
        "σίσυφοσ": {"9901.00003"},  # final sigma casefolds to σ
        "category:weird.cat-1": {"9901.00004"},
        "a" * 250: {"9901.00004"},
        "x" * 300: {"9901.00004"},
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa*": {
            "9901.00004"
        },
    }
    for raw, wanted in cases.items():
        _, found = await searched_ids(stored, parse_query(raw))
        assert wanted <= found, raw
        assert {i for i in found if i.startswith("9901.")} == wanted, raw


async def test_time_window_and_upvote_floor_are_applied_in_the_database(
    stored: async_sessionmaker[AsyncSession],
) -> None:
    papers = await all_papers(stored)
    since = NOW - timedelta(days=4)
    recent = [p for p in papers if p.first_seen_at is not None and p.first_seen_at >= since]
    assert 0 < len(recent) < len(papers)
    for raw in ("model", "upvotes>=1", "diffusion OR agent*", "category:cs.*"):
        query = parse_query(raw)
        candidates, found = await searched_ids(stored, query, since=since, min_upvotes=3)
        assert candidates <= {p.arxiv_id for p in recent}
        assert found == reference_ids(query, recent, 3), raw


# --- the index stays in step with the stored papers --------------------------------------------------


async def test_upvote_repolls_and_merged_sources_keep_the_index_in_step(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    first = Paper(
        "2411.00001",
        "Sparse experts",
        "An abstract about routers.",
        ("Ada Lovelace",),
        sources=frozenset({HF}),
    )
    async with sessions.begin() as session:
        await PaperRepository(session).upsert([first], NOW)
    assert (await searched_ids(sessions, parse_query("router")))[1] == {"2411.00001"}

    repolled = replace(first, upvotes=42)
    async with sessions.begin() as session:
        outcome = await PaperRepository(session).upsert([repolled], NOW)
    assert [p.upvotes for p in outcome.changed] == [42]
    assert (await searched_ids(sessions, parse_query("router upvotes>=40")))[1] == {"2411.00001"}

    # the arXiv listing brings categories and a fuller abstract: the index follows the merge
    listed = replace(
        first,
        abstract="A longer abstract about gating networks.",
        categories=("cs.LG",),
        sources=frozenset({ARXIV}),
    )
    async with sessions.begin() as session:
        await PaperRepository(session).upsert([listed], NOW)
        merged = await PaperRepository(session).get("2411.00001")
    assert merged is not None and merged.sources == {HF, ARXIV}
    expected_router = {"2411.00001"} if "router" in " ".join(words(merged.abstract)) else set()
    assert (await searched_ids(sessions, parse_query("router*")))[1] == expected_router
    assert (await searched_ids(sessions, parse_query(f"{words(merged.abstract)[-1]} category:cs.LG")))[1] == {
        "2411.00001"
    }
    assert (await searched_ids(sessions, parse_query("author:lovelace")))[1] == {"2411.00001"}


async def test_a_removed_paper_leaves_the_index(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    async with sessions.begin() as session:
        await PaperRepository(session).upsert(ODD_PAPERS, NOW)
        await session.execute(text("DELETE FROM papers WHERE arxiv_id = '9901.00002'"))
    candidates, _ = await searched_ids(sessions, parse_query("cafe"))
    assert candidates == set()
    async with sessions() as session:
        left = await session.scalar(text("SELECT count(*) FROM paper_search"))
    assert left == len(ODD_PAPERS) - 1


async def test_vacuum_keeps_the_index_pointing_at_the_right_papers(tmp_path: Path) -> None:
    engine = create_engine(sqlite_url(tmp_path))
    await upgrade(engine)
    sessions = session_factory(engine)
    await _store_fixtures(sessions)
    async with sessions.begin() as session:  # holes in the ids, then VACUUM renumbers what it may
        await session.execute(
            text("DELETE FROM papers WHERE arxiv_id IN (SELECT arxiv_id FROM papers LIMIT 40)")
        )
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.exec_driver_sql("VACUUM")
    papers = await all_papers(sessions)
    for raw in ("model", "diffusion -video", '"language model"', "agent*"):
        query = parse_query(raw)
        assert (await searched_ids(sessions, query))[1] == reference_ids(query, papers), raw
    await engine.dispose()


async def test_the_migration_indexes_papers_stored_before_it(tmp_path: Path) -> None:
    engine = create_engine(sqlite_url(tmp_path))
    await upgrade(engine, "0002_claimed_content")
    feed = load_feed(HF_OVERLAP).papers
    async with engine.begin() as conn:
        await conn.execute(
            insert(PaperRow),
            [
                {
                    "arxiv_id": p.arxiv_id,
                    "title": p.title,
                    "abstract": p.abstract,
                    "authors": list(p.authors),
                    "categories": list(p.categories),
                    "sources": sorted(p.sources),
                    "ai_keywords": list(p.ai_keywords),
                    "upvotes": p.upvotes,
                    "comments": p.comments,
                    "first_seen_at": NOW,
                    "updated_at": NOW,
                }
                for p in feed
            ],
        )
    await upgrade(engine)
    sessions = session_factory(engine)
    papers = await all_papers(sessions)
    assert len(papers) == len({p.arxiv_id for p in feed})
    for raw in ("model", "video OR image", "upvotes>=20 agent*", f"author:{words(feed[0].authors[0])[-1]}"):
        query = parse_query(raw)
        expected = reference_ids(query, papers)
        assert (await searched_ids(sessions, query))[1] == expected, raw
    assert reference_ids(parse_query("model"), papers)
    await engine.dispose()


# --- the service: bounded answers say so -------------------------------------------------------------


async def test_search_that_stops_at_the_bound_says_how_far_it_looked(
    make_core: Callable[..., Awaitable[Core]],
) -> None:
    core = await make_core(PAPERWATCH_LIMITS__SEARCH_CANDIDATES="5")
    await core.ingestor.ingest(load_feed(HF_OVERLAP))
    everything = await all_papers(core.sessions)
    broad = await core.papers.search("upvotes>=0")
    assert not broad.complete and broad.examined == 5
    assert broad.bound is not None and "newest 5 papers" in broad.bound
    narrow_query = parse_query('"soft nms"')
    narrow = await core.papers.search('"soft nms"')
    assert narrow.complete and narrow.bound is None
    assert narrow.total == len(reference_ids(narrow_query, everything))
    preview = await core.papers.preview("upvotes>=0", days=7)
    assert not preview.complete and preview.bound is not None and "of the last 7 days" in preview.bound


async def test_service_search_equals_the_load_everything_answer(core: Core) -> None:
    for path in ALL_FEED_FILES:
        await core.ingestor.ingest(load_feed(path))
    papers = await all_papers(core.sessions)
    for raw in ("model", "agent* -video", 'title:"language model" OR category:cs.CL', "upvotes>=30"):
        expected = reference_ids(parse_query(raw), papers)
        found = await core.papers.search(raw, limit=10_000)
        assert found.complete
        assert {p.arxiv_id for p in found.papers} == expected, raw
        assert found.total == len(expected)
        dates = [(p.published_at or p.first_seen_at) for p in found.papers]
        assert dates == sorted(dates, reverse=True)  # newest first


async def test_each_query_reads_candidates_by_the_cheaper_plan(
    engine: AsyncEngine, stored: async_sessionmaker[AsyncSession]
) -> None:
    # on PostgreSQL a hit costs about a paper read in order, so the store must be large
    # compared with the bound for reading in order to pay off
    limit = 1000 if engine.dialect.name == "sqlite" else 20
    async with stored() as session:
        broad = await fetch_candidates(session, parse_query("model"), since=None, limit=limit)
        narrow = await fetch_candidates(session, parse_query('"soft nms"'), since=None, limit=limit)
        votes = await fetch_candidates(session, parse_query("upvotes>=1"), since=None, limit=limit)
    assert broad.plan == "in order" and len(broad.rows) > min(limit - 1, 100)
    assert narrow.plan == "from the index" and 0 < len(narrow.rows) < 10
    assert votes.plan == "in order" and not votes.narrowed
    assert set(broad.rows[0]._fields) == {
        "arxiv_id",
        "first_seen_at",
        "published_at",
        "upvotes",
        "title",
        "abstract",
    }
    assert set(votes.rows[0]._fields) == {"arxiv_id", "first_seen_at", "published_at", "upvotes"}


async def test_a_search_cut_by_the_bound_stops_once_it_has_the_papers_it_shows(
    make_core: Callable[..., Awaitable[Core]],
) -> None:
    core = await make_core(PAPERWATCH_LIMITS__SEARCH_CANDIDATES="400")
    for path in ALL_FEED_FILES:
        await core.ingestor.ingest(load_feed(path))
    query = parse_query("model OR models OR upvotes>=0")  # every paper: more than 400 candidates
    async with core.sessions() as session:
        candidates = await fetch_candidates(session, query, since=None, limit=400)
    assert not candidates.complete
    first = [paper_of(row) for row in candidates.rows[:100]]
    expected = sorted(
        (p for p in first if matches(query, p, None, _text(p))),
        key=lambda p: (-(p.published_at or p.first_seen_at or NOW).timestamp(), p.arxiv_id),
    )
    found = await core.papers.search(query.source)
    assert found.examined == 100 and not found.complete  # the first batch had 10 matches
    assert found.total == len(expected) and found.total_text == f"at least {len(expected)}"
    assert [p.arxiv_id for p in found.papers] == [p.arxiv_id for p in expected[:10]]
    assert all(p.abstract and p.authors for p in found.papers)  # the papers shown are read in full
    assert found.bound is not None and "newest 100 papers" in found.bound
    whole = await core.papers.search('"soft nms"')
    assert whole.complete and whole.total_text == str(whole.total)
