"""Terminal output for the command line: digest previews and the ingest progress bar.

Output goes through rich. On a terminal the preview is styled (one panel per paper) and the
progress bar is live, with rate and time left; when the stream is a pipe or a file the same
information is written as plain text, without escape codes. Paper text is always held in
`Text` objects, so a title such as "[bold]" or ":smile:" is printed as it is, never as markup.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from bot.domain.digest import Digest, DigestEntry, header_line
from bot.domain.matcher import reason_text
from bot.domain.paper import Paper

MAX_WIDTH = 110


def stdout_console() -> Console:
    """Standard output: styled on a terminal, plain when piped (rich detects which)."""
    return Console(highlight=False, emoji=False)


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False, emoji=False)


# --- preview -----------------------------------------------------------------------------------


def show_preview(console: Console, digest: Digest, *, summary: str) -> None:
    """Print a one-line summary, then the digest a channel would get."""
    width = min(console.width, MAX_WIDTH)
    console.print(Text(summary, style="bold" if digest.entries else ""), soft_wrap=True)
    console.print()
    if console.is_terminal:
        for renderable in digest_panels(digest):
            console.print(renderable, width=width)
        return
    for line in digest_lines(digest, width):
        console.print(Text(line), soft_wrap=True)


def digest_panels(digest: Digest) -> list[RenderableType]:
    """The digest for a terminal: a header, then one panel per paper."""
    if not digest.entries:
        return [Text("No paper matches this watch.")]
    out: list[RenderableType] = [Text(_header(digest), style="bold")]
    out.extend(_entry_panel(number, entry) for number, entry in enumerate(digest.entries, 1))
    if digest.overflow:
        out.append(Text(_overflow(digest), style="italic"))
    return out


def digest_lines(digest: Digest, width: int = 100) -> list[str]:
    """The digest as plain text lines, wrapped at `width`, for a pipe or a file."""
    if not digest.entries:
        return ["No paper matches this watch."]
    lines = [_header(digest), ""]
    for number, entry in enumerate(digest.entries, 1):
        lines.append(f"{number:>2}. {entry.paper.title}")
        body = paper_lines(entry.paper) + [f"matched {why}" for why in _reasons(entry)]
        for line in body:
            lines.extend(
                textwrap.wrap(
                    line,
                    width,
                    initial_indent="    ",
                    subsequent_indent="    ",
                    break_long_words=False,
                    break_on_hyphens=False,
                )
            )
        lines.append("")
    if digest.overflow:
        lines.append(_overflow(digest))
    return lines


def _header(digest: Digest) -> str:
    return header_line(digest).replace("**", "")


def _overflow(digest: Digest) -> str:
    noun = "paper" if digest.overflow == 1 else "papers"
    return f"…and {digest.overflow} more matching {noun}, kept for the next digest."


def _entry_panel(number: int, entry: DigestEntry) -> RenderableType:
    paper = entry.paper
    url, facts, *rest = paper_lines(paper)
    body: list[RenderableType] = [
        Text(paper.title, style="bold"),
        Text(url, style=f"cyan link {url}"),
        Text(facts, style="yellow"),
    ]
    body.extend(Text(line) for line in rest)
    body.extend(Text(f"matched {why}", style="dim") for why in _reasons(entry))
    return Panel(Group(*body), title=Text(f"{number}", style="bold"), title_align="left", border_style="blue")


def _reasons(entry: DigestEntry) -> list[str]:
    return [
        ", ".join(reason_text(term, word) for term, word in match.words[:4]) or match.query
        for match in entry.matches
    ]


def paper_lines(paper: Paper) -> list[str]:
    """The paper's link, its facts (authors, upvotes, categories), its summary, its other links."""
    authors = ", ".join(paper.authors[:3]) + (" et al." if len(paper.authors) > 3 else "")
    lines = [paper.url]
    facts = [f"▲ {paper.upvotes}"]
    if authors:
        facts.insert(0, authors)
    if paper.categories:
        facts.append(" ".join(paper.categories[:3]))
    lines.append(" · ".join(facts))
    summary = paper.ai_summary or paper.abstract
    if summary:
        short = " ".join(summary.split())
        lines.append(short if len(short) <= 300 else short[:297].rsplit(" ", 1)[0] + " …")
    links = [f"arXiv {paper.abs_url}", f"PDF {paper.pdf_url}"]
    if paper.github_url:
        links.append(f"code {paper.github_url}")
    if paper.project_url:
        links.append(f"project {paper.project_url}")
    lines.append(" | ".join(links))
    return lines


# --- progress ----------------------------------------------------------------------------------


class Advance(Protocol):
    def __call__(self, count: int) -> None: ...


class RateColumn(ProgressColumn):
    """Items per second, e.g. "1,250 papers/s"; "?" until rich has two samples."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        shown = "?" if speed is None else f"{speed:,.0f}"
        return Text(f"{shown} {self.unit}/s", style="progress.data.speed")


@contextmanager
def progress(console: Console, total: int, label: str, unit: str = "papers") -> Iterator[Advance]:
    """A live bar with count, rate and time left on a terminal; one plain line at the end otherwise."""
    done = 0
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )
    task = bar.add_task(label, total=max(total, 1))

    def advance(count: int) -> None:
        nonlocal done
        done += count
        bar.advance(task, count)

    with bar:
        yield advance
    if not console.is_terminal:
        console.print(Text(f"{label}: {done}/{total} {unit}"))
