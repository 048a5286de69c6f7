"""`like:` through the services on a real SQLite file, and `paperwatch match --query like:ID`.

Expected cosines are computed here with scikit-learn from the settings docs/relevance.md
states, not through paperwatch's vectors.
"""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics.pairwise import cosine_similarity
from sqlalchemy import select

from bot.cli import main
from bot.config import RelevanceSettings
from bot.db.models import DeliveryRow
from bot.domain.paper import FeedResult, Paper
from bot.services.access import Caller, UserError
from bot.services.core import Core
from tests.conftest import RSS_ALL, START, FakeClock, load_feed

THRESHOLD = RelevanceSettings().like_threshold
ADMIN = Caller(user_id=11, guild_id=100, channel_id=1001, can_manage=True)


def cosines(papers: list[Paper]) -> np.ndarray:
    vectorizer = TfidfVectorizer(
        ngram_range=(1, 2), sublinear_tf=True, stop_words="english", min_df=2, max_df=0.5
    )
    return cosine_similarity(vectorizer.fit_transform([f"{p.title} {p.title} {p.abstract}" for p in papers]))


def similar(papers: list[Paper], table: np.ndarray, liked: str) -> tuple[set[str], set[str]]:
    """(surely like, borderline) ids for a liked paper, by the cosines computed here."""
    index = [p.arxiv_id for p in papers].index(liked)
    row = table[index]
    sure = {papers[j].arxiv_id for j in np.flatnonzero(row >= THRESHOLD + 1e-4) if j != index}
    near = {papers[j].arxiv_id for j in np.flatnonzero(np.abs(row - THRESHOLD) < 1e-4) if j != index}
    return sure, near


@pytest.fixture(scope="module")
def rss() -> list[Paper]:
    return list(load_feed(RSS_ALL).papers)


@pytest.fixture(scope="module")
def table(rss: list[Paper]) -> np.ndarray:
    return cosines(rss)


def a_liked_paper(rss: list[Paper], table: np.ndarray, among: range) -> str:
    """A paper of `among` with several like papers after it in the listing."""
    half = len(rss) // 2
    best = max(among, key=lambda i: int((table[i, half:] >= THRESHOLD + 1e-4).sum()))
    return rss[best].arxiv_id


async def test_a_like_watch_gets_the_similar_new_papers(
    core: Core, clock: FakeClock, rss: list[Paper], table: np.ndarray
) -> None:
    half = len(rss) // 2
    clock.set(START - timedelta(days=10))
    await core.ingestor.ingest(FeedResult(papers=rss[:half]))
    liked = a_liked_paper(rss, table, range(half))
    clock.set(START)
    added = await core.watches.add_watch(ADMIN, channel_id=1001, query=f"like:{liked}v1")
    clock.advance(minutes=5)
    await core.ingestor.ingest(FeedResult(papers=rss[half:]))

    sure, near = similar(rss, table, liked)
    new = {p.arxiv_id for p in rss[half:]}
    async with core.sessions() as session:
        rows = (await session.execute(select(DeliveryRow))).scalars().all()
    delivered = {row.paper_id: row for row in rows}
    assert sure & new
    assert sure & new <= set(delivered) <= (sure | near) & new
    index = {p.arxiv_id: i for i, p in enumerate(rss)}
    for paper_id, row in delivered.items():
        ((watch, term, word),) = row.matched_terms
        assert (watch, term) == (str(added.watch.id), f"like:{liked}")
        assert abs(float(word) - table[index[liked], index[paper_id]]) <= 0.006
    # fitted once, on the whole store as the batch was matched (the new papers included)
    assert core.vectors.fits == 1


async def test_an_unknown_paper_is_refused_naming_it(core: Core, rss: list[Paper]) -> None:
    await core.ingestor.ingest(FeedResult(papers=rss[:100]))
    calls = [
        core.watches.add_watch(ADMIN, channel_id=1001, query="like:2501.00001"),
        core.alerts.add_alert(Caller(71, None, None), query="video OR like:2501.00001v2"),
        core.papers.preview("like:2501.00001"),
        core.papers.search("like:2501.00001 -video"),
    ]
    for call in calls:
        with pytest.raises(UserError) as caught:
            await call
        assert "Unknown paper `2501.00001`" in str(caught.value)
    assert await core.watches.list_watches(100) == []
    known = rss[0].arxiv_id
    await core.watches.add_watch(ADMIN, channel_id=1001, query=f"like:{known}")


async def test_watch_test_and_search_find_the_similar_stored_papers(
    make_core, rss: list[Paper], table: np.ndarray
) -> None:
    core = await make_core(PAPERWATCH_LIMITS__SEARCH_CANDIDATES="2000")
    await core.ingestor.ingest(FeedResult(papers=rss))
    liked = a_liked_paper(rss, table, range(len(rss)))
    sure, near = similar(rss, table, liked)
    found = await core.papers.search(f"like:{liked}", limit=100)
    assert found.complete and found.examined == len(rss)  # like: cannot narrow the candidates
    assert sure <= {p.arxiv_id for p in found.papers} <= sure | near
    tested = await core.papers.preview(f"like:{liked}", limit=100)
    assert {p.arxiv_id for p in tested.papers} == {p.arxiv_id for p in found.papers}


async def test_an_unchanged_store_is_not_refitted_and_a_refit_changes_nothing(
    make_core, rss: list[Paper]
) -> None:
    core = await make_core()
    await core.ingestor.ingest(FeedResult(papers=rss[:1000]))
    batch, liked = rss[1000:], [p.arxiv_id for p in rss[:1000:40]]
    first = await core.vectors.like_scores(batch, liked)
    second = await core.vectors.like_scores(batch, liked)
    assert core.vectors.fits == 1
    assert first.bits == second.bits and first.bits
    fresh = await make_core()  # another process: its own fit on the same store
    again = await fresh.vectors.like_scores(batch, liked)
    assert again.bits == first.bits
    for liked_id, scores in first.scores.items():
        assert again.scores[liked_id] == pytest.approx(scores, abs=1e-6)
    # growth under the set fraction (20 %) keeps the fit; over it refits
    await core.ingestor.ingest(FeedResult(papers=rss[1000:1150]))
    await core.vectors.like_scores(batch, liked)
    assert core.vectors.fits == 1
    await core.ingestor.ingest(FeedResult(papers=rss[1150:1300]))
    await core.vectors.like_scores(batch, liked)
    assert core.vectors.fits == 2


async def test_two_callers_share_one_fit(core: Core, rss: list[Paper]) -> None:
    import asyncio

    await core.ingestor.ingest(FeedResult(papers=rss[:600]))
    spaces = await asyncio.gather(*(core.vectors.space() for _ in range(4)))
    assert core.vectors.fits == 1
    assert all(space is spaces[0] for space in spaces)
    assert spaces[0].fitted_on == 600


def test_paperwatch_match_like_offline(
    capsys: pytest.CaptureFixture[str], rss: list[Paper], table: np.ndarray
) -> None:
    liked = a_liked_paper(rss, table, range(len(rss)))
    code = main(["match", "--query", f"like:{liked}", "--feed", str(RSS_ALL), "--json"])
    out, _ = capsys.readouterr()
    assert code == 0
    sure, near = similar(rss, table, liked)
    assert sure
    assert sure <= set(json.loads(out)) <= sure | near
    code = main(["match", "--query", "like:2501.00001", "--feed", str(RSS_ALL)])
    _, err = capsys.readouterr()
    assert code == 2
    assert "unknown paper 2501.00001" in err
