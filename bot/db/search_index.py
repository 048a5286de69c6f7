"""The search index of stored papers: what is indexed of a paper, and keeping it in step.

What is indexed is the query language's own words (NFKC + casefold, split on anything that
is not a letter or digit; docs/queries.md), not the raw text: the databases' tokenizers fold
case and split words their own way (SQLite's unicode61 keeps `ß` where casefold gives `ss`,
and does not apply NFKC to `ﬁ` or `𝐱`). `PaperRepository.upsert`, the one writer of papers,
calls `write_documents` for new papers and for stored ones whose words changed.

SQLite: `paper_search` holds each paper's words (`doc_id` is an INTEGER PRIMARY KEY, so it
survives VACUUM and table rebuilds; a removed paper's row goes with it by foreign key) and
`papers_fts` is an FTS5 external-content table over it, kept in step by triggers.
PostgreSQL: `paper_search` holds a `tsvector` built from the same words (title weight A,
abstract B, authors C, categories D; lexemes taken as they are, no parser) with a GIN index.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.paper import Paper
from bot.domain.text import normalize, words

SEARCH_TABLE = "paper_search"
FTS_TABLE = "papers_fts"
SQLITE_SEARCH_TABLES = frozenset(
    {SEARCH_TABLE, FTS_TABLE, *(f"{FTS_TABLE}_{part}" for part in ("data", "idx", "docsize", "config"))}
)
"""The tables the search index adds to a SQLite database (FTS5 keeps four shadow tables)."""
POSTGRESQL_SEARCH_TABLES = frozenset({SEARCH_TABLE})

MAX_WORD = 200
"""Longer words are indexed by their first MAX_WORD characters (a PostgreSQL lexeme is at
most 2 KB); a longer query word looks for that prefix."""


def search_tables(dialect: str) -> frozenset[str]:
    """The tables the search index adds on this database backend."""
    return SQLITE_SEARCH_TABLES if dialect == "sqlite" else POSTGRESQL_SEARCH_TABLES


@dataclass(frozen=True, slots=True)
class SearchDocument:
    """A paper's words as the query language sees them, one sequence per field."""

    arxiv_id: str
    title: tuple[str, ...]
    abstract: tuple[str, ...]
    authors: tuple[str, ...]
    """Every author's name words, one author after the other."""
    categories: tuple[str, ...]

    @classmethod
    def of(cls, paper: Paper) -> SearchDocument:
        return cls.from_fields(paper.arxiv_id, paper.title, paper.abstract, paper.authors, paper.categories)

    @classmethod
    def from_fields(
        cls, arxiv_id: str, title: str, abstract: str, authors: Iterable[str], categories: Iterable[str]
    ) -> SearchDocument:
        return cls(
            arxiv_id=arxiv_id,
            title=_clip(words(title)),
            abstract=_clip(words(abstract)),
            authors=_clip(w for name in authors for w in words(name)),
            categories=tuple(normalize(c)[:MAX_WORD] for c in categories if c.strip()),
        )

    def sqlite_row(self) -> dict[str, str]:
        return {
            "arxiv_id": self.arxiv_id,
            "title": " ".join(self.title),
            "abstract": " ".join(self.abstract),
            "authors": " ".join(self.authors),
            "categories": " ".join(self.categories),
        }

    def tsvector(self) -> str:
        """The `tsvector` literal: every word once per field, weighted by field."""
        positions: dict[str, list[str]] = {}
        for place, field_words in enumerate((self.title, self.abstract, self.authors, self.categories)):
            mark = f"{place + 1}{'ABCD'[place]}"
            for word in dict.fromkeys(field_words):
                positions.setdefault(word, []).append(mark)
        return " ".join(f"{pg_quote(word)}:{','.join(marks)}" for word, marks in positions.items())


def _clip(found: Iterable[str]) -> tuple[str, ...]:
    return tuple(word[:MAX_WORD] for word in found)


def pg_quote(lexeme: str) -> str:
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


# --- keeping the index in step -------------------------------------------------------------

_SQLITE_DELETE = "DELETE FROM paper_search WHERE arxiv_id = :arxiv_id"
_SQLITE_INSERT = (
    "INSERT INTO paper_search (arxiv_id, title, abstract, authors, categories) "
    "VALUES (:arxiv_id, :title, :abstract, :authors, :categories)"
)
_PG_UPSERT = (
    "INSERT INTO paper_search (arxiv_id, document) VALUES (:arxiv_id, CAST(:document AS tsvector)) "
    "ON CONFLICT (arxiv_id) DO UPDATE SET document = excluded.document"
)


def _statements(dialect: str, documents: Sequence[SearchDocument]) -> list[tuple[str, list[dict[str, str]]]]:
    if dialect == "sqlite":
        return [
            (_SQLITE_DELETE, [{"arxiv_id": d.arxiv_id} for d in documents]),
            (_SQLITE_INSERT, [d.sqlite_row() for d in documents]),
        ]
    return [(_PG_UPSERT, [{"arxiv_id": d.arxiv_id, "document": d.tsvector()} for d in documents])]


async def write_documents(session: AsyncSession, papers: Sequence[Paper]) -> None:
    """Index `papers` (new, or stored with changed text), replacing what was indexed for them."""
    if not papers:
        return
    dialect = session.get_bind().dialect.name
    documents = [SearchDocument.of(paper) for paper in papers]
    for start in range(0, len(documents), 500):
        for statement, rows in _statements(dialect, documents[start : start + 500]):
            await session.execute(text(statement), rows)


def reindex(connection: Connection, batch: int = 1000) -> int:
    """Index every stored paper (a migration, or an operator repairing the index); how many."""
    dialect = connection.dialect.name
    done = 0
    after = ""
    while True:
        rows = connection.execute(
            text(
                "SELECT arxiv_id, title, abstract, authors, categories FROM papers "
                "WHERE arxiv_id > :after ORDER BY arxiv_id LIMIT :batch"
            ),
            {"after": after, "batch": batch},
        ).all()
        if not rows:
            return done
        documents = [
            SearchDocument.from_fields(
                row.arxiv_id,
                row.title,
                row.abstract,
                json_list(row.authors),
                json_list(row.categories),
            )
            for row in rows
        ]
        for statement, params in _statements(dialect, documents):
            connection.execute(text(statement), params)
        done += len(rows)
        after = rows[-1].arxiv_id


def json_list(value: object) -> list[str]:
    """A JSON list column as the driver returns it: already decoded, or text."""
    if value is None:
        return []
    decoded = json.loads(value) if isinstance(value, str | bytes) else value
    return [str(item) for item in decoded] if isinstance(decoded, list) else []
