"""Full-text preselection of stored papers: the index, and a query turned into a candidate filter.

The database narrows a search to *candidates*; the query language's own matcher then decides
(docs/queries.md). So the filter built here only has to return a superset of the exact matches,
never fewer papers, and it is free to return more:

- a bare term looks for each word that folds to the same singular (`model` → `model`,
  `models`); a phrase looks for its words (adjacent on SQLite, anywhere on PostgreSQL);
  a prefix is an index prefix query; `category:` looks in the paper's categories;
- `upvotes` comparisons become plain column comparisons;
- a NOT cannot narrow (a paper lacking a word is no index lookup): it is dropped, and the
  exact matcher applies it afterwards; an OR with a side that cannot narrow cannot either.

What is indexed is the query language's own words (NFKC + casefold, split on anything that
is not a letter or digit), written by `PaperRepository.upsert` through `write_documents`,
not the raw text: the databases' tokenizers fold case and split words their own way (SQLite's
unicode61 keeps `ß` where casefold gives `ss`, and does not apply NFKC to `ﬁ` or `𝐱`).

SQLite: `paper_search` holds each paper's words (`doc_id` is an INTEGER PRIMARY KEY, so it
survives VACUUM and table rebuilds; a removed paper's row goes with it by foreign key) and
`papers_fts` is an FTS5 external-content table over it, kept in step by triggers.
PostgreSQL: `paper_search` holds a `tsvector` built from the same words (title weight A,
abstract B, authors C, categories D) with a GIN index.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.paper import Paper
from bot.domain.query import (
    And,
    Category,
    Comparison,
    Field,
    Node,
    Not,
    Or,
    Phrase,
    Prefix,
    Query,
    Term,
    Upvotes,
)
from bot.domain.text import normalize, stem, words

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


# --- what is indexed ---------------------------------------------------------------------


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
        return " ".join(f"{_pg_quote(word)}:{','.join(marks)}" for word, marks in positions.items())


def _clip(found: Iterable[str]) -> tuple[str, ...]:
    return tuple(word[:MAX_WORD] for word in found)


def _pg_quote(lexeme: str) -> str:
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def _fts_quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def folded_forms(word: str) -> list[str]:
    """Every word that folds to the same singular as `word` (`model` → model, models)."""
    folded = stem(word)
    forms = [folded, folded + "s"]
    if folded.endswith("y"):
        forms.append(folded[:-1] + "ies")
    return [form for form in forms if stem(form) == folded]


# SQLite's unicode61 tokenizer knows the letters of Unicode 6.1 only; a query word is looked up
# in FTS5 only when it has a letter or digit that tokenizer certainly keeps, so that it never
# vanishes from the FTS query (which would then find nothing).
_SURE_RANGES = (
    (0x00C0, 0x024F),  # Latin-1 and Latin Extended-A/B
    (0x0370, 0x03FF),  # Greek
    (0x0400, 0x04FF),  # Cyrillic
    (0x0590, 0x06FF),  # Hebrew, Arabic
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xAC00, 0xD7A3),  # Hangul syllables
)


def _sure_token(char: str) -> bool:
    if char.isascii():
        return char.isalnum()
    point = ord(char)
    return char.isalpha() and any(low <= point <= high for low, high in _SURE_RANGES)


def _fts_usable(value: str) -> bool:
    return any(_sure_token(char) for char in value)


# --- a query as a candidate filter -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextFilter:
    """A full-text condition in the backend's own syntax (an FTS5 MATCH or a `tsquery`)."""

    expression: str


@dataclass(frozen=True, slots=True)
class VotesFilter:
    op: Comparison
    value: int


@dataclass(frozen=True, slots=True)
class AllOf:
    children: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    children: tuple[Filter, ...]


Filter: TypeAlias = TextFilter | VotesFilter | AllOf | AnyOf
"""A candidate filter; None stands for "every paper" (the query cannot be narrowed)."""


class _Syntax(Protocol):
    def term(self, word: str, field: Field) -> str | None: ...
    def phrase(self, found: tuple[str, ...], field: Field) -> str | None: ...
    def prefix(self, prefix: str, field: Field) -> str | None: ...
    def category(self, leaf: Category) -> str | None: ...
    def both(self, parts: list[str]) -> str: ...
    def either(self, parts: list[str]) -> str: ...


_FTS_COLUMNS: dict[Field, str] = {
    None: "{title abstract}",
    "title": "title",
    "abstract": "abstract",
    "author": "authors",
}


class _Fts5:
    """SQLite FTS5 MATCH syntax over the columns title, abstract, authors, categories."""

    def _exact(self, word: str) -> str | None:
        if not _fts_usable(word):
            return None
        if len(word) > MAX_WORD:
            return f"{_fts_quote(word[:MAX_WORD])} *"
        return _fts_quote(word)

    def term(self, word: str, field: Field) -> str | None:
        if field == "author":
            found = self._exact(word)
            return None if found is None else f"authors : {found}"
        options = [self._exact(form) for form in folded_forms(word)]
        if any(option is None for option in options):
            return None
        return f"{_FTS_COLUMNS[field]} : ({' OR '.join(o for o in options if o)})"

    def phrase(self, found: tuple[str, ...], field: Field) -> str | None:
        if not all(_fts_usable(word) for word in found):
            return None
        if any(len(word) > MAX_WORD for word in found):  # each word on its own, clipped
            parts = [self._exact(word) for word in found]
            return f"{_FTS_COLUMNS[field]} : ({' AND '.join(p for p in parts if p)})"
        return f"{_FTS_COLUMNS[field]} : {_fts_quote(' '.join(found))}"

    def prefix(self, prefix: str, field: Field) -> str | None:
        if not _fts_usable(prefix):
            return None
        return f"{_FTS_COLUMNS[field]} : {_fts_quote(prefix[:MAX_WORD])} *"

    def category(self, leaf: Category) -> str | None:
        value = leaf.value[:MAX_WORD]
        if not _fts_usable(value):
            return None
        return f"categories : {_fts_quote(value)}{' *' if leaf.is_prefix or value != leaf.value else ''}"

    def both(self, parts: list[str]) -> str:
        return " AND ".join(f"({part})" for part in parts)

    def either(self, parts: list[str]) -> str:
        return " OR ".join(f"({part})" for part in parts)


_PG_WEIGHTS: dict[Field, str] = {None: "AB", "title": "A", "abstract": "B", "author": "C"}


class _Tsquery:
    """PostgreSQL `tsquery` literals; lexeme weights: A title, B abstract, C authors, D categories."""

    def _exact(self, word: str, weights: str) -> str:
        if len(word) > MAX_WORD:
            return f"{_pg_quote(word[:MAX_WORD])}:*{weights}"
        return f"{_pg_quote(word)}:{weights}"

    def term(self, word: str, field: Field) -> str | None:
        weights = _PG_WEIGHTS[field]
        if field == "author":
            return self._exact(word, weights)
        return "(" + " | ".join(self._exact(form, weights) for form in folded_forms(word)) + ")"

    def phrase(self, found: tuple[str, ...], field: Field) -> str | None:
        weights = _PG_WEIGHTS[field]
        return "(" + " & ".join(self._exact(word, weights) for word in found) + ")"

    def prefix(self, prefix: str, field: Field) -> str | None:
        return f"{_pg_quote(prefix[:MAX_WORD])}:*{_PG_WEIGHTS[field]}"

    def category(self, leaf: Category) -> str | None:
        value = leaf.value[:MAX_WORD]
        if leaf.is_prefix or value != leaf.value:
            return f"{_pg_quote(value)}:*D"
        return f"{_pg_quote(value)}:D"

    def both(self, parts: list[str]) -> str:
        return "(" + " & ".join(parts) + ")"

    def either(self, parts: list[str]) -> str:
        return "(" + " | ".join(parts) + ")"


def _syntax(dialect: str) -> _Syntax:
    return _Fts5() if dialect == "sqlite" else _Tsquery()


def candidate_filter(query: Query, dialect: str) -> Filter | None:
    """A filter whose papers include every paper `query` matches; None when it cannot narrow."""
    return _translate(query.root, _syntax(dialect))


def _translate(node: Node, syntax: _Syntax) -> Filter | None:
    if isinstance(node, Not):
        return None
    if isinstance(node, And):
        kept = [f for f in (_translate(c, syntax) for c in node.children) if f is not None]
        return _join(kept, AllOf, syntax) if kept else None
    if isinstance(node, Or):
        options = [_translate(c, syntax) for c in node.children]
        if any(f is None for f in options):
            return None
        return _join([f for f in options if f is not None], AnyOf, syntax)
    if isinstance(node, Upvotes):
        return VotesFilter(node.op, node.value)
    expression: str | None
    if isinstance(node, Term):
        expression = syntax.term(node.word, node.field)
    elif isinstance(node, Phrase):
        expression = syntax.phrase(node.words, node.field)
    elif isinstance(node, Prefix):
        expression = syntax.prefix(node.prefix, node.field)
    else:
        expression = syntax.category(node)
    return None if expression is None else TextFilter(expression)


def _join(filters: list[Filter], kind: type[AllOf] | type[AnyOf], syntax: _Syntax) -> Filter:
    """One AllOf/AnyOf, with nested ones of the same kind flattened and its text parts merged."""
    flat: list[Filter] = []
    for item in filters:
        flat.extend(item.children if isinstance(item, kind) else (item,))
    texts = [f.expression for f in flat if isinstance(f, TextFilter)]
    rest = [f for f in flat if not isinstance(f, TextFilter)]
    if len(texts) > 1:
        merged = syntax.both(texts) if kind is AllOf else syntax.either(texts)
        rest.insert(0, TextFilter(merged))
    elif texts:
        rest.insert(0, TextFilter(texts[0]))
    return rest[0] if len(rest) == 1 else kind(tuple(rest))


def uses_index(found: Filter | None) -> bool:
    """Whether the filter consults the full-text index (False: upvotes only, or every paper)."""
    if found is None or isinstance(found, VotesFilter):
        return False
    if isinstance(found, TextFilter):
        return True
    return any(uses_index(child) for child in found.children)


_COMPARISONS: dict[str, str] = {">=": ">=", ">": ">", "<=": "<=", "<": "<", "=": "="}
_SQLITE_TEXT = (
    "SELECT s.arxiv_id FROM paper_search s WHERE s.doc_id IN "
    "(SELECT rowid FROM papers_fts WHERE papers_fts MATCH :{param})"
)
_PG_TEXT = "SELECT s.arxiv_id FROM paper_search s WHERE s.document @@ CAST(:{param} AS tsquery)"


def filter_sql(found: Filter, dialect: str, params: dict[str, Any], paper: str = "p") -> str:
    """SQL for `found` over the papers table aliased `paper`; bound values go into `params`."""
    if isinstance(found, VotesFilter):
        name = f"v{len(params)}"
        params[name] = found.value
        return f"{paper}.upvotes {_COMPARISONS[found.op]} :{name}"
    if isinstance(found, TextFilter):
        name = f"t{len(params)}"
        params[name] = found.expression
        index = _SQLITE_TEXT if dialect == "sqlite" else _PG_TEXT
        return f"{paper}.arxiv_id IN ({index.format(param=name)})"
    joiner = " AND " if isinstance(found, AllOf) else " OR "
    return "(" + joiner.join(filter_sql(child, dialect, params, paper) for child in found.children) + ")"


# --- keeping the index in step ------------------------------------------------------------

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
                _json_list(row.authors),
                _json_list(row.categories),
            )
            for row in rows
        ]
        for statement, params in _statements(dialect, documents):
            connection.execute(text(statement), params)
        done += len(rows)
        after = rows[-1].arxiv_id


def _json_list(value: object) -> list[str]:
    """A JSON list column as the driver returns it: already decoded, or text."""
    if value is None:
        return []
    decoded = json.loads(value) if isinstance(value, str | bytes) else value
    return [str(item) for item in decoded] if isinstance(decoded, list) else []
