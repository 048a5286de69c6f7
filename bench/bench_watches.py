"""Bench: reading the active watches, which every ingest does before matching.

Run from the repository root (part of `make bench`):

    .venv/bin/python -m bench.bench_watches [--watches 100000]

A fresh SQLite file holds `--watches` watches over channels of 20 watches each. The bench
times `WatchRepository.active()` three times while a probe task wakes every 5 ms, and
reports the longest the probe waited beyond its 5 ms (`max_loop_stall_ms`): the time the
event loop was held, when commands and heartbeats wait. For comparison, `orm_rows_*` times
the earlier way, whole watch and target ORM rows in one `execute` (at 100,000 watches it held
the loop for about 2 s). Results: bench/results/watches.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.probe import PROBE_INTERVAL, StallProbe
from bot.db.engine import create_engine, session_factory
from bot.db.migrate import upgrade
from bot.db.models import TargetRow, WatchRow
from bot.db.repo import WatchRepository

RESULTS = Path(__file__).resolve().parent / "results" / "watches.json"
PER_CHANNEL = 20


async def _fill(sessions: async_sessionmaker[AsyncSession], watches: int) -> None:
    now = datetime.now(UTC)
    channels = -(-watches // PER_CHANNEL)
    async with sessions.begin() as session:
        await session.execute(
            insert(TargetRow),
            [
                {"id": i + 1, "kind": "channel", "channel_id": 10**17 + i, "guild_id": 10**16 + i // 50}
                for i in range(channels)
            ],
        )
        await session.execute(
            insert(WatchRow),
            [
                {
                    "target_id": i // PER_CHANNEL + 1,
                    "query": f'"topic {i % 5_000}" OR diffusion',
                    "created_by": 1,
                    "created_at": now,
                }
                for i in range(watches)
            ],
        )


async def _timed(read: Callable[[], Awaitable[int]], rounds: int = 3) -> dict[str, Any]:
    """Seconds per read (best and worst of `rounds`) and the longest the loop was held."""
    seconds = []
    count = 0
    with StallProbe() as probe:
        await asyncio.sleep(PROBE_INTERVAL * 2)
        for _ in range(rounds):
            began = time.perf_counter()
            count = await read()
            seconds.append(time.perf_counter() - began)
    return {
        "rows": count,
        "seconds_best": round(min(seconds), 3),
        "seconds_worst": round(max(seconds), 3),
        "max_loop_stall_ms": round(probe.worst * 1000, 1),
    }


async def run(watches: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        engine = create_engine(f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}")
        await upgrade(engine)
        sessions = session_factory(engine)
        await _fill(sessions, watches)

        async def active() -> int:
            async with sessions() as session:
                return len(await WatchRepository(session).active())

        async def orm_rows() -> int:
            async with sessions() as session:
                rows = await session.execute(
                    select(WatchRow, TargetRow)
                    .join(TargetRow, TargetRow.id == WatchRow.target_id)
                    .where(WatchRow.paused.is_(False))
                    .order_by(WatchRow.id)
                )
                return len(rows.all())

        ours = await _timed(active)
        before = await _timed(orm_rows)
        await engine.dispose()
    return {
        "watches": watches,
        **ours,
        **{f"orm_rows_{key}": value for key, value in before.items() if key != "rows"},
        "stall_ratio": round(before["max_loop_stall_ms"] / max(ours["max_loop_stall_ms"], 0.1), 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--watches", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    results = asyncio.run(run(args.watches))
    for key, value in results.items():
        print(f"{key}: {value}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
