"""A query turned into a candidate filter: the papers the database preselects for the matcher.

The database narrows a search to *candidates*; the query language's own matcher then decides
(docs/queries.md). So the filter built here only has to return a superset of the exact matches,
never fewer papers, and it is free to return more:

- a bare term looks for each word that folds to the same singular (`model` → `model`,
  `models`); a phrase looks for its words (adjacent on SQLite, anywhere on PostgreSQL);
  a prefix is an index prefix query; `category:` looks in the paper's categories;
- `upvotes` comparisons become plain column comparisons;
- a NOT cannot narrow (a paper lacking a word is no index lookup): it is dropped, and the
  exact matcher applies it afterwards; an OR with a side that cannot narrow cannot either.

The index itself (what is indexed, how it is kept in step) is `bot.db.search_index`; reading
the candidates a filter lets through is `bot.db.candidates`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypeAlias

from bot.db.search_index import MAX_WORD, pg_quote
from bot.domain.query import (
    And,
    Category,
    Comparison,
    Field,
    Like,
    Node,
    Not,
    Or,
    Phrase,
    Prefix,
    Query,
    Term,
    Upvotes,
)
from bot.domain.text import stem


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


# Lexeme weights in the index: A title, B abstract, C authors, D categories. A tsquery that
# names weights makes the GIN index recheck every hit against its stored `tsvector` (the index
# keeps no weights), which reads each hit's whole document: ten times slower for a common word.
# So only `title:` keeps its weight, where leaving it out would let in every abstract that
# has the word; the others look for the word anywhere, a few more candidates at most (an
# author named like an abstract word; categories hold a dot that no word has).
_PG_WEIGHTS: dict[Field, str] = {None: "", "title": "A", "abstract": "", "author": ""}


class _Tsquery:
    """PostgreSQL `tsquery` literals."""

    def _exact(self, word: str, weights: str) -> str:
        if len(word) > MAX_WORD:
            return f"{pg_quote(word[:MAX_WORD])}:*{weights}"
        return f"{pg_quote(word)}:{weights}" if weights else pg_quote(word)

    def term(self, word: str, field: Field) -> str | None:
        weights = _PG_WEIGHTS[field]
        if field == "author":
            return self._exact(word, weights)
        return "(" + " | ".join(self._exact(form, weights) for form in folded_forms(word)) + ")"

    def phrase(self, found: tuple[str, ...], field: Field) -> str | None:
        weights = _PG_WEIGHTS[field]
        return "(" + " & ".join(self._exact(word, weights) for word in found) + ")"

    def prefix(self, prefix: str, field: Field) -> str | None:
        return f"{pg_quote(prefix[:MAX_WORD])}:*{_PG_WEIGHTS[field]}"

    def category(self, leaf: Category) -> str | None:
        value = leaf.value[:MAX_WORD]
        if leaf.is_prefix or value != leaf.value:
            return f"{pg_quote(value)}:*"
        return pg_quote(value)

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
    if isinstance(node, Like):  # similarity is not in the text index: it cannot narrow
        return None
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
    rest: list[Filter] = [f for f in flat if not isinstance(f, TextFilter)]
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
