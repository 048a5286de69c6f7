"""Matching new and changed papers against every active watch, recording pending deliveries."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from bot import metrics
from bot.db.deliveries import DeliveryRepository
from bot.db.models import MODE_INSTANT
from bot.db.repo import ActiveWatch, WatchRepository
from bot.domain.batch import PaperBatch, iter_bits
from bot.domain.matcher import PaperWords, explain, paper_words
from bot.domain.paper import Paper
from bot.domain.parser import parse_query
from bot.domain.query import ParseError, Query
from bot.domain.watchset import WatchSet

if TYPE_CHECKING:
    from bot.relevance.similar import LikeScores
    from bot.services.clock import Clock
    from bot.services.similarity import PaperVectors

log = logging.getLogger(__name__)

Entry = tuple[int, str, int | None]
"""An active watch as the matcher compares them: (watch id, query text, min_upvotes)."""


@dataclass(slots=True)
class MatchReport:
    deliveries: int = 0
    instant_targets: set[int] = field(default_factory=set)


class WatchMatcher:
    """Turns a batch of papers into pending deliveries, one per (target, paper).

    Compiling the watches, matching a batch and explaining each match are CPU work: they run
    in a worker thread, so a large batch never holds up the event loop.
    """

    def __init__(
        self,
        *,
        lookback_hours: float,
        query_length: int,
        vectors: PaperVectors | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.lookback = timedelta(hours=lookback_hours)
        self.query_length = query_length
        self.vectors = vectors
        """The stored papers' text vectors, for `like:` terms; without them no `like:` term matches."""
        self.clock = clock
        """Dates new deliveries; without it the database's time is used."""
        self._parsed: OrderedDict[str, Query | None] = OrderedDict()
        """The most recently used parsed queries; the compiled set needs none of them kept."""
        self._parsed_lock = threading.Lock()
        self._compiled_for: list[Entry] = []
        self._compiled_set: WatchSet | None = None
        self._compile_lock = threading.Lock()

    PARSED_KEPT = 4096
    """How many parsed queries are kept for explaining matches; the rest are parsed again."""

    def parse(self, text: str) -> Query | None:
        """A stored query, parsed; None if it no longer parses (logged each time it is parsed)."""
        with self._parsed_lock:
            if text in self._parsed:
                self._parsed.move_to_end(text)
                return self._parsed[text]
        try:
            query: Query | None = parse_query(text, max_length=max(self.query_length, len(text)))
        except ParseError as exc:
            log.warning("stored watch query no longer parses (%s); it is skipped", exc)
            query = None
        with self._parsed_lock:
            self._parsed[text] = query
            while len(self._parsed) > self.PARSED_KEPT:
                self._parsed.popitem(last=False)
        return query

    def _parsed_entries(self, entries: Sequence[Entry]) -> Iterator[tuple[int, Query, int | None]]:
        for watch_id, text, least in entries:
            query = self.parse(text)
            if query is not None:
                yield watch_id, query, least

    def _compiled(self, entries: list[Entry], shared: bool = True) -> WatchSet:
        """The compiled watches: what changed since the last call is applied to the compiled set.

        `entries` come in watch id order, so an added, paused, removed or edited watch differs
        from the last call in a short stretch only: the watches there are added to or removed
        from the set one by one, and the rest is never recompiled. A match limited to a few
        watches (`shared=False`) gets a set of its own and leaves the shared one alone.
        Queries are parsed only as they are compiled: a million watches keep no parsed query.
        """
        if not shared:
            return WatchSet.build(self._parsed_entries(entries))
        with self._compile_lock:
            before, compiled = self._compiled_for, self._compiled_set
            start = _common_prefix(before, entries)
            end = _common_suffix(before, entries, start)
            removed = before[start : len(before) - end]
            added = entries[start : len(entries) - end]
            if compiled is None or len(removed) + len(added) > len(entries) // 10 + 100:
                compiled = WatchSet.build(self._parsed_entries(entries))
            else:
                old = {watch_id: (text, least) for watch_id, text, least in removed}
                new = {watch_id: (text, least) for watch_id, text, least in added}
                for watch_id, entry in old.items():
                    if new.get(watch_id) != entry and watch_id in compiled:
                        compiled.remove(watch_id)
                changed = [
                    (w, text, least) for w, (text, least) in new.items() if old.get(w) != (text, least)
                ]
                compiled.extend(self._parsed_entries(changed))
            self._compiled_set, self._compiled_for = compiled, entries
            return compiled

    def eligible(self, watch: ActiveWatch, paper: Paper) -> bool:
        """A watch takes part from its creation; a digest watch also looks back `lookback_hours`."""
        seen = paper.first_seen_at
        if seen is None:
            return True
        start = watch.created_at if watch.mode == MODE_INSTANT else watch.created_at - self.lookback
        return seen >= start

    async def record(
        self,
        session: AsyncSession,
        papers: Sequence[Paper],
        *,
        only_watch_ids: set[int] | None = None,
    ) -> MatchReport:
        """Match `papers` against the active watches and store the new pending deliveries."""
        report = MatchReport()
        if not papers:
            return report
        active = await WatchRepository(session).active()
        if not active:
            return report
        entries: list[Entry] = []
        watches: dict[int, ActiveWatch] = {}
        for watch in active:
            if only_watch_ids is not None and watch.id not in only_watch_ids:
                continue
            entries.append((watch.id, watch.query, watch.min_upvotes))
            watches[watch.id] = watch
        compiled = await asyncio.to_thread(self._compiled, entries, only_watch_ids is None)
        likes = await self.like_scores(session, papers, compiled.liked_ids)
        hits = await asyncio.to_thread(self._hits, compiled, papers, likes, watches)
        if not hits:
            return report
        deliveries = DeliveryRepository(session)
        done = await deliveries.existing_pairs({t for t, _ in hits}, {p for _, p in hits})
        fresh = {pair: matched for pair, matched in hits.items() if pair not in done}
        now = self.clock.now() if self.clock is not None else None
        rows, counts, instant_targets = await asyncio.to_thread(self._rows, fresh, papers, likes, now)
        report.instant_targets.update(instant_targets)
        report.deliveries = await deliveries.add_pending(rows)
        metrics.record_matches(report.deliveries)
        await WatchRepository(session).add_matches(counts)
        return report

    def _hits(
        self,
        compiled: WatchSet,
        papers: Sequence[Paper],
        likes: LikeScores | None,
        watches: Mapping[int, ActiveWatch],
    ) -> dict[tuple[int, str], list[ActiveWatch]]:
        """Which watches of which target match which paper of the batch (a worker thread)."""
        batch = PaperBatch.build(papers, likes.bits if likes else None)
        with self._compile_lock:  # the shared set changes in place: never while it is matched
            bitmaps = compiled.match(batch)
        hits: dict[tuple[int, str], list[ActiveWatch]] = {}
        for watch_id, bits in bitmaps.items():
            if watch_id not in watches:  # added to the shared set by a later call
                continue
            watch = watches[watch_id]
            for index in iter_bits(bits):
                paper = papers[index]
                if self.eligible(watch, paper):
                    hits.setdefault((watch.target_id, paper.arxiv_id), []).append(watch)
        return hits

    def _rows(
        self,
        hits: Mapping[tuple[int, str], list[ActiveWatch]],
        papers: Sequence[Paper],
        likes: LikeScores | None,
        now: datetime | None,
    ) -> tuple[list[dict[str, object]], dict[int, int], set[int]]:
        """The pending delivery rows of new hits, with why each matched; matches per watch; the
        targets that have an instant post to make."""
        by_id = {paper.arxiv_id: paper for paper in papers}
        texts: dict[str, PaperWords] = {}  # each paper's words, computed once for this batch
        rows: list[dict[str, object]] = []
        counts: dict[int, int] = {}
        instant_targets: set[int] = set()
        for (target_id, paper_id), matched in hits.items():
            paper = by_id[paper_id]
            text = texts.get(paper_id) or texts.setdefault(paper_id, paper_words(paper))
            instant = any(w.mode == MODE_INSTANT for w in matched)
            if instant:
                instant_targets.add(target_id)
            words: list[list[str]] = []
            for watch in matched:
                counts[watch.id] = counts.get(watch.id, 0) + 1
                query = self.parse(watch.query)
                if query is not None:
                    like = likes.for_paper(paper) if likes else None
                    reasons = explain(query, paper, text, like)
                    words.extend([str(watch.id), term, word] for term, word in reasons)
            rows.append(
                {
                    "target_id": target_id,
                    "paper_id": paper_id,
                    "watch_id": matched[0].id,
                    "watch_ids": [w.id for w in matched],
                    "matched_terms": _unique(words),
                    "mode": MODE_INSTANT if instant else "digest",
                    "status": "pending",
                    "attempts": 0,
                    **({"created_at": now} if now is not None else {}),
                }
            )
        return rows, counts, instant_targets

    async def like_scores(
        self, session: AsyncSession | None, papers: Sequence[Paper], liked: Sequence[str]
    ) -> LikeScores | None:
        """The `like:` scores of `papers` against the liked papers; None when nothing is liked."""
        if not liked or self.vectors is None or not papers:
            return None
        return await self.vectors.like_scores(papers, liked, session)

    def preview(
        self,
        query: Query,
        papers: Sequence[Paper],
        min_upvotes: int | None = None,
        likes: Mapping[str, int] | None = None,
    ) -> list[Paper]:
        """The papers of `papers` that `query` matches, in their given order (`likes`: `PaperBatch`)."""
        if not papers:
            return []
        bitmaps = WatchSet.build([(0, query, min_upvotes)]).match(PaperBatch.build(papers, likes))
        return [papers[i] for i in iter_bits(bitmaps.get(0, 0))]


_CHUNK = 4096


def _common_prefix(first: Sequence[object], second: Sequence[object]) -> int:
    """How many leading items two lists share (compared a chunk at a time)."""
    limit = min(len(first), len(second))
    index = 0
    while index < limit:
        stop = min(index + _CHUNK, limit)
        if first[index:stop] != second[index:stop]:
            while first[index] == second[index]:
                index += 1
            return index
        index = stop
    return limit


def _common_suffix(first: Sequence[object], second: Sequence[object], start: int) -> int:
    """How many trailing items two lists share, not counting their first `start` items."""
    limit = min(len(first), len(second)) - start
    size_first, size_second = len(first), len(second)
    count = 0
    while count < limit:
        stop = min(count + _CHUNK, limit)
        if first[size_first - stop : size_first - count] != second[size_second - stop : size_second - count]:
            while first[size_first - 1 - count] == second[size_second - 1 - count]:
                count += 1
            return count
        count = stop
    return limit


def _unique(pairs: list[list[str]]) -> list[list[str]]:
    seen: set[tuple[str, ...]] = set()
    out: list[list[str]] = []
    for pair in pairs:
        key = tuple(pair)
        if key not in seen:
            seen.add(key)
            out.append(pair)
    return out[:20]
