"""Discord's per-channel limit on posting messages, for the fake: 5 messages per 5 seconds.

Discord answers `POST /channels/{id}/messages` from one bucket per channel; its headers say
how many requests are left (`X-RateLimit-Remaining`) and when the bucket refills
(`X-RateLimit-Reset-After`), and a request over the limit gets a 429 with `retry_after`. The
fake keeps a fixed window per channel that starts at the channel's first request, as
discord.py's limiter expects (it waits out `Reset-After` once `Remaining` is 0).

Off by default (`FakeDiscord.channel_limit is None`); turn it on with
`fake.channel_limit = ChannelMessageLimit()`.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

MESSAGE_POST = re.compile(r"/channels/(\d+)/messages")


@dataclass(frozen=True, slots=True)
class Verdict:
    limit: int
    remaining: int
    reset_after: float
    retry_after: float | None = None
    """Set when the request is over the limit (answer 429)."""

    def headers(self, bucket: str) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": f"{time.time() + self.reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{self.reset_after:.3f}",
            "X-RateLimit-Bucket": bucket,
        }


@dataclass
class ChannelMessageLimit:
    per_window: int = 5
    window: float = 5.0
    windows: dict[int, tuple[float, int]] = field(default_factory=dict)
    """Channel id → (start of its window, messages posted in it)."""
    limited: int = 0
    """429s answered so far."""

    def check(self, method: str, path: str, now: float | None = None) -> Verdict | None:
        """None for other routes; else the bucket's state after this request (counted if allowed)."""
        match = MESSAGE_POST.fullmatch(path)
        if method != "POST" or match is None:
            return None
        channel_id = int(match.group(1))
        now = time.monotonic() if now is None else now
        start, used = self.windows.get(channel_id, (now, 0))
        if now - start >= self.window:
            start, used = now, 0
        reset_after = max(0.001, start + self.window - now)
        if used >= self.per_window:
            self.limited += 1
            return Verdict(self.per_window, 0, reset_after, retry_after=reset_after)
        self.windows[channel_id] = (start, used + 1)
        return Verdict(self.per_window, self.per_window - used - 1, reset_after)
