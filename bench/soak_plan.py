"""The soak's plan, independent of the bot: feed days, watches, and what must be delivered.

Everything here is plain data and the reference evaluator (`bot.domain.matcher.matches`,
one query against one paper); nothing in here runs the bot's ingest, batch matcher or
delivery code, so the expected deliveries are computed independently of the pipeline
under test.
"""

from __future__ import annotations

import copy
import json
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

from bot.domain.matcher import matches
from bot.domain.paper import Paper
from bot.domain.parser import parse_query
from bot.domain.query import ParseError, Query
from bot.domain.text import words
from bot.feeds.hf import parse_hf_daily

ROOT = Path(__file__).resolve().parent.parent
HF_FIXTURES = ROOT / "tests" / "fixtures" / "feeds" / "hf_daily"

_STOPWORDS_TEXT = """
    a an and are as at be been but by can could do does for from has have how in into is it its
    of on or our over such than that the their them then there these they this those through to
    under up via was we were what when where which while who will with without within also both
    between each more most not only other same show shows shown so some using use used well
    new based paper propose proposed approach method methods results work first two one however
    further here et al whereas thus may might must should would whether very towards toward your
    make makes made across beyond every any all just like need needs"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())

TIMEZONES = (
    "UTC",
    "Europe/Paris",
    "Europe/London",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Australia/Sydney",
)


# --- feed days -----------------------------------------------------------------------------


@dataclass
class FeedDay:
    """One simulated date of Hugging Face Daily Papers: a real fixture day, served twice over.

    `entries` is what the feed answers first; once the bot has read the whole day once, the
    feed answers `bumped` instead (upvotes and comments grow during a day, as on the real
    site), so changed papers go through the bot's re-match path.
    """

    index: int
    fixture: str
    entries: list[dict[str, Any]]
    bumped: list[dict[str, Any]]
    renamed: int = 0
    day: date | None = None
    _versions: list[list[Paper]] | None = field(default=None, repr=False)

    def versions(self) -> list[list[Paper]]:
        """The papers of each version, parsed by the real feed parser (as the bot reads them)."""
        if self._versions is None:
            self._versions = [
                parse_hf_daily(json.dumps(entries).encode(), day=self.day).papers
                for entries in (self.entries, self.bumped)
            ]
        return self._versions


def fixture_names() -> list[str]:
    return sorted(path.stem for path in HF_FIXTURES.glob("*.json"))


def heaviest_fixture() -> str:
    """The fixture day with the most entries (the largest batch the soak serves)."""
    sizes = {
        name: len(json.loads((HF_FIXTURES / f"{name}.json").read_text(encoding="utf-8")))
        for name in fixture_names()
    }
    return max(sorted(sizes), key=lambda name: sizes[name])


def _entry_id(entry: Any) -> str | None:
    paper = entry.get("paper") if isinstance(entry, dict) else None
    raw = paper.get("id") if isinstance(paper, dict) else None
    return raw if isinstance(raw, str) else None


def build_days(count: int, rng: random.Random, *, first_fixture: str | None = None) -> list[FeedDay]:
    """`count` days of papers: the fixture files in turn; ids made unique when a file repeats.

    A paper id already served on an earlier simulated day is rewritten to a fresh
    `29MM.NNNNN` id (arXiv ids that will not exist for years), so every day brings new
    papers. The rotation starts at `first_fixture` (default: the oldest file). The dates are
    given later (`assign_dates`), once the bot's clock is known.
    """
    names = fixture_names()
    if not names:
        raise SystemExit(f"no Hugging Face fixture days in {HF_FIXTURES}")
    if first_fixture is not None:
        if first_fixture not in names:
            raise SystemExit(f"no fixture day {first_fixture!r}; there are {', '.join(names)}")
        start = names.index(first_fixture)
        names = names[start:] + names[:start]
    used: set[str] = set()
    serial = 0
    days: list[FeedDay] = []
    for index in range(count):
        name = names[index % len(names)]
        entries = json.loads((HF_FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
        renamed = 0
        for entry in entries:
            raw = _entry_id(entry)
            if raw is None:
                continue
            if raw in used:
                serial += 1
                entry["paper"]["id"] = f"29{1 + serial // 99_999:02d}.{serial % 99_999:05d}"
                renamed += 1
            used.add(entry["paper"]["id"])
        bumped = copy.deepcopy(entries)
        for entry in bumped:
            paper = entry.get("paper") if isinstance(entry, dict) else None
            if not isinstance(paper, dict) or rng.random() < 0.4:
                continue
            if isinstance(paper.get("upvotes"), int):
                paper["upvotes"] += rng.randint(1, 30)
            if isinstance(entry.get("numComments"), int):
                entry["numComments"] += 1
        days.append(FeedDay(index=index + 1, fixture=name, entries=entries, bumped=bumped, renamed=renamed))
    return days


def assign_dates(days: Sequence[FeedDay], first: date, *, empty_weekends: bool) -> None:
    for feed_day in days:
        feed_day.day = first + timedelta(days=feed_day.index - 1)
        feed_day._versions = None
        if empty_weekends and feed_day.day.weekday() >= 5:
            feed_day.entries = []
            feed_day.bumped = []


# --- watches -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WatchSpec:
    channel: int
    """Index of the channel (0-based, over all guilds)."""
    query: str
    mode: str
    min_upvotes: int | None


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    index: int
    guild: int
    time: str
    timezone: str


class QueryMaker:
    """Watch queries of the kinds people write, from the words of the papers that will be served."""

    def __init__(self, papers: Sequence[Paper], rng: random.Random) -> None:
        self.rng = rng
        terms: Counter[str] = Counter()
        pairs: Counter[tuple[str, str]] = Counter()
        abstract_terms: Counter[str] = Counter()
        surnames: Counter[str] = Counter()
        for paper in papers:
            found = words(paper.title)
            terms.update(w for w in found if self._useful(w))
            pairs.update((a, b) for a, b in pairwise(found) if self._useful(a) and self._useful(b))
            abstract_terms.update(w for w in sorted(set(words(paper.abstract))) if self._useful(w))
            surnames.update(
                name.split()[-1] for name in paper.authors if name.split() and words(name.split()[-1])
            )
        self.terms, self.term_weights = self._weighted(terms)
        self.pairs, self.pair_weights = self._weighted(pairs)
        self.abstract_terms, self.abstract_weights = self._weighted(abstract_terms)
        self.surnames = [s for s, n in surnames.most_common() if n >= 1 and len(words(s)) == 1]

    @staticmethod
    def _useful(word: str) -> bool:
        return len(word) >= 4 and word not in STOPWORDS and not word.isdigit()

    @staticmethod
    def _weighted(counts: Counter[Any]) -> tuple[list[Any], list[float]]:
        items = [item for item, _ in counts.most_common()]
        return items, [counts[item] ** 0.7 for item in items]

    def term(self) -> str:
        return self.rng.choices(self.terms, weights=self.term_weights)[0]

    def part(self) -> str:
        roll = self.rng.random()
        if roll < 0.45:
            return self.term()
        if roll < 0.60 and self.pairs:
            first, second = self.rng.choices(self.pairs, weights=self.pair_weights)[0]
            return f'"{first} {second}"'
        if roll < 0.72:
            word = self.term()
            return word[: max(4, len(word) - self.rng.randint(1, 3))] + "*"
        if roll < 0.80:
            return f"title:{self.term()}"
        if roll < 0.87:
            return f"abstract:{self.rng.choices(self.abstract_terms, weights=self.abstract_weights)[0]}"
        if roll < 0.92 and self.surnames:
            return f"author:{self.rng.choice(self.surnames)}"
        return f"upvotes>={self.rng.choice([5, 10, 20, 40, 80])}"

    def query(self) -> str:
        size = self.rng.choices([1, 2, 3], [0.5, 0.35, 0.15])[0]
        parts = [self.part() for _ in range(size)]
        if size == 1:
            text = parts[0]
        elif size == 2:
            text = f"{parts[0]} OR {parts[1]}" if self.rng.random() < 0.5 else f"{parts[0]} {parts[1]}"
        else:
            text = f"({parts[0]} OR {parts[1]}) {parts[2]}"
        if self.rng.random() < 0.1:
            text += f" -{self.term()}"
        return text


def make_plan(
    papers: Sequence[Paper],
    *,
    guilds: int,
    channels: int,
    watches: int,
    rng: random.Random,
    instant_share: float = 0.25,
) -> tuple[list[ChannelSpec], list[WatchSpec]]:
    """Channels spread over guilds with spread digest times; watches spread over channels."""
    channel_specs = [
        ChannelSpec(
            index=i,
            guild=i % guilds,
            time=f"{rng.randrange(24):02d}:{rng.randrange(60):02d}",
            timezone=rng.choice(TIMEZONES),
        )
        for i in range(channels)
    ]
    maker = QueryMaker(papers, rng)
    specs: list[WatchSpec] = []
    while len(specs) < watches:
        text = maker.query()
        try:
            parse_query(text)
        except ParseError:
            continue
        mode = "instant" if rng.random() < instant_share else "digest"
        floor = rng.choice([1, 5, 10, 20]) if rng.random() < 0.1 else None
        specs.append(WatchSpec(channel=len(specs) % channels, query=text, mode=mode, min_upvotes=floor))
    return channel_specs, specs


# --- what must be delivered ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActiveWatch:
    """A watch as the bot holds it: its parsed query and when it was created (sim time)."""

    watch_id: int
    channel: int
    query: Query
    mode: str
    min_upvotes: int | None
    created_at: datetime


@dataclass
class Expected:
    """Per channel: paper id → (day index, version at which it first matched, mode of the post)."""

    per_channel: dict[int, dict[str, tuple[int, int, str]]] = field(default_factory=dict)

    def total(self) -> int:
        return sum(len(found) for found in self.per_channel.values())


def expected_deliveries(
    watches: Sequence[ActiveWatch],
    days: Sequence[FeedDay],
    first_seen: dict[str, datetime],
    *,
    lookback: timedelta,
) -> Expected:
    """The delivery rules of docs/delivery.md, with the reference evaluator.

    A (channel, paper) pair is due when at least one of the channel's watches matches some
    version of the paper that the bot read, and the watch takes part: an instant watch only
    for papers first seen at or after its creation, a digest watch also for papers first
    seen up to `lookback` before it. The post is instant when an instant watch matched at
    the first version that matched at all (that is when the bot records the delivery).
    Papers the bot never stored (no `first_seen`) cannot be due.
    """
    by_channel: dict[int, list[ActiveWatch]] = {}
    for watch in watches:
        by_channel.setdefault(watch.channel, []).append(watch)
    result = Expected()
    for feed_day in days:
        for version, papers in enumerate(feed_day.versions()):
            for paper in papers:
                seen = first_seen.get(paper.arxiv_id)
                if seen is None:
                    continue
                for channel, channel_watches in by_channel.items():
                    found = result.per_channel.setdefault(channel, {})
                    if paper.arxiv_id in found:
                        continue
                    modes = {
                        w.mode
                        for w in channel_watches
                        if _takes_part(w, seen, lookback) and matches(w.query, paper, w.min_upvotes)
                    }
                    if modes:
                        mode = "instant" if "instant" in modes else "digest"
                        found[paper.arxiv_id] = (feed_day.index, version, mode)
    return result


def _takes_part(watch: ActiveWatch, first_seen: datetime, lookback: timedelta) -> bool:
    start = watch.created_at if watch.mode == "instant" else watch.created_at - lookback
    return first_seen >= start
