"""Shared fixtures: a migrated database in a temp file, settings, a controllable clock, real feeds.

Everything here is real: settings come from `load_settings`, the database is a SQLite file
migrated by Alembic, and feeds are the captured responses in `tests/fixtures/feeds/`.

The second half holds a small *independent* reading of the fixtures (plain `json` and
`ElementTree`) and of the word rules of docs/queries.md, so tests can derive expected values
from the data and the documented rules instead of from the code under test.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from uuid import uuid4

import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import Settings, load_settings
from bot.db.engine import create_engine
from bot.domain.paper import FeedResult
from bot.feeds.detect import parse_feed_file
from bot.services.core import Core

# `make test` is a gate: the property tests draw the same examples on every run, so a
# failure names a change, not a lucky draw. `HYPOTHESIS_PROFILE=explore` draws new ones.
hypothesis_settings.register_profile("gate", derandomize=True)
hypothesis_settings.register_profile("explore", derandomize=False, max_examples=500)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "gate"))

FEEDS = Path(__file__).resolve().parent / "fixtures" / "feeds"
HF_DIR = FEEDS / "hf_daily"
ARXIV_DIR = FEEDS / "arxiv"
RSS_ALL = ARXIV_DIR / "rss_all-archives_2024-11-28.xml"
HF_OVERLAP = HF_DIR / "2024-11-28.json"
ALL_FEED_FILES = sorted(p for p in FEEDS.glob("*/*") if p.suffix in (".json", ".xml"))

START = datetime(2024, 11, 28, 17, 30, tzinfo=UTC)
"""Where every FakeClock starts: shortly after the 2024-11-28 HF capture (17:07 UTC)."""

TOKEN = "MTIz.fake-token-value.ABCdef_ghiJKL"
"""A made-up token: tests look for it in every output."""


class FakeClock:
    """A clock the test moves by hand; always timezone-aware UTC."""

    def __init__(self, start: datetime = START) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta | None = None, **parts: float) -> datetime:
        self._now += delta if delta is not None else timedelta(**parts)
        return self._now

    def set(self, moment: datetime) -> datetime:
        self._now = moment.astimezone(UTC)
        return self._now


@cache
def _parsed(path: Path) -> FeedResult:
    return parse_feed_file(path)


def load_feed(name: str | Path) -> FeedResult:
    """A real fixture feed parsed by `bot.feeds.detect.parse_feed_file` (cached; do not mutate).

    `name` is a path, or a name relative to tests/fixtures/feeds/ (`hf_daily/2024-11-28.json`).
    """
    path = name if isinstance(name, Path) else FEEDS / name
    result = _parsed(path)
    return FeedResult(papers=list(result.papers), skipped=list(result.skipped), error=result.error)


def sqlite_url(directory: Path) -> str:
    return f"sqlite+aiosqlite:///{directory}/pw.db"


PG_ENV = "PAPERWATCH_TEST_PG_URL"


@contextlib.asynccontextmanager
async def empty_database(kind: str, directory: Path, prefix: str) -> AsyncIterator[AsyncEngine]:
    """An engine on an empty database: a new SQLite file in `directory`, or a fresh PostgreSQL
    schema named `prefix_…` (dropped afterwards); skips when PostgreSQL is not configured."""
    if kind == "sqlite":
        engine = create_engine(sqlite_url(directory))
        try:
            yield engine
        finally:
            await engine.dispose()
        return
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is not set (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test)")
    schema = f"{prefix}_{uuid4().hex[:12]}"
    admin = create_engine(url)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = create_engine(url)

    @event.listens_for(engine.sync_engine, "connect")
    def _use_schema(dbapi_connection: object, _record: object) -> None:
        # outside any transaction, so a pool rollback cannot undo it
        dbapi_connection.run_async(  # type: ignore[attr-defined]
            lambda raw: raw.execute(f'SET search_path TO "{schema}"')
        )

    try:
        yield engine
    finally:
        await engine.dispose()
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


def base_environ(directory: Path, **overrides: str) -> dict[str, str]:
    """Environment for `load_settings`: a temp SQLite file plus `PAPERWATCH_…` overrides."""
    environ = {"PAPERWATCH_DATABASE__URL": sqlite_url(directory)}
    environ.update(overrides)
    return environ


@pytest.fixture
def isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in the test's temp dir, so a developer's ./config.toml is never picked up."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PAPERWATCH_CONFIG", raising=False)
    return tmp_path


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return sqlite_url(tmp_path)


@pytest.fixture
def make_settings(tmp_path: Path, isolated_cwd: Path) -> Callable[..., Settings]:
    """Settings from `load_settings(environ=…)`; keyword arguments are extra variables."""

    def build(**environ: str) -> Settings:
        return load_settings(environ=base_environ(tmp_path, **environ))

    return build


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
async def make_core(
    make_settings: Callable[..., Settings], clock: FakeClock
) -> AsyncIterator[Callable[..., Awaitable[Core]]]:
    """Open a migrated Core on the temp database; extra keywords are `PAPERWATCH_…` variables."""
    opened: list[Core] = []

    async def build(**environ: str) -> Core:
        core = await Core.open(make_settings(**environ), clock=clock)
        opened.append(core)
        return core

    yield build
    for core in opened:
        await core.close()


@pytest.fixture
async def core(make_core: Callable[..., Awaitable[Core]]) -> Core:
    return await make_core()


# --- an independent reading of the fixtures and of docs/queries.md ----------------------------

_WORD = re.compile(r"[^\W_]+")
_SPACE = re.compile(r"\s+")


def spec_words(text: str) -> list[str]:
    """docs/queries.md: NFKC + casefold, then split on anything that is not a letter or digit."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def spec_stem(word: str) -> str:
    """The singular/plural folding of docs/queries.md, written from its wording."""
    if len(word) < 3 or not word.endswith("s"):
        return word
    if word.endswith(("us", "ss")):
        return word
    if word.endswith("ies") and len(word) > 3 and word[-4] not in "ae":
        return word[:-3] + "y"
    if word.endswith(("aes", "ees", "oes", "ies")):
        return word
    return word[:-1]


def flat(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


@dataclass(frozen=True)
class RawEntry:
    """What a fixture file itself says about one paper, read without the bot's parsers."""

    arxiv_id: str
    title: str
    abstract: str
    upvotes: int = 0
    published: str = ""


def term_matches(term: str, entry: RawEntry) -> bool:
    """A bare term (docs/queries.md): some title or abstract word folds to the same singular."""
    folded = spec_stem(spec_words(term)[0])
    return any(spec_stem(w) == folded for w in spec_words(entry.title) + spec_words(entry.abstract))


def _strip_version(raw: str) -> str:
    return re.sub(r"v\d+$", "", raw)


@cache
def raw_entries(path: Path) -> tuple[RawEntry, ...]:
    """The papers of a fixture file in file order, first sighting of each id."""
    if path.suffix == ".json":
        entries = []
        for item in json.loads(path.read_bytes()):
            paper = item["paper"]
            entries.append(
                RawEntry(
                    arxiv_id=paper["id"],
                    title=flat(paper.get("title") or item.get("title", "")),
                    abstract=flat(paper.get("summary") or item.get("summary", "")),
                    upvotes=int(paper.get("upvotes", 0)),
                    published=paper.get("publishedAt", ""),
                )
            )
    else:
        root = ET.fromstring(path.read_bytes())
        entries = []
        if root.tag == "rss":
            for item in root.iter("item"):
                link = item.findtext("link", "")
                description = item.findtext("description", "")
                entries.append(
                    RawEntry(
                        arxiv_id=link.rsplit("/abs/", 1)[1],
                        title=flat(item.findtext("title", "")),
                        abstract=flat(description.partition("Abstract:")[2]),
                    )
                )
        else:
            atom = "{http://www.w3.org/2005/Atom}"
            for item in root.iter(f"{atom}entry"):
                title = flat(item.findtext(f"{atom}title", ""))
                entry_id = item.findtext(f"{atom}id", "")
                if "/abs/" not in entry_id:  # the API's "Error" entry is not a paper
                    continue
                entries.append(
                    RawEntry(
                        arxiv_id=_strip_version(entry_id.rsplit("/abs/", 1)[1]),
                        title=title,
                        abstract=flat(item.findtext(f"{atom}summary", "")),
                    )
                )
    seen: dict[str, RawEntry] = {}
    for entry in entries:
        seen.setdefault(entry.arxiv_id, entry)
    return tuple(seen.values())


def expected_matches(term: str, path: Path) -> list[str]:
    """Ids of `path`'s papers that the bare `term` matches, in file order."""
    return [e.arxiv_id for e in raw_entries(path) if term_matches(term, e)]
