"""What `paperwatch` prints: styled on a terminal, plain text without escape codes otherwise.

pytest's captured streams are not terminals, which is the plain case; `FORCE_COLOR=1` makes
rich treat them as one, which is the styled case.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from rich.console import Console
from rich.progress import Progress

from bot.cli import main
from bot.terminal import RateColumn
from tests.conftest import HF_OVERLAP, expected_matches, flat, raw_entries, sqlite_url

pytestmark = pytest.mark.usefixtures("isolated_cwd")

ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\]8;[^\x1b]*\x1b\\")
BORDERS = re.compile(r"[│╭╮╰╯─]")


@pytest.fixture(autouse=True)
def _environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A private database, and no terminal settings inherited from whoever runs the tests."""
    for name in list(os.environ):
        if name.startswith("PAPERWATCH_"):
            monkeypatch.delenv(name)
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PAPERWATCH_DATABASE__URL", sqlite_url(tmp_path))


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "120")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def visible(text: str) -> str:
    """What a reader of the terminal sees, borders and line breaks folded away."""
    return flat(BORDERS.sub(" ", ESCAPES.sub("", text)))


def video_titles_by_upvotes() -> list[str]:
    entries = {e.arxiv_id: e for e in raw_entries(HF_OVERLAP)}
    matched = expected_matches("video", HF_OVERLAP)
    assert len(matched) >= 3
    return [entries[i].title for i in sorted(matched, key=lambda i: -entries[i].upvotes)]


# --- not a terminal: plain text ------------------------------------------------------------------


def test_preview_to_a_pipe_is_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "preview", "--query", "video", "--feed", str(HF_OVERLAP))
    assert code == 0
    assert "\x1b" not in out
    assert not BORDERS.search(out)
    joined = flat(out)
    positions = [joined.index(flat(title)) for title in video_titles_by_upvotes()]
    assert positions == sorted(positions)


def test_fetch_to_a_pipe_ends_with_one_plain_line(capsys: pytest.CaptureFixture[str]) -> None:
    count = len(raw_entries(HF_OVERLAP))
    code, out, err = run(capsys, "fetch", "--file", str(HF_OVERLAP))
    assert code == 0
    assert "\x1b" not in out + err
    assert f"ingesting: {count}/{count} papers\n" in err
    assert "━" not in err


@pytest.mark.usefixtures("terminal")
def test_match_output_stays_plain_even_on_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    ids = expected_matches("video", HF_OVERLAP)
    _, out, _ = run(capsys, "match", "--query", "video", "--feed", str(HF_OVERLAP))
    assert out == "".join(f"{i}\n" for i in ids)
    _, out, _ = run(capsys, "match", "--query", "video", "--feed", str(HF_OVERLAP), "--json")
    assert out == json.dumps(ids) + "\n"


# --- a terminal: styled --------------------------------------------------------------------------


@pytest.mark.usefixtures("terminal")
def test_preview_on_a_terminal_is_styled_with_every_title(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "preview", "--query", "video", "--feed", str(HF_OVERLAP))
    assert code == 0
    assert "\x1b[1m" in out  # bold
    assert "╭" in out and "╰" in out  # one panel per paper
    seen = visible(out)
    titles = video_titles_by_upvotes()
    positions = [seen.index(flat(title)) for title in titles]
    assert positions == sorted(positions)
    assert out.count("╭") == len(titles)


@pytest.mark.usefixtures("terminal")
def test_fetch_on_a_terminal_shows_a_progress_bar(capsys: pytest.CaptureFixture[str]) -> None:
    count = len(raw_entries(HF_OVERLAP))
    code, out, err = run(capsys, "fetch", "--file", str(HF_OVERLAP))
    assert code == 0
    assert f"{count} new" in out
    shown = ESCAPES.sub("", err)
    assert "\x1b[" in err
    assert "ingesting" in shown
    assert "━" in shown
    assert f"{count}/{count}" in shown
    assert "papers/s" in shown
    assert "ETA" in shown


@pytest.mark.parametrize("styled", [False, True], ids=["pipe", "terminal"])
def test_paper_text_is_never_read_as_markup(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, styled: bool
) -> None:
    if styled:
        monkeypatch.setenv("FORCE_COLOR", "1")
        monkeypatch.setenv("COLUMNS", "120")
    title = "[bold]Sparse[/bold] video :smile: attention [link=http://x.test]here[/link]"
    entries = json.loads(HF_OVERLAP.read_text(encoding="utf-8"))
    entries[0]["paper"]["title"] = entries[0]["title"] = title
    feed = tmp_path / "2024-11-28.json"
    feed.write_text(json.dumps(entries), encoding="utf-8")
    code, out, _ = run(capsys, "preview", "--query", "sparse", "--feed", str(feed))
    assert code == 0
    assert title in visible(out)
    assert "😄" not in out


def test_rate_column_counts_papers_per_second() -> None:
    now = [0.0]
    bar = Progress(RateColumn("papers"), console=Console(force_terminal=True), get_time=lambda: now[0])
    task = bar.add_task("ingesting", total=1000)
    assert RateColumn("papers").render(bar.tasks[task]).plain == "? papers/s"
    for _ in range(4):
        now[0] += 0.5
        bar.advance(task, 100)
    assert RateColumn("papers").render(bar.tasks[task]).plain == "200 papers/s"
