"""Benchmark: many watches against a batch of papers, batch matcher versus the naive loop.

Run from the repository root:

    .venv/bin/python -m bench.bench_match [--watches N] [--papers N] [--million] [--seed S]

Papers are the real fixture papers (HF Daily Papers and the arXiv RSS capture), topped
up with synthetic papers built from real titles and abstract sentences. Watches are
random queries over the fixture vocabulary with a popularity skew. Parsing is not
timed; compiling the watches, indexing the papers and matching are.

With --million the watches are topped up to 1,000,000 and compiled as they are made, the
way the bot holds them: the compiled set, not a million parsed queries. Then single
watches are added, removed, paused and resumed, each timed on its own, and the matches
afterwards must be the matches before. Figures are written to bench/results/match.json
(`million` holds the 1,000,000-watch run, also in match_1m.json), with the machine's
load average beside them.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import re
import resource
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate, pairwise
from pathlib import Path

import psutil
from defusedxml import ElementTree

from bot.domain.batch import PaperBatch
from bot.domain.matcher import matches, paper_words
from bot.domain.paper import ARXIV, HF, Paper
from bot.domain.parser import parse_query
from bot.domain.query import ParseError, Query
from bot.domain.text import words
from bot.domain.watchset import WatchSet
from bot.services.matching import WatchMatcher

ROOT = Path(__file__).resolve().parent.parent
FEEDS = ROOT / "tests" / "fixtures" / "feeds"
RSS = FEEDS / "arxiv" / "rss_all-archives_2024-11-28.xml"
RESULTS = ROOT / "bench" / "results"
DC = "{http://purl.org/dc/elements/1.1/}"

_STOPWORDS_TEXT = """
    a an and are as at be been but by can could do does for from has have how in into is it its
    of on or our over such than that the their them then there these they this those through to
    under up via was we were what when where which while who will with without within also both
    between each more most not only other same show shows shown so some using use used well
    new based paper propose proposed approach method methods results work first two one however
    further here i e g et al while whereas thus may might must should would whether very"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())


@dataclass(frozen=True, slots=True)
class Corpus:
    papers: list[Paper]
    titles: list[str]
    sentences: list[str]
    authors: list[str]
    categories: list[str]


def _collapse(text: str) -> str:
    return " ".join(text.split())


def load_corpus() -> Corpus:
    """Real papers from the HF Daily Papers fixtures and the arXiv RSS capture."""
    papers: dict[str, Paper] = {}
    for path in sorted((FEEDS / "hf_daily").glob("*.json")):
        for entry in json.loads(path.read_text(encoding="utf-8")):
            raw = entry["paper"]
            papers[raw["id"]] = Paper(
                arxiv_id=raw["id"],
                title=_collapse(raw["title"]),
                abstract=raw.get("summary", ""),
                authors=tuple(a["name"] for a in raw.get("authors", [])),
                sources=frozenset({HF}),
                upvotes=int(raw.get("upvotes", 0)),
            )
    root = ElementTree.parse(RSS).getroot()
    for item in root.iter("item"):
        arxiv_id = (item.findtext("link") or "").rsplit("/", 1)[-1]
        description = item.findtext("description") or ""
        abstract = description.split("Abstract: ", 1)[-1]
        authors = tuple(a.strip() for a in (item.findtext(f"{DC}creator") or "").split(",") if a.strip())
        categories = tuple(c.text or "" for c in item.findall("category"))
        rss_paper = Paper(
            arxiv_id=arxiv_id,
            title=_collapse(item.findtext("title") or ""),
            abstract=abstract,
            authors=authors,
            sources=frozenset({ARXIV}),
            categories=categories,
        )
        papers[arxiv_id] = papers[arxiv_id].merged_with(rss_paper) if arxiv_id in papers else rss_paper
    real = list(papers.values())
    sentences = [s.strip() + "." for p in real for s in re.split(r"(?<=\.)\s+", p.abstract) if len(s) > 30]
    return Corpus(
        papers=real,
        titles=[p.title for p in real],
        sentences=sentences,
        authors=[a for p in real for a in p.authors],
        categories=[c for p in real for c in p.categories],
    )


def make_papers(corpus: Corpus, count: int, rng: random.Random) -> list[Paper]:
    """`count` papers: the real ones first, then synthetic ones made of real sentences."""
    papers = corpus.papers[:count]
    upvote_choices = [0] * 6 + [1, 2, 3, 5, 8, 13, 21, 40, 80, 150]
    while len(papers) < count:
        number = len(papers)
        papers.append(
            Paper(
                arxiv_id=f"9999.{number:05d}",
                title=rng.choice(corpus.titles),
                abstract=" ".join(rng.sample(corpus.sentences, rng.randint(4, 9))),
                authors=tuple(rng.sample(corpus.authors, rng.randint(1, 8))),
                sources=frozenset({HF}) if rng.random() < 0.3 else frozenset({ARXIV}),
                categories=tuple(rng.sample(corpus.categories, rng.randint(0, 3))),
                upvotes=rng.choice(upvote_choices),
            )
        )
    return papers


class WatchMaker:
    """Random watch queries shaped like the ones people write."""

    def __init__(self, corpus: Corpus, rng: random.Random) -> None:
        self.rng = rng
        counts: Counter[str] = Counter()
        pairs: Counter[tuple[str, str]] = Counter()
        for paper in corpus.papers:
            for text in (paper.title, paper.abstract):
                found = words(text)
                counts.update(w for w in found if self._useful(w))
                pairs.update((a, b) for a, b in pairwise(found) if self._useful(a) and self._useful(b))
        self.terms = [w for w, n in counts.most_common() if n >= 2]
        self.term_weights = list(accumulate(counts[w] ** 0.8 for w in self.terms))
        self.pairs = [p for p, n in pairs.most_common() if n >= 2]
        self.pair_weights = list(accumulate(pairs[p] ** 0.8 for p in self.pairs))
        surnames = Counter(
            name.split()[-1] for name in corpus.authors if name.split() and words(name.split()[-1])
        )
        self.surnames = [s for s, _ in surnames.most_common(3000)]
        self.categories = sorted(set(corpus.categories))

    @staticmethod
    def _useful(word: str) -> bool:
        return len(word) >= 3 and word not in STOPWORDS and not word.isdigit()

    def term(self) -> str:
        return self.rng.choices(self.terms, cum_weights=self.term_weights)[0]

    def part(self) -> str:
        roll = self.rng.random()
        if roll < 0.55:
            return self.term()
        if roll < 0.72:
            first, second = self.rng.choices(self.pairs, cum_weights=self.pair_weights)[0]
            return f'"{first} {second}"'
        if roll < 0.82:
            word = self.term()
            return word[: self.rng.randint(4, max(4, len(word) - 1))] + "*"
        if roll < 0.88:
            return f"title:{self.term()}"
        if roll < 0.93:
            return f"author:{self.rng.choice(self.surnames)}"
        if roll < 0.97:
            category = self.rng.choice(self.categories)
            if self.rng.random() < 0.3:
                return f"category:{category.split('.')[0]}.*"
            return f"category:{category}"
        return f"upvotes>={self.rng.choice([5, 10, 20, 50, 100])}"

    def query(self) -> str:
        size = self.rng.choices([1, 2, 3], [0.45, 0.35, 0.20])[0]
        parts = [self.part() for _ in range(size)]
        if size >= 2 and self.rng.random() < 0.2:
            text = " OR ".join(parts) if size == 2 else f"({parts[0]} OR {parts[1]}) {parts[2]}"
        else:
            text = " ".join(parts)
        if self.rng.random() < 0.12:
            text += f" -{self.term()}"
        return text

    def watches(self, count: int) -> list[tuple[int, Query, int | None]]:
        made: list[tuple[int, Query, int | None]] = []
        while len(made) < count:
            try:
                query = parse_query(self.query())
            except ParseError:
                continue
            min_upvotes = self.rng.choice([1, 5, 10, 20, 50]) if self.rng.random() < 0.1 else None
            made.append((len(made) + 1, query, min_upvotes))
        return made


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


Watches = list[tuple[int, Query, int | None]]


def rss_mb() -> float:
    return float(psutil.Process().memory_info().rss) / 2**20


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def run(papers: list[Paper], watches: Watches, rng: random.Random, naive_sample: int) -> dict[str, object]:
    gc.collect()
    started, cpu_started = time.perf_counter(), time.process_time()
    watch_set = WatchSet.build(watches)
    compile_seconds = time.perf_counter() - started
    compile_cpu = time.process_time() - cpu_started
    sample = rng.sample(watches, min(naive_sample, len(watches)))
    result = measure(papers, watch_set, (compile_seconds, compile_cpu), sample)
    result["matcher_add_watch_ms"] = matcher_add_ms(watches)
    return result


def matcher_add_ms(watches: Watches) -> float:
    """The matcher handed the active watches with one more: median ms to apply the difference."""
    matcher = WatchMatcher(lookback_hours=24, query_length=300)
    texts = [(watch_id, str(query.source), least) for watch_id, query, least in watches]
    matcher._compiled(texts[:-20])
    times = []
    for count in range(len(texts) - 19, len(texts) + 1):
        active = texts[:count]
        started = time.perf_counter()
        matcher._compiled(active)
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 3)


def measure(
    papers: list[Paper], watch_set: WatchSet, compiling: tuple[float, float], sample: Watches
) -> dict[str, object]:
    """Index the papers and match them; `compiling`: the wall-clock and CPU seconds of the compile."""
    compile_seconds, compile_cpu = compiling
    gc.collect()
    started, cpu_started = time.perf_counter(), time.process_time()
    batch = PaperBatch.build(papers)
    indexed = time.perf_counter()
    matched = watch_set.match(batch)
    finished = time.perf_counter()
    seconds = compile_seconds + finished - started
    cpu_seconds = compile_cpu + time.process_time() - cpu_started
    # The naive loop gets each paper's words prepared once, as the batch matcher does: what
    # it is measured on is evaluating every watch on every paper, one pair at a time.
    words_started = time.perf_counter()
    texts = [paper_words(paper) for paper in papers]
    words_seconds = time.perf_counter() - words_started
    naive_started = time.perf_counter()
    naive: dict[int, int] = {}
    for watch_id, query, min_upvotes in sample:
        bitmap = 0
        for index, paper in enumerate(papers):
            if matches(query, paper, min_upvotes, texts[index]):
                bitmap |= 1 << index
        if bitmap:
            naive[watch_id] = bitmap
    naive_sample_seconds = time.perf_counter() - naive_started
    sampled_ids = {watch_id for watch_id, _, _ in sample}
    batch_on_sample = {w: b for w, b in matched.items() if w in sampled_ids}
    if naive != batch_on_sample:
        raise SystemExit("batch matcher and naive evaluator disagree")
    watch_count = len(watch_set)
    naive_seconds = words_seconds + naive_sample_seconds * watch_count / len(sample)
    return {
        "papers": len(papers),
        "watches": watch_count,
        "seconds": round(seconds, 4),
        "compile_seconds": round(compile_seconds, 4),
        "index_seconds": round(indexed - started, 4),
        "match_seconds": round(finished - indexed, 4),
        "cpu_seconds": round(cpu_seconds, 4),
        "papers_per_second": round(len(papers) / seconds, 1),
        "distinct_leaves": watch_set.leaf_count,
        "watches_matching": len(matched),
        "matches": sum(b.bit_count() for b in matched.values()),
        "naive_seconds": round(naive_seconds, 2),
        "naive_sample_watches": len(sample),
        "naive_extrapolated": len(sample) < watch_count,
        "speedup": round(naive_seconds / seconds, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "fingerprint": fingerprint(matched),
        "load_average": load_average(),
    }


def fingerprint(matched: dict[int, int]) -> str:
    """A digest of a match result, whatever its order: equal results have equal digests."""
    total = sum(hash((watch_id, bits)) for watch_id, bits in matched.items())
    return f"{len(matched)}:{sum(b.bit_count() for b in matched.values())}:{total % 2**61:x}"


def million(
    papers: list[Paper], first: Watches, maker: WatchMaker, seed: int, naive_sample: int
) -> dict[str, object]:
    """1,000,000 watches: `first` topped up with new ones, compiled chunk by chunk as they are made.

    Only the compiled set is kept, with a sample of the parsed queries for the naive check and
    for pausing and resuming.
    """
    picker = random.Random(seed + 1)
    sample: Watches = []
    seen = 0

    def keep(chunk: Watches) -> None:  # reservoir sampling over the stream of watches
        nonlocal seen
        for watch in chunk:
            seen += 1
            if len(sample) < naive_sample:
                sample.append(watch)
            elif (slot := picker.randrange(seen)) < naive_sample:
                sample[slot] = watch

    gc.collect()
    rss_before = rss_mb()
    watch_set = WatchSet()
    compile_seconds = compile_cpu = 0.0
    chunk = [(index + 1, query, least) for index, (_, query, least) in enumerate(first)]
    while True:
        keep(chunk)
        started, cpu_started = time.perf_counter(), time.process_time()
        watch_set.extend(chunk)
        compile_seconds += time.perf_counter() - started
        compile_cpu += time.process_time() - cpu_started
        made = len(watch_set)
        if made >= 1_000_000:
            break
        chunk = [
            (made + index + 1, query, least)
            for index, (_, query, least) in enumerate(maker.watches(min(10_000, 1_000_000 - made)))
        ]
    del chunk
    first.clear()
    gc.collect()
    result = measure(papers, watch_set, (compile_seconds, compile_cpu), sample)
    result["watch_set_mb"] = round(rss_mb() - rss_before, 1)
    result.update(changes(papers, watch_set, maker, picker.sample(sample, 20)))
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    result["load_average"] = load_average()
    return result


def changes(
    papers: list[Paper], watch_set: WatchSet, maker: WatchMaker, existing: Watches
) -> dict[str, object]:
    """Single watches added, removed, paused and resumed on the full set, each timed on its own."""
    newcomers = [(2_000_000 + n, query, least) for n, (_, query, least) in enumerate(maker.watches(20))]

    def timed(action: Callable[..., None], items: list[tuple[object, ...]]) -> list[float]:
        times = []
        for item in items:
            started = time.perf_counter()
            action(*item)
            times.append((time.perf_counter() - started) * 1000)
        return times

    added = timed(watch_set.add, list(newcomers))
    removed = timed(watch_set.remove, [(watch_id,) for watch_id, _, _ in newcomers])
    paused = timed(watch_set.remove, [(watch_id,) for watch_id, _, _ in existing])
    resumed = timed(watch_set.add, list(existing))
    started = time.perf_counter()
    again = fingerprint(watch_set.match(PaperBatch.build(papers)))
    match_again_seconds = time.perf_counter() - started
    return {
        "add_watch_ms": round(statistics.median(added), 3),
        "add_watch_ms_max": round(max(added), 3),
        "remove_watch_ms": round(statistics.median(removed), 3),
        "pause_watch_ms": round(statistics.median(paused), 3),
        "resume_watch_ms": round(statistics.median(resumed), 3),
        "single_changes": len(added),
        "fingerprint_after_changes": again,
        "match_after_changes_seconds": round(match_again_seconds, 4),
    }


def show(result: dict[str, object]) -> None:
    print(
        f"{result['watches']:>9,} watches × {result['papers']:,} papers: "
        f"{result['seconds']} s (compile {result['compile_seconds']} s, index {result['index_seconds']} s, "
        f"match {result['match_seconds']} s), {result['papers_per_second']} papers/s, "
        f"{result['distinct_leaves']:,} distinct leaves, {result['watches_matching']:,} watches matched"
    )
    extrapolated = f" (extrapolated from {result['naive_sample_watches']} watches)"
    print(
        f"          naive: {result['naive_seconds']} s{extrapolated if result['naive_extrapolated'] else ''}"
        ", "
        f"speedup {result['speedup']}×, peak RSS {result['peak_rss_mb']} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--watches", type=int, default=100_000)
    parser.add_argument("--papers", type=int, default=2_000)
    parser.add_argument("--million", action="store_true", help="also run 1,000,000 watches")
    parser.add_argument("--seed", type=int, default=20241128)
    parser.add_argument("--naive-sample", type=int, default=300, help="watches timed with the naive loop")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    corpus = load_corpus()
    papers = make_papers(corpus, args.papers, rng)
    maker = WatchMaker(corpus, rng)
    watches = maker.watches(args.watches)
    result = run(papers, watches, rng, args.naive_sample)
    show(result)

    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.million:
        big = million(papers, watches, maker, args.seed, args.naive_sample)
        show(big)
        print(
            f"          one watch: add {big['add_watch_ms']} ms, remove {big['remove_watch_ms']} ms, "
            f"pause {big['pause_watch_ms']} ms, resume {big['resume_watch_ms']} ms; "
            f"compiled set {big['watch_set_mb']} MB; load average {big['load_average']}"
        )
        if big["fingerprint_after_changes"] != big["fingerprint"]:
            raise SystemExit("matches after adding and removing single watches differ from before")
        result["million"] = big
        (RESULTS / "match_1m.json").write_text(json.dumps(big, indent=2) + "\n", encoding="utf-8")
    (RESULTS / "match.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
