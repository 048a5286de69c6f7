"""Ending a background task for certain."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any], *, retry: float = 0.5) -> None:
    """Cancel `task` and wait until it has ended, cancelling again every `retry` seconds.

    One cancel is not always enough: on Python 3.11 a cancel that arrives just as a database
    call completes can be swallowed by the driver, and a loop that then goes on sleeping
    would keep `stop()` waiting for ever. What the task ended with (its result, its error,
    its cancellation) is read here and dropped: the task is being stopped.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=retry)
    if not task.cancelled():
        task.exception()
