"""The worker processes end with the bot's process, however it ends (SIGKILL included)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

BOT = """
import asyncio, os, signal, sys
from bot.services.workers import WorkerPool

async def main() -> None:
    pool = WorkerPool(2)
    await pool.start()
    assert not pool.in_thread
    print("ready", flush=True)
    if sys.argv[1] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(0)  # ends without closing the pool

if __name__ == "__main__":
    asyncio.run(main())
"""


def pool_processes(marker: Path) -> list[int]:
    """The forkserver and worker processes started for a script run in `marker` (its sys.path)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "multiprocessing.forkserver" in command and str(marker) in command:
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc")
@pytest.mark.parametrize("how", ["kill", "exit"])
def test_the_workers_end_when_the_bots_process_ends_without_closing_them(tmp_path: Path, how: str) -> None:
    script = tmp_path / "bot_process.py"
    script.write_text(BOT, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    output = tmp_path / "output.txt"
    try:
        with output.open("w") as out:  # a file, not a pipe: a surviving worker would hold a pipe open
            code = subprocess.call(
                [sys.executable, str(script), how], cwd=tmp_path, env=env, stdout=out, stderr=out, timeout=60
            )
        assert "ready" in output.read_text(), output.read_text()
        assert code == (-signal.SIGKILL if how == "kill" else 0)
        deadline = time.monotonic() + 15
        while (left := pool_processes(tmp_path)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert left == [], f"{len(left)} pool processes outlived the bot's process"
    finally:
        for pid in pool_processes(tmp_path):  # never left to the next test
            os.kill(pid, signal.SIGKILL)
