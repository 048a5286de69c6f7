"""Discord's global REST limit for the fake: at most ``per_second`` requests a second per bot.

Discord counts every authenticated request of the bot against 50 a second (interaction
callbacks and follow-ups, which go through webhook routes, do not count) and answers the
rest with a 429 whose body says ``"global": true``, with ``X-RateLimit-Global: true``,
``X-RateLimit-Scope: global`` and ``Retry-After``. The fake keeps the requests it answered in
a sliding one-second window; a request that finds the window full gets that 429, with
``retry_after`` = when the oldest request leaves the window. Refused requests do not count.

Off by default (``FakeDiscord.global_limit is None``); turn it on with
``fake.global_limit = GlobalRateLimit(50)`` (or a lower rate for a fast test).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

#: Paths below the API base that Discord does not count against the bot's global limit.
EXEMPT_PREFIXES = ("/interactions/", "/webhooks/")


@dataclass
class GlobalRateLimit:
    per_second: float = 50.0
    window: float = 1.0
    answered: deque[float] = field(default_factory=deque)
    limited: int = 0
    """429s answered so far."""
    counted: int = 0
    """Requests that counted against the limit and went through."""

    @property
    def capacity(self) -> int:
        return max(1, int(self.per_second * self.window))

    def exempt(self, path: str) -> bool:
        return path.startswith(EXEMPT_PREFIXES)

    def check(self, path: str, now: float | None = None) -> float | None:
        """``None`` if the request may go ahead (and counts it), else the seconds to retry after."""
        if self.exempt(path):
            return None
        now = time.monotonic() if now is None else now
        while self.answered and now - self.answered[0] >= self.window:
            self.answered.popleft()
        if len(self.answered) >= self.capacity:
            self.limited += 1
            return max(0.001, self.answered[0] + self.window - now)
        self.answered.append(now)
        self.counted += 1
        return None
