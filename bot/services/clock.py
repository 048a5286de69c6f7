"""Time as the services see it, so tests and rehearsals can move it."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Protocol

CLOCK_START_ENV = "PAPERWATCH_CLOCK_START"
CLOCK_SPEED_ENV = "PAPERWATCH_CLOCK_SPEED"


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ScaledClock:
    """Time that starts at `start` and runs `speed` times faster than the wall clock.

    Used to rehearse days of polls and digests in minutes (`make soak`).
    """

    def __init__(self, start: datetime, speed: float) -> None:
        if start.tzinfo is None:
            raise ValueError("the start of a scaled clock needs a timezone")
        self.start = start
        self.speed = speed
        self._origin = time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self._origin) * self.speed)


def clock_from_env(environ: Mapping[str, str]) -> Clock:
    """`PAPERWATCH_CLOCK_START` (ISO 8601) and `PAPERWATCH_CLOCK_SPEED` select a rehearsal clock."""
    start = environ.get(CLOCK_START_ENV)
    if not start:
        return SystemClock()
    moment = datetime.fromisoformat(start)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return ScaledClock(moment, float(environ.get(CLOCK_SPEED_ENV, "1")))
