"""The pieces command replies are made of: user text in a code span, the cooldown refusal."""

from __future__ import annotations

import re

import pytest

from bot.discord.commands._common import counted, slow_down
from bot.discord.embeds import code_span

INLINE_CODE = re.compile(r"(`+)([\s\S]*?[^`])\1(?!`)")
"""How Discord's Markdown finds inline code: a run of backticks, text, the same run again."""


@pytest.mark.parametrize(
    "text",
    [
        "diffusion",
        "diffusion`",  # ends with a backtick
        "d``````",  # only backticks after the first character
        "`",
        "``a``",
        "a ``` b ` c",
        "x\\",  # a trailing backslash does not escape the closing backtick
        "**bold** ~~strike~~ ||spoiler|| <@123> @everyone [link](https://example.com)",
    ],
)
def test_code_span_holds_the_whole_text_in_one_span(text: str) -> None:
    line = f"Removed watch #1 {code_span(text)}."
    spans = INLINE_CODE.findall(line)
    assert len(spans) == 1
    assert INLINE_CODE.sub("{}", line) == "Removed watch #1 {}."
    assert spans[0][1].replace("\u02cb", "`") == text


def test_code_span_flattens_whitespace_and_cuts_long_text() -> None:
    assert code_span("a\n\tb   c") == "`a b c`"
    long = code_span("x" * 400, limit=50)
    assert len(long) == 52 and long.endswith("…`")
    assert code_span("   ") == "` `"


@pytest.mark.parametrize(
    ("wait", "seconds"), [(0.01, 1), (0.4, 1), (1.0, 1), (1.2, 2), (29.99, 30), (59.5, 60)]
)
def test_slow_down_rounds_up_to_whole_seconds(wait: float, seconds: int) -> None:
    assert slow_down("watch add", wait) == (
        f"Slow down a little: you can use `/watch add` again in {seconds} s."
    )


def test_counted() -> None:
    assert [counted(n, "paper") for n in (0, 1, 2)] == ["no paper", "1 paper", "2 papers"]
