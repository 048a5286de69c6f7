"""Many watches compiled once and matched against every batch of papers.

Every distinct leaf across all watches is evaluated once per batch (`PaperBatch`);
each watch is then a couple of bitwise operations on those bitmaps. The compiled set
changes in place: adding, pausing or removing one watch touches that watch and its
leaves only, so a bot with a million watches never recompiles them all.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from operator import and_, itemgetter
from typing import TypeAlias, cast

from bot.domain.batch import LeafKey, PaperBatch, collector_paused, leaf_key
from bot.domain.paper import Paper
from bot.domain.query import And, Leaf, Node, Not, Or, Query, Term, Upvotes

_AND, _OR, _NOT = 0, 1, 2
Program: TypeAlias = int | tuple[int, tuple["Program", ...]]
"""A compiled watch: a leaf slot, or (operator, operands)."""

_OTHER = 3
"""The shape of the watches kept as programs (`_Bucket.shapes`)."""
_BUCKET_BITS = 10
"""Watches are kept in buckets of 1,024 consecutive ids, so one is found by scanning a small bucket
(and watches made one after the other are stored side by side)."""


class _Bucket:
    """The watches whose id falls in one bucket, in flat columns by the shape of their program.

    Each shape is a tuple of columns whose last column holds the watch ids: one leaf
    (`single`), an AND of two or three leaves (`pair`, `triple`), and any other program
    (`other`, whose first column is a list of programs). Rows are removed by moving the
    last row of the shape into the hole.
    """

    __slots__ = ("other", "pair", "single", "triple")

    def __init__(self) -> None:
        self.single = (array("i"), array("q"))
        self.pair = (array("i"), array("i"), array("q"))
        self.triple = (array("i"), array("i"), array("i"), array("q"))
        self.other: tuple[list[Program], array[int]] = ([], array("q"))

    def shapes(self) -> tuple[Sequence[Sequence[int]], ...]:
        return (self.single, self.pair, self.triple, self.other)  # type: ignore[return-value]

    def find(self, watch_id: int) -> tuple[int, int] | None:
        """(shape, row) of a watch in this bucket, or None."""
        for shape, columns in enumerate(self.shapes()):
            ids = columns[-1]
            assert isinstance(ids, array)
            try:
                return shape, ids.index(watch_id)
            except ValueError:
                continue
        return None

    def delete(self, shape: int, row: int) -> None:
        for column in self.shapes()[shape]:
            assert isinstance(column, array | list)
            last = column.pop()
            if row < len(column):
                column[row] = last

    def __len__(self) -> int:
        return sum(len(columns[-1]) for columns in self.shapes())


class WatchSet:
    """Watches compiled for matching batches of papers, kept up to date one watch at a time.

    Every distinct leaf across all watches is stored once, in a slot, with the number of
    watches using it; removing its last user frees the slot. The common shapes (one leaf,
    an AND of two or three leaves) are kept in flat integer arrays, so that evaluating a
    watch is a couple of bitwise operations. `add` and `remove` give the same matches as
    compiling the resulting watches afresh with `build`.

    A set is changed in place: callers sharing one between threads never change it while
    it is being matched.
    """

    def __init__(self) -> None:
        """An empty set; `add` watches to it, or compile many at once with `WatchSet.build`."""
        self._keys: list[LeafKey | None] = []
        """Leaf key by slot; None for a free slot."""
        self._users = array("l")
        """How many watches use each slot."""
        self._slots: dict[LeafKey, int] = {}
        self._free: list[int] = []
        self._probes: dict[Hashable, int] = {}
        """Leaf (or (word, field) of a term) → its slot, for the leaves in the set."""
        self._slot_probes: list[list[Hashable]] = []
        """The probes naming each slot, forgotten with it."""
        self._liked: dict[str, None] = {}
        self._buckets: dict[int, _Bucket] = {}
        self._count = 0

    @classmethod
    def build(cls, watches: Iterable[tuple[int, Query, int | None]]) -> WatchSet:
        """Compile (watch id, query, min_upvotes) triples; min_upvotes adds `upvotes>=N`.

        Watch ids must be distinct.
        """
        watch_set = cls()
        watch_set.extend(watches)
        return watch_set

    def extend(self, watches: Iterable[tuple[int, Query, int | None]]) -> None:
        """Compile many watches at once, as `build` does; their ids must not be in the set yet."""
        compile_node, upvotes = self._compiler()
        buckets = self._buckets
        number, bucket = None, None
        used: list[int] = []  # a slot per watch using it, counted at the end (in C)
        use, use_all = used.append, used.extend
        count = 0
        finished = False
        with collector_paused():
            try:
                for watch_id, query, min_upvotes in watches:
                    program = compile_node(query.root)
                    if min_upvotes is not None:
                        program = _combine(_AND, [program, upvotes(min_upvotes)])
                    if watch_id >> _BUCKET_BITS != number or bucket is None:
                        number = watch_id >> _BUCKET_BITS
                        bucket = buckets.get(number)
                        if bucket is None:
                            bucket = buckets[number] = _Bucket()
                    if type(program) is int:
                        leaves, ids = bucket.single
                        ids.append(watch_id)  # first: an id out of range leaves no partial row
                        leaves.append(program)
                        use(program)
                        count += 1
                        continue
                    operator, operands = cast("tuple[int, tuple[int, ...]]", program)
                    # Leaves come first in a program: when the last operand is a leaf, all are.
                    if operator == _AND and len(operands) <= 3 and type(operands[-1]) is int:
                        columns = bucket.pair if len(operands) == 2 else bucket.triple
                        columns[-1].append(watch_id)
                        for column, operand in zip(columns, operands, strict=False):
                            column.append(operand)
                        use_all(operands)
                        count += 1
                        continue
                    programs, other_ids = bucket.other
                    other_ids.append(watch_id)
                    programs.append(program)
                    use_all(_slots_of(program))
                    count += 1
                finished = True
            finally:
                users = self._users
                for slot, times in Counter(used).items():
                    users[slot] += times
                self._count += count
                if not finished:
                    self._drop_unused()

    def add(self, watch_id: int, query: Query, min_upvotes: int | None = None) -> None:
        """Compile one more watch into the set; ValueError if `watch_id` is already in it."""
        if self._locate(watch_id) is not None:
            raise ValueError(f"watch {watch_id} is already compiled")
        self.extend([(watch_id, query, min_upvotes)])

    def remove(self, watch_id: int) -> None:
        """Take a watch out of the set (removed or paused); KeyError if it is not in it."""
        found = self._locate(watch_id)
        if found is None:
            raise KeyError(watch_id)
        bucket, shape, row = found
        columns = bucket.shapes()[shape]
        if shape == _OTHER:
            slots: Iterable[int] = _slots_of(bucket.other[0][row])
        else:
            slots = [column[row] for column in columns[:-1]]
        bucket.delete(shape, row)
        if not len(bucket):
            del self._buckets[watch_id >> _BUCKET_BITS]
        self._count -= 1
        users = self._users
        for slot in slots:
            users[slot] -= 1
            if not users[slot]:
                self._drop(slot)

    def __contains__(self, watch_id: object) -> bool:
        return isinstance(watch_id, int) and self._locate(watch_id) is not None

    def __len__(self) -> int:
        return self._count

    @property
    def liked_ids(self) -> list[str]:
        """The papers named in `like:` terms of any watch, each once: what a batch needs likes for."""
        return list(self._liked)

    @property
    def leaf_count(self) -> int:
        """How many distinct leaves the watches have between them."""
        return len(self._slots)

    # --- compiling -----------------------------------------------------------------

    def _new_slot(self, key: LeafKey) -> int:
        if self._free:
            slot = self._free.pop()
            self._keys[slot] = key
        else:
            slot = len(self._keys)
            self._keys.append(key)
            self._users.append(0)
            self._slot_probes.append([])
        self._slots[key] = slot
        kind, _, value = key
        if kind == "like":
            assert isinstance(value, str)
            self._liked[value] = None
        return slot

    def _drop(self, slot: int) -> None:
        key = self._keys[slot]
        assert key is not None
        del self._slots[key]
        self._keys[slot] = None
        self._free.append(slot)
        kind, _, value = key
        if kind == "like":
            assert isinstance(value, str)
            del self._liked[value]
        for probe in self._slot_probes[slot]:
            del self._probes[probe]
        self._slot_probes[slot] = []

    def _drop_unused(self) -> None:
        """Free the slots compiled for a watch that could not be added."""
        users = self._users
        for slot in [s for s, key in enumerate(self._keys) if key is not None and not users[s]]:
            self._drop(slot)

    def _slot(self, probe: Hashable, leaf: Leaf) -> int:
        """The slot of a leaf not found by `probe`: found by its key, or a new one."""
        key = leaf_key(leaf)
        slot = self._slots.get(key)
        if slot is None:
            slot = self._new_slot(key)
        self._probes[probe] = slot
        self._slot_probes[slot].append(probe)
        return slot

    def _compiler(self) -> tuple[Callable[[Node], Program], Callable[[int], int]]:
        """Functions compiling a query tree, and `upvotes>=N`, into programs (users not counted)."""
        probes = self._probes
        slot_of = self._slot

        def compile_node(node: Node) -> Program:
            if type(node) is Term:
                probe = (node.word, node.field)
                found = probes.get(probe)
                return slot_of(probe, node) if found is None else found
            if type(node) is And or type(node) is Or:
                indexes: list[int] = []
                groups: list[Program] = []
                for child in node.children:
                    if type(child) is Term:
                        probe = (child.word, child.field)
                        found = probes.get(probe)
                        indexes.append(slot_of(probe, child) if found is None else found)
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
            found = probes.get(node)
            return slot_of(node, cast(Leaf, node)) if found is None else found

        def upvotes(least: int) -> int:
            probe = ("upvotes>=", least)
            found = probes.get(probe)
            return slot_of(probe, Upvotes(">=", least)) if found is None else found

        return compile_node, upvotes

    def _locate(self, watch_id: int) -> tuple[_Bucket, int, int] | None:
        bucket = self._buckets.get(watch_id >> _BUCKET_BITS)
        if bucket is None:
            return None
        found = bucket.find(watch_id)
        return None if found is None else (bucket, *found)

    # --- matching ------------------------------------------------------------------

    def match(self, batch: PaperBatch) -> dict[int, int]:
        """Watch id → bitmap of the batch's papers it matches; watches matching nothing are left out."""
        with collector_paused():
            return self._match(batch)

    def _match(self, batch: PaperBatch) -> dict[int, int]:
        leaf_bits = batch.leaf_bits
        bits = [0 if key is None else leaf_bits(key) for key in self._keys]
        everything = batch.all_bits

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

        # The flat shapes are combined without a Python-level loop: map, zip and filter run in C.
        bit = bits.__getitem__
        matched: dict[int, int] = {}
        for bucket in self._buckets.values():
            leaves, ids = bucket.single
            matched.update(filter(_found, zip(ids, map(bit, leaves), strict=True)))
            first, second, ids = bucket.pair
            matched.update(
                filter(_found, zip(ids, map(and_, map(bit, first), map(bit, second)), strict=True))
            )
            first, second, third, ids = bucket.triple
            both = map(and_, map(bit, first), map(bit, second))
            matched.update(filter(_found, zip(ids, map(and_, both, map(bit, third)), strict=True)))
            for program, watch_id in zip(*bucket.other, strict=True):
                result = run(program)
                if result:
                    matched[watch_id] = result
        return matched


_found = itemgetter(1)
"""Keeps the (watch id, bitmap) pairs whose bitmap is not empty."""


def _slots_of(program: Program) -> set[int]:
    """The distinct leaf slots a program reads."""
    found: set[int] = set()
    stack = [program]
    while stack:
        item = stack.pop()
        if isinstance(item, int):
            found.add(item)
        else:
            stack.extend(item[1])
    return found


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
