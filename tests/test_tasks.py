"""Stopping a background task ends it, also when one cancellation is swallowed."""

from __future__ import annotations

import asyncio

from bot.tasks import cancel_and_wait


async def test_a_loop_that_swallows_one_cancel_still_stops() -> None:
    swallowed = 0

    async def loop() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1  # what a driver may do when the cancel meets a finished query

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.02)
    task.cancel()  # one cancel: the loop lives on
    done, _ = await asyncio.wait({task}, timeout=0.3)
    assert not done and swallowed == 1
    async with asyncio.timeout(5):
        await cancel_and_wait(task, retry=0.05)
    assert task.cancelled()


async def test_a_task_that_failed_or_finished_is_stopped_quietly() -> None:
    async def fail() -> None:
        raise RuntimeError("boom")

    failed = asyncio.create_task(fail())
    finished = asyncio.create_task(asyncio.sleep(0))
    await asyncio.sleep(0.01)
    await cancel_and_wait(failed)
    await cancel_and_wait(finished)
    assert failed.done() and finished.done()
