"""Worker processes for the bot's CPU-bound work (the recommendation models), off the event loop."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import os
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from bot.relevance.recommend import start_worker

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

MAX_WORKERS = 4
"""Worker processes at most (fewer on a machine with fewer cores)."""


def _start_worker() -> None:
    """Start of a worker process: it ends when the bot's process ends, however that ends.

    A worker waits on its task queue, whose pipe it holds both ends of, so it never sees the
    bot go; and while a worker lives, so does the forkserver that made it. Without this, each
    SIGKILL of the bot would leave the forkserver and every worker running for ever.
    """
    parent = multiprocessing.parent_process()
    if parent is not None:
        sentinel = parent.sentinel  # readable once the bot's process has ended

        def end_with_the_bot() -> None:
            multiprocessing.connection.wait([sentinel])
            os._exit(0)

        threading.Thread(target=end_with_the_bot, name="paperwatch-end-with-bot", daemon=True).start()
    start_worker()


def _worker_count() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


class WorkerPool:
    """Worker processes for CPU-bound work, started at first use; a worker thread where they cannot start.

    The processes are started by `forkserver` (or `spawn`): never forked from the bot, whose
    event loop and database connections a child must not inherit. Only picklable arrays and
    plain values go to them. If the processes cannot start (or die), a warning is logged once
    and the work runs in a worker thread from then on.
    """

    def __init__(self, processes: int | None = None, *, method: str | None = None) -> None:
        self.processes = _worker_count() if processes is None else processes
        self.method = method or (
            "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        )
        self._executor: ProcessPoolExecutor | None = None
        self._in_thread = self.processes <= 0
        self._closed = False
        self._starting = asyncio.Lock()

    @property
    def in_thread(self) -> bool:
        """True once the work runs in a worker thread instead of processes."""
        return self._in_thread

    async def _ready(self) -> ProcessPoolExecutor | None:
        """The running pool; started in a worker thread the first time (never on the event loop)."""
        async with self._starting:
            if self._executor is None and not (self._in_thread or self._closed):
                try:
                    self._executor = await asyncio.to_thread(self._launch)
                except (BrokenProcessPool, OSError, RuntimeError, ValueError, ImportError) as error:
                    self._give_up(error)
        return self._executor

    def _launch(self) -> ProcessPoolExecutor:
        """Start every worker process now: later calls only hand work over."""
        context = multiprocessing.get_context(self.method)
        if self.method == "forkserver":
            context.set_forkserver_preload(["bot.relevance.recommend"])
        executor = ProcessPoolExecutor(self.processes, mp_context=context, initializer=_start_worker)
        try:  # each call while no worker is idle starts one more, up to `processes`
            for started in [executor.submit(os.getpid) for _ in range(self.processes)]:
                started.result()
        except BaseException:
            executor.shutdown(wait=False, cancel_futures=True)
            raise
        return executor

    def _give_up(self, error: BaseException) -> None:
        log.warning("worker processes unavailable (%s); their work runs in a thread instead", error)
        self._in_thread = True
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def start(self) -> None:
        """Start the processes now (best while the bot's process is small: it is forked once)."""
        await self._ready()

    async def run(self, function: Callable[[T], R], argument: T) -> R:
        """`function(argument)` in a worker process, or in a worker thread where none can start."""
        executor = await self._ready()
        if executor is not None:
            try:
                return await asyncio.get_running_loop().run_in_executor(executor, function, argument)
            except (BrokenProcessPool, OSError) as error:
                self._give_up(error)
        return await asyncio.to_thread(function, argument)

    async def close(self) -> None:
        """Stop the worker processes (waiting for work under way); later work runs in a thread."""
        self._closed = True
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)
