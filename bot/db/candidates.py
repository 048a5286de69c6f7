"""The candidates of a query: the newest stored papers its index filter lets through.

`bot.db.search` turns a query into a filter that finds every paper the query matches (and
maybe more). This module reads the newest `limit` papers that pass it, by one of two plans,
chosen per query from how many papers the full-text index finds:

- *from the index*: the index lists its hits, each hit is looked up and the hits are sorted
  newest first. It costs in proportion to the hits, so it serves a selective query;
- *in order*: the papers are read newest first along `ix_papers_seen_order` (first seen, id,
  upvotes), each checked against the filter, until `limit` have passed. It costs in
  proportion to the papers read, about `limit × papers / hits`, so it serves a broad query,
  a query the index cannot narrow, and a short time window.

The index is first asked for at most `threshold + 1` hits: fewer means the first plan, and
those hits are all of them. Both plans give the same papers in the same order (first seen,
newest first, then id), so the choice changes the time only.

Only the columns the query's matcher reads are fetched (`columns_read`): a `category:`
search does not carry 1,000 abstracts. The papers shown are read in full afterwards
(`full_papers`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from math import isqrt
from typing import Any, Literal, TypeAlias

from sqlalchemy import Row, String, Text, bindparam, func, literal_column, select, text, type_coerce
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import PaperRow
from bot.db.search import AllOf, Filter, TextFilter, VotesFilter, candidate_filter, uses_index
from bot.db.search_index import json_list
from bot.domain.paper import Paper
from bot.domain.query import And, Category, Not, Or, Phrase, Prefix, Query, Term, Upvotes

ORDER_COLUMNS = ("arxiv_id", "first_seen_at", "published_at", "upvotes")
"""Always fetched: the id, what the answers are sorted by, and upvotes."""
TEXT_COLUMNS = ("title", "abstract", "authors", "categories")
ALL_COLUMNS = (
    *ORDER_COLUMNS,
    *TEXT_COLUMNS,
    "sources",
    "comments",
    "ai_summary",
    "ai_keywords",
    "github_url",
    "project_url",
    "hf_date",
    "announce_type",
    "version",
)
_JSON_COLUMNS = frozenset({"authors", "sources", "categories", "ai_keywords"})
_FIELD_COLUMNS = {
    None: ("title", "abstract"),
    "title": ("title",),
    "abstract": ("abstract",),
    "author": ("authors",),
}

# What one hit costs the from-the-index plan, in papers read by the in-order plan (measured on
# 100,000 papers: SQLite reads a paper along the covering index for a fifth of a hit's lookups;
# PostgreSQL checks a paper's text vector in about the time a hit takes).
_HIT_COST = {"sqlite": 5, "postgresql": 1}
_FEWEST_HITS = 50
"""Below this many hits worth looking up, the papers are read in order without asking the index."""


def columns_read(query: Query) -> tuple[str, ...]:
    """The paper columns the matcher reads to decide `query` (every column for a leaf it does
    not know, such as `like:`, whose score needs the whole paper)."""
    found: set[str] = set()
    stack: list[object] = [query.root]
    while stack:
        node = stack.pop()
        if isinstance(node, And | Or):
            stack.extend(node.children)
        elif isinstance(node, Not):
            stack.append(node.child)
        elif isinstance(node, Term | Phrase | Prefix):
            found.update(_FIELD_COLUMNS[node.field])
        elif isinstance(node, Category):
            found.add("categories")
        elif not isinstance(node, Upvotes):
            return ALL_COLUMNS
    return (*ORDER_COLUMNS, *(c for c in TEXT_COLUMNS if c in found))


# --- the filter as SQL -------------------------------------------------------------------------

_COMPARISONS: dict[str, str] = {">=": ">=", ">": ">", "<=": "<=", "<": "<", "=": "="}
_TEXT_IN_ORDER = {
    # the paper's index entry, found through its id, is one of the hits
    "sqlite": (
        "(SELECT s.doc_id FROM paper_search s WHERE s.arxiv_id = p.arxiv_id) IN "
        "(SELECT rowid FROM papers_fts WHERE papers_fts MATCH :{param})"
    ),
    "postgresql": (
        "EXISTS (SELECT 1 FROM paper_search s WHERE s.arxiv_id = p.arxiv_id "
        "AND s.document @@ CAST(:{param} AS tsquery))"
    ),
}
_HITS = {
    "sqlite": (
        "SELECT s.arxiv_id FROM paper_search s WHERE s.doc_id IN "
        "(SELECT rowid FROM papers_fts WHERE papers_fts MATCH :t) LIMIT :most"
    ),
    "postgresql": "SELECT s.arxiv_id FROM paper_search s WHERE s.document @@ CAST(:t AS tsquery)",
}
_PG_ESTIMATE = "EXPLAIN (FORMAT JSON) SELECT 1 FROM paper_search s WHERE s.document @@ CAST(:t AS tsquery)"


def _dialect(session: AsyncSession) -> str:
    name = session.get_bind().dialect.name
    return "sqlite" if name == "sqlite" else "postgresql"


def filter_sql(found: Filter, dialect: str, params: dict[str, Any]) -> str:
    """SQL for `found` checked on one paper `p` (the in-order form); values go into `params`."""
    if isinstance(found, VotesFilter):
        name = f"v{len(params)}"
        params[name] = found.value
        return f"p.upvotes {_COMPARISONS[found.op]} :{name}"
    if isinstance(found, TextFilter):
        name = f"t{len(params)}"
        params[name] = found.expression
        return _TEXT_IN_ORDER[dialect].format(param=name)
    joiner = " AND " if isinstance(found, AllOf) else " OR "
    return "(" + joiner.join(filter_sql(child, dialect, params) for child in found.children) + ")"


def driving_text(found: Filter | None) -> tuple[TextFilter | None, list[Filter]]:
    """The text condition every candidate must meet, and the rest of the filter."""
    if isinstance(found, TextFilter):
        return found, []
    if isinstance(found, AllOf):
        for index, child in enumerate(found.children):
            if isinstance(child, TextFilter):
                return child, [*found.children[:index], *found.children[index + 1 :]]
    return None, []


async def _paper_count(session: AsyncSession, dialect: str, since: datetime | None) -> int:
    """About how many stored papers there are (first seen at `since` or later)."""
    if since is not None:
        found = await session.scalar(select(func.count()).select_from(_P).where(_P.c.first_seen_at >= since))
    elif dialect == "sqlite":
        found = await session.scalar(text("SELECT max(rowid) FROM papers"))
    else:
        found = await session.scalar(text("SELECT reltuples FROM pg_class WHERE oid = to_regclass('papers')"))
        if found is None or found < 0:  # never analysed
            found = await session.scalar(select(func.count()).select_from(_P))
    return int(found or 0)


# --- fetching ------------------------------------------------------------------------------------

Plan: TypeAlias = Literal["from the index", "in order"]
_P = PaperRow.__table__.alias("p")


@dataclass(frozen=True, slots=True)
class Candidates:
    rows: list[Row[Any]]
    """Stored papers the query may match, newest first seen first, with `columns_read` only."""
    complete: bool
    """False when there were more candidates than the limit: the oldest were left out."""
    narrowed: bool
    """Whether the full-text index narrowed them (else only upvotes, time and count did)."""
    plan: Plan = "in order"
    columns: tuple[str, ...] = ALL_COLUMNS
    """The columns the rows hold."""


def _columns(names: tuple[str, ...]) -> list[Any]:
    """The columns as selected: JSON ones as their text, decoded with the papers off the loop."""
    return [type_coerce(_P.c[n], Text).label(n) if n in _JSON_COLUMNS else _P.c[n] for n in names]


async def fetch_candidates(
    session: AsyncSession,
    query: Query,
    *,
    since: datetime | None,
    limit: int,
    min_upvotes: int | None = None,
    columns: tuple[str, ...] | None = None,
    plan: Plan | None = None,
) -> Candidates:
    """The newest `limit` stored papers (first seen at `since` or later) that `query` may match.

    `columns`: what to fetch (default `columns_read(query)`); `plan`: force one (tests)."""
    dialect = _dialect(session)
    found = candidate_filter(query, dialect)
    if min_upvotes is not None:
        floor = VotesFilter(">=", min_upvotes)
        parts = () if found is None else found.children if isinstance(found, AllOf) else (found,)
        found = AllOf((*parts, floor)) if parts else floor
    wanted = columns or columns_read(query)
    stmt = select(*_columns(wanted))
    if since is not None:
        stmt = stmt.where(_P.c.first_seen_at >= since)
    driving, rest = driving_text(found)
    chosen: Plan = "in order"
    if driving is not None and plan != "in order":
        most = 10**9 if plan else await _hit_threshold(session, dialect, since, limit)
        hits = await _hits(session, dialect, driving, most) if most else []
        if most and len(hits) <= most:
            chosen = "from the index"
            if not hits:
                return Candidates([], True, True, chosen, wanted)
            stmt = stmt.where(_among(dialect, hits))
            found = AllOf(tuple(rest)) if len(rest) > 1 else (rest[0] if rest else None)
    if found is not None:
        params: dict[str, Any] = {}
        stmt = stmt.where(text(filter_sql(found, dialect, params)).bindparams(**params))
    stmt = stmt.order_by(_P.c.first_seen_at.desc(), _P.c.arxiv_id.desc()).limit(limit + 1)
    rows = list((await session.execute(stmt)).all())
    narrowed = chosen == "from the index" or uses_index(found)
    return Candidates(rows[:limit], len(rows) <= limit, narrowed, chosen, wanted)


async def _hit_threshold(session: AsyncSession, dialect: str, since: datetime | None, limit: int) -> int:
    """How many hits the from-the-index plan may have and still cost less than reading in order
    (0: reading in order costs little in any case)."""
    papers = await _paper_count(session, dialect, since)
    cost = _HIT_COST[dialect]
    most = min(papers // cost, isqrt((limit + 1) * papers // cost))
    return most if most >= _FEWEST_HITS else 0


async def _hits(session: AsyncSession, dialect: str, driving: TextFilter, most: int) -> list[str]:
    """Ids of the papers the index finds for one text condition: all of them, or `most` + 1
    when there are more than `most`.

    SQLite reads them from FTS5 and stops after `most` + 1. PostgreSQL is asked first how many
    it expects (its statistics of the index's words are close): a LIMIT would make it scan
    every paper's document instead of the GIN index, hoping to stop early."""
    if dialect == "sqlite":
        statement = text(_HITS[dialect]).bindparams(t=driving.expression, most=most + 1)
        return list(await session.scalars(statement))
    plan = await session.scalar(text(_PG_ESTIMATE).bindparams(t=driving.expression))
    if isinstance(plan, str):
        plan = json.loads(plan)
    if plan[0]["Plan"]["Plan Rows"] > most:
        return [""] * (most + 1)
    await session.execute(text("SET LOCAL enable_seqscan = off"))
    try:
        return list(await session.scalars(text(_HITS[dialect]).bindparams(t=driving.expression)))
    finally:
        await session.execute(text("SET LOCAL enable_seqscan TO DEFAULT"))


def _among(dialect: str, hits: list[str]) -> Any:
    if dialect == "sqlite":  # one JSON parameter, however many hits
        return _P.c.arxiv_id.in_(
            select(literal_column("value")).select_from(func.json_each(json.dumps(hits)))
        )
    return _P.c.arxiv_id == func.any(bindparam("hits", hits, type_=ARRAY(String())))


# --- papers from rows ----------------------------------------------------------------------------


async def with_columns(
    session: AsyncSession, rows: Sequence[Row[Any]], columns: tuple[str, ...]
) -> list[Row[Any]]:
    """Candidate `rows` read again with `columns`, in the same order (a paper removed since is
    left out)."""
    if not rows:
        return []
    ids = [row.arxiv_id for row in rows]
    found = (await session.execute(select(*_columns(columns)).where(_among(_dialect(session), ids)))).all()
    by_id = {row.arxiv_id: row for row in found}
    return [by_id[i] for i in ids if i in by_id]


async def full_papers(session: AsyncSession, found: Candidates, papers: Sequence[Paper]) -> list[Paper]:
    """`papers`, made from `found`'s rows, read in full (every column), in the same order."""
    if found.columns == ALL_COLUMNS or not papers:
        return list(papers)
    ids = [p.arxiv_id for p in papers]
    rows = (await session.execute(select(*_columns(ALL_COLUMNS)).where(_P.c.arxiv_id.in_(ids)))).all()
    by_id = {row.arxiv_id: row for row in rows}
    if len(rows) > 50:
        return await asyncio.to_thread(_in_order, ids, by_id)
    return _in_order(ids, by_id)


def _in_order(ids: list[str], rows: dict[str, Row[Any]]) -> list[Paper]:
    return [paper_of(rows[i]) for i in ids if i in rows]


def paper_of(row: Row[Any]) -> Paper:
    """A candidate row as a paper (columns not fetched stay empty); decodes its JSON columns, so
    run it off the event loop."""
    values = dict(zip(row._fields, row, strict=True))  # much faster than the row's own mapping
    get = values.get
    return Paper(
        arxiv_id=values["arxiv_id"],
        title=get("title") or "",
        abstract=get("abstract") or "",
        authors=tuple(json_list(get("authors"))),
        published_at=get("published_at"),
        sources=frozenset(json_list(get("sources"))),
        categories=tuple(json_list(get("categories"))),
        upvotes=get("upvotes") or 0,
        comments=get("comments") or 0,
        ai_summary=get("ai_summary"),
        ai_keywords=tuple(json_list(get("ai_keywords"))),
        github_url=get("github_url"),
        project_url=get("project_url"),
        hf_date=get("hf_date"),
        announce_type=get("announce_type"),
        version=get("version"),
        first_seen_at=get("first_seen_at"),
    )
