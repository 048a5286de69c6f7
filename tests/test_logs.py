"""JSON logs: one parseable object per line, with the process and its shards, errors and extras
included, and the bot token nowhere; text stays the default."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings
from bot.discord.runner import TokenFilter
from bot.logs import JsonFormatter, log_handler
from tests.conftest import TOKEN


@pytest.fixture
def capture() -> Iterator[Callable[[Settings], tuple[logging.Logger, io.StringIO]]]:
    """A logger writing through the handler `log_handler` builds, with the runner's token filter."""
    loggers: list[tuple[logging.Logger, logging.Handler]] = []

    def build(settings: Settings) -> tuple[logging.Logger, io.StringIO]:
        stream = io.StringIO()
        handler = log_handler(settings, stream)
        handler.addFilter(TokenFilter(settings.token.reveal()))
        logger = logging.getLogger(f"paperwatch.test.logs.{len(loggers)}")
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        loggers.append((logger, handler))
        return logger, stream

    yield build
    for logger, handler in loggers:
        logger.removeHandler(handler)


def events(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = stream.getvalue().splitlines()
    return [json.loads(line) for line in lines]


def test_one_json_object_per_line_with_process_and_shards(
    make_settings: Callable[..., Settings], capture: Any
) -> None:
    settings = make_settings(
        PAPERWATCH_LOGGING__FORMAT="json",
        PAPERWATCH_DISCORD__SHARD_COUNT="4",
        PAPERWATCH_DISCORD__SHARD_IDS="3,1",
    )
    logger, stream = capture(settings)
    before = datetime.now(UTC)
    logger.info("polled %s: %d new", "huggingface:2025-03-17", 12)
    logger.warning("a message\nover two lines")
    after = datetime.now(UTC)
    out = events(stream)
    assert len(stream.getvalue().splitlines()) == len(out) == 2  # the newline stays inside its event
    first, second = out
    assert first["message"] == "polled huggingface:2025-03-17: 12 new"
    assert (first["level"], first["logger"]) == ("INFO", logger.name)
    assert first["process"] == f"{socket.gethostname()}:{os.getpid()}"
    assert first["shards"] == [1, 3]
    moment = datetime.fromisoformat(first["time"])
    assert moment.utcoffset() == timedelta(0)
    assert before - timedelta(milliseconds=1) <= moment <= after
    assert second["message"] == "a message\nover two lines"
    assert second["level"] == "WARNING"
    assert "exception" not in first


def test_a_process_of_an_unsharded_bot_says_all(make_settings: Callable[..., Settings], capture: Any) -> None:
    logger, stream = capture(make_settings(PAPERWATCH_LOGGING__FORMAT="json"))
    logger.info("ready")
    assert events(stream)[0]["shards"] == "all"


def test_exceptions_stacks_and_extra_fields(make_settings: Callable[..., Settings], capture: Any) -> None:
    logger, stream = capture(make_settings(PAPERWATCH_LOGGING__FORMAT="json"))

    def post() -> None:
        raise ConnectionError("Discord went away")

    try:
        post()
    except ConnectionError:
        logger.exception(
            "posting to target %d failed", 7, extra={"target_id": 7, "when": datetime(2025, 1, 1)}
        )
    logger.debug("where we are", stack_info=True)
    failed, debug = events(stream)
    assert failed["message"] == "posting to target 7 failed"
    assert failed["level"] == "ERROR"
    assert failed["exception"].startswith("Traceback (most recent call last)")
    assert failed["exception"].rstrip().endswith("ConnectionError: Discord went away")
    assert "in post" in failed["exception"]
    assert failed["target_id"] == 7
    assert failed["when"] == "2025-01-01 00:00:00"  # not JSON by nature: as text
    assert debug["stack"].startswith("Stack (most recent call last)")
    assert "test_exceptions_stacks_and_extra_fields" in debug["stack"]
    for internal in ("args", "msg", "exc_info", "levelno", "pathname"):
        assert internal not in failed


def test_the_token_is_masked_everywhere(make_settings: Callable[..., Settings], capture: Any) -> None:
    logger, stream = capture(make_settings(PAPERWATCH_LOGGING__FORMAT="json", DISCORD_TOKEN=TOKEN))
    logger.warning("login with %s", TOKEN)
    try:
        raise RuntimeError(f"401 for {TOKEN}")
    except RuntimeError:
        logger.exception("login failed")
    logger.info("headers", extra={"authorization": f"Bot {TOKEN}"})
    text = stream.getvalue()
    assert TOKEN not in text
    warning, failed, headers = events(stream)
    assert warning["message"] == f"login with {TokenFilter.MASK}"
    assert failed["exception"].rstrip().endswith(f"RuntimeError: 401 for {TokenFilter.MASK}")
    assert headers["authorization"] == f"Bot {TokenFilter.MASK}"  # an extra field: masked by the formatter


def test_the_formatter_alone_masks_the_secret_too() -> None:
    """The JSON formatter masks the token even on a handler without the token filter."""
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "token %s", (TOKEN,), None)
    line = JsonFormatter(process="p:1", shards="all", secret=TOKEN).format(record)
    assert TOKEN not in line
    assert json.loads(line)["message"] == "token ********"
    plain = JsonFormatter(process="p:1", shards="all").format(record)
    assert TOKEN in plain  # the check above can fail


def test_text_stays_the_default(make_settings: Callable[..., Settings], capture: Any) -> None:
    settings = make_settings()
    assert settings.logging.format == "text"
    logger, stream = capture(settings)
    logger.info("ready")
    line = stream.getvalue().strip()
    assert line.endswith(f"INFO {logger.name}: ready")
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_a_bad_format_is_refused(make_settings: Callable[..., Settings]) -> None:
    from bot.config import ConfigError

    with pytest.raises(ConfigError, match=r"logging\.format: expected text or json"):
        make_settings(PAPERWATCH_LOGGING__FORMAT="yaml")


def test_the_command_line_logs_json_when_asked(tmp_path: Path) -> None:
    """`paperwatch db upgrade` with `[logging] format = "json"`: every line on stderr is an event."""
    environ = {
        **os.environ,
        "PAPERWATCH_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path}/pw.db",
        "PAPERWATCH_LOGGING__FORMAT": "json",
        "PAPERWATCH_DISCORD__SHARD_COUNT": "2",
        "PAPERWATCH_DISCORD__SHARD_IDS": "[1]",
    }
    environ.pop("PAPERWATCH_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-m", "bot", "db", "upgrade"],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines
    parsed = [json.loads(line) for line in lines]
    assert any(e["logger"].startswith("alembic") and "Running upgrade" in e["message"] for e in parsed)
    assert all(e["shards"] == [1] for e in parsed)
    processes = {e["process"] for e in parsed}
    assert len(processes) == 1
    assert processes.pop().startswith(socket.gethostname() + ":")
