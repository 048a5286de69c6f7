"""Discord's global REST limit for the fake: at most ``per_second`` requests a second per bot.

Discord counts every authenticated request of the bot against 50 a second (interaction
callbacks and follow-ups, which go through webhook routes, do not count) and answers the
rest with a 429 whose body says ``"global": true``, with ``X-RateLimit-Global: true``,
``X-RateLimit-Scope: global`` and ``Retry-After``. Like Discord's bucket, the fake's window is
fixed: it opens with the first request after the last one closed, holds ``per_second``
requests, and refills all at once when it closes. A request that finds it full gets that 429,
with ``retry_after`` = when it closes, so every client told to wait comes back to a full
bucket (a sliding window frees one slot at a time and lets a crowd of waiters spend all of
discord.py's five tries on it). Refused requests do not count.

Off by default (``FakeDiscord.global_limit is None``); turn it on with
``fake.global_limit = GlobalRateLimit(50)`` (or a lower rate for a fast test).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

#: Paths below the API base that Discord does not count against the bot's global limit.
EXEMPT_PREFIXES = ("/interactions/", "/webhooks/")


@dataclass
class GlobalRateLimit:
    per_second: float = 50.0
    window: float = 1.0
    opened: float | None = None
    """When the current window opened; ``None`` before the first request."""
    used: int = 0
    """Requests the current window has let through."""
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
        if self.opened is None or now >= self.opened + self.window:
            self.opened, self.used = now, 0
        if self.used >= self.capacity:
            self.limited += 1
            # Rounded up to the millisecond Discord reports, so a client never comes back early.
            return max(0.001, math.ceil((self.opened + self.window - now) * 1000) / 1000)
        self.used += 1
        self.counted += 1
        return None
