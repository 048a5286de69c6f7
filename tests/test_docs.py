"""The user documentation in docs/ stays in step with the code it describes."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import pytest

from bot.cli import _parser
from bot.config import Settings

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def setting_keys(cls: type[object] = Settings, prefix: str = "") -> list[str]:
    hints = typing.get_type_hints(cls)
    keys: list[str] = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in ("token", "source"):
            continue
        if dataclasses.is_dataclass(hints[f.name]):
            keys += setting_keys(hints[f.name], f"{prefix}{f.name}.")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


@pytest.mark.parametrize("key", setting_keys())
def test_every_setting_is_documented_with_its_variable(key: str) -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    section, name = key.rsplit(".", 1)
    variable = "PAPERWATCH_" + key.replace(".", "__").upper()
    assert f"### `[{section}]`" in text
    assert f"| `{name}` |" in text
    assert f"`{variable}`" in text


def test_every_cli_subcommand_and_flag_is_documented() -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    parser = _parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    for name, sub in commands.choices.items():  # type: ignore[union-attr]
        assert f"## `paperwatch {name}" in text
        for action in sub._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help":
                    assert flag in text, f"{name} {flag}"


@pytest.mark.parametrize("page", [*sorted(DOCS.glob("*.md")), REPO / "README.md"], ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    for target in LINK.findall(text):
        if "://" in target:
            continue
        assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_readme_links_every_docs_page() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for page in DOCS.glob("*.md"):
        assert f"(docs/{page.name})" in readme


# --- the examples of docs/queries.md are true ---------------------------------------------------

HF_DAY = "hf_daily/2025-10-03.json"
RSS_DAY = "arxiv/rss_all-archives_2024-11-28.xml"
_ROW = re.compile(r"^\| (.+?) \| (.+?) \|$")
_COUNT = re.compile(r"^(?:(\d+) papers?|the same (\d+)|nothing)")


def query_examples() -> list[tuple[str, str, int]]:
    """(query, feed, count) for every example row whose answer starts with a count."""
    text = (DOCS / "queries.md").read_text(encoding="utf-8")
    examples = text.split("## Examples", 1)[1].split("## The rules", 1)[0]
    rows: list[tuple[str, str, int]] = []
    previous = 0
    for line in examples.splitlines():
        row = _ROW.match(line)
        if row is None or row.group(1) in ("query", "---"):
            continue
        cell, answer = row.groups()
        count_match = _COUNT.match(answer)
        if count_match is None:
            continue
        if count_match.group(1):
            count = int(count_match.group(1))
        elif count_match.group(2):
            count = int(count_match.group(2))
        else:
            count = 0
        previous = count
        feed = RSS_DAY if "(arXiv RSS" in cell else HF_DAY
        for query in re.findall(r"`([^`]+)`", cell.split(" (")[0]):
            rows.append((query, feed, previous))
        # the extra spellings in an answer ("`category:CS.cl` the same 102")
        for query in re.findall(r"`([^`]+)` the same", answer):
            rows.append((query, feed, previous))
    return rows


EXAMPLES = query_examples()


def test_the_examples_were_found() -> None:
    assert len(EXAMPLES) >= 40


@pytest.mark.parametrize(("query", "feed", "count"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_a_documented_example_matches_what_it_says(query: str, feed: str, count: int) -> None:
    from bot.cli import _matching
    from bot.domain.parser import parse_query
    from tests.conftest import load_feed

    papers = load_feed(feed).papers
    assert len(_matching(parse_query(query), papers)) == count


def refused_examples() -> list[tuple[str, str]]:
    text = (DOCS / "queries.md").read_text(encoding="utf-8")
    table = text.split("### What is refused", 1)[1].split("\n\n- ", 1)[0]
    rows = [_ROW.match(line) for line in table.splitlines()]
    return [
        (row.group(1).strip("`"), row.group(2))
        for row in rows
        if row is not None and row.group(2).startswith("position")
    ]


REFUSED = refused_examples()


@pytest.mark.parametrize(("query", "answer"), REFUSED, ids=[q for q, _ in REFUSED])
def test_a_documented_refusal_says_what_the_docs_say(query: str, answer: str) -> None:
    from bot.domain.parser import parse_query
    from bot.domain.query import ParseError

    assert len(REFUSED) >= 8
    with pytest.raises(ParseError) as caught:
        parse_query(query)
    assert str(caught.value) == answer
