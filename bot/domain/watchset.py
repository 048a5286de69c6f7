"""Many watches compiled once and matched against every batch of papers.

Every distinct leaf across all watches is evaluated once per batch (`PaperBatch`);
each watch is then a couple of bitwise operations on those bitmaps.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeAlias

from bot.domain.batch import LeafKey, PaperBatch, collector_paused, leaf_key
from bot.domain.paper import Paper
from bot.domain.query import And, Field, Leaf, Node, Not, Or, Query, Term, Upvotes

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
        with collector_paused():
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
    def liked_ids(self) -> list[str]:
        """The papers named in `like:` terms of any watch, each once: what a batch needs likes for."""
        return [str(value) for kind, _, value in self._leaf_keys if kind == "like"]

    @property
    def leaf_count(self) -> int:
        """How many distinct leaves the watches have between them."""
        return len(self._leaf_keys)

    def match(self, batch: PaperBatch) -> dict[int, int]:
        """Watch id → bitmap of the batch's papers it matches; watches matching nothing are left out."""
        with collector_paused():
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
    watches: Iterable[tuple[int, Query, int | None]],
    papers: Sequence[Paper],
    likes: Mapping[str, int] | None = None,
) -> dict[int, list[Paper]]:
    """Watch id → the papers it matches, for a one-off batch (`likes`: see `PaperBatch`)."""
    batch = PaperBatch.build(papers, likes)
    matched = WatchSet.build(watches).match(batch)
    return {watch_id: batch.papers_in(bits) for watch_id, bits in matched.items()}
