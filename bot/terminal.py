"""Terminal output for the command line: digest previews and a progress bar."""

from __future__ import annotations

import shutil
import sys
import textwrap
from typing import TextIO

from bot.domain.digest import Digest, header_line, overflow_line
from bot.domain.paper import Paper

BOLD = "\033[1m"
DIM = "\033[2m"
RESET = "\033[0m"


def _style(text: str, code: str, colour: bool) -> str:
    return f"{code}{text}{RESET}" if colour else text


def render_digest(digest: Digest, *, colour: bool = False, width: int | None = None) -> str:
    """The digest a channel would get, as text: titles, links, authors, upvotes, why it matched."""
    width = width or min(shutil.get_terminal_size((100, 20)).columns, 110)
    if not digest.entries:
        return "No paper matches this watch."
    lines = [_style(header_line(digest).replace("**", ""), BOLD, colour), ""]
    for number, entry in enumerate(digest.entries, 1):
        paper = entry.paper
        lines.append(_style(f"{number:>2}. {paper.title}", BOLD, colour))
        lines.extend(_indented(paper_lines(paper), width))
        for match in entry.matches:
            words = ", ".join(f"{term} → {word}" for term, word in match.words[:4]) or match.query
            lines.append(_style(f"    matched {words}", DIM, colour))
        lines.append("")
    more = overflow_line(digest)
    if more:
        lines.append(more.replace("`/digest now` posts the next ones.", "(the bot keeps them for later)"))
    return "\n".join(lines).rstrip() + "\n"


def paper_lines(paper: Paper) -> list[str]:
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


def _indented(lines: list[str], width: int) -> list[str]:
    out: list[str] = []
    for line in lines:
        out.extend(textwrap.wrap(line, width=width, initial_indent="    ", subsequent_indent="    ") or [""])
    return out


class ProgressBar:
    """A one-line progress bar on a terminal; silent when the stream is not one."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        self.total = max(total, 1)
        self.label = label
        self.stream = stream or sys.stderr
        self.done = 0
        self.live = self.stream.isatty()

    def advance(self, count: int) -> None:
        self.done = min(self.total, self.done + count)
        if self.live:
            filled = int(30 * self.done / self.total)
            self.stream.write(
                f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total}"
            )
            self.stream.flush()

    def close(self) -> None:
        if self.live:
            self.stream.write("\n")
        else:
            self.stream.write(f"{self.label}: {self.done}/{self.total}\n")
        self.stream.flush()
