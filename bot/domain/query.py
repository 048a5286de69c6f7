"""The watch query language's syntax tree: leaves, boolean nodes, the parsed `Query`.

A query is a small boolean expression over words, phrases, prefixes, fields,
arXiv categories and HF upvotes (docs/queries.md). `bot.domain.parser.parse_query`
builds it from the text a user typed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, TypeAlias

Field: TypeAlias = Literal["title", "abstract", "author"] | None
"""Where a word is looked for: None means title or abstract."""

Comparison: TypeAlias = Literal[">=", ">", "<=", "<", "="]


# --- syntax tree -------------------------------------------------------------------


def _field_prefix(field: Field) -> str:
    return f"{field}:" if field else ""


@dataclass(frozen=True, slots=True)
class Term:
    """One word (normalised); in title/abstract it also matches its singular/plural."""

    word: str
    field: Field = None

    def __str__(self) -> str:
        return f"{_field_prefix(self.field)}{self.word}"


@dataclass(frozen=True, slots=True)
class Phrase:
    """Exact words, adjacent and in order, within one field (or one author's name)."""

    words: tuple[str, ...]
    field: Field = None

    def __str__(self) -> str:
        return f'{_field_prefix(self.field)}"{" ".join(self.words)}"'


@dataclass(frozen=True, slots=True)
class Prefix:
    """Any word that starts with `prefix` (normalised, not folded)."""

    prefix: str
    field: Field = None

    def __str__(self) -> str:
        return f"{_field_prefix(self.field)}{self.prefix}*"


@dataclass(frozen=True, slots=True)
class Category:
    """An arXiv category, compared case-insensitively; `is_prefix` for `category:cs.*`."""

    value: str
    is_prefix: bool = False

    def __str__(self) -> str:
        return f"category:{self.value}{'*' if self.is_prefix else ''}"


@dataclass(frozen=True, slots=True)
class Upvotes:
    """A comparison with the paper's HF upvotes (0 when it has none)."""

    op: Comparison
    value: int

    def __str__(self) -> str:
        return f"upvotes{self.op}{self.value}"

    def accepts(self, upvotes: int) -> bool:
        """Whether a paper with `upvotes` upvotes satisfies the comparison."""
        op, value = self.op, self.value
        if op == ">=":
            return upvotes >= value
        if op == ">":
            return upvotes > value
        if op == "<=":
            return upvotes <= value
        if op == "<":
            return upvotes < value
        return upvotes == value


@dataclass(frozen=True, slots=True)
class Like:
    """Papers whose text is similar to a stored paper's: the cosine of their text vectors
    is at least the configured threshold. A paper is never "like" itself."""

    arxiv_id: str
    """The liked paper, an arXiv id without version."""

    def __str__(self) -> str:
        return f"like:{self.arxiv_id}"


@dataclass(frozen=True, slots=True)
class Not:
    """Papers that do not match `child`."""

    child: Node

    def __str__(self) -> str:
        inner = str(self.child)
        return f"-({inner})" if isinstance(self.child, And | Or) else f"-{inner}"


@dataclass(frozen=True, slots=True)
class And:
    """Papers that match every child."""

    children: tuple[Node, ...]

    def __str__(self) -> str:
        return " ".join(f"({c})" if isinstance(c, Or) else str(c) for c in self.children)


@dataclass(frozen=True, slots=True)
class Or:
    """Papers that match at least one child."""

    children: tuple[Node, ...]

    def __str__(self) -> str:
        return " OR ".join(f"({c})" if isinstance(c, And) else str(c) for c in self.children)


Leaf: TypeAlias = Term | Phrase | Prefix | Category | Upvotes | Like
Node: TypeAlias = Term | Phrase | Prefix | Category | Upvotes | Like | Not | And | Or


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed watch query: the text the user typed and its syntax tree."""

    source: str
    root: Node

    def __str__(self) -> str:
        """The canonical form: how the query was understood, and parses back to the same tree."""
        return str(self.root)


class ParseError(Exception):
    """A query that does not parse: where (0-based character index) and what was expected."""

    def __init__(self, position: int, expected: str, message: str | None = None) -> None:
        self.position = position
        self.expected = expected
        self.message = message or f"expected {expected}"
        super().__init__(f"position {position}: {self.message}")


# --- tree helpers ------------------------------------------------------------------


def leaves(node: Node) -> Iterator[Leaf]:
    """Every leaf of the tree, left to right."""
    if isinstance(node, Not):
        yield from leaves(node.child)
    elif isinstance(node, And | Or):
        for child in node.children:
            yield from leaves(child)
    else:
        yield node


def positive_leaves(node: Node, *, negated: bool = False) -> Iterator[Leaf]:
    """The leaves a matching paper is looked for by: those under an even number of NOTs."""
    if isinstance(node, Not):
        yield from positive_leaves(node.child, negated=not negated)
    elif isinstance(node, And | Or):
        for child in node.children:
            yield from positive_leaves(child, negated=negated)
    elif not negated:
        yield node


def positive_terms(query: Query) -> list[Leaf]:
    """The distinct leaves of `query` that a paper is matched by (not the excluded ones)."""
    return list(dict.fromkeys(positive_leaves(query.root)))


def looks_for_something(node: Node, *, negated: bool = False) -> bool:
    """Whether every paper matching `node` must match at least one non-negated leaf.

    False for `-a`, `NOT a NOT b`, `-(a OR b)` and `a OR -b`: queries that would match
    almost every paper.
    """
    if isinstance(node, Not):
        return looks_for_something(node.child, negated=not negated)
    if isinstance(node, And | Or):
        # NOT (a AND b) is (NOT a) OR (NOT b): an AND under an odd number of NOTs is an OR.
        needs_all = isinstance(node, Or) != negated
        results = (looks_for_something(c, negated=negated) for c in node.children)
        return all(results) if needs_all else any(results)
    return not negated


def liked_ids(query: Query) -> list[str]:
    """The papers `query` names in `like:` terms, negated or not, each once, in order."""
    return list(dict.fromkeys(leaf.arxiv_id for leaf in leaves(query.root) if isinstance(leaf, Like)))
