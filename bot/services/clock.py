"""Time as the services see it, so tests and rehearsals can move it.

The running bot uses the system clock. A scaled clock (days of polls and digests rehearsed
in minutes, as `make soak` does) is a testing aid: `PAPERWATCH_CLOCK_START` and
`PAPERWATCH_CLOCK_SPEED` select it only when `PAPERWATCH_TESTING=1` is set too, and are
refused otherwise (docs/configuration.md, "Testing aids").
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Protocol

CLOCK_START_ENV = "PAPERWATCH_CLOCK_START"
CLOCK_SPEED_ENV = "PAPERWATCH_CLOCK_SPEED"
TESTING_ENV = "PAPERWATCH_TESTING"


class Clock(Protocol):
    def now(self) -> datetime: ...


class ClockSettingError(ValueError):
    """The test-clock variables are set where they may not be, or hold a bad value."""


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


def testing_enabled(environ: Mapping[str, str]) -> bool:
    """Whether the process was started as a test (`PAPERWATCH_TESTING=1`)."""
    return environ.get(TESTING_ENV, "").strip() == "1"


def clock_from_env(environ: Mapping[str, str]) -> Clock:
    """The system clock, or the scaled clock a test asked for.

    `PAPERWATCH_CLOCK_START` (ISO 8601; UTC when it has no offset) and
    `PAPERWATCH_CLOCK_SPEED` (default 1) are honoured only with `PAPERWATCH_TESTING=1`:
    a production bot whose clock was moved by a stray variable would post digests at the
    wrong time. Raises ClockSettingError naming the variables otherwise.
    """
    start = environ.get(CLOCK_START_ENV, "").strip()
    speed_text = environ.get(CLOCK_SPEED_ENV, "").strip()
    if not start and not speed_text:
        return SystemClock()
    if not testing_enabled(environ):
        named = " and ".join(
            name for name, value in ((CLOCK_START_ENV, start), (CLOCK_SPEED_ENV, speed_text)) if value
        )
        raise ClockSettingError(
            f"{named} move the bot's clock and are a testing aid only; unset them, "
            f"or set {TESTING_ENV}=1 as well when this is a test run"
        )
    if not start:
        raise ClockSettingError(f"{CLOCK_SPEED_ENV} needs {CLOCK_START_ENV} (the simulated start time)")
    try:
        moment = datetime.fromisoformat(start)
    except ValueError:
        raise ClockSettingError(
            f"{CLOCK_START_ENV}: expected an ISO 8601 time like 2025-10-03T08:00:00+00:00, got {start!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        speed = float(speed_text or "1")
    except ValueError:
        speed = math.nan
    if not (math.isfinite(speed) and speed > 0):
        raise ClockSettingError(f"{CLOCK_SPEED_ENV}: expected a number greater than 0, got {speed_text!r}")
    return ScaledClock(moment, speed)
