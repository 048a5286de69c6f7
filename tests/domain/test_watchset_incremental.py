"""The compiled watch set changed one watch at a time matches exactly as a fresh compile does."""

from collections import Counter
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.domain.batch import PaperBatch
from bot.domain.matcher import matches
from bot.domain.parser import parse_query
from bot.domain.query import ParseError
from bot.domain.text import words
from bot.domain.watchset import WatchSet
from bot.services.matching import WatchMatcher
from tests.conftest import load_feed

PAPERS = [
    *load_feed("hf_daily/2024-11-28.json").papers,
    *load_feed("arxiv/rss_all-archives_2024-11-28.xml").papers[:120],
]
LIKED = [paper.arxiv_id for paper in PAPERS[::25]]
LIKES = {liked: sum(1 << n for n in range(k % 7, len(PAPERS), 5 + k % 4)) for k, liked in enumerate(LIKED)}
"""Made-up `like:` bitmaps, one per liked paper: what the similarity step would hand the batch."""
BATCH = PaperBatch.build(PAPERS, LIKES)


def _vocabulary() -> tuple[list[str], list[str], list[str], list[str]]:
    counts: Counter[str] = Counter()
    pairs: Counter[tuple[str, str]] = Counter()
    names: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    for paper in PAPERS:
        counts.update(words(paper.title) + words(paper.abstract))
        pairs.update(pairwise(words(paper.title)))
        names.update(name.split()[-1] for name in paper.authors[:2] if name.split())
        categories.update(paper.categories)
    return (
        [w for w, _ in counts.most_common(60)] + ["zzzunseen"],
        [f"{a} {b}" for (a, b), _ in pairs.most_common(20)],
        [n for n, _ in names.most_common(20) if words(n)],
        [c for c, _ in categories.most_common(8)],
    )


WORDS, PHRASES, NAMES, CATEGORIES = _vocabulary()

leaf = st.one_of(
    st.sampled_from(WORDS),
    st.sampled_from(WORDS).map(lambda w: f"title:{w}"),
    st.sampled_from(PHRASES).map(lambda p: f'"{p}"'),
    st.tuples(st.sampled_from(WORDS), st.integers(2, 4)).map(lambda t: f"{t[0][: t[1]]}*"),
    st.sampled_from(NAMES).map(lambda n: f"author:{n}"),
    st.sampled_from(CATEGORIES).map(lambda c: f"category:{c}"),
    st.sampled_from(CATEGORIES).map(lambda c: f"category:{c.split('.')[0]}.*"),
    st.sampled_from(LIKED).map(lambda i: f"like:{i}"),
    st.integers(0, 40).map(lambda n: f"upvotes>={n}"),
)
query_text = st.recursive(
    leaf,
    lambda children: st.one_of(
        st.lists(children, min_size=2, max_size=4).map(lambda xs: " ".join(f"({x})" for x in xs)),
        st.lists(children, min_size=2, max_size=3).map(lambda xs: " OR ".join(f"({x})" for x in xs)),
        st.tuples(children, children).map(lambda xs: f"({xs[0]}) -({xs[1]})"),
    ),
    max_leaves=6,
)


def parsed(text):
    try:
        return parse_query(text, max_length=10_000)
    except ParseError:
        return None


watch_ids = st.sampled_from([0, 1, 2, 3, 1024, 2048, 3072, 1025, 7, -5, 10**9])
"""Few ids, several in one bucket of 1,024 consecutive ids, so rows move when others are removed."""
steps = st.lists(
    st.tuples(
        st.sampled_from(["add", "remove", "pause", "resume", "edit"]),
        watch_ids,
        query_text,
        st.sampled_from([None, None, None, 5, 20]),
    ),
    min_size=1,
    max_size=25,
)


def same_as_fresh(watch_set, active):
    fresh = WatchSet.build((w, q, m) for w, (q, m) in active.items())
    assert watch_set.match(BATCH) == fresh.match(BATCH)
    assert len(watch_set) == len(fresh) == len(active)
    assert watch_set.leaf_count == fresh.leaf_count
    assert sorted(watch_set.liked_ids) == sorted(fresh.liked_ids)
    for watch_id in active:
        assert watch_id in watch_set


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(watch_ids, query_text, st.sampled_from([None, 5])), max_size=12), steps)
def test_changes_one_watch_at_a_time_match_like_a_fresh_compile(initial, changes):
    active = {}
    for watch_id, text, min_upvotes in initial:
        query = parsed(text)
        if query is not None:
            active[watch_id] = (query, min_upvotes)
    watch_set = WatchSet.build((w, q, m) for w, (q, m) in active.items())
    paused = {}
    for action, watch_id, text, min_upvotes in changes:
        query = parsed(text)
        if action == "add" and watch_id not in active and watch_id not in paused and query:
            watch_set.add(watch_id, query, min_upvotes)
            active[watch_id] = (query, min_upvotes)
        elif action == "remove" and watch_id in active:
            watch_set.remove(watch_id)
            del active[watch_id]
        elif action == "pause" and watch_id in active:
            watch_set.remove(watch_id)
            paused[watch_id] = active.pop(watch_id)
        elif action == "resume" and watch_id in paused:
            active[watch_id] = paused.pop(watch_id)
            watch_set.add(watch_id, *active[watch_id])
        elif action == "edit" and watch_id in active and query:
            watch_set.remove(watch_id)
            watch_set.add(watch_id, query, min_upvotes)
            active[watch_id] = (query, min_upvotes)
        same_as_fresh(watch_set, active)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(query_text, st.sampled_from([None, 10])), min_size=1, max_size=15))
def test_incremental_set_agrees_with_the_reference_evaluator(items):
    watch_set = WatchSet()
    expected = {}
    for n, (text, min_upvotes) in enumerate(items):
        query = parsed(text)
        if query is None:
            continue
        watch_set.add(n * 1024, query, min_upvotes)
        bitmap = 0
        for index, paper in enumerate(PAPERS):
            if matches(query, paper, min_upvotes, like=_like_score(index)):
                bitmap |= 1 << index
        if bitmap:
            expected[n * 1024] = bitmap
    assert watch_set.match(BATCH) == expected


def _like_score(index):
    """The batch's made-up `like:` bitmaps, as the reference evaluator asks for them."""

    def score(liked_id):
        return 0.9 if LIKES.get(liked_id, 0) >> index & 1 else None

    return score


class TestOneWatchAtATime:
    def test_removing_the_last_user_of_a_leaf_drops_it(self):
        watch_set = WatchSet()
        watch_set.add(1, parse_query("diffusion model"))
        watch_set.add(2, parse_query("diffusion"))
        assert watch_set.leaf_count == 2
        watch_set.remove(1)
        assert watch_set.leaf_count == 1
        watch_set.remove(2)
        assert watch_set.leaf_count == 0
        assert len(watch_set) == 0
        assert watch_set.match(BATCH) == {}

    def test_a_freed_leaf_slot_is_reused_for_a_new_leaf(self):
        watch_set = WatchSet()
        watch_set.add(1, parse_query("diffusion"))
        watch_set.remove(1)
        watch_set.add(2, parse_query("agent"))
        fresh = WatchSet.build([(2, parse_query("agent"), None)])
        assert watch_set.match(BATCH) == fresh.match(BATCH) != {}
        assert watch_set._keys == fresh._keys

    def test_liked_ids_follow_the_watches(self):
        first, second = LIKED[:2]
        watch_set = WatchSet()
        watch_set.add(1, parse_query(f"like:{first}"))
        watch_set.add(2, parse_query(f"like:{first} OR like:{second}"))
        assert watch_set.liked_ids == [first, second]
        watch_set.remove(1)
        assert watch_set.liked_ids == [first, second]
        watch_set.remove(2)
        assert watch_set.liked_ids == []
        watch_set.add(3, parse_query(f"diffusion -like:{second}"))
        assert watch_set.liked_ids == [second]

    def test_an_id_is_compiled_once(self):
        watch_set = WatchSet()
        watch_set.add(5, parse_query("diffusion"))
        with pytest.raises(ValueError, match="already compiled"):
            watch_set.add(5, parse_query("agent"))
        with pytest.raises(KeyError):
            watch_set.remove(6)  # same bucket as 5, not in the set
        with pytest.raises(KeyError):
            watch_set.remove(5000)

    def test_an_id_out_of_range_changes_nothing(self):
        watch_set = WatchSet.build([(1, parse_query("diffusion"), None)])
        with pytest.raises(OverflowError):
            watch_set.add(2**70, parse_query("diffusion agent"))
        assert watch_set.leaf_count == 1
        watch_set.remove(1)
        assert len(watch_set) == 0
        assert watch_set.match(BATCH) == {}

    def test_min_upvotes_is_released_with_its_watch(self):
        watch_set = WatchSet()
        watch_set.add(1, parse_query("diffusion"), 20)
        watch_set.add(2, parse_query("agent"), 20)
        assert watch_set.leaf_count == 3
        watch_set.remove(1)
        watch_set.remove(2)
        assert watch_set.leaf_count == 0


def entries(texts):
    return [(watch_id, parse_query(text), None) for watch_id, text in texts.items()]


def stored(texts):
    """The active watches as the matcher is handed them: query texts, not parsed queries."""
    return [(watch_id, text, None) for watch_id, text in texts.items()]


class TestMatcherCompiles:
    """WatchMatcher applies the difference between the active watches and what it compiled."""

    def test_changes_are_applied_to_the_same_compiled_set(self):
        matcher = WatchMatcher(lookback_hours=24, query_length=300)
        texts = dict(enumerate(["diffusion", "agent", "video -diffusion", "reasoning"]))
        first = matcher._compiled(stored(texts))
        del texts[1]
        texts[9] = "language model"
        texts[2] = "video"
        second = matcher._compiled(stored(texts))
        assert second is first
        assert second.match(BATCH) == WatchSet.build(entries(texts)).match(BATCH)

    def test_min_upvotes_changes_are_applied(self):
        matcher = WatchMatcher(lookback_hours=24, query_length=300)
        matcher._compiled([(1, "model", None)])
        compiled = matcher._compiled([(1, "model", 30)])
        assert compiled.match(BATCH) == WatchSet.build([(1, parse_query("model"), 30)]).match(BATCH)

    def test_a_subset_match_leaves_the_compiled_set_alone(self):
        matcher = WatchMatcher(lookback_hours=24, query_length=300)
        everything = stored(dict(enumerate(["diffusion", "agent", "model"])))
        compiled = matcher._compiled(everything)
        subset = matcher._compiled(everything[1:2], shared=False)
        assert subset is not compiled
        assert len(subset) == 1
        assert len(compiled) == 3
        assert matcher._compiled(everything) is compiled
