"""The `/paperwatch stats` chart: papers matched per week, one line per watch, as a PNG.

Drawn with matplotlib's Agg backend on a Figure of its own (no pyplot, no global figure state),
in the colours of Discord's dark theme. Rendering takes a few hundred milliseconds (the first
one in a process longer, while matplotlib loads its fonts): callers run it in a worker thread.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from datetime import date

WIDTH_PX = 1000
HEIGHT_PX = 500
DPI = 100

BACKGROUND = "#313338"
"""Discord's dark theme message background, so the image has no visible frame."""
PANEL = "#2B2D31"
TEXT = "#DBDEE1"
MUTED = "#B5BAC1"
GRID = "#4E5058"
COLOURS = ("#5DADEC", "#F5A623", "#3DD68C", "#F0E442", "#E478B4", "#FF6F59", "#B39DFF", "#4FD1C5")
"""Eight colours that stay apart from each other on the dark background."""
OTHER_COLOUR = "#949BA4"
MAX_TICKS = 9
"""Week labels on the x axis at most, so they never touch; a year of weeks shows every sixth."""

_RENDERING = threading.Lock()
"""matplotlib is not thread-safe: one chart is drawn at a time."""


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    counts: tuple[int, ...]
    """One count per week, oldest first."""
    other: bool = False
    """The sum of the watches past the top ones, drawn dashed in grey."""

    @property
    def total(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True, slots=True)
class WeeklyChart:
    title: str
    subtitle: str
    week_starts: tuple[date, ...]
    series: tuple[Series, ...]


def render_png(chart: WeeklyChart) -> bytes:
    """The chart as a 1000×500 PNG. CPU-bound: call it through `asyncio.to_thread`."""
    with _RENDERING:
        return _render(chart)


def _render(chart: WeeklyChart) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, facecolor=BACKGROUND)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.set_facecolor(BACKGROUND)
    positions = list(range(len(chart.week_starts)))
    colours = iter(COLOURS)
    for series in chart.series:
        colour = OTHER_COLOUR if series.other else next(colours, OTHER_COLOUR)
        axes.plot(
            positions,
            list(series.counts),
            label=series.label,
            color=colour,
            linewidth=2.4,
            linestyle="--" if series.other else "-",
            marker="o",
            markersize=5 if len(positions) <= MAX_TICKS * 2 else 3,
        )
    step = max(1, -(-len(positions) // MAX_TICKS))  # a label every `step` weeks, so none overlap
    axes.set_xticks(positions[::step], [_week_label(d) for d in chart.week_starts[::step]])
    axes.set_xlim(-0.3, max(len(positions) - 0.7, 0.3))
    axes.set_ylim(bottom=0)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("papers matched", color=MUTED, fontsize=11)
    axes.set_xlabel("week starting", color=MUTED, fontsize=11)
    axes.tick_params(colors=TEXT, labelsize=10)
    axes.grid(True, color=GRID, linewidth=0.8, alpha=0.9)
    axes.set_axisbelow(True)
    for side, spine in axes.spines.items():
        spine.set_visible(side in ("left", "bottom"))
        spine.set_color(GRID)
    figure.suptitle(chart.title, color=TEXT, fontsize=15, fontweight="bold", x=0.01, ha="left")
    axes.set_title(chart.subtitle, color=MUTED, fontsize=10, loc="left")
    if chart.series:
        legend = axes.legend(
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            frameon=True,
            facecolor=PANEL,
            edgecolor=GRID,
            fontsize=9,
            labelcolor=TEXT,
        )
        legend.get_frame().set_alpha(1.0)
    figure.subplots_adjust(left=0.07, right=0.70, top=0.85, bottom=0.13)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, facecolor=BACKGROUND)
    return buffer.getvalue()


def _week_label(start: date) -> str:
    return f"{start:%b} {start.day}"


def shorten(text: str, limit: int = 32) -> str:
    """A legend label: whitespace collapsed, cut with "…" past `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"
