"""`/paperwatch stats`: weekly matches per watch from deliveries on a real SQLite, and the chart."""

from __future__ import annotations

import asyncio
import io
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from matplotlib import image as mpimg

from bot.db.deliveries import DeliveryRepository
from bot.db.models import WatchRow
from bot.db.repo import PaperRepository, TargetRepository
from bot.domain.chart import BACKGROUND, COLOURS, HEIGHT_PX, WIDTH_PX, Series, WeeklyChart, render_png
from bot.services.access import UserError
from bot.services.core import Core
from bot.services.stats import Match, StatsService, weekly_series
from tests.conftest import RSS_ALL, FakeClock, load_feed

CHANNEL = 555_000_000_000_000_001
OTHER_CHANNEL = 555_000_000_000_000_002
GUILD = 444_000_000_000_000_001


class Timeline:
    """Deliveries recorded as the clock moves, the way matching records them."""

    def __init__(self, core: Core, clock: FakeClock, t0: datetime) -> None:
        self.core = core
        self.clock = clock
        self.t0 = t0
        self.papers = [p.arxiv_id for p in load_feed(RSS_ALL).papers]
        self.used = 0

    async def setup(self, queries: list[str]) -> tuple[int, int, list[int]]:
        async with self.core.sessions.begin() as session:
            await PaperRepository(session).upsert(load_feed(RSS_ALL).papers, self.clock.now())
            targets = TargetRepository(session)
            here = await targets.ensure_channel(GUILD, CHANNEL, digest_time="09:00", timezone="UTC")
            there = await targets.ensure_channel(GUILD, OTHER_CHANNEL, digest_time="09:00", timezone="UTC")
            rows = [WatchRow(target_id=here.id, query=q, created_by=1, created_at=self.t0) for q in queries]
            session.add_all(rows)
            await session.flush()
            return here.id, there.id, [row.id for row in rows]

    async def deliver(
        self, target_id: int, day: float, watch_ids: list[int], count: int = 1, **extra: object
    ) -> None:
        """`count` new papers delivered to the target `day` days after t0, matched by `watch_ids`."""
        self.clock.set(self.t0 + timedelta(days=day))
        rows: list[dict[str, object]] = []
        for _ in range(count):
            rows.append(
                {
                    "target_id": target_id,
                    "paper_id": self.papers[self.used],
                    "watch_id": watch_ids[0] if watch_ids else None,
                    "watch_ids": watch_ids,
                    "matched_terms": [],
                    "created_at": self.clock.now(),
                    **extra,
                }
            )
            self.used += 1
        async with self.core.sessions.begin() as session:
            assert await DeliveryRepository(session).add_pending(rows) == count


async def test_matches_per_week_per_watch_top_eight_and_other(core: Core, clock: FakeClock) -> None:
    t0 = clock.now()
    timeline = Timeline(core, clock, t0)
    queries = [f"topic{i}" for i in range(1, 10)] + ["a very long query: title:diffusion OR abs:transformers"]
    here, there, w = await timeline.setup(queries)  # w[0] is W1 ... w[9] is W10
    await timeline.deliver(here, -1, [w[0]], 4)  # before the 8 weeks: not counted
    await timeline.deliver(here, 1, [w[0]], 3)
    await timeline.deliver(here, 55, [w[0]], 2)
    for week in range(8):
        await timeline.deliver(here, 0.5 + 7 * week, [w[1]])
    await timeline.deliver(here, 15, [w[0], w[1]])  # one paper, two watches: counts for both
    await timeline.deliver(here, 20, [w[2], w[3]])  # W3 and W4 share a paper ...
    await timeline.deliver(here, 40, [w[3]])  # ... and W4 has one more
    for j in range(5, 11):  # W5..W10: j - 2 papers each, all in the fifth week
        await timeline.deliver(here, 30, [w[j - 1]], j - 2)
    await timeline.deliver(there, 3, [w[0]], 5)  # another channel's deliveries never count
    await timeline.deliver(here, 10, [], 1, reason="close to a paper you liked")  # not a watch match
    clock.set(t0 + timedelta(days=56))

    stats = await StatsService(core.sessions, clock).weekly(CHANNEL)

    assert stats.watches == 10
    # 3 + 2 + 8 + 1 + 1 + 1 + (3 + 4 + 5 + 6 + 7 + 8) distinct papers in the 8 weeks
    assert stats.papers == 49
    series = {s.label: s.counts for s in stats.chart.series}
    labels = [s.label for s in stats.chart.series]
    assert labels == [
        f"#{w[1]} topic2",  # 9
        f"#{w[9]} a very long query: title:diffus…",  # 8: cut at 32 characters
        f"#{w[8]} topic9",  # 7
        f"#{w[0]} topic1",  # 6, before W8's 6: the lower id first
        f"#{w[7]} topic8",  # 6
        f"#{w[6]} topic7",  # 5
        f"#{w[5]} topic6",  # 4
        f"#{w[4]} topic5",  # 3
        "other (2 watches)",  # W4 (2) and W3 (1)
    ]
    assert series[f"#{w[0]} topic1"] == (3, 0, 1, 0, 0, 0, 0, 2)
    assert series[f"#{w[1]} topic2"] == (1, 1, 2, 1, 1, 1, 1, 1)
    assert series[f"#{w[4]} topic5"] == (0, 0, 0, 0, 3, 0, 0, 0)
    # "other" counts distinct papers: W3 and W4's shared paper once
    assert series["other (2 watches)"] == (0, 0, 1, 0, 0, 1, 0, 0)
    assert stats.chart.series[-1].other
    assert stats.chart.week_starts[0] == t0.date()
    assert stats.chart.week_starts[-1] == (t0 + timedelta(days=49)).date()

    two = await StatsService(core.sessions, clock).weekly(CHANNEL, weeks=2)
    assert {s.label: s.counts for s in two.chart.series}[f"#{w[0]} topic1"] == (0, 2)
    assert two.papers == 2 + 2  # W1's last two (day 55), W2's days 42.5 and 49.5


async def test_no_watches_or_no_matches_yet_is_empty(core: Core, clock: FakeClock) -> None:
    service = StatsService(core.sessions, clock)
    nothing = await service.weekly(CHANNEL)
    assert nothing.empty and nothing.watches == 0 and nothing.chart.series == ()
    await Timeline(core, clock, clock.now()).setup(["diffusion"])
    quiet = await service.weekly(CHANNEL)
    assert quiet.empty and quiet.watches == 1
    assert [s.counts for s in quiet.chart.series] == [(0,) * 8]
    for weeks in (0, 53):
        with pytest.raises(UserError):
            await service.weekly(CHANNEL, weeks)


def test_a_removed_watch_keeps_its_line_by_id() -> None:
    end = datetime(2025, 3, 17, tzinfo=UTC)
    matches = [Match("2501.00001", (7,), end - timedelta(days=1)), Match("2501.00002", (3,), end)]
    series, papers = weekly_series(matches, {3: "#3 diffusion"}, end, weeks=1)
    assert [(s.label, s.counts) for s in series] == [("#3 diffusion", (1,)), ("#7 (removed)", (1,))]
    assert papers == 2


def _chart(weeks: int, lines: int) -> WeeklyChart:
    starts = tuple((datetime(2025, 1, 6, tzinfo=UTC) + timedelta(days=7 * i)).date() for i in range(weeks))
    series = tuple(
        Series(f"#{n} watch {n}", tuple((n * 7 + i * 3) % 11 + 1 for i in range(weeks))) for n in range(lines)
    )
    return WeeklyChart("Papers matched per week in this channel", "a test", starts, series)


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)]) / 255


def test_the_png_decodes_at_its_size_and_shows_the_lines_on_the_dark_background() -> None:
    png = render_png(_chart(8, 9))
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    pixels = mpimg.imread(io.BytesIO(png), format="png")
    assert pixels.shape[:2] == (HEIGHT_PX, WIDTH_PX)
    rgb = pixels[:, :, :3]
    background = np.all(np.abs(rgb - _rgb(BACKGROUND)) < 0.02, axis=2)
    assert background[0, 0] and background[-1, -1]  # the corners are Discord's dark grey
    assert 0.02 < 1 - background.mean() < 0.6  # something is drawn, and it is not all ink
    for colour in COLOURS[:3]:  # the first lines' colours are there, not blended away
        near = np.all(np.abs(rgb - _rgb(colour)) < 0.04, axis=2)
        assert near.sum() > 200, colour


async def test_rendering_happens_off_the_event_loop(core: Core, clock: FakeClock) -> None:
    """A probe task keeps running while a year-long chart is drawn: the loop is never held."""
    render_png(_chart(2, 1))  # matplotlib's first-use loading is not what is measured
    service = StatsService(core.sessions, clock)
    stats = await service.weekly(CHANNEL)
    stats = type(stats)(chart=_chart(52, 9), papers=1, watches=9)
    longest = 0.0
    running = True

    async def probe() -> None:
        nonlocal longest
        last = time.perf_counter()
        while running:
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            longest = max(longest, now - last)
            last = now

    task = asyncio.create_task(probe())
    await asyncio.sleep(0.01)
    started = time.perf_counter()
    png = await service.png(stats)
    took = time.perf_counter() - started
    running = False
    await task
    assert mpimg.imread(io.BytesIO(png), format="png").shape[:2] == (HEIGHT_PX, WIDTH_PX)
    # drawn on the loop, the longest stall would be the whole drawing time
    assert longest < took / 2, (longest, took)
