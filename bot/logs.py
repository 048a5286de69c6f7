"""Log output: one readable line per event, or one JSON object per line (`[logging] format`).

A JSON event carries the time (ISO 8601, UTC), level, logger, message, the exception or
stack when there is one, the process (`host:pid`) and the shards this process connects,
so that the logs of several `paperwatch run` processes can be merged and told apart.
Fields given with `extra={…}` are added as they are. The bot token never appears: the
runner's token filter scrubs messages and tracebacks, and the JSON line is masked again.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from datetime import UTC, datetime
from typing import IO, Any

from bot.config import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MASK = "********"

# attributes every LogRecord has; anything else on a record came from `extra=`
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def process_name() -> str:
    """This process among several: `host:pid`."""
    return f"{socket.gethostname()}:{os.getpid()}"


def shard_label(settings: Settings) -> list[int] | str:
    """The shards this process connects, or "all" when it connects every shard of the bot."""
    ids = settings.discord.shard_ids
    return sorted(ids) if ids is not None else "all"


class JsonFormatter(logging.Formatter):
    """One JSON object per line, exceptions and stacks included as text fields."""

    def __init__(self, *, process: str, shards: list[int] | str, secret: str = "") -> None:
        super().__init__()
        self.process = process
        self.shards = shards
        self._secret = secret

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": self.process,
            "shards": self.shards,
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            event["exception"] = record.exc_text
        if record.stack_info:
            event["stack"] = self.formatStack(record.stack_info)
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_") and key not in event:
                event[key] = value
        line = json.dumps(event, ensure_ascii=False, default=str)
        return line.replace(self._secret, MASK) if self._secret else line


def log_handler(settings: Settings, stream: IO[str] | None = None) -> logging.Handler:
    """A stream handler (stderr by default) formatting as `[logging] format` says."""
    handler = logging.StreamHandler(stream)
    if settings.logging.format == "json":
        handler.setFormatter(
            JsonFormatter(
                process=process_name(), shards=shard_label(settings), secret=settings.token.reveal()
            )
        )
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    return handler


def configure_logging(settings: Settings) -> None:
    """Set up the root logger once per process, at `[logging] level`, in `[logging] format`."""
    logging.basicConfig(level=settings.logging.level.upper(), handlers=[log_handler(settings)])
