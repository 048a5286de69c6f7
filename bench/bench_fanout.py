"""Bench: a 09:00 fan-out, 1,000 channels' digests delivered through the local Discord.

Run from the repository root (part of `make bench`):

    .venv/bin/python -m bench.bench_fanout [--channels 1000] [--guilds 50]

1,000 channels in 50 guilds each have a due digest of 1 to 30 papers (seeded). Real
`paperwatch run` processes deliver them to the local Discord, which answers every request
after 150 ms and enforces Discord's limits: 50 requests a second for the whole bot (429 with
`global`), 5 messages per 5 seconds per channel (429, with the bucket's headers). Measured,
from the first message posted to the last paper stored:

- `messages`, `seconds`; `bound_seconds` = messages ÷ `[discord] max_requests_per_second`
  (the fastest the budget allows); `ratio` = bound ÷ seconds (1.0 = at the budget);
- `http_429`: 429 answers of the local Discord; `duplicates`: papers posted twice or more to
  a channel; `lost`: papers of a digest that never reached their channel.

One process runs on a SQLite file; `two_processes` runs two on one fresh PostgreSQL
database (from `PAPERWATCH_TEST_PG_URL`; skipped with the reason when it is unset).
Results: bench/results/fanout.json.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import re
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.config import load_settings
from bot.db.models import MODE_DIGEST, TARGET_CHANNEL, DeliveryRow, PaperRow, TargetRow
from bot.services.core import Core
from tests.fakediscord.channel_limit import ChannelMessageLimit
from tests.fakediscord.model import Perm
from tests.fakediscord.ratelimit import GlobalRateLimit
from tests.fakediscord.server import FakeDiscord
from tests.feedserver import FeedServer
from tests.reliability.crash_helpers import BotProcess, bot_environ

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "fanout.json"
BUDGET = 45.0
LATENCY = 0.15
MAX_PAPERS = 30
POLL = 0.1
"""Seconds between the bench's counts of stored papers: counting 1,000 channels is CPU the bots need."""
BOT_NICENESS = 5
"""The bots run below the local Discord's CPU priority: Discord answers from its own machines,
and here a stalled stand-in would read a burst of requests late and count them in one second."""
PG_ENV = "PAPERWATCH_TEST_PG_URL"
_MESSAGES = re.compile(r"/channels/\d+/messages")


def paper_id(n: int) -> str:
    return f"2501.{n:05d}"


def plan(channels: int, seed: int = 11) -> list[int]:
    """Papers in each channel's digest: 1 to 30."""
    rng = random.Random(seed)
    return [rng.randint(1, MAX_PAPERS) for _ in range(channels)]


async def fill(url: str, fake: FakeDiscord, channel_ids: list[tuple[int, int]], sizes: list[int]) -> None:
    """Migrate the database and store the papers, the channels and their due digests."""
    settings = load_settings(environ={"PAPERWATCH_DATABASE__URL": url})
    core = await Core.open(settings)
    now = datetime.now(UTC)
    async with core.sessions.begin() as session:
        for n in range(MAX_PAPERS):
            session.add(
                PaperRow(
                    arxiv_id=paper_id(n),
                    title=f"A study of fan-out number {n}",
                    abstract="We measure how fast a bot can post many digests at once. " * 3,
                    authors=["A. Author", "B. Author"],
                    first_seen_at=now - timedelta(hours=1),
                    sources=["hf"],
                    upvotes=100 - n,
                )
            )
        await session.flush()
        for (guild_id, channel_id), size in zip(channel_ids, sizes, strict=True):
            target = TargetRow(
                kind=TARGET_CHANNEL,
                guild_id=guild_id,
                channel_id=channel_id,
                user_id=0,
                next_digest_at=now - timedelta(minutes=1),
            )
            session.add(target)
            await session.flush()
            for n in range(size):
                session.add(DeliveryRow(target_id=target.id, paper_id=paper_id(n), mode=MODE_DIGEST))
    await core.close()


def outcome(fake: FakeDiscord, channel_ids: list[tuple[int, int]], sizes: list[int]) -> dict[str, int]:
    duplicates = lost = messages = 0
    for (_, channel_id), size in zip(channel_ids, sizes, strict=True):
        stored = fake.messages(channel_id, include_interaction_replies=False)
        messages += len(stored)
        counts = Counter(str(e.get("url")) for m in stored for e in m.data.get("embeds") or [])
        duplicates += sum(n - 1 for n in counts.values() if n > 1)
        lost += sum(
            1
            for n in range(size)
            if f"https://arxiv.org/abs/{paper_id(n)}" not in counts
            and f"https://huggingface.co/papers/{paper_id(n)}" not in counts
        )
    return {"messages": messages, "duplicates": duplicates, "lost": lost}


async def deliver(url: str, processes: int, channels: int, guilds: int) -> dict[str, Any]:
    fake = FakeDiscord()
    await fake.start()
    feeds = FeedServer()
    await feeds.start()
    per_guild = channels // guilds
    channel_ids: list[tuple[int, int]] = []
    for g in range(guilds):
        guild = fake.add_guild(
            f"Bench {g}",
            channels=tuple(f"papers-{c}" for c in range(per_guild)),
            bot_permissions=Perm.DEFAULT_BOT | Perm.READ_MESSAGE_HISTORY,
        )
        channel_ids += [(guild.id, c) for c in guild.channel_ids]
    sizes = plan(len(channel_ids))
    await fill(url, fake, channel_ids, sizes)
    fake.delay("*", r".*", LATENCY)
    fake.global_limit = GlobalRateLimit(50)
    fake.channel_limit = ChannelMessageLimit(5, 5.0)
    expected_papers = sum(sizes)
    # Discord answers from its own machines; here the stand-in's garbage collector paused its
    # loop for up to 250 ms, then read a quarter of a second of requests as one burst.
    gc.collect()
    gc.freeze()
    gc.disable()
    bots: list[BotProcess] = []
    tmp = Path(tempfile.mkdtemp(prefix="pw-fanout-"))
    try:
        for n in range(processes):
            env = bot_environ(
                fake,
                feeds,
                tmp / "unused.db",
                PAPERWATCH_DATABASE__URL=url,
                PAPERWATCH_FEEDS__HUGGINGFACE__ENABLED="false",
                PAPERWATCH_DIGEST__MAX_PAPERS=str(MAX_PAPERS),
                PAPERWATCH_DIGEST__CHECK_INTERVAL="1",
                PAPERWATCH_DISCORD__MAX_REQUESTS_PER_SECOND=str(BUDGET),
                PAPERWATCH_SCALEOUT__HEARTBEAT_INTERVAL="1",
                PAPERWATCH_SCALEOUT__LEASE="5",
                PAPERWATCH_LOGGING__LEVEL="WARNING",
            )
            bot = BotProcess(env, tmp, tmp / f"bot{n}.log")
            bots.append(bot)
            await bot.start()
            assert bot.proc is not None
            os.setpriority(os.PRIO_PROCESS, bot.proc.pid, BOT_NICENESS)
        first: float | None = None
        last_change = time.monotonic()
        stored = 0
        deadline = time.monotonic() + 30 + 4 * expected_papers / BUDGET
        while time.monotonic() < deadline:
            await asyncio.sleep(POLL)
            posts = [r for r in fake.requests if r.method == "POST" and _MESSAGES.fullmatch(r.path)]
            if posts and first is None:
                first = time.monotonic()
            now_stored = (
                sum(
                    len(m.data.get("embeds") or [])
                    for _, c in channel_ids
                    for m in fake.messages(c, include_interaction_replies=False)
                )
                if posts
                else 0
            )
            if now_stored != stored:
                stored, last_change = now_stored, time.monotonic()
            if stored >= expected_papers:
                break
            if any(not bot.alive for bot in bots):
                raise RuntimeError(f"a bot process exited:\n{bots[0].log_tail(40)}")
        end = last_change
        await asyncio.sleep(1.0)  # anything posted late counts as a duplicate
        result = outcome(fake, channel_ids, sizes)
        seconds = end - (first or end)
        bound = result["messages"] / BUDGET
        return {
            "processes": processes,
            "channels": len(channel_ids),
            "guilds": guilds,
            "papers": expected_papers,
            "messages": result["messages"],
            "seconds": round(seconds, 2),
            "bound_seconds": round(bound, 2),
            "ratio": round(bound / seconds, 3) if seconds else None,
            "http_429": sum(1 for r in fake.requests if r.status == 429),
            "duplicates": result["duplicates"],
            "lost": result["lost"],
        }
    finally:
        gc.enable()
        gc.unfreeze()
        for bot in bots:
            await bot.close()
        await feeds.close()
        await fake.close()


async def run(channels: int, guilds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        one = await deliver(f"sqlite+aiosqlite:///{tmp}/fanout.db", 1, channels, guilds)
    print(json.dumps(one), flush=True)
    pg = os.environ.get(PG_ENV)
    two: dict[str, Any]
    if pg:
        from tests.test_migrate_lock import fresh_pg_database

        async with fresh_pg_database(pg, prefix="pw_fanout") as url:
            two = await deliver(url, 2, channels, guilds)
    else:
        two = {"skipped": f"{PG_ENV} is not set: two processes need a PostgreSQL database"}
    print(json.dumps(two), flush=True)
    return {
        **one,
        "two_processes": two,
        "budget_per_second": BUDGET,
        "latency_ms": LATENCY * 1000,
        "limits": "50 requests/s global, 5 messages per 5 s per channel",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--channels", type=int, default=1000)
    parser.add_argument("--guilds", type=int, default=50)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    results = asyncio.run(run(args.channels, args.guilds))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
