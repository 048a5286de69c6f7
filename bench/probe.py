"""The event-loop probe the benchmarks share: how long the loop was held while they ran."""

from __future__ import annotations

import asyncio
import time

PROBE_INTERVAL = 0.005
"""The probe sleeps this long again and again; any lateness is time the loop was held."""


class StallProbe:
    """A task that sleeps PROBE_INTERVAL again and again and keeps the worst lateness."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(PROBE_INTERVAL)
            self.worst = max(self.worst, time.perf_counter() - before - PROBE_INTERVAL)

    def __enter__(self) -> StallProbe:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
