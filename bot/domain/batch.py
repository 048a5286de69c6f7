"""A batch of papers indexed for matching: each distinct leaf becomes a bitmap of papers.

For the bot's real work, many watches against a batch of new papers, `PaperBatch`
indexes the papers once and evaluates each distinct leaf once over the whole batch
as a bitmap (bit i is `papers[i]`); `bot.domain.watchset.WatchSet` combines the
bitmaps watch by watch with bitwise operations. Together they agree with the
reference evaluator, `bot.domain.matcher.matches`.
"""

from __future__ import annotations

import gc
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TypeAlias

from bot.domain.paper import Paper
from bot.domain.query import (
    Category,
    Field,
    Leaf,
    Like,
    Phrase,
    Prefix,
    Term,
)
from bot.domain.text import normalize, stem, words


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building large acyclic structures."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# --- bitmaps -----------------------------------------------------------------------


def iter_bits(bitmap: int) -> Iterator[int]:
    """The indexes of the set bits of `bitmap`, lowest first."""
    if bitmap <= 0:
        return
    digits = bin(bitmap)[:1:-1]
    index = digits.find("1")
    while index >= 0:
        yield index
        index = digits.find("1", index + 1)


def _bits_of(indexes: Iterable[int]) -> int:
    bitmap = 0
    for index in indexes:
        bitmap |= 1 << index
    return bitmap


# --- many papers: the batch index ----------------------------------------------------

LeafKey: TypeAlias = tuple[str, Field, str | tuple[str, ...]]
"""A leaf as the batch evaluates it; leaves that always match the same papers share a key."""


def leaf_key(leaf: Leaf) -> LeafKey:
    """The key under which a leaf is evaluated once per batch (`queries` and `query` share one)."""
    if isinstance(leaf, Term):
        return ("term", leaf.field, leaf.word if leaf.field == "author" else stem(leaf.word))
    if isinstance(leaf, Phrase):
        if len(leaf.words) == 1:
            return ("word", leaf.field, leaf.words[0])
        return ("phrase", leaf.field, leaf.words)
    if isinstance(leaf, Prefix):
        return ("prefix", leaf.field, leaf.prefix)
    if isinstance(leaf, Category):
        return ("category-prefix" if leaf.is_prefix else "category", None, leaf.value)
    if isinstance(leaf, Like):
        return ("like", None, leaf.arxiv_id)
    return ("upvotes", None, (leaf.op, str(leaf.value)))


class PaperBatch:
    """A batch of papers indexed for matching: every paper is tokenized once.

    Bit i of every bitmap the batch hands out stands for `papers[i]`. `like:` terms are not
    computed here: `likes` gives, per liked paper id, the bitmap of the batch's papers similar
    to it (one sparse matrix product for the whole batch, `bot.relevance.similar`).
    """

    def __init__(self, papers: Sequence[Paper], likes: Mapping[str, int] | None = None) -> None:
        self.papers: tuple[Paper, ...] = tuple(papers)
        self._likes: Mapping[str, int] = likes or {}
        self._positions: dict[str, int] | None = None
        self.all_bits = (1 << len(self.papers)) - 1
        any_postings: defaultdict[str, list[int]] = defaultdict(list)
        category_postings: defaultdict[str, list[int]] = defaultdict(list)
        titles: list[str] = []
        abstracts: list[str] = []
        authors: list[str] = []
        for index, paper in enumerate(self.papers):
            title = words(paper.title)
            abstract = words(paper.abstract)
            for word in {*title, *abstract}:
                any_postings[word].append(index)
            titles.append(f" {' '.join(title)} ")
            abstracts.append(f" {' '.join(abstract)} ")
            authors.append(f" {' | '.join(' '.join(words(name)) for name in paper.authors)} ")
            for category in {normalize(c) for c in paper.categories}:
                category_postings[category].append(index)
        self._texts: dict[Field, list[str]] = {"title": titles, "abstract": abstracts, "author": authors}
        self._postings: dict[Field, dict[str, list[int]]] = {None: any_postings}
        self._vocabulary: dict[Field, list[str]] = {}
        self._word_bits: dict[tuple[Field, str], int] = {}
        self._categories = {category: _bits_of(found) for category, found in category_postings.items()}
        self._category_names = sorted(self._categories)
        self._leaf_bits: dict[LeafKey, int] = {}
        by_upvotes: defaultdict[int, int] = defaultdict(int)
        for index, paper in enumerate(self.papers):
            by_upvotes[paper.upvotes] |= 1 << index
        self._upvote_values = sorted(by_upvotes)
        at_least: list[int] = []
        running = 0
        for value in reversed(self._upvote_values):
            running |= by_upvotes[value]
            at_least.append(running)
        at_least.reverse()
        self._at_least = at_least

    @classmethod
    def build(cls, papers: Sequence[Paper], likes: Mapping[str, int] | None = None) -> PaperBatch:
        """Index `papers` for matching; `likes` are the `like:` bitmaps, by liked paper id."""
        with collector_paused():
            return cls(papers, likes)

    def __len__(self) -> int:
        return len(self.papers)

    def papers_in(self, bitmap: int) -> list[Paper]:
        """The papers whose bits are set in `bitmap`, in batch order."""
        return [self.papers[index] for index in iter_bits(bitmap)]

    def leaf_bits(self, key: LeafKey) -> int:
        """The papers of the batch that match one leaf, evaluated once and remembered."""
        found = self._leaf_bits.get(key)
        if found is None:
            found = self._evaluate(key)
            self._leaf_bits[key] = found
        return found

    def _postings_of(self, field: Field) -> dict[str, list[int]]:
        postings = self._postings.get(field)
        if postings is None:
            built: defaultdict[str, list[int]] = defaultdict(list)
            assert field is not None
            for index, text in enumerate(self._texts[field]):
                for word in set(text.split()):
                    if word != "|":
                        built[word].append(index)
            postings = self._postings[field] = built
        return postings

    def _word(self, field: Field, word: str) -> int:
        key = (field, word)
        bitmap = self._word_bits.get(key)
        if bitmap is None:
            found = self._postings_of(field).get(word)
            bitmap = self._word_bits[key] = _bits_of(found) if found else 0
        return bitmap

    def _words_with_stem(self, field: Field, folded: str) -> list[str]:
        """The words of the batch that `stem` folds to `folded`.

        `stem` leaves a word alone, drops its final `s`, or turns its final `ies` into `y`: so
        only three spellings can fold to `folded`, and each is looked up, not the vocabulary.
        """
        postings = self._postings_of(field)
        spellings = [folded, folded + "s"]
        if folded.endswith("y"):
            spellings.append(folded[:-1] + "ies")
        return [word for word in spellings if word in postings and stem(word) == folded]

    def _words_with_prefix(self, field: Field, prefix: str) -> Iterator[str]:
        vocabulary = self._vocabulary.get(field)
        if vocabulary is None:
            vocabulary = self._vocabulary[field] = sorted(self._postings_of(field))
        index = bisect_left(vocabulary, prefix)
        while index < len(vocabulary) and vocabulary[index].startswith(prefix):
            yield vocabulary[index]
            index += 1

    def _at_least_upvotes(self, value: int) -> int:
        index = bisect_left(self._upvote_values, value)
        return self._at_least[index] if index < len(self._at_least) else 0

    def _evaluate(self, key: LeafKey) -> int:
        kind, field, value = key
        if kind == "term":
            assert isinstance(value, str)
            if field == "author":
                return self._word(field, value)
            bitmap = 0
            for word in self._words_with_stem(field, value):
                bitmap |= self._word(field, word)
            return bitmap
        if kind == "word":
            assert isinstance(value, str)
            return self._word(field, value)
        if kind == "prefix":
            assert isinstance(value, str)
            bitmap = 0
            for word in self._words_with_prefix(field, value):
                bitmap |= self._word(field, word)
            return bitmap
        if kind == "phrase":
            assert isinstance(value, tuple)
            return self._phrase(field, value)
        if kind == "category":
            assert isinstance(value, str)
            return self._categories.get(value, 0)
        if kind == "like":
            assert isinstance(value, str)
            return self._like(value)
        if kind == "category-prefix":
            assert isinstance(value, str)
            bitmap = 0
            index = bisect_left(self._category_names, value)
            names = self._category_names
            while index < len(names) and names[index].startswith(value):
                bitmap |= self._categories[names[index]]
                index += 1
            return bitmap
        assert isinstance(value, tuple)
        return self._upvotes(value[0], int(value[1]))

    def _like(self, liked_id: str) -> int:
        """The papers similar to a liked paper, never the liked paper itself."""
        bitmap = self._likes.get(liked_id, 0)
        if bitmap:
            if self._positions is None:
                self._positions = {paper.arxiv_id: index for index, paper in enumerate(self.papers)}
            itself = self._positions.get(liked_id)
            if itself is not None:
                bitmap &= ~(1 << itself)
        return bitmap

    def _phrase(self, field: Field, phrase: tuple[str, ...]) -> int:
        candidates = self.all_bits
        for word in phrase:
            candidates &= self._word(field, word)
            if not candidates:
                return 0
        needle = f" {' '.join(phrase)} "
        bitmap = 0
        if field is None:
            titles, abstracts = self._texts["title"], self._texts["abstract"]
            for index in iter_bits(candidates):
                if needle in titles[index] or needle in abstracts[index]:
                    bitmap |= 1 << index
        else:
            texts = self._texts[field]
            for index in iter_bits(candidates):
                if needle in texts[index]:
                    bitmap |= 1 << index
        return bitmap

    def _upvotes(self, op: str, value: int) -> int:
        if op == ">=":
            return self._at_least_upvotes(value)
        if op == ">":
            return self._at_least_upvotes(value + 1)
        if op == "<":
            return self.all_bits & ~self._at_least_upvotes(value)
        if op == "<=":
            return self.all_bits & ~self._at_least_upvotes(value + 1)
        return self._at_least_upvotes(value) & ~self._at_least_upvotes(value + 1)
