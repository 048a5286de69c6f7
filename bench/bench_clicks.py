"""Bench: how fast clicks on paper components are answered, over the local Discord.

Run from the repository root (part of `make bench`):

    .venv/bin/python -m bench.bench_clicks [--clicks 200]

The real bot (BotApp, a temporary SQLite file) runs against FakeDiscord and the fixture feeds in
this process, with one paper per digest page (`digest.max_papers = 1`) so that every Next papers
click posts a page. Per kind of click, one after the other, the time from the interaction being
sent to the bot until:

- `ack`: the bot's interaction callback arrived (what Discord's 3 seconds limit is about);
- `done`: the answer is complete (the panel shown or updated, the BibTeX block, the page posted
  and the clicker told where it is). Save and Next papers defer first, so they differ.

Kinds: `pick` (select a paper → its panel), `save` (a new save each time: reading list + DM),
`up` (👍, pressed on a fresh panel), `bibtex`, `next` (post the next page). Clicks come from
distinct people, so per-person pacing is not what is measured. Results: bench/results/clicks.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.e2e.conftest import START, MovableClock, World
from tests.fakediscord.model import Perm
from tests.fakediscord.server import FakeDiscord
from tests.feedserver import FIXTURES, FeedServer, load_hf_day

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "clicks.json"
KINDS = ("pick", "save", "up", "bibtex", "next")


def all_fixture_papers() -> list[dict[str, Any]]:
    """Every distinct paper of the fixture days, served as one day."""
    seen: dict[str, dict[str, Any]] = {}
    for path in sorted((FIXTURES / "hf_daily").glob("*.json")):
        for entry in load_hf_day(path.stem):
            seen.setdefault(entry["paper"]["id"], entry)
    return list(seen.values())


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(p95 * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def component(message: Any, kind: int, label: str | None = None) -> dict[str, Any]:
    for row in message.data.get("components") or []:
        for item in row["components"]:
            if item["type"] == kind and (label is None or str(item.get("label", "")).startswith(label)):
                return dict(item)
    raise LookupError(f"message {message.id} has no component {label or kind}")


class Timer:
    def __init__(self) -> None:
        self.ack: dict[str, list[float]] = {kind: [] for kind in KINDS}
        self.done: dict[str, list[float]] = {kind: [] for kind in KINDS}

    async def measure(
        self, kind: str, send: Callable[[], Awaitable[Any]], finished: Callable[[Any], Awaitable[Any]]
    ) -> Any:
        start = time.perf_counter()
        record = await send()
        await record.wait_response(timeout=10)
        self.ack[kind].append(time.perf_counter() - start)
        result = await finished(record)
        self.done[kind].append(time.perf_counter() - start)
        return result


async def run(clicks: int) -> dict[str, Any]:
    fake = FakeDiscord()
    await fake.start()
    feeds = FeedServer()
    await feeds.start()
    papers = all_fixture_papers()
    if clicks >= len(papers):
        raise SystemExit(f"--clicks must be below {len(papers)} (one paper per Next papers page)")
    feeds.days["2025-03-17"] = papers
    guild = fake.add_guild("Bench", channels=("papers",))
    admin = fake.add_member(guild.id, username="admin", permissions=Perm.MANAGE_CHANNELS | Perm.SEND_MESSAGES)
    readers = [fake.add_member(guild.id, username=f"reader{i}").user_id for i in range(clicks)]
    with tempfile.TemporaryDirectory() as tmp:
        world = World(
            fake=fake,
            feeds=feeds,
            clock=MovableClock(START),
            db=Path(tmp) / "bench.db",
            guild_id=guild.id,
            channel_id=guild.channel_ids[0],
            other_channel_id=guild.channel_ids[0],
            admin_id=admin.user_id,
            member_id=readers[0],
            extra={"PAPERWATCH_DIGEST__MAX_PAPERS": "1"},
        )
        try:
            return await measure(world, clicks, readers, len(papers))
        finally:
            await world.stop_bot()
            await feeds.close()
            await fake.close()


async def measure(world: World, clicks: int, readers: list[int], stored: int) -> dict[str, Any]:
    fake = world.fake
    await world.start_bot()
    await world.wait(lambda: len(world.feeds.hf_requests()) >= 1, timeout=30)
    await asyncio.sleep(0.5)
    await world.command("watch add", query="upvotes>=0")
    await world.command("digest now")
    await world.wait(lambda: len(world.posts()) >= 1, timeout=10)
    timer = Timer()
    started = time.perf_counter()

    async def page_posted(record: Any) -> None:
        await record.wait_for(lambda r: "Posted" in r.text, timeout=10)

    for _ in range(clicks):
        last = world.posts()[-1]
        custom_id = component(last, 2, "Next papers")["custom_id"]
        await timer.measure(
            "next", lambda m=last, c=custom_id: fake.click_button(m, c, world.admin_id), page_posted
        )
    pages = world.posts()
    for index, user in enumerate(readers):
        message = pages[index]
        select = component(message, 3)
        paper = select["options"][0]["value"]

        async def shown(record: Any) -> Any:
            return await record.wait_reply(timeout=10)

        panel = await timer.measure(
            "pick",
            lambda m=message, s=select["custom_id"], p=paper, u=user: fake.select_option(m, s, [p], u),
            shown,
        )

        async def updated(record: Any) -> Any:
            return await record.wait_update(timeout=10)

        save = component(panel, 2, "Save")["custom_id"]
        await timer.measure("save", lambda m=panel, c=save, u=user: fake.click_button(m, c, u), updated)
        up = component(panel, 2, "👍")["custom_id"]
        await timer.measure("up", lambda m=panel, c=up, u=user: fake.click_button(m, c, u), updated)
        bibtex = component(panel, 2, "BibTeX")["custom_id"]
        await timer.measure("bibtex", lambda m=panel, c=bibtex, u=user: fake.click_button(m, c, u), shown)
    wall = time.perf_counter() - started
    dms = sum(len(fake.dm_messages(user)) for user in readers)
    if dms != clicks:
        raise SystemExit(f"expected {clicks} DMs from Save, saw {dms}")
    if len(world.posts()) != clicks + 1:
        raise SystemExit(f"expected {clicks + 1} pages, saw {len(world.posts())}")
    return {
        "clicks_per_kind": clicks,
        "stored_papers": stored,
        "database": "sqlite (temporary file)",
        "ack": {kind: summary(timer.ack[kind]) for kind in KINDS},
        "done": {kind: summary(timer.done[kind]) for kind in KINDS},
        "wall_seconds": round(wall, 1),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "note": "bot and local Discord share one process and event loop; clicks are sequential",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=200, help="clicks of each kind (default 200)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.clicks))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    width = max(len(kind) for kind in KINDS)
    print(f"{'click':<{width}}  ack p50/p95 ms   done p50/p95 ms")
    for kind in KINDS:
        ack, done = result["ack"][kind], result["done"][kind]
        acked = f"{ack['p50_ms']:>6} / {ack['p95_ms']:<6}"
        print(f"{kind:<{width}}  {acked}  {done['p50_ms']:>6} / {done['p95_ms']:<6}")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
