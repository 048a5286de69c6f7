"""Recommendations: the per-user model, the Recommender service over a real SQLite file and
the outbox, and `paperwatch recommend` — on the real arXiv RSS fixture (categories are the truth,
hidden from the model)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta

import numpy as np
import pytest
from sklearn.metrics.pairwise import cosine_similarity
from sqlalchemy import delete, select

from bot.cli import main
from bot.db.models import DeliveryRow, TargetRow
from bot.discord.embeds import render
from bot.domain.paper import FeedResult, Paper
from bot.relevance.recommend import (
    MIN_POSITIVES,
    Batch,
    Neighbours,
    TooFewPositivesError,
    UserJob,
    rank,
    recommend,
    run_batch,
    train,
)
from bot.relevance.vectors import TextSpace
from bot.services.core import Core
from bot.services.delivery import Deliverer
from bot.services.recommend import Recommender
from bot.services.workers import WorkerPool
from tests.conftest import HF_DIR, RSS_ALL, load_feed
from tests.test_delivery import RecordingSender

MakeCore = Callable[..., Awaitable[Core]]
USER = 4242


@pytest.fixture(scope="module")
def workers() -> Iterator[WorkerPool]:
    """Two worker processes shared by the tests of this file (started at first use)."""
    pool = WorkerPool(2)
    yield pool
    asyncio.run(pool.close())


def rss() -> list[Paper]:
    return list(load_feed(RSS_ALL).papers)


def of(papers: list[Paper], category: str) -> list[Paper]:
    return [p for p in papers if p.categories and p.categories[0] == category]


# --- the pure model ------------------------------------------------------------------------------


def test_liked_papers_topic_ranks_above_the_disliked_one() -> None:
    papers = rss()
    vision, particles = of(papers, "cs.CV"), of(papers, "hep-ph")
    space = TextSpace.fit(papers)
    background = [p for p in papers if p not in vision[:5] + particles[:5]][::10]
    model = train(space.transform(vision[:5]), space.transform(particles[:5]), space.transform(background))
    held_out = vision[5:35] + particles[5:35]
    scores = model.scores(space.transform(held_out))
    liked, disliked = scores[:30], scores[30:]
    ordered_pairs = (liked[:, None] > disliked[None, :]).mean()
    assert ordered_pairs > 0.9
    top = rank(model, space.transform(held_out), top=10)
    assert sum(r.index < 30 for r in top) >= 9
    assert [r.score for r in top] == sorted((r.score for r in top), reverse=True)


def test_fewer_than_three_liked_papers_are_refused() -> None:
    papers = rss()
    space = TextSpace.fit(papers)
    with pytest.raises(TooFewPositivesError) as refused:
        train(space.transform(papers[:2]), space.transform(papers[2:4]), space.transform(papers[10:60]))
    assert refused.value.needed == MIN_POSITIVES - 2 == 1


def test_why_names_the_nearest_liked_paper() -> None:
    papers = rss()
    liked = of(papers, "quant-ph")[:6]
    space = TextSpace.fit(papers)
    positives = space.transform(liked)
    candidates = space.transform(of(papers, "quant-ph")[6:40] + of(papers, "cs.CL")[:20])
    model = train(positives, space.transform(of(papers, "math.AP")[:5]), space.transform(papers[::15]))
    picks = rank(model, candidates, top=8, neighbours=Neighbours.of(candidates))
    assert picks
    expected = cosine_similarity(candidates, positives)
    for pick in picks:
        assert pick.closest[0] == int(np.argmax(expected[pick.index]))
        assert pick.cosines[0] == pytest.approx(expected[pick.index].max(), abs=1e-5)
        if len(pick.closest) == 2:
            assert pick.closest[1] == int(np.argsort(-expected[pick.index])[1])


def test_cutoff_and_allowed_rows_bound_what_is_returned() -> None:
    papers = rss()
    space = TextSpace.fit(papers)
    model = train(
        space.transform(of(papers, "cs.CV")[:5]),
        space.transform(of(papers, "gr-qc")[:5]),
        space.transform(papers[::20]),
    )
    candidates = space.transform(papers[1:200])
    scores = model.scores(candidates)
    cutoff = float(np.sort(scores)[-4])
    assert len(rank(model, candidates, top=50, cutoff=cutoff)) == 4
    allowed = [3, 7, 11]
    assert {r.index for r in rank(model, candidates, top=50, allowed=allowed)} == set(allowed)


def fixture_batch() -> Batch:
    """Three users of the RSS fixture (liked and disliked categories) and their batch."""
    papers = rss()
    space = TextSpace.fit(papers)
    tastes = [("cs.CV", "hep-ph"), ("quant-ph", "cs.CL"), ("astro-ph.GA", "math.AP")]
    feedback = [(of(papers, liked)[:6], of(papers, disliked)[:4]) for liked, disliked in tastes]
    labelled = {p.arxiv_id for liked, disliked in feedback for p in (*liked, *disliked)}
    background = [p for p in papers[:600] if p.arxiv_id not in labelled][::4]
    candidates = [p for p in papers[600:] if p.arxiv_id not in labelled]
    store = [p for liked, disliked in feedback for p in (*liked, *disliked)] + background
    matrix = space.transform(candidates)
    index = {p.arxiv_id: i for i, p in enumerate(store)}
    jobs = []
    for number, (liked, disliked) in enumerate(feedback):
        jobs.append(
            UserJob(
                positives=np.array([index[p.arxiv_id] for p in liked]),
                negatives=np.array([index[p.arxiv_id] for p in disliked]),
                background=np.arange(len(store) - len(background), len(store)),
                allowed=np.arange(number, matrix.shape[0], 2),  # every other candidate
                per_day=5,
            )
        )
    return Batch(
        rows=space.transform(store),
        candidates=matrix,
        neighbours=Neighbours.of(matrix),
        cutoff=0.0,
        users=tuple(jobs),
    )


async def test_a_worker_process_recommends_exactly_what_the_in_process_model_does(
    workers: WorkerPool,
) -> None:
    batch = fixture_batch()
    in_process = [found for found, _ in run_batch(batch)]
    neighbours = await workers.run(Neighbours.of, batch.candidates)
    from_pool = [found for found, _ in await workers.run(run_batch, batch)]
    assert not workers.in_thread
    assert np.array_equal(neighbours.index, batch.neighbours.index)
    assert np.array_equal(neighbours.weight, batch.neighbours.weight)
    assert from_pool == in_process
    assert all(len(found) == 5 for found in from_pool)
    for user, found in zip(batch.users, from_pool, strict=True):  # the plain per-user function
        direct = recommend(
            batch.rows[user.positives],
            batch.rows[user.negatives],
            batch.rows[user.background],
            batch.candidates,
            per_day=user.per_day,
            neighbours=batch.neighbours,
            allowed=user.allowed,
        )
        assert found == direct
        assert all(r.index in set(user.allowed.tolist()) for r in found)


async def test_where_no_worker_process_can_start_a_thread_does_the_same_work(
    caplog: pytest.LogCaptureFixture,
) -> None:
    batch = fixture_batch()
    broken = WorkerPool(2, method="no-such-start-method")
    with caplog.at_level(logging.WARNING, logger="bot.services.workers"):
        first = await broken.run(run_batch, batch)
        second = await broken.run(run_batch, batch)
    assert broken.in_thread
    assert [f for f, _ in first] == [f for f, _ in second] == [f for f, _ in run_batch(batch)]
    warnings = [r for r in caplog.records if "worker processes unavailable" in r.getMessage()]
    assert len(warnings) == 1
    await broken.close()


# --- the service, through the outbox ------------------------------------------------------------


async def setup_store(core: Core, *, likes: int = 5) -> tuple[list[Paper], list[Paper]]:
    """Yesterday's store, then today's new papers; the user saves `likes` vision papers."""
    papers = rss()
    old, new = papers[:900], papers[900:]
    await core.ingestor.ingest(FeedResult(papers=old))
    for paper in of(old, "cs.CV")[:likes]:
        await core.feedback.save(USER, paper.arxiv_id)
    for paper in of(old, "hep-th")[:3]:
        await core.feedback.rate(USER, paper.arxiv_id, -1)
    core.clock.advance(hours=30)  # type: ignore[attr-defined]
    await core.ingestor.ingest(FeedResult(papers=new))
    return old, new


def recommender(core: Core, workers: WorkerPool, cutoff: float = 0.0) -> Recommender:
    return Recommender(core.sessions, core.vectors, core.clock, cutoff=cutoff, workers=workers)


async def delivered(core: Core) -> list[DeliveryRow]:
    async with core.sessions() as session:
        return list(await session.scalars(select(DeliveryRow).order_by(DeliveryRow.id)))


async def user_target(core: Core) -> TargetRow:
    async with core.sessions() as session:
        target = await session.scalar(select(TargetRow).where(TargetRow.user_id == USER))
        assert target is not None
        return target


async def test_the_dm_digest_brings_per_day_recommendations_once_with_why_lines(
    make_core: MakeCore, workers: WorkerPool
) -> None:
    core = await make_core()
    old, new = await setup_store(core)
    await core.feedback.set_recommend(USER, True, 3)
    sender = RecordingSender()
    service = recommender(core, workers)
    deliverer = Deliverer(
        core.sessions, sender, render, core.clock, max_papers=25, before_digests=service.prepare
    )
    target = await user_target(core)
    assert target.next_digest_at is not None
    core.clock.set(target.next_digest_at + timedelta(seconds=1))  # type: ignore[attr-defined]
    await deliverer.run_due_digests()
    assert len(sender.posted) == 1
    message = sender.posted[0][1]
    assert message.content is not None and "Recommended for you" in message.content
    assert len(message.embeds) == 3
    saved = {p.arxiv_id for p in of(old, "cs.CV")[:5]}
    new_ids = {p.arxiv_id for p in new}
    rows = await delivered(core)
    assert len(rows) == 3 and all(r.status == "sent" and r.reason for r in rows)
    assert {r.paper_id for r in rows} <= new_ids  # first seen since the last day only
    titles = {p.arxiv_id: p.title for p in old}
    for embed, row in zip(message.embeds, rows, strict=True):
        why = [f["value"] for f in embed["fields"] if f["name"] == "Why"]  # type: ignore[index,union-attr]
        assert why and why[0].startswith("close to ")
        assert any(" ".join(titles[s].split())[:30] in row.reason for s in saved)  # type: ignore[operator]
    # Run again, and the next day's digest: nothing is added or sent twice.
    again = await service.prepare([target.id])
    assert again.papers == 0
    core.clock.advance(days=1)  # type: ignore[attr-defined]
    await deliverer.run_due_digests()
    assert len(sender.posted) == 1
    assert len(await delivered(core)) == 3
    assert (await user_target(core)).next_digest_at is not None  # no watches, still scheduled


async def test_never_a_paper_already_sent_and_per_day_is_respected(
    make_core: MakeCore, workers: WorkerPool
) -> None:
    core = await make_core()
    await setup_store(core)
    await core.feedback.set_recommend(USER, True, 4)
    target = await user_target(core)
    service = recommender(core, workers)
    first = await service.prepare([target.id])
    assert first.papers == 4
    sent_before = {r.paper_id for r in await delivered(core)}
    async with core.sessions.begin() as session:  # forget when it last ran: the same day again
        row = await session.get(TargetRow, target.id)
        assert row is not None and row.last_recommended_at is not None
        row.last_recommended_at = None
    second = await service.prepare([target.id])
    assert second.papers == 4
    rows = await delivered(core)
    assert len(rows) == 8 and len({r.paper_id for r in rows}) == 8
    assert not sent_before & {r.paper_id for r in rows[4:]}


async def test_too_few_liked_papers_or_recommend_off_adds_nothing(
    make_core: MakeCore, workers: WorkerPool
) -> None:
    core = await make_core()
    await setup_store(core, likes=2)
    await core.feedback.set_recommend(USER, True)
    target = await user_target(core)
    report = await recommender(core, workers).prepare([target.id])
    assert (report.users, report.papers, report.too_few) == (0, 0, 1)
    await core.feedback.save(USER, rss()[0].arxiv_id)
    await core.feedback.set_recommend(USER, False)
    assert (await recommender(core, workers).prepare([target.id])).papers == 0
    assert await delivered(core) == []


async def test_training_runs_off_the_event_loop(make_core: MakeCore, workers: WorkerPool) -> None:
    core = await make_core()
    await setup_store(core, likes=12)
    papers = rss()
    users = range(USER + 1, USER + 41)
    for user in users:  # 40 more users with a dozen liked papers each
        for paper in papers[user % 50 :: 75][:12]:
            await core.feedback.save(user, paper.arxiv_id)
        await core.feedback.set_recommend(user, True)
    async with core.sessions() as session:
        ids = list(await session.scalars(select(TargetRow.id)))
    await core.vectors.space()  # the vocabulary is fitted (in a thread) before the probe starts
    stalls: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        while not done.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.005)
            stalls.append(time.perf_counter() - started - 0.005)

    task = asyncio.create_task(probe())
    started = time.perf_counter()
    report = await recommender(core, workers).prepare(ids)
    elapsed = time.perf_counter() - started
    done.set()
    await task
    assert report.users == 40 and report.papers > 0
    assert not workers.in_thread  # trained in the worker processes
    assert len(stalls) > 20  # the loop kept turning while the models were trained
    assert max(stalls) < 0.25, f"the event loop stalled {max(stalls) * 1000:.0f} ms in {elapsed:.1f} s"


async def test_the_worker_processes_and_the_thread_add_the_same_recommendations(
    make_core: MakeCore, workers: WorkerPool
) -> None:
    core = await make_core()
    await setup_store(core, likes=8)
    await core.feedback.set_recommend(USER, True, 5)
    target = await user_target(core)

    async def run(pool: WorkerPool) -> list[tuple[str, str | None]]:
        async with core.sessions.begin() as session:  # the same round again, from scratch
            await session.execute(delete(DeliveryRow))
            row = await session.get(TargetRow, target.id)
            assert row is not None
            row.last_recommended_at = None
        # a background sample of half the store: the round draws every stored paper, the same both times
        service = Recommender(
            core.sessions, core.vectors, core.clock, cutoff=0.0, background=1_000, workers=pool
        )
        report = await service.prepare([target.id])
        assert report.papers == 5
        return [(r.paper_id, r.reason) for r in await delivered(core)]

    in_thread = WorkerPool(0)
    from_pool = await run(workers)
    assert not workers.in_thread
    assert await run(in_thread) == from_pool
    assert in_thread.in_thread


# --- paperwatch recommend ------------------------------------------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["recommend", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_recommend_prints_tab_separated_lines_best_first(
    capsys: pytest.CaptureFixture[str], isolated_cwd: object
) -> None:
    papers = rss()
    liked = [p.arxiv_id for p in of(papers, "astro-ph.HE")[:4]]
    disliked = [p.arxiv_id for p in of(papers, "cs.CL")[:2]]
    args = [f"--like={i}" for i in liked] + [f"--dislike={i}" for i in disliked]
    code, out, err = run_cli(capsys, *args, "--feed", str(RSS_ALL), "--top", "7")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 7
    rows = [line.split("\t") for line in lines]
    assert all(len(r) == 3 for r in rows)
    by_id = {p.arxiv_id: p for p in papers}
    assert all(by_id[i].title.split()[0] in title for i, _, title in rows)
    scores = [float(s) for _, s, _ in rows]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert not {i for i, _, _ in rows} & set(liked + disliked)
    assert sum("astro-ph" in " ".join(by_id[i].categories) for i, _, _ in rows) >= 5
    code, out, _ = run_cli(capsys, *args, "--feed", str(RSS_ALL), "--top", "7", "--json")
    assert code == 0
    listed = json.loads(out)
    assert [item["id"] for item in listed] == [i for i, _, _ in rows]
    assert [set(item) for item in listed] == [{"id", "score"}] * 7


def test_recommend_reads_liked_papers_from_history_files(
    capsys: pytest.CaptureFixture[str], isolated_cwd: object
) -> None:
    history = HF_DIR / "2025-09-30.json"
    feed = HF_DIR / "2025-03-17.json"
    code, out, err = run_cli(
        capsys, "--like", "2509.24006", "--like", "2509.24695", "--like", "2509.25161",
        "--feed", str(feed), "--history", str(history),
    )  # fmt: skip
    assert code == 0, err
    ids = [line.split("\t")[0] for line in out.splitlines()]
    assert len(ids) == 10 and set(ids) <= {p.arxiv_id for p in load_feed(feed).papers}


def test_recommend_names_unknown_ids_and_needs_three_likes(
    capsys: pytest.CaptureFixture[str], isolated_cwd: object
) -> None:
    papers = rss()
    code, out, err = run_cli(
        capsys, "--like", papers[0].arxiv_id, "--like", "2101.00001", "--like", papers[2].arxiv_id,
        "--dislike", "2101.00002", "--feed", str(RSS_ALL),
    )  # fmt: skip
    assert code == 2 and out == ""
    assert "2101.00001" in err and "2101.00002" in err
    code, _, err = run_cli(capsys, "--like", papers[0].arxiv_id, "--feed", str(RSS_ALL))
    assert code == 2 and "at least 3" in err
