"""Whether one paper matches one query, and why: the reference evaluator.

`matches` defines what a query means; the batch engine (`bot.domain.batch`), which
matches many watches against many papers at once, must agree with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeAlias

from bot.domain.paper import Paper
from bot.domain.query import (
    And,
    Category,
    Field,
    Leaf,
    Like,
    Node,
    Not,
    Or,
    Phrase,
    Prefix,
    Query,
    Term,
    Upvotes,
    positive_terms,
)
from bot.domain.text import normalize, stem, words

LikeScore: TypeAlias = Callable[[str], float | None]
"""For one paper: its cosine to the liked paper of that id when at least the `like:`
threshold, else None. The matcher never asks it about the paper itself."""


def _no_likes(liked_id: str) -> float | None:
    return None


@dataclass(frozen=True, slots=True)
class PaperWords:
    """A paper's text as the query language sees it."""

    title: tuple[str, ...]
    abstract: tuple[str, ...]
    title_stems: frozenset[str]
    abstract_stems: frozenset[str]
    authors: tuple[tuple[str, ...], ...]
    categories: frozenset[str]
    upvotes: int

    def field_words(self, field: Field) -> Iterator[tuple[str, ...]]:
        """The word sequences a phrase may lie in: title and abstract apart, each author apart."""
        if field == "author":
            yield from self.authors
            return
        if field != "abstract":
            yield self.title
        if field != "title":
            yield self.abstract


@lru_cache(maxsize=256)
def _paper_words(paper: Paper) -> PaperWords:
    """The words of a recently seen paper; kept small, as a paper's words weigh tens of kilobytes."""
    return paper_words(paper)


def paper_words(paper: Paper) -> PaperWords:
    """The words, stems and categories of `paper`, as matching reads them."""
    title = tuple(words(paper.title))
    abstract = tuple(words(paper.abstract))
    return PaperWords(
        title=title,
        abstract=abstract,
        title_stems=frozenset(stem(w) for w in title),
        abstract_stems=frozenset(stem(w) for w in abstract),
        authors=tuple(tuple(words(name)) for name in paper.authors),
        categories=frozenset(normalize(c) for c in paper.categories),
        upvotes=paper.upvotes,
    )


def _has_sequence(sequence: tuple[str, ...], wanted: tuple[str, ...]) -> bool:
    size = len(wanted)
    first = wanted[0]
    return any(
        word == first and sequence[start : start + size] == wanted for start, word in enumerate(sequence)
    )


def _in_sequence(leaf: Term | Phrase | Prefix, sequence: tuple[str, ...]) -> bool:
    """Whether an exact word, phrase or prefix occurs in one run of words (one field, one author)."""
    if isinstance(leaf, Term):
        return leaf.word in sequence
    if isinstance(leaf, Phrase):
        return _has_sequence(sequence, leaf.words)
    return any(word.startswith(leaf.prefix) for word in sequence)


def _category_matches(leaf: Category, category: str) -> bool:
    """Whether a normalised arXiv category satisfies a `category:` leaf."""
    return category.startswith(leaf.value) if leaf.is_prefix else category == leaf.value


def _leaf_matches(leaf: Leaf, paper: PaperWords, like: LikeScore) -> bool:
    if isinstance(leaf, Like):
        return like(leaf.arxiv_id) is not None
    if isinstance(leaf, Upvotes):
        return leaf.accepts(paper.upvotes)
    if isinstance(leaf, Category):
        return any(_category_matches(leaf, category) for category in paper.categories)
    if isinstance(leaf, Term) and leaf.field != "author":
        folded = stem(leaf.word)
        return (leaf.field != "abstract" and folded in paper.title_stems) or (
            leaf.field != "title" and folded in paper.abstract_stems
        )
    return any(_in_sequence(leaf, sequence) for sequence in paper.field_words(leaf.field))


def _node_matches(node: Node, paper: PaperWords, like: LikeScore) -> bool:
    if isinstance(node, And):
        return all(_node_matches(child, paper, like) for child in node.children)
    if isinstance(node, Or):
        return any(_node_matches(child, paper, like) for child in node.children)
    if isinstance(node, Not):
        return not _node_matches(node.child, paper, like)
    return _leaf_matches(node, paper, like)


def _not_itself(paper: Paper, like: LikeScore | None) -> LikeScore:
    """`like` for `paper`, which is never "like" itself; without scores nothing is alike."""
    if like is None:
        return _no_likes
    own_id = paper.arxiv_id

    def score(liked_id: str) -> float | None:
        return None if liked_id == own_id else like(liked_id)

    return score


def matches(
    query: Query,
    paper: Paper,
    min_upvotes: int | None = None,
    text: PaperWords | None = None,
    like: LikeScore | None = None,
) -> bool:
    """Whether `paper` matches `query` (and has at least `min_upvotes` upvotes, when given).

    A caller testing a paper many times passes its `paper_words` once computed as `text`.
    `like` gives the paper's similarity to liked papers for `like:` terms; without it no
    `like:` term matches.
    """
    if min_upvotes is not None and paper.upvotes < min_upvotes:
        return False
    return _node_matches(query.root, text or _paper_words(paper), _not_itself(paper, like))


def explain(
    query: Query, paper: Paper, text: PaperWords | None = None, like: LikeScore | None = None
) -> list[tuple[str, str]]:
    """Why `paper` matches: for each matching positive leaf, its text and the paper's words.

    For example `[("distill*", "distillation"), ('"knowledge distillation"',
    "knowledge distillation")]`, shown as "matched `distill*` → distillation"; a `like:`
    term gives its cosine, `("like:2510.02283", "0.41")`, shown as `like:2510.02283 (0.41)`.
    A caller explaining many matches of a batch passes each paper's `paper_words` once computed.
    """
    text = text or _paper_words(paper)
    scores = _not_itself(paper, like)
    found: list[tuple[str, str]] = []
    for leaf in positive_terms(query):
        if isinstance(leaf, Like):
            cosine = scores(leaf.arxiv_id)
            if cosine is not None:
                found.append((str(leaf), f"{cosine:.2f}"))
            continue
        if not _leaf_matches(leaf, text, scores):
            continue
        found.append((str(leaf), _matched_text(leaf, paper, text)))
    return found


def is_like_reason(term: str) -> bool:
    """Whether a stored reason is a `like:` term, whose matched text is a cosine."""
    return term.startswith("like:")


def reason_text(term: str, word: str) -> str:
    """One reason as users read it: `distill*` → distillation, or like:2510.02283 (0.41)."""
    return f"{term} ({word})" if is_like_reason(term) else f"{term} → {word}"


def _distinct(items: Iterable[str]) -> str:
    return ", ".join(dict.fromkeys(items))


def _matched_text(leaf: Leaf, paper: Paper, text: PaperWords) -> str:
    assert not isinstance(leaf, Like)
    if isinstance(leaf, Upvotes):
        return f"{paper.upvotes} upvotes"
    if isinstance(leaf, Category):
        return _distinct(c for c in paper.categories if _category_matches(leaf, normalize(c)))
    if leaf.field == "author":
        return _distinct(
            name
            for name, name_words in zip(paper.authors, text.authors, strict=True)
            if _in_sequence(leaf, name_words)
        )
    if isinstance(leaf, Phrase):
        return " ".join(leaf.words)
    sequences = tuple(text.field_words(leaf.field))
    if isinstance(leaf, Prefix):
        return _distinct(w for seq in sequences for w in seq if w.startswith(leaf.prefix))
    folded = stem(leaf.word)
    return _distinct(w for seq in sequences for w in seq if stem(w) == folded)
