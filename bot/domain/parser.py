"""The watch query language's tokenizer and parser.

`parse_query` turns the text a user typed into a `Query` (docs/queries.md), or raises
`ParseError` naming the position and what was expected there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from bot.domain.paper import normalize_arxiv_id
from bot.domain.query import (
    And,
    Category,
    Comparison,
    Field,
    Leaf,
    Like,
    Node,
    Not,
    Or,
    ParseError,
    Phrase,
    Prefix,
    Query,
    Term,
    Upvotes,
    looks_for_something,
)
from bot.domain.text import normalize, words

MAX_QUERY_LENGTH = 300
MAX_DEPTH = 50
"""How deeply parentheses may nest."""
MAX_UPVOTES_DIGITS = 9

ALLOWED_FIELDS = "title:, abstract:, author:, category:, like: or upvotes>=N"
QUOTES = frozenset('"“”')
"""Straight and typographic double quotes: phones often turn `"` into `“ ”`."""
_STOP = frozenset("()") | QUOTES
_UPVOTES = re.compile(r"[uU][pP][vV][oO][tT][eE][sS]\s*(>=|<=|>|<|=)\s*")
_FIELD = re.compile(r"([a-z]+):", re.IGNORECASE | re.ASCII)


# --- tokenizer ---------------------------------------------------------------------

_Kind = Literal["leaf", "(", ")", "AND", "OR", "NOT", "-", "end"]


@dataclass(frozen=True, slots=True)
class _Token:
    kind: _Kind
    start: int
    text: str
    leaf: Leaf | None = None


_OPERATORS: dict[str, _Kind] = {"AND": "AND", "OR": "OR", "NOT": "NOT"}
_COMPARISONS: dict[str, Comparison] = {">=": ">=", ">": ">", "<=": "<=", "<": "<", "=": "="}


def _term_end(text: str, pos: int) -> int:
    end = pos
    size = len(text)
    while end < size and not text[end].isspace() and text[end] not in _STOP:
        end += 1
    return end


def _quoted(text: str, pos: int) -> tuple[str, int]:
    """The text between the quote at `pos` and its closing quote, and the index after it."""
    end = pos + 1
    size = len(text)
    while end < size and text[end] not in QUOTES:
        end += 1
    if end >= size:
        raise ParseError(pos, "a closing quote", "this quote is never closed; expected a closing quote")
    return text[pos + 1 : end], end + 1


def _text_leaf(raw: str, start: int, field: Field, *, quoted: bool) -> Leaf:
    """A word, prefix or phrase restricted to `field`, from the characters the user typed."""
    where = f" after {field}:" if field else ""
    if quoted:
        found = words(raw)
        if not found:
            raise ParseError(start, f"a letter or digit between the quotes{where}")
        return Phrase(tuple(found), field)
    if raw.endswith("*"):
        body = raw.rstrip("*")
        found = words(body)
        if len(found) != 1:
            if not found:
                raise ParseError(start, "a word before *")
            raise ParseError(start, 'one word before * (a prefix cannot contain "-" or ".")')
        return Prefix(found[0], field)
    found = words(raw)
    if raw == "-":
        raise ParseError(start, 'a term right after "-", without a space (like "-video")')
    if not found:
        expected = f"a term with a letter or digit{where}"
        raise ParseError(start, expected, f'expected {expected}, not "{raw}"')
    if len(found) == 1:
        return Term(found[0], field)
    return Phrase(tuple(found), field)


def _category_leaf(raw: str, start: int) -> Category:
    value = normalize(raw)
    is_prefix = value.endswith("*")
    if is_prefix:
        value = value[:-1]
    if not value or any(ch.isspace() for ch in value):
        raise ParseError(start, "an arXiv category after category:, like cs.CL or cs.*")
    return Category(value, is_prefix)


def _like_leaf(raw: str, start: int) -> Like:
    """`like:` takes an arXiv id, with or without its version (`2510.02283v2`, `hep-th/9901001`)."""
    expected = "an arXiv id after like:, like 2510.02283 or hep-th/9901001"
    if not raw:
        raise ParseError(start, expected)
    arxiv_id = normalize_arxiv_id(raw)
    if arxiv_id is None:
        raise ParseError(start, expected, f'expected {expected}, not "{raw}"')
    return Like(arxiv_id)


def _upvotes_leaf(op: str, raw: str, start: int) -> Upvotes:
    if not raw:
        raise ParseError(start, f"a whole number after upvotes{op}")
    if not (raw.isdecimal() and len(raw) <= MAX_UPVOTES_DIGITS):
        expected = f"a whole number after upvotes{op}"
        raise ParseError(start, expected, f'expected {expected}, not "{raw}"')
    return Upvotes(_COMPARISONS[op], int(raw))


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    size = len(text)
    pos = 0
    while pos < size:
        ch = text[pos]
        if ch.isspace():
            pos += 1
            continue
        if ch == "(" or ch == ")":
            tokens.append(_Token("(" if ch == "(" else ")", pos, ch))
            pos += 1
            continue
        if ch in QUOTES:
            inner, end = _quoted(text, pos)
            tokens.append(_Token("leaf", pos, text[pos:end], _text_leaf(inner, pos, None, quoted=True)))
            pos = end
            continue
        if ch == "-" and pos + 1 < size and not text[pos + 1].isspace() and text[pos + 1] != ")":
            tokens.append(_Token("-", pos, "-"))
            pos += 1
            continue
        upvotes = _UPVOTES.match(text, pos)
        if upvotes:
            number_start = upvotes.end()
            end = _term_end(text, number_start)
            votes = _upvotes_leaf(upvotes.group(1), text[number_start:end], number_start)
            tokens.append(_Token("leaf", pos, text[pos:end], votes))
            pos = end
            continue
        end = _term_end(text, pos)
        raw = text[pos:end]
        operator = _OPERATORS.get(raw)
        if operator is not None:
            tokens.append(_Token(operator, pos, raw))
            pos = end
            continue
        field_match = _FIELD.match(raw)
        if field_match is None:
            tokens.append(_Token("leaf", pos, raw, _text_leaf(raw, pos, None, quoted=False)))
            pos = end
            continue
        name = field_match.group(1).lower()
        value_start = pos + field_match.end()
        if name == "upvotes":
            raise ParseError(value_start - 1, 'a comparison after upvotes: ">=", ">", "<=", "<" or "="')
        if name == "like":
            end = _term_end(text, value_start)
            tokens.append(_Token("leaf", pos, text[pos:end], _like_leaf(text[value_start:end], value_start)))
            pos = end
            continue
        if name not in ("title", "abstract", "author", "category"):
            raise ParseError(
                pos,
                f"a field among {ALLOWED_FIELDS}",
                f'unknown field "{name}:"; use {ALLOWED_FIELDS}',
            )
        field_name = f"{name}:"
        if value_start < size and text[value_start] in QUOTES:
            inner, end = _quoted(text, value_start)
            quoted = True
        else:
            inner, quoted = text[value_start:end], False
            if not inner:
                what = "an arXiv category" if name == "category" else 'a word or "phrase"'
                raise ParseError(value_start, f"{what} right after {field_name}")
        leaf: Leaf
        if name == "category":
            leaf = _category_leaf(inner, value_start)
        else:
            field: Field = "title" if name == "title" else "abstract" if name == "abstract" else "author"
            leaf = _text_leaf(inner, value_start, field, quoted=quoted)
        tokens.append(_Token("leaf", pos, text[pos:end], leaf))
        pos = end
    tokens.append(_Token("end", size, ""))
    return tokens


# --- parser ------------------------------------------------------------------------

_STARTS_UNARY = frozenset({"leaf", "(", "NOT", "-"})


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.index = 0
        self.depth = 0
        self.starts: dict[int, tuple[Node, int]] = {}
        """Where each node of the tree begins in the query, by id() (the node is kept alive)."""

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def node(self, node: Node, start: int) -> Node:
        self.starts.setdefault(id(node), (node, start))
        return node

    def missing_term(self, after: _Token | None) -> ParseError:
        token = self.peek()
        expected = 'a term or "("'
        if after is not None and after.kind != "(":
            return ParseError(token.start, expected, f'expected {expected} after "{after.text}"')
        if after is not None and token.kind == ")":
            return ParseError(token.start, 'a term inside "( )"')
        if token.kind == "end":
            return ParseError(token.start, expected)
        return ParseError(token.start, expected, f'expected {expected} before "{token.text}"')

    def parse(self) -> Node:
        root = self.parse_or(None)
        token = self.peek()
        if token.kind == ")":
            raise ParseError(
                token.start,
                "the end of the query",
                'expected the end of the query: this ")" has no matching "("',
            )
        if token.kind != "end":  # pragma: no cover - every other token starts a term or an operator
            raise ParseError(token.start, "the end of the query")
        return root

    def parse_or(self, after: _Token | None) -> Node:
        start = self.peek().start
        children = [self.parse_and(after)]
        while self.peek().kind == "OR":
            operator = self.take()
            children.append(self.parse_and(operator))
        return self.node(_combine(Or, children), start)

    def parse_and(self, after: _Token | None) -> Node:
        start = self.peek().start
        children = [self.parse_unary(after)]
        while True:
            kind = self.peek().kind
            if kind == "AND":
                operator = self.take()
                children.append(self.parse_unary(operator))
            elif kind in _STARTS_UNARY:
                children.append(self.parse_unary(None))
            else:
                break
        return self.node(_combine(And, children), start)

    def parse_unary(self, after: _Token | None) -> Node:
        start = self.peek().start
        negations = 0
        while self.peek().kind in ("NOT", "-"):
            after = self.take()
            negations += 1
        node = self.parse_primary(after)
        if negations % 2:
            node = Not(node)
        return self.node(node, start)

    def parse_primary(self, after: _Token | None) -> Node:
        token = self.peek()
        if token.kind == "leaf":
            self.take()
            assert token.leaf is not None
            return self.node(token.leaf, token.start)
        if token.kind != "(":
            raise self.missing_term(after)
        if self.depth >= MAX_DEPTH:
            raise ParseError(token.start, f"at most {MAX_DEPTH} nested parentheses")
        self.take()
        self.depth += 1
        node = self.parse_or(token)
        self.depth -= 1
        if self.peek().kind != ")":
            raise ParseError(token.start, '")"', 'this "(" is never closed; expected ")"')
        self.take()
        return node


def _combine(kind: type[And] | type[Or], children: list[Node]) -> Node:
    if len(children) == 1:
        return children[0]
    flat: list[Node] = []
    for child in children:
        if isinstance(child, kind):
            flat.extend(child.children)
        else:
            flat.append(child)
    return kind(tuple(flat))


def _refuse_only_negations(root: Node, starts: dict[int, tuple[Node, int]]) -> None:
    if looks_for_something(root):
        return
    if isinstance(root, Or):
        blamed = next(c for c in root.children if not looks_for_something(c))
        raise ParseError(
            starts.get(id(blamed), (blamed, 0))[1],
            "something to look for on each side of OR",
            "each side of OR needs at least one thing to look for; this side only excludes",
        )
    raise ParseError(
        starts.get(id(root), (root, 0))[1],
        "something to look for",
        'a query needs at least one thing to look for, not only things to exclude (like "diffusion -video")',
    )


def parse_query(text: str, *, max_length: int = MAX_QUERY_LENGTH) -> Query:
    """Parse a watch query, or raise `ParseError` naming the position and what was expected."""
    if len(text) > max_length:
        raise ParseError(
            max_length, f"at most {max_length} characters", f"a query is at most {max_length} characters"
        )
    if not text.strip():
        raise ParseError(len(text), "a term to look for", "the query is empty")
    parser = _Parser(_tokenize(text))
    root = parser.parse()
    _refuse_only_negations(root, parser.starts)
    return Query(text, root)
