"""`/paperwatch stats`: how many papers each of a channel's watches brought in, week by week.

What "matched in a week" means: every paper a watch matches for a channel becomes one delivery
row for that channel, recorded when the match is made (whether it then goes out at once or in
the next digest). A paper counts in the week its delivery row was recorded, once for each watch
that matched it at that moment. A paper reaches a channel only once, so a later match of the same
paper by another watch of the channel is not counted again. Recommendations (DMs) are not
matches and never count.

Weeks are the 7-day periods ending now: with `weeks = 8`, the last 56 days in eight bins, the
newest last, so no bin is a partial week. The chart keeps the 8 watches with the most matches in
the period as lines of their own; the others are one "other" line counting the distinct papers
they matched. Watches removed since keep their line, named by their id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import DeliveryRow
from bot.db.repo import TargetRepository, WatchRepository
from bot.domain.chart import Series, WeeklyChart, render_png, shorten
from bot.services.access import UserError
from bot.services.clock import Clock

DEFAULT_WEEKS = 8
MAX_WEEKS = 52
TOP_WATCHES = 8
WEEK = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Match:
    """One paper delivered to the channel, the watches that matched it, and when."""

    paper_id: str
    watch_ids: tuple[int, ...]
    matched_at: datetime


@dataclass(frozen=True, slots=True)
class ChannelStats:
    chart: WeeklyChart
    papers: int
    """Distinct papers matched in the period, all watches together."""
    watches: int
    """The channel's watches now."""

    @property
    def empty(self) -> bool:
        return self.papers == 0


def week_starts(end: datetime, weeks: int) -> tuple[datetime, ...]:
    """The start of each 7-day period ending at `end`, oldest first."""
    return tuple(end - WEEK * (weeks - i) for i in range(weeks))


def weekly_series(
    matches: Iterable[Match], labels: Mapping[int, str], end: datetime, weeks: int, top: int = TOP_WATCHES
) -> tuple[tuple[Series, ...], int]:
    """Per-watch weekly counts: the `top` watches by total, then "other"; and the distinct papers.

    `labels` names the channel's current watches: each gets a line even before its first match
    (if it is among the top); a watch found only in matches was removed since.
    """
    start = end - WEEK * weeks
    per_watch: dict[int, list[int]] = {watch_id: [0] * weeks for watch_id in labels}
    papers_of: dict[int, list[set[str]]] = {}
    papers: set[str] = set()
    for match in matches:
        if not start <= match.matched_at <= end or not match.watch_ids:
            continue
        index = min(int((match.matched_at - start) / WEEK), weeks - 1)
        papers.add(match.paper_id)
        for watch_id in dict.fromkeys(match.watch_ids):
            per_watch.setdefault(watch_id, [0] * weeks)[index] += 1
            papers_of.setdefault(watch_id, [set() for _ in range(weeks)])[index].add(match.paper_id)
    totals = {watch_id: sum(counts) for watch_id, counts in per_watch.items()}
    ranked = sorted(per_watch, key=lambda watch_id: (-totals[watch_id], watch_id))
    kept = tuple(
        Series(label=labels.get(watch_id, f"#{watch_id} (removed)"), counts=tuple(per_watch[watch_id]))
        for watch_id in ranked[:top]
    )
    rest = [watch_id for watch_id in ranked[top:] if totals[watch_id] > 0]
    if rest:
        other = tuple(len(set().union(*(papers_of[w][i] for w in rest))) for i in range(weeks))
        label = f"other ({len(rest)} watches)" if len(rest) > 1 else "other (1 watch)"
        kept = (*kept, Series(label=label, counts=other, other=True))
    return kept, len(papers)


def watch_label(watch_id: int, query: str) -> str:
    return f"#{watch_id} {shorten(query)}"


class StatsService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self.sessions = sessions
        self.clock = clock

    async def weekly(self, channel_id: int, weeks: int = DEFAULT_WEEKS) -> ChannelStats:
        """Papers matched per week in the channel, per watch, over the last `weeks` weeks."""
        if not 1 <= weeks <= MAX_WEEKS:
            raise UserError(f"`weeks` is a number from 1 to {MAX_WEEKS}.")
        end = self.clock.now().astimezone(UTC)
        start = end - WEEK * weeks
        async with self.sessions() as session:
            target = await TargetRepository(session).channel(channel_id)
            labels: dict[int, str] = {}
            matches: list[Match] = []
            if target is not None:
                watches = await WatchRepository(session).for_target(target.id)
                labels = {watch.id: watch_label(watch.id, watch.query) for watch in watches}
                rows = await session.execute(
                    select(DeliveryRow.paper_id, DeliveryRow.watch_ids, DeliveryRow.created_at).where(
                        DeliveryRow.target_id == target.id,
                        DeliveryRow.created_at >= start,
                        DeliveryRow.reason.is_(None),
                    )
                )
                matches = [Match(p, tuple(ids or ()), at) for p, ids, at in rows.all()]
        series, papers = weekly_series(matches, labels, end, weeks)
        chart = WeeklyChart(
            title="Papers matched per week in this channel",
            subtitle=_subtitle(end, weeks, papers),
            week_starts=tuple(_day(moment) for moment in week_starts(end, weeks)),
            series=series,
        )
        return ChannelStats(chart=chart, papers=papers, watches=len(labels))

    async def png(self, stats: ChannelStats) -> bytes:
        """The chart as a PNG, drawn in a worker thread so the event loop keeps running."""
        return await asyncio.to_thread(render_png, stats.chart)


def _day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def _subtitle(end: datetime, weeks: int, papers: int) -> str:
    period = "7 days" if weeks == 1 else f"{weeks} periods of 7 days"
    noun = "paper" if papers == 1 else "papers"
    return f"{period} up to {end:%Y-%m-%d %H:%M} UTC · {papers} {noun} matched in all"
