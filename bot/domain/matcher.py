"""Which watches match which papers.

`matches` is the reference: one query against one paper. For the bot's real work,
many watches against a batch of new papers, `PaperBatch` indexes the papers once
and `WatchSet` evaluates every distinct leaf of every watch once over the whole
batch as a bitmap of papers (bit i is `papers[i]`), then combines the bitmaps
watch by watch with bitwise operations.
"""

from __future__ import annotations

import gc
from array import array
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeAlias

from bot.domain.paper import Paper
from bot.domain.query import (
    And,
    Category,
    Field,
    Leaf,
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


@contextmanager
def _collector_paused() -> Iterator[None]:
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


# --- one paper, one query: the reference evaluator -----------------------------------


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


def _leaf_matches(leaf: Leaf, paper: PaperWords) -> bool:
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


def _node_matches(node: Node, paper: PaperWords) -> bool:
    if isinstance(node, And):
        return all(_node_matches(child, paper) for child in node.children)
    if isinstance(node, Or):
        return any(_node_matches(child, paper) for child in node.children)
    if isinstance(node, Not):
        return not _node_matches(node.child, paper)
    return _leaf_matches(node, paper)


def matches(
    query: Query, paper: Paper, min_upvotes: int | None = None, text: PaperWords | None = None
) -> bool:
    """Whether `paper` matches `query` (and has at least `min_upvotes` upvotes, when given).

    A caller testing a paper many times passes its `paper_words` once computed as `text`.
    """
    if min_upvotes is not None and paper.upvotes < min_upvotes:
        return False
    return _node_matches(query.root, text or _paper_words(paper))


def explain(query: Query, paper: Paper, text: PaperWords | None = None) -> list[tuple[str, str]]:
    """Why `paper` matches: for each matching positive leaf, its text and the paper's words.

    For example `[("distill*", "distillation"), ('"knowledge distillation"',
    "knowledge distillation")]`, shown as "matched `distill*` → distillation". A caller
    explaining many matches of a batch passes each paper's `paper_words` once computed.
    """
    text = text or _paper_words(paper)
    found: list[tuple[str, str]] = []
    for leaf in positive_terms(query):
        if not _leaf_matches(leaf, text):
            continue
        found.append((str(leaf), _matched_text(leaf, paper, text)))
    return found


def _distinct(items: Iterable[str]) -> str:
    return ", ".join(dict.fromkeys(items))


def _matched_text(leaf: Leaf, paper: Paper, text: PaperWords) -> str:
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
    return ("upvotes", None, (leaf.op, str(leaf.value)))


class PaperBatch:
    """A batch of papers indexed for matching: every paper is tokenized once.

    Bit i of every bitmap the batch hands out stands for `papers[i]`.
    """

    def __init__(self, papers: Sequence[Paper]) -> None:
        self.papers: tuple[Paper, ...] = tuple(papers)
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
        self._stems: dict[Field, dict[str, list[str]]] = {}
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
    def build(cls, papers: Sequence[Paper]) -> PaperBatch:
        """Index `papers` for matching."""
        with _collector_paused():
            return cls(papers)

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
        stems = self._stems.get(field)
        if stems is None:
            stems = defaultdict(list)
            for word in self._postings_of(field):
                stems[stem(word)].append(word)
            self._stems[field] = stems
        return stems.get(folded, [])

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


# --- many watches: compiled once, matched against every batch ---------------------------

_AND, _OR, _NOT = 0, 1, 2
Program: TypeAlias = int | tuple[int, tuple["Program", ...]]
"""A compiled watch: a leaf index, or (operator, operands)."""


class WatchSet:
    """Watches compiled for matching batches of papers.

    Every distinct leaf across all watches is evaluated once per batch. The common
    shapes (one leaf, an AND of two or three leaves) are kept in flat integer arrays,
    so that evaluating a watch is a couple of bitwise operations.
    """

    def __init__(self) -> None:
        """An empty set; `WatchSet.build` compiles watches into one."""
        self._leaf_keys: list[LeafKey] = []
        self._watch_ids: list[int] = []
        self._single = (array("l"), array("l"))
        """Leaf, watch position."""
        self._pairs = (array("l"), array("l"), array("l"))
        """First leaf, second leaf, watch position: an AND of two leaves."""
        self._triples = (array("l"), array("l"), array("l"), array("l"))
        """Three leaves and a watch position: an AND of three leaves."""
        self._others: list[tuple[Program, int]] = []
        """Any other compiled query, with its watch position."""

    def _add(self, program: Program, position: int) -> None:
        if isinstance(program, int):
            leaves, positions = self._single
            leaves.append(program)
            positions.append(position)
            return
        operator, operands = program
        if operator == _AND and len(operands) <= 3 and all(isinstance(o, int) for o in operands):
            target = self._pairs if len(operands) == 2 else self._triples
            for column, operand in zip(target, operands, strict=False):
                assert isinstance(operand, int)
                column.append(operand)
            target[-1].append(position)
            return
        self._others.append((program, position))

    @classmethod
    def build(cls, watches: Iterable[tuple[int, Query, int | None]]) -> WatchSet:
        """Compile (watch id, query, min_upvotes) triples; min_upvotes adds `upvotes>=N`."""
        key_index: dict[LeafKey, int] = {}
        terms: dict[tuple[str, Field], int] = {}
        others: dict[Leaf, int] = {}

        def compile_leaf(leaf: Leaf) -> int:
            key = leaf_key(leaf)
            index = key_index.get(key)
            if index is None:
                index = key_index[key] = len(key_index)
            return index

        def compile_node(node: Node) -> Program:
            if type(node) is Term:
                probe = (node.word, node.field)
                index = terms.get(probe)
                if index is None:
                    index = terms[probe] = compile_leaf(node)
                return index
            if type(node) is And or type(node) is Or:
                indexes: list[int] = []
                groups: list[Program] = []
                for child in node.children:
                    if type(child) is Term:
                        probe = (child.word, child.field)
                        index = terms.get(probe)
                        if index is None:
                            index = terms[probe] = compile_leaf(child)
                        indexes.append(index)
                    else:
                        program = compile_node(child)
                        if type(program) is int:
                            indexes.append(program)
                        else:
                            groups.append(program)
                operator = _AND if type(node) is And else _OR
                if groups:
                    return _combine(operator, [*indexes, *groups])
                unique = sorted(set(indexes))
                return unique[0] if len(unique) == 1 else (operator, tuple(unique))
            if type(node) is Not:
                return (_NOT, (compile_node(node.child),))
            assert not isinstance(node, And | Or | Not)
            index = others.get(node)
            if index is None:
                index = others[node] = compile_leaf(node)
            return index

        watch_set = cls()
        watch_ids = watch_set._watch_ids
        with _collector_paused():
            for watch_id, query, min_upvotes in watches:
                program = compile_node(query.root)
                if min_upvotes is not None:
                    program = _combine(_AND, [program, compile_leaf(Upvotes(">=", min_upvotes))])
                watch_set._add(program, len(watch_ids))
                watch_ids.append(watch_id)
        watch_set._leaf_keys = list(key_index)
        return watch_set

    def __len__(self) -> int:
        return len(self._watch_ids)

    @property
    def leaf_count(self) -> int:
        """How many distinct leaves the watches have between them."""
        return len(self._leaf_keys)

    def match(self, batch: PaperBatch) -> dict[int, int]:
        """Watch id → bitmap of the batch's papers it matches; watches matching nothing are left out."""
        with _collector_paused():
            return self._match(batch)

    def _match(self, batch: PaperBatch) -> dict[int, int]:
        leaf_bits = batch.leaf_bits
        bits = [leaf_bits(key) for key in self._leaf_keys]
        everything = batch.all_bits
        ids = self._watch_ids

        def run(program: Program) -> int:
            if isinstance(program, int):
                return bits[program]
            operator, operands = program
            if operator == _AND:
                result = everything
                for operand in operands:
                    result &= bits[operand] if isinstance(operand, int) else run(operand)
                    if not result:
                        return 0
                return result
            if operator == _OR:
                result = 0
                for operand in operands:
                    result |= bits[operand] if isinstance(operand, int) else run(operand)
                return result
            return everything & ~run(operands[0])

        matched: dict[int, int] = {}
        for leaf, position in zip(*self._single, strict=True):
            result = bits[leaf]
            if result:
                matched[ids[position]] = result
        for first, second, position in zip(*self._pairs, strict=True):
            result = bits[first] & bits[second]
            if result:
                matched[ids[position]] = result
        for first, second, third, position in zip(*self._triples, strict=True):
            result = bits[first] & bits[second] & bits[third]
            if result:
                matched[ids[position]] = result
        for program, position in self._others:
            result = run(program)
            if result:
                matched[ids[position]] = result
        return matched


def _combine(operator: int, operands: list[Program]) -> Program:
    """One AND/OR program: nested ones of the same kind flattened, leaves first, NOTs last."""
    if all(type(operand) is int for operand in operands):
        leaves = sorted(set(operands))
        return leaves[0] if len(leaves) == 1 else (operator, tuple(leaves))
    indexes: set[int] = set()
    groups: dict[Program, None] = {}
    negations: dict[Program, None] = {}
    for operand in operands:
        if isinstance(operand, int):
            indexes.add(operand)
        elif operand[0] == operator:
            for inner in operand[1]:
                if isinstance(inner, int):
                    indexes.add(inner)
                else:
                    (negations if inner[0] == _NOT else groups)[inner] = None
        else:
            (negations if operand[0] == _NOT else groups)[operand] = None
    unique: list[Program] = [*sorted(indexes), *groups, *negations]
    if len(unique) == 1:
        return unique[0]
    return (operator, tuple(unique))


def match_papers(
    watches: Iterable[tuple[int, Query, int | None]], papers: Sequence[Paper]
) -> dict[int, list[Paper]]:
    """Watch id → the papers it matches, for a one-off batch."""
    batch = PaperBatch.build(papers)
    matched = WatchSet.build(watches).match(batch)
    return {watch_id: batch.papers_in(bits) for watch_id, bits in matched.items()}
