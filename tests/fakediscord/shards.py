"""Sharding rules of the fake gateway: which IDENTIFYs it accepts, and ``GET /gateway/bot``.

What Discord does, and the fake with it:

* Each connection identifies one shard, ``"shard": [shard_id, shard_count]`` (no ``shard`` =
  ``[0, 1]``). A shard id outside ``0 .. shard_count - 1`` is closed with **4010 Invalid
  shard**; a session that would hold more than ``max_guilds_per_shard`` guilds (Discord:
  2,500) with **4011 Sharding required**. ``required_shard_count`` (the fake's own option) also
  closes an IDENTIFY with any other shard count with 4010, for tests that want it strict.
* Guild events and interactions go to the shard ``(guild_id >> 22) % shard_count``, DMs to
  shard 0 (``GatewaySession.handles_guild``).
* At most ``max_concurrency`` IDENTIFYs per identify interval (Discord: 5 s), one per bucket
  ``shard_id % max_concurrency``. Discord answers an IDENTIFY over that limit with op 9
  INVALID_SESSION (``d: false``); so does the fake when ``identify_interval`` is set (it is
  ``None``, not enforced, by default; every IDENTIFY is recorded either way, with its time,
  so tests can check the spacing).
* ``GET /gateway/bot`` gives the recommended shard count and ``session_start_limit``
  (``max_concurrency`` as set here, ``remaining`` counting down with each accepted IDENTIFY).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .model import JSON

DISCORD_IDENTIFY_INTERVAL = 5.0
DISCORD_MAX_GUILDS_PER_SHARD = 2500


@dataclass(frozen=True)
class IdentifyRecord:
    """One IDENTIFY the fake received, and what it did with it."""

    shard_id: int
    shard_count: int
    bucket: int
    at: float
    """``time.monotonic()`` when it arrived."""
    outcome: str
    """``"ready"``, ``"invalid session: too fast"``, ``"closed 4010"`` or ``"closed 4011"``."""

    @property
    def accepted(self) -> bool:
        return self.outcome == "ready"


@dataclass(frozen=True)
class Refusal:
    """Why an IDENTIFY is refused: a close code, or ``None`` for op 9 INVALID_SESSION."""

    close_code: int | None
    reason: str


@dataclass
class ShardRules:
    max_concurrency: int = 1
    identify_interval: float | None = None
    """Seconds between two IDENTIFYs of one bucket (Discord: 5); ``None`` = not enforced."""
    required_shard_count: int | None = None
    max_guilds_per_shard: int = DISCORD_MAX_GUILDS_PER_SHARD
    session_start_total: int = 1000
    identifies: list[IdentifyRecord] = field(default_factory=list)

    def bucket(self, shard_id: int) -> int:
        return shard_id % max(1, self.max_concurrency)

    def admit(self, shard: Any, guild_ids: Sequence[int]) -> tuple[int, int, Refusal | None]:
        """Check an IDENTIFY's ``shard`` field; ``(shard_id, shard_count, refusal or None)``."""
        now = time.monotonic()
        try:
            shard_id, shard_count = (int(shard[0]), int(shard[1])) if shard is not None else (0, 1)
        except (TypeError, ValueError, IndexError, KeyError):
            shard_id, shard_count = -1, 0
        bucket = self.bucket(shard_id) if shard_id >= 0 else -1
        refusal: Refusal | None = None
        wrong_count = self.required_shard_count not in (None, shard_count)
        if shard_count < 1 or not 0 <= shard_id < shard_count or wrong_count:
            refusal = Refusal(4010, "Invalid shard")
        elif sum(1 for g in guild_ids if (g >> 22) % shard_count == shard_id) > self.max_guilds_per_shard:
            refusal = Refusal(4011, "Sharding required")
        elif self.identify_interval is not None and self._too_soon(bucket, now):
            refusal = Refusal(None, "too fast")
        if refusal is None:
            outcome = "ready"
        elif refusal.close_code is None:
            outcome = "invalid session: too fast"
        else:
            outcome = f"closed {refusal.close_code}"
        self.identifies.append(IdentifyRecord(shard_id, shard_count, bucket, now, outcome))
        return shard_id, shard_count, refusal

    def _too_soon(self, bucket: int, now: float) -> bool:
        assert self.identify_interval is not None
        last = next((r.at for r in reversed(self.identifies) if r.accepted and r.bucket == bucket), None)
        return last is not None and now - last < self.identify_interval

    def accepted(self, shard_id: int | None = None) -> list[IdentifyRecord]:
        """Accepted IDENTIFYs in order, of one shard or of all."""
        return [r for r in self.identifies if r.accepted and (shard_id is None or r.shard_id == shard_id)]

    def gaps(self) -> dict[int, list[float]]:
        """Per bucket: seconds between consecutive accepted IDENTIFYs."""
        times: dict[int, list[float]] = {}
        for record in self.accepted():
            times.setdefault(record.bucket, []).append(record.at)
        return {b: [later - earlier for earlier, later in itertools.pairwise(ts)] for b, ts in times.items()}

    def gateway_bot(self, url: str, shards: int) -> JSON:
        started = len(self.accepted())
        return {
            "url": url,
            "shards": shards,
            "session_start_limit": {
                "total": self.session_start_total,
                "remaining": max(0, self.session_start_total - started),
                "reset_after": 14_400_000,
                "max_concurrency": self.max_concurrency,
            },
        }
