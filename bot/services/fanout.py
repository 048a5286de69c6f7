"""Fan-out: many targets at once, each target's messages in order, within the REST budget.

- Per target, one piece of work at a time: an `asyncio.Lock` per target, made when first
  wanted and dropped when nobody waits for it, keeps its messages in order; across
  processes the target's lease does the same (bot/services/leases.py).
- Across targets, up to `concurrency` run at once, so a slow, paused or failing target
  never holds up the others.
- Every REST request of the outbox first takes a token from a `TokenBucket` whose rate is
  this process's share of the bot's budget (`[discord] max_requests_per_second` divided by
  the live processes); Discord's per-route limits are left to discord.py's own limiter.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TypeVar

from bot.services.leases import Leases

T = TypeVar("T")


class TokenBucket:
    """Paces requests to `rate` per second, first come first served, with no burst beyond `burst`."""

    def __init__(
        self, rate: float, *, burst: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._stamp = clock()
        self._turn = asyncio.Lock()
        self._not_before = 0.0
        self._resumed = asyncio.Event()
        self.taken = 0

    def hold_off(self, seconds: float) -> None:
        """Give no token for `seconds`, or until `resume()`: a process that just started waits
        until the others count it."""
        self._not_before = self._clock() + seconds
        self._resumed.clear()

    def resume(self) -> None:
        """End a hold-off early."""
        self._not_before = 0.0
        self._resumed.set()

    def set_rate(self, rate: float) -> None:
        self._refill()
        self.rate = max(rate, 0.01)

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def take(self) -> None:
        async with self._turn:
            wait = self._not_before - self._clock()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._resumed.wait()
            while True:
                self._refill()
                if self._tokens >= 1:
                    self._tokens -= 1
                    self.taken += 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)


class TargetWork:
    """Who works on which target now: one piece of work per target, `concurrency` targets at once."""

    def __init__(self, leases: Leases | None = None, *, concurrency: int = 64) -> None:
        self.leases = leases
        self.concurrency = concurrency
        self._locks: dict[int, asyncio.Lock] = {}
        self._waiting: dict[int, int] = {}
        self._active = 0
        self._drained = asyncio.Event()
        self._drained.set()
        self._open = asyncio.Event()
        self._open.set()

    @property
    def locks(self) -> int:
        """Per-target locks alive now (for tests: idle targets keep none)."""
        return len(self._locks)

    @contextlib.asynccontextmanager
    async def hold(self, target_id: int, *, wait: float = 0.0) -> AsyncIterator[bool]:
        """Work on `target_id` alone; yields False when another process holds it (after `wait` seconds)."""
        await self._open.wait()
        self._active += 1
        self._drained.clear()
        self._waiting[target_id] = self._waiting.get(target_id, 0) + 1
        lock = self._locks.setdefault(target_id, asyncio.Lock())
        try:
            async with lock:
                mine = await self._take(target_id, wait)
                try:
                    yield mine
                finally:
                    if mine and self.leases is not None:
                        await self.leases.give_back(target_id)
        finally:
            self._waiting[target_id] -= 1
            if not self._waiting[target_id]:
                del self._waiting[target_id]
                del self._locks[target_id]
            self._active -= 1
            if not self._active:
                self._drained.set()

    async def _take(self, target_id: int, wait: float) -> bool:
        if self.leases is None:
            return True
        deadline = time.monotonic() + wait
        while not await self.leases.take(target_id):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.2)
        return True

    async def each(self, items: Iterable[T], work: Callable[[T], Awaitable[object]]) -> None:
        """Run `work` for every item, at most `concurrency` at once; the first error is raised at the end."""
        limit = asyncio.Semaphore(self.concurrency)

        async def one(item: T) -> None:
            async with limit:
                await work(item)

        results = await asyncio.gather(*(one(item) for item in items), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]

    @contextlib.asynccontextmanager
    async def quiet(self, timeout: float) -> AsyncIterator[bool]:
        """Start nothing new and wait (up to `timeout`) for the work under way; yields True if it ended."""
        self._open.clear()
        try:
            try:
                await asyncio.wait_for(self._drained.wait(), timeout)
                drained = True
            except TimeoutError:
                drained = False
            yield drained
        finally:
            self._open.set()
