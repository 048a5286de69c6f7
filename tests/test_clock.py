"""The test clock (docs/configuration.md, "Testing aids"): refused unless PAPERWATCH_TESTING=1.

`PAPERWATCH_CLOCK_START` / `PAPERWATCH_CLOCK_SPEED` move the bot's clock. A production bot
started with them by mistake must not run on a moved clock: `paperwatch run` refuses to
start, naming the variables. With the testing flag the process really runs on the scaled
clock: it asks the feed for the Hugging Face day of the simulated date, not of today.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.cli import main
from bot.services.clock import (
    CLOCK_SPEED_ENV,
    CLOCK_START_ENV,
    TESTING_ENV,
    ClockSettingError,
    ScaledClock,
    SystemClock,
    clock_from_env,
)
from tests.conftest import TOKEN
from tests.fakediscord.server import FakeDiscord
from tests.feedserver import FeedServer
from tests.reliability.crash_helpers import BotProcess, bot_environ

START = "2025-10-03T08:00:00+00:00"


def refusal(environ: dict[str, str]) -> str:
    with pytest.raises(ClockSettingError) as caught:
        clock_from_env(environ)
    return str(caught.value)


def test_without_the_variables_the_system_clock_is_used() -> None:
    clock = clock_from_env({TESTING_ENV: "1"})
    assert isinstance(clock, SystemClock)
    assert abs((clock.now() - datetime.now(UTC)).total_seconds()) < 5


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({CLOCK_START_ENV: START, CLOCK_SPEED_ENV: "60"}, [CLOCK_START_ENV, CLOCK_SPEED_ENV]),
        ({CLOCK_START_ENV: START}, [CLOCK_START_ENV]),
        ({CLOCK_SPEED_ENV: "3600"}, [CLOCK_SPEED_ENV]),
        ({CLOCK_START_ENV: START, TESTING_ENV: "0"}, [CLOCK_START_ENV]),
        ({CLOCK_START_ENV: START, TESTING_ENV: "yes please"}, [CLOCK_START_ENV]),
    ],
)
def test_the_variables_without_the_testing_flag_are_refused(
    environ: dict[str, str], named: list[str]
) -> None:
    message = refusal(environ)
    for name in named:
        assert name in message
    assert f"{TESTING_ENV}=1" in message


def test_with_the_testing_flag_a_scaled_clock_is_used() -> None:
    clock = clock_from_env({CLOCK_START_ENV: START, CLOCK_SPEED_ENV: "3600", TESTING_ENV: "1"})
    assert isinstance(clock, ScaledClock)
    start = datetime.fromisoformat(START)
    first = clock.now()
    time.sleep(0.05)
    later = clock.now()
    assert start <= first < later
    # 0.05 s of wall time at 3600x is at least three simulated minutes
    assert (later - first).total_seconds() >= 0.05 * 3600


def test_a_start_without_offset_is_utc_and_the_speed_defaults_to_real_time() -> None:
    clock = clock_from_env({CLOCK_START_ENV: "2025-10-03T08:00:00", TESTING_ENV: "1"})
    assert isinstance(clock, ScaledClock)
    assert clock.start == datetime(2025, 10, 3, 8, tzinfo=UTC)
    assert clock.speed == 1


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({CLOCK_START_ENV: "next tuesday"}, CLOCK_START_ENV),
        ({CLOCK_START_ENV: START, CLOCK_SPEED_ENV: "fast"}, CLOCK_SPEED_ENV),
        ({CLOCK_START_ENV: START, CLOCK_SPEED_ENV: "0"}, CLOCK_SPEED_ENV),
        ({CLOCK_START_ENV: START, CLOCK_SPEED_ENV: "-2"}, CLOCK_SPEED_ENV),
        ({CLOCK_START_ENV: START, CLOCK_SPEED_ENV: "nan"}, CLOCK_SPEED_ENV),
        ({CLOCK_SPEED_ENV: "60"}, CLOCK_START_ENV),
    ],
)
def test_bad_values_with_the_flag_name_the_variable(environ: dict[str, str], named: str) -> None:
    assert named in refusal({**environ, TESTING_ENV: "1"})


def test_paperwatch_run_refuses_to_start_with_the_clock_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("PAPERWATCH_"):
            monkeypatch.delenv(name)
    db = tmp_path / "pw.db"
    monkeypatch.setenv("PAPERWATCH_DATABASE__URL", f"sqlite+aiosqlite:///{db}")
    monkeypatch.setenv("DISCORD_TOKEN", TOKEN)
    monkeypatch.setenv(CLOCK_START_ENV, START)
    monkeypatch.setenv(CLOCK_SPEED_ENV, "3600")
    code = main(["run"])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert CLOCK_START_ENV in err and CLOCK_SPEED_ENV in err and TESTING_ENV in err
    assert "Traceback" not in err
    assert TOKEN not in err
    assert not db.exists(), "the refusal comes before the database is touched"


@pytest.mark.slow
async def test_the_bot_process_runs_on_the_scaled_clock_with_the_flag(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, FeedServer() as feeds:
        env = bot_environ(
            fake,
            feeds,
            tmp_path / "pw.db",
            PAPERWATCH_FEEDS__HUGGINGFACE__BACKFILL_DAYS="0",
            PAPERWATCH_TESTING="1",
            PAPERWATCH_CLOCK_START=START,
            PAPERWATCH_CLOCK_SPEED="1",
        )
        bot = BotProcess(env, tmp_path, tmp_path / "bot.log")
        await bot.start()
        try:
            deadline = time.monotonic() + 30
            while not feeds.hf_requests() and bot.alive and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert feeds.hf_requests(), bot.log_tail()
            assert {q.get("date") for q in feeds.hf_requests()} == {"2025-10-03"}
            bot.signal(signal.SIGTERM)
            assert await bot.wait(20) == 0, bot.log_tail()
        finally:
            await bot.close()
