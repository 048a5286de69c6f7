"""Soak: a simulated week of polls and digests, the real bot process against a local Discord.

Run from the repository root (`make soak`):

    .venv/bin/python -m bench.soak [--channels 500] [--watches 2000] [--days 7] [--speed 3600]

The bot runs as its own process (`python -m bot run`) on a scaled clock (the testing aid
`PAPERWATCH_CLOCK_START` / `PAPERWATCH_CLOCK_SPEED`, with `PAPERWATCH_TESTING=1`), with a
temporary SQLite database, against FakeDiscord and a Hugging Face Daily Papers server that
both run in this process on 127.0.0.1. Channels and watches are created through real slash commands. Each
simulated day serves another real fixture day (its upvotes grow once the bot has read
it); after the last day one more day passes with no new papers, so every digest that is
due has been posted.

Checked at the end, exit status 1 when one fails:
- the papers posted to each channel (embed URLs) equal the expected ones, computed with
  the reference evaluator (`bot.domain.matcher.matches`) and the rules of docs/delivery.md;
- no paper is posted twice to a channel;
- the peak RSS of the bot process (with children) on the last paper day is within 10 % of
  the first day's. The heap grows to fit the largest batch of papers and deliveries it has
  handled, and does not shrink; so that the comparison shows accumulation rather than a
  heavier day, day 1 serves the fixture day with the most papers (`--first-fixture` to
  choose another) and the other days follow in date order.
Also reported: open file descriptors and threads, CPU use, instant-post latency, digest
punctuality, how fast a `/digest show` probe is answered under load, the bot's log warnings
and errors, and the wall time. Results go to bench/results/soak.json; exit status 2 when the
soak could not run to the end (set-up failed, the bot died, or `--timeout` passed).
The bot logs its asyncio task count when it starts and ends its shutdown; both are reported.

Investigating: `--keep-log FILE` keeps the bot's log, `--profile FILE` runs the bot under
cProfile (much slower, so expect the bot to fall behind).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as day_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psutil
from aiohttp import web

from bench.soak_plan import (
    ActiveWatch,
    ChannelSpec,
    Expected,
    FeedDay,
    WatchSpec,
    assign_dates,
    build_days,
    expected_deliveries,
    heaviest_fixture,
    make_plan,
)
from bot.domain.parser import parse_query
from tests.fakediscord.model import Perm
from tests.fakediscord.server import FakeDiscord
from tests.feedserver import FeedServer

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "soak.json"
HF_PAPER_URL = "https://huggingface.co/papers/"
LOOKBACK = timedelta(hours=24)
RSS_LIMIT = 0.10
WATCH_REPLY = re.compile(r"^Watch \*\*#(\d+)\*\*")


class SoakError(Exception):
    """The soak cannot go on; the message says why."""


# --- the feed -------------------------------------------------------------------------------


class SoakFeeds(FeedServer):
    """The Daily Papers server, which also notes when the bot has read each version of a day.

    After the bot's first complete read of a date (its last, short page), the date's
    entries are swapped for their `bumped` version, inside the request handler, so no read
    ever mixes the two versions and the bot has ingested the first version before it can
    see the second.
    """

    def __init__(self) -> None:
        super().__init__()
        self.bumps: dict[str, list[dict[str, Any]]] = {}
        self.version: dict[str, int] = {}
        self.read_at: dict[str, dict[int, float]] = {}
        """date → version → wall time (time.time) of the bot's first complete read of it."""

    async def _daily(self, request: web.Request) -> web.Response:
        response = await super()._daily(request)
        day = request.query.get("date", "")
        entries = self.days.get(day)
        if not entries or response.status != 200:
            return response
        try:
            page = int(request.query.get("p", "0"))
            limit = int(request.query.get("limit", "50"))
        except ValueError:
            return response
        if len(entries[page * limit : (page + 1) * limit]) < limit:
            version = self.version.get(day, 0)
            self.read_at.setdefault(day, {}).setdefault(version, time.time())
            if version == 0 and day in self.bumps:
                self.days[day] = self.bumps.pop(day)
                self.version[day] = 1
        return response


# --- the bot process ------------------------------------------------------------------------


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the bot gets SIGTERM if this process dies without cleaning up."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class BotProcess:
    popen: subprocess.Popen[bytes]
    log_path: Path
    samples: list[tuple[float, float, int, int, float]] = field(default_factory=list)
    """(time.time, RSS bytes, open fds, threads, CPU seconds) of the bot and its children."""

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def sample(self) -> tuple[float, float, int, int, float] | None:
        try:
            main = psutil.Process(self.pid)
            procs = [main, *main.children(recursive=True)]
            rss = fds = threads = 0
            cpu = 0.0
            for proc in procs:
                with proc.oneshot():
                    rss += proc.memory_info().rss
                    fds += proc.num_fds()
                    threads += proc.num_threads()
                    times = proc.cpu_times()
                    cpu += times.user + times.system
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return None
        point = (time.time(), float(rss), fds, threads, cpu)
        self.samples.append(point)
        return point

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def stop(self, timeout: float = 20.0) -> int | None:
        if self.popen.poll() is not None:
            return self.popen.returncode
        self.popen.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(self.popen.wait, timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return await asyncio.to_thread(self.popen.wait, 5)


def bot_environment(
    fake: FakeDiscord, feeds: FeedServer, db: Path, args: argparse.Namespace, start: datetime
) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PAPERWATCH_") and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env.update(
        {
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "PYTHONUNBUFFERED": "1",
            "DISCORD_TOKEN": fake.token,
            "PAPERWATCH_TESTING": "1",  # the scaled clock below is a testing aid, refused without it
            "PAPERWATCH_CLOCK_START": start.isoformat(),
            "PAPERWATCH_CLOCK_SPEED": str(args.speed),
            "PAPERWATCH_DISCORD__API_BASE": fake.api_base,
            "PAPERWATCH_DISCORD__GATEWAY_URL": fake.gateway_url,
            "PAPERWATCH_DISCORD__GUILD_READY_TIMEOUT": "0.5",
            "PAPERWATCH_DISCORD__IDENTIFY_DELAY": "0",
            "PAPERWATCH_DATABASE__URL": f"sqlite+aiosqlite:///{db}",
            "PAPERWATCH_FEEDS__HUGGINGFACE__URL": feeds.hf_url,
            "PAPERWATCH_FEEDS__HUGGINGFACE__POLL_INTERVAL": str(args.poll_interval),
            "PAPERWATCH_FEEDS__HUGGINGFACE__BACKFILL_DAYS": "2",
            "PAPERWATCH_FEEDS__ARXIV__ENABLED": "false",
            "PAPERWATCH_FEEDS__ARXIV__RSS_URL": feeds.rss_url,
            "PAPERWATCH_FEEDS__ARXIV__API_URL": feeds.base + "/api/query",
            "PAPERWATCH_FEEDS__TIMEOUT": "10",
            "PAPERWATCH_FEEDS__MAX_ATTEMPTS": "3",
            "PAPERWATCH_DIGEST__CHECK_INTERVAL": str(args.check_interval),
            "PAPERWATCH_DIGEST__MAX_PAPERS": str(args.max_papers),
            "PAPERWATCH_DIGEST__LOOKBACK_HOURS": str(LOOKBACK.total_seconds() / 3600),
            "PAPERWATCH_LIMITS__COMMAND_COOLDOWN": "0",
            "PAPERWATCH_LIMITS__COMMANDS_PER_MINUTE": "1000000",
            "PAPERWATCH_LIMITS__WATCHES_PER_CHANNEL": "50",
            "PAPERWATCH_LIMITS__WATCHES_PER_GUILD": "5000",
            "PAPERWATCH_LOGGING__LEVEL": "INFO",
        }
    )
    return env


def start_bot(env: dict[str, str], workdir: Path, profile: Path | None = None) -> BotProcess:
    log_path = workdir / "bot.log"
    command = [sys.executable, "-m", "bot", "run"]
    if profile is not None:
        command[1:1] = ["-m", "cProfile", "-o", str(profile.resolve())]
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            command,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
    return BotProcess(popen=popen, log_path=log_path)


# --- the clock ------------------------------------------------------------------------------


@dataclass
class SimClock:
    """The bot's scaled clock seen from here: sim = start + (wall - origin) × speed."""

    start: datetime
    speed: float
    origin: float
    uncertainty: float = 0.0
    """± wall seconds of `origin`."""

    def sim(self, wall: float) -> datetime:
        return self.start + timedelta(seconds=(wall - self.origin) * self.speed)

    def wall(self, moment: datetime) -> float:
        return self.origin + (moment - self.start).total_seconds() / self.speed


def calibrate(
    start: datetime, speed: float, spans: list[tuple[float, float, datetime]], fallback: float
) -> SimClock:
    """The origin of the bot's clock from watches it created: each was stamped between the
    moment the command was sent and the moment its answer came back."""
    low, high = -float("inf"), float("inf")
    for sent, answered, created in spans:
        offset = (created - start).total_seconds() / speed
        low = max(low, sent - offset)
        high = min(high, answered - offset)
    if not spans:
        return SimClock(start, speed, fallback, float("inf"))
    if low <= high:
        return SimClock(start, speed, (low + high) / 2, (high - low) / 2)
    mids = [(s + a) / 2 - (c - start).total_seconds() / speed for s, a, c in spans]
    return SimClock(start, speed, statistics.median(mids), low - high)


# --- the database (read only, for timestamps and diagnostics) -------------------------------


def _utc(text: str | None) -> datetime | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def read_db(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return list(connection.execute(sql, params))
    finally:
        connection.close()


def backlog(db: Path) -> int:
    """Deliveries the bot has recorded but not yet confirmed as posted (pending or claimed)."""
    rows = read_db(db, "SELECT count(*) FROM deliveries WHERE status != 'sent'")
    return int(rows[0][0]) if rows else 0


# --- the run --------------------------------------------------------------------------------


@dataclass
class World:
    fake: FakeDiscord
    feeds: SoakFeeds
    channel_ids: list[int]
    guild_ids: list[int]
    admin_ids: list[int]
    channels: list[ChannelSpec]
    watch_specs: list[WatchSpec]
    days: list[FeedDay]


def build_world(
    fake: FakeDiscord,
    feeds: SoakFeeds,
    channels: list[ChannelSpec],
    watch_specs: list[WatchSpec],
    days: list[FeedDay],
    guild_count: int,
) -> World:
    channel_ids: list[int] = [0] * len(channels)
    guild_ids: list[int] = []
    admin_ids: list[int] = []
    for g in range(guild_count):
        mine = [c for c in channels if c.guild == g]
        guild = fake.add_guild(f"soak guild {g}", channels=[f"papers-{c.index}" for c in mine])
        admin = fake.add_member(
            guild.id, username=f"admin{g}", permissions=Perm.MANAGE_CHANNELS | Perm.SEND_MESSAGES
        )
        guild_ids.append(guild.id)
        admin_ids.append(admin.user_id)
        for spec, channel_id in zip(mine, guild.channel_ids, strict=True):
            channel_ids[spec.index] = channel_id
    return World(fake, feeds, channel_ids, guild_ids, admin_ids, channels, watch_specs, days)


@dataclass
class Setup:
    spans: list[tuple[float, float, int]] = field(default_factory=list)
    """(sent, answered, watch id) of every /watch add."""
    watch_ids: dict[int, int] = field(default_factory=dict)
    """watch id → index into World.watch_specs."""
    failures: list[str] = field(default_factory=list)
    commands: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)


async def run_command(world: World, channel: ChannelSpec, name: str, options: dict[str, Any]) -> str:
    """Run a slash command as the guild's admin; the reply text, or `ERROR: …` if there was none."""
    record = await world.fake.invoke_command(
        world.guild_ids[channel.guild],
        world.channel_ids[channel.index],
        world.admin_ids[channel.guild],
        name,
        options=options,
    )
    try:
        callback = await record.wait_response(timeout=30)
    except (AssertionError, TimeoutError) as exc:  # rejected (answered after 3 s) or never answered
        return f"ERROR: {exc}"
    return str((callback.get("data") or {}).get("content") or "")


async def create_watches(world: World, concurrency: int) -> Setup:
    """`/digest set` then `/watch add` for each of a channel's watches, channels in parallel."""
    setup = Setup()
    by_channel: dict[int, list[int]] = {}
    for index, spec in enumerate(world.watch_specs):
        by_channel.setdefault(spec.channel, []).append(index)
    gate = asyncio.Semaphore(concurrency)
    began = time.perf_counter()

    async def one_channel(channel: ChannelSpec) -> None:
        async with gate:
            sent = time.time()
            text = await run_command(
                world, channel, "digest set", {"time": channel.time, "timezone": channel.timezone}
            )
            setup.latencies.append(time.time() - sent)
            setup.commands += 1
            if not text.startswith("Digest of"):
                setup.failures.append(f"/digest set in channel {channel.index}: {text[:200]!r}")
            for index in by_channel.get(channel.index, []):
                spec = world.watch_specs[index]
                options: dict[str, Any] = {"query": spec.query, "mode": spec.mode}
                if spec.min_upvotes is not None:
                    options["min_upvotes"] = spec.min_upvotes
                sent = time.time()
                text = await run_command(world, channel, "watch add", options)
                answered = time.time()
                setup.latencies.append(answered - sent)
                setup.commands += 1
                found = WATCH_REPLY.match(text)
                if found is None:
                    setup.failures.append(f"/watch add {spec.query!r}: {text[:200]!r}")
                    continue
                watch_id = int(found.group(1))
                setup.spans.append((sent, answered, watch_id))
                setup.watch_ids[watch_id] = index

    await asyncio.gather(*(one_channel(c) for c in world.channels))
    setup.seconds = time.perf_counter() - began
    return setup


async def probe_commands(world: World, interval: float, results: list[float | None]) -> None:
    """Every `interval` s, a read-only `/digest show`: how long the bot takes to answer it
    while it polls and posts (None: no answer within Discord's 3 s, or none at all)."""
    channel = world.channels[0]

    async def one() -> None:
        sent = time.time()
        text = await run_command(world, channel, "digest show", {})
        results.append(None if text.startswith("ERROR") else time.time() - sent)

    pending: set[asyncio.Task[None]] = set()
    try:
        while True:
            task = asyncio.create_task(one())
            pending.add(task)
            task.add_done_callback(pending.discard)
            await asyncio.sleep(interval)
    finally:
        for task in pending:
            task.cancel()


def peak(samples: list[tuple[float, float, int, int, float]], begin: float, end: float) -> dict[str, float]:
    window = [s for s in samples if begin <= s[0] < end]
    if not window:
        return {"samples": 0}
    span = window[-1][0] - window[0][0]
    return {
        "cpu_busy_pct": round((window[-1][4] - window[0][4]) / span * 100, 1) if span > 0 else float("nan"),
        "samples": len(window),
        "peak_rss_mb": round(max(s[1] for s in window) / 2**20, 1),
        "median_rss_mb": round(statistics.median(s[1] for s in window) / 2**20, 1),
        "fds_max": max(s[2] for s in window),
        "threads_max": max(s[3] for s in window),
        "fds_end": window[-1][2],
        "threads_end": window[-1][3],
    }


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def last_occurrence(moment: datetime, at: str, timezone: str) -> datetime:
    """The latest daily `at` (HH:MM in `timezone`) at or before `moment`, in UTC."""
    zone = ZoneInfo(timezone)
    local = moment.astimezone(zone)
    hour, minute = (int(x) for x in at.split(":"))
    candidate = datetime.combine(local.date(), day_time(hour, minute), tzinfo=zone)
    if candidate > local:
        candidate = datetime.combine(local.date() - timedelta(days=1), day_time(hour, minute), tzinfo=zone)
    return candidate.astimezone(UTC)


def tasks_from_log(path: Path) -> dict[str, int | None]:
    """The asyncio task counts the bot logs when it starts and ends its shutdown."""
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    at_stop = re.findall(r"shutting down with (\d+) asyncio tasks open", text)
    after = re.findall(r"stopped; (\d+) other asyncio tasks still open", text)
    return {
        "at_end": int(at_stop[-1]) if at_stop else None,
        "left_after_stop": int(after[-1]) if after else None,
    }


def log_summary(path: Path) -> dict[str, Any]:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return {"lines": 0}
    warnings = [line for line in lines if " WARNING " in line]
    errors = [line for line in lines if " ERROR " in line or " CRITICAL " in line]
    suspicious = [
        line
        for line in lines
        if "Traceback" in line or "was never retrieved" in line or "Task was destroyed" in line
    ]
    task_lines = [line for line in lines if "asyncio" in line.lower() and "task" in line.lower()]
    return {
        "lines": len(lines),
        "warnings": len(warnings),
        "errors": len(errors),
        "tracebacks": len(suspicious),
        "polls_with_news": sum("polled huggingface" in line for line in lines),
        "first_warnings": [w[:300] for w in warnings[:5]],
        "first_errors": [e[:300] for e in (errors + suspicious)[:5]],
        "task_log_lines": [t[:300] for t in task_lines[:3]],
    }


async def soak(args: argparse.Namespace, report: dict[str, Any]) -> int:
    began = time.time()
    rng = random.Random(args.seed)
    start = datetime.fromisoformat(args.start)
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    days = build_days(args.days, rng, first_fixture=args.first_fixture or heaviest_fixture())
    vocabulary = [p for d in days for p in d.versions()[0]]
    channels, watch_specs = make_plan(
        vocabulary, guilds=args.guilds, channels=args.channels, watches=args.watches, rng=rng
    )
    report["config"] = {
        "guilds": args.guilds,
        "channels": args.channels,
        "watches": args.watches,
        "instant_watches": sum(s.mode == "instant" for s in watch_specs),
        "days_with_papers": args.days,
        "extra_days": 1,
        "speed": args.speed,
        "sim_seconds_per_wall_second": args.speed,
        "wall_seconds_per_sim_day": round(86400 / args.speed, 1),
        "poll_interval_wall_s": args.poll_interval,
        "check_interval_wall_s": args.check_interval,
        "max_papers": args.max_papers,
        "seed": args.seed,
        "clock_start": start.isoformat(),
        "empty_weekends": args.empty_weekends,
        "first_fixture": days[0].fixture,
    }
    tmp = tempfile.TemporaryDirectory(prefix="paperwatch-soak-")
    workdir = Path(tmp.name)
    db = workdir / "soak.db"
    fake = FakeDiscord()
    feeds = SoakFeeds()
    bot: BotProcess | None = None
    background: list[asyncio.Task[None]] = []
    try:
        await fake.start()
        await feeds.start()
        world = build_world(fake, feeds, channels, watch_specs, days, args.guilds)
        bot = start_bot(bot_environment(fake, feeds, db, args, start), workdir, args.profile)
        spawned = time.time()
        print(f"bot started (pid {bot.pid}); {args.channels} channels in {args.guilds} guilds")

        async def sampler() -> None:
            assert bot is not None
            while bot.alive():
                await asyncio.to_thread(bot.sample)
                await asyncio.sleep(args.sample_interval)

        sampling = asyncio.create_task(sampler())
        background.append(sampling)

        def check_alive() -> None:
            assert bot is not None
            if not bot.alive():
                raise SoakError(f"the bot exited with status {bot.popen.returncode}:\n{bot.log_tail()}")

        # 1. connected and commands synced
        deadline = time.monotonic() + 60
        while not (fake.connected and fake.commands()):
            check_alive()
            if time.monotonic() > deadline:
                raise SoakError(f"the bot did not connect and sync commands in 60 s:\n{bot.log_tail()}")
            await asyncio.sleep(0.05)
        print(f"bot ready after {time.time() - spawned:.1f} s")

        # 2. channels and watches through slash commands
        setup_task = asyncio.create_task(create_watches(world, args.concurrency))
        while not setup_task.done():
            check_alive()
            await asyncio.wait({setup_task}, timeout=1)
        setup = setup_task.result()
        report["setup"] = {
            "commands": setup.commands,
            "seconds": round(setup.seconds, 1),
            "commands_per_second": round(setup.commands / setup.seconds, 1) if setup.seconds else None,
            "reply_p50_ms": round(percentile(setup.latencies, 0.5) * 1000, 1),
            "reply_p99_ms": round(percentile(setup.latencies, 0.99) * 1000, 1),
            "failures": len(setup.failures),
            "first_failures": setup.failures[:5],
        }
        print(
            f"setup: {setup.commands} commands in {setup.seconds:.1f} s "
            f"({report['setup']['commands_per_second']}/s), {len(setup.failures)} failed"
        )
        if setup.failures:
            raise SoakError("slash commands failed during set-up:\n" + "\n".join(setup.failures[:10]))

        # 3. the bot's clock, and the dates of the simulated days
        created = {
            int(i): _utc(c) for i, c in read_db(db, "SELECT id, created_at FROM watches") if c is not None
        }
        spans = [(s, a, created[w]) for s, a, w in setup.spans if created.get(w) is not None]
        clock = calibrate(start, args.speed, [(s, a, c) for s, a, c in spans if c], spawned)
        now_sim = clock.sim(time.time())
        first_day = now_sim.date() + timedelta(days=1)
        assign_dates(days, first_day, empty_weekends=args.empty_weekends)
        for feed_day in days:
            assert feed_day.day is not None
            key = feed_day.day.isoformat()
            if feed_day.entries:
                feeds.days[key] = feed_day.entries
                feeds.bumps[key] = feed_day.bumped
        end_day = first_day + timedelta(days=args.days + 1)
        end_sim = datetime.combine(end_day, day_time(0), tzinfo=UTC)
        report["clock"] = {
            "origin_after_spawn_s": round(clock.origin - spawned, 3),
            "origin_uncertainty_sim_s": round(clock.uncertainty * args.speed, 1),
            "setup_done_at_sim": now_sim.isoformat(timespec="seconds"),
            "first_paper_day": first_day.isoformat(),
            "end_sim": end_sim.isoformat(),
        }
        print(
            f"bot clock origin {clock.origin - spawned:+.3f} s after spawn "
            f"(± {clock.uncertainty * args.speed:.0f} sim s); sim now {now_sim:%Y-%m-%d %H:%M}; "
            f"papers from {first_day} ({first_day:%A}) to {first_day + timedelta(days=args.days - 1)}, "
            f"ending {end_sim:%Y-%m-%d %H:%M} (in {clock.wall(end_sim) - time.time():.0f} s)"
        )

        # 4. the simulated week, one more day without papers, then until nothing is queued
        probes: list[float | None] = []
        probing = asyncio.create_task(probe_commands(world, args.probe_interval, probes))
        background.append(probing)
        boundaries = [
            datetime.combine(first_day + timedelta(days=k), day_time(0), tzinfo=UTC)
            for k in range(args.days + 2)
        ]
        next_report = 0
        settle = max(2 * args.poll_interval, 5 * args.check_interval) + 1.0
        drain_limit = clock.wall(end_sim + timedelta(days=args.drain_days)) + settle
        backlog_at_end: int | None = None
        while True:
            check_alive()
            now = time.time()
            if next_report < len(boundaries) and now >= clock.wall(boundaries[next_report]):
                posted = [
                    m for c in world.channel_ids for m in fake.messages(c, include_interaction_replies=False)
                ]
                embeds = sum(len(m.data.get("embeds") or []) for m in posted)
                last = bot.samples[-1] if bot.samples else (0.0, 0.0, 0, 0, 0.0)
                queued = backlog(db)
                label = f"end of day {next_report}" if next_report else "first paper day begins"
                if next_report == len(boundaries) - 1:
                    label += " (the extra day)"
                    backlog_at_end = queued
                print(
                    f"  {boundaries[next_report]:%a %Y-%m-%d} 00:00, {label}: {len(posted)} messages, "
                    f"{embeds} papers posted, {queued} queued; bot RSS {last[1] / 2**20:.0f} MB, "
                    f"{last[2]} fds, {last[3]} threads"
                )
                next_report += 1
            if now >= clock.wall(end_sim) + settle:
                queued = backlog(db)
                if queued == 0 or now >= drain_limit:
                    break
            await asyncio.sleep(0.1 if now < clock.wall(end_sim) else 1.0)
        drained_at = time.time()
        probing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await probing
        answered = [p for p in probes if p is not None]
        report["command_probe"] = {
            "command": f"/digest show, every {args.probe_interval:.1f} wall s from day 1 on",
            "sent": len(probes),
            "unanswered_within_3s": len(probes) - len(answered),
            "reply_p50_ms": round(percentile(answered, 0.5) * 1000, 1),
            "reply_p99_ms": round(percentile(answered, 0.99) * 1000, 1),
            "reply_max_ms": round(max(answered, default=float("nan")) * 1000, 1),
        }
        report["drain"] = {
            "queued_at_end_of_extra_day": backlog_at_end,
            "wall_s_after_extra_day": round(drained_at - clock.wall(end_sim), 1),
            "queued_when_stopped": backlog(db),
        }

        # 5. measurements at the end, then stop the bot
        final = await asyncio.to_thread(bot.sample)
        sampling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampling
        exit_code = await bot.stop()
        report["bot_exit_code"] = exit_code

        # 6. expected against made
        watch_rows = read_db(db, "SELECT id, created_at FROM watches")
        active = []
        for watch_id, created_text in watch_rows:
            spec = watch_specs[setup.watch_ids[int(watch_id)]]
            created_at = _utc(created_text)
            assert created_at is not None
            active.append(
                ActiveWatch(
                    int(watch_id),
                    spec.channel,
                    parse_query(spec.query),
                    spec.mode,
                    spec.min_upvotes,
                    created_at,
                )
            )
        first_seen = {
            str(pid): seen
            for pid, text in read_db(db, "SELECT arxiv_id, first_seen_at FROM papers")
            if (seen := _utc(text)) is not None
        }
        served = {p.arxiv_id for d in days for v in d.versions() for p in v}
        expected = expected_deliveries(active, days, first_seen, lookback=LOOKBACK)
        result = compare(world, expected, clock, feeds, args.poll_interval)
        statuses = dict(read_db(db, "SELECT status, count(*) FROM deliveries GROUP BY status"))
        report["papers"] = {
            "served": len(served),
            "stored_by_bot": len(first_seen),
            "served_not_stored": sorted(served - set(first_seen))[:10],
            "changed_during_day": sum(
                1
                for d in days
                for a, b in zip(d.versions()[0], d.versions()[1], strict=False)
                if a.upvotes != b.upvotes
            ),
            "renamed_ids": sum(d.renamed for d in days),
            "fixtures": {d.day.isoformat(): d.fixture for d in days if d.day is not None},
        }
        report["premise"] = {
            "all_watches_before_first_paper": bool(active)
            and bool(first_seen)
            and max(w.created_at for w in active) < min(first_seen.values()),
        }
        report["deliveries"] = {**result.pop("deliveries"), "db_status": statuses}
        report.update(result)

        # 7. resources
        windows = {}
        for k in range(1, args.days + 2):
            windows[f"day{k}"] = peak(bot.samples, clock.wall(boundaries[k - 1]), clock.wall(boundaries[k]))
        windows["setup"] = peak(bot.samples, spawned, clock.wall(boundaries[0]))
        windows["after_extra_day"] = peak(bot.samples, clock.wall(end_sim), drained_at + 1)
        first, last = windows["day1"], windows[f"day{args.days}"]
        growth = (
            (last["peak_rss_mb"] - first["peak_rss_mb"]) / first["peak_rss_mb"]
            if first.get("peak_rss_mb") and last.get("peak_rss_mb")
            else float("nan")
        )
        report["resources"] = {
            "rss_day1_peak_mb": first.get("peak_rss_mb"),
            f"rss_day{args.days}_peak_mb": last.get("peak_rss_mb"),
            "rss_growth_pct": round(growth * 100, 2),
            "rss_limit_pct": RSS_LIMIT * 100,
            "open_fds_end": final[2] if final else None,
            "threads_end": final[3] if final else None,
            "rss_end_mb": round(final[1] / 2**20, 1) if final else None,
            "cpu_seconds": round(final[4], 1) if final else None,
            "asyncio_tasks": tasks_from_log(bot.log_path),
            "per_day": windows,
            "sample_interval_s": args.sample_interval,
        }
        report["bot_log"] = log_summary(bot.log_path)
        report["db_bytes"] = sum(p.stat().st_size for p in workdir.glob("soak.db*"))

        failures = []
        deliveries = report["deliveries"]
        if deliveries["expected"] != deliveries["made"] or deliveries["missing"] or deliveries["unexpected"]:
            failures.append(
                f"deliveries differ: expected {deliveries['expected']}, made {deliveries['made']} "
                f"({deliveries['missing']} missing, {deliveries['unexpected']} unexpected)"
            )
        if deliveries["duplicates"]:
            failures.append(f"{deliveries['duplicates']} duplicate posts")
        if not growth <= RSS_LIMIT:
            failures.append(f"RSS grew {growth * 100:.1f} % from day 1 to day {args.days}")
        report["failures"] = failures
        report["ok"] = not failures
        report["wall_seconds"] = round(time.time() - began, 1)
        return 0 if not failures else 1
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        if bot is not None:
            await bot.stop()
            report.setdefault("bot_log_tail", bot.log_tail(15).splitlines() if not report.get("ok") else [])
            if args.keep_log is not None:
                args.keep_log.write_bytes(bot.log_path.read_bytes())
        await feeds.close()
        await fake.close()
        tmp.cleanup()


def compare(
    world: World, expected: Expected, clock: SimClock, feeds: SoakFeeds, poll_interval: float
) -> dict[str, Any]:
    """What was posted in each channel against what was due; with timings of the posts."""
    missing = unexpected = duplicates = made = 0
    messages = 0
    examples: list[dict[str, Any]] = []
    instant_latency: list[float] = []
    digest_late: list[float] = []
    digest_wait: list[float] = []
    for channel in world.channels:
        channel_id = world.channel_ids[channel.index]
        due = expected.per_channel.get(channel.index, {})
        posted: dict[str, list[float]] = {}
        for message in world.fake.messages(channel_id, include_interaction_replies=False):
            messages += 1
            for embed in message.data.get("embeds") or []:
                url = str(embed.get("url") or "")
                key = url.removeprefix(HF_PAPER_URL) if url.startswith(HF_PAPER_URL) else url
                posted.setdefault(key, []).append(message.created_at)
        duplicates += sum(len(times) - 1 for times in posted.values())
        made += len(posted)
        lost = sorted(set(due) - set(posted))
        extra = sorted(set(posted) - set(due))
        missing += len(lost)
        unexpected += len(extra)
        if (lost or extra) and len(examples) < 10:
            mine = [s.query for s in world.watch_specs if s.channel == channel.index]
            examples.append(
                {"channel": channel.index, "missing": lost[:5], "unexpected": extra[:5], "watches": mine}
            )
        for paper_id, times in posted.items():
            if paper_id not in due:
                continue
            day_index, version, mode = due[paper_id]
            feed_day = world.days[day_index - 1]
            assert feed_day.day is not None
            read = feeds.read_at.get(feed_day.day.isoformat(), {}).get(version)
            at = min(times)
            if mode == "instant":
                if read is not None:
                    instant_latency.append(at - read)
            else:
                posted_sim = clock.sim(at)
                slot = last_occurrence(posted_sim, channel.time, channel.timezone)
                digest_late.append((posted_sim - slot).total_seconds() / 60)
                if read is not None:
                    digest_wait.append((at - read) * clock.speed / 3600)
    return {
        "deliveries": {
            "expected": expected.total(),
            "made": made,
            "duplicates": duplicates,
            "missing": missing,
            "unexpected": unexpected,
            "mismatch_examples": examples,
        },
        "messages": messages,
        "timing": {
            "instant_posts": len(instant_latency),
            "instant_latency_wall_s_p50": round(percentile(instant_latency, 0.5), 3),
            "instant_latency_wall_s_max": round(max(instant_latency, default=float("nan")), 3),
            "instant_latency_sim_min_max": round(
                max(instant_latency, default=float("nan")) * clock.speed / 60, 1
            ),
            "digest_posts": len(digest_late),
            "digest_after_slot_sim_min_p50": round(percentile(digest_late, 0.5), 1),
            "digest_after_slot_sim_min_p99": round(percentile(digest_late, 0.99), 1),
            "digest_after_slot_sim_min_max": round(max(digest_late, default=float("nan")), 1),
            "digest_wait_after_read_sim_h_max": round(max(digest_wait, default=float("nan")), 2),
            "poll_interval_wall_s": poll_interval,
        },
    }


def show(report: dict[str, Any]) -> None:
    deliveries = report.get("deliveries", {})
    resources = report.get("resources", {})
    timing = report.get("timing", {})
    days = report.get("config", {}).get("days_with_papers", 7)
    print()
    if not deliveries:
        print(f"wall time {report.get('wall_seconds')} s -> FAILED (aborted)")
        return
    print(
        f"deliveries: expected {deliveries.get('expected')}, made {deliveries.get('made')}, "
        f"duplicates {deliveries.get('duplicates')}, missing {deliveries.get('missing')}, "
        f"unexpected {deliveries.get('unexpected')} ({report.get('messages')} messages)"
    )
    tasks = resources.get("asyncio_tasks") or {}
    print(
        f"RSS peak: day 1 {resources.get('rss_day1_peak_mb')} MB, day {days} "
        f"{resources.get(f'rss_day{days}_peak_mb')} MB ({resources.get('rss_growth_pct')} %); "
        f"open fds at end {resources.get('open_fds_end')}, threads {resources.get('threads_end')}; "
        f"asyncio tasks at the end {tasks.get('at_end')}, left after shutdown {tasks.get('left_after_stop')}"
    )
    if timing:
        print(
            f"instant posts: {timing['instant_posts']}, "
            f"latency p50 {timing['instant_latency_wall_s_p50']} s, "
            f"max {timing['instant_latency_wall_s_max']} s wall; digest posts: {timing['digest_posts']}, "
            f"after their slot p50 {timing['digest_after_slot_sim_min_p50']} / max "
            f"{timing['digest_after_slot_sim_min_max']} sim min"
        )
    probe = report.get("command_probe")
    if probe:
        print(
            f"command probe: {probe['sent']} x /digest show, {probe['unanswered_within_3s']} not answered "
            f"within 3 s; reply p50 {probe['reply_p50_ms']} ms, p99 {probe['reply_p99_ms']} ms, "
            f"max {probe['reply_max_ms']} ms"
        )
    log = report.get("bot_log", {})
    if log:
        print(
            f"bot log: {log.get('warnings')} warnings, {log.get('errors')} errors, "
            f"{log.get('tracebacks')} tracebacks"
        )
    print(f"wall time {report.get('wall_seconds')} s -> {'OK' if report.get('ok') else 'FAILED'}")
    for failure in report.get("failures", []):
        print(f"  FAILED: {failure}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--guilds", type=int, default=25)
    parser.add_argument("--channels", type=int, default=500)
    parser.add_argument("--watches", type=int, default=2000)
    parser.add_argument("--days", type=int, default=7, help="simulated days with papers (then one more)")
    parser.add_argument("--speed", type=float, default=3600.0, help="sim seconds per wall second")
    parser.add_argument("--poll-interval", type=float, default=2.0, help="HF poll interval, wall seconds")
    parser.add_argument("--check-interval", type=float, default=0.2, help="digest check, wall seconds")
    parser.add_argument("--max-papers", type=int, default=1000, help="digest.max_papers")
    parser.add_argument("--concurrency", type=int, default=4, help="slash commands in flight at set-up")
    parser.add_argument("--probe-interval", type=float, default=1.0, help="command probe, wall seconds")
    parser.add_argument("--sample-interval", type=float, default=0.25, help="RSS sampling, wall seconds")
    parser.add_argument("--start", default="2025-09-01T00:00:00+00:00", help="the bot's clock at start")
    parser.add_argument("--empty-weekends", action="store_true", help="serve [] on Saturdays and Sundays")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument(
        "--first-fixture",
        help="HF fixture day served on day 1, then the others in date order, rotated (default: the "
        "day with the most papers, so that day 1 already sees the largest batch; see the docstring)",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="abort after this many wall seconds")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--profile", type=Path, help="run the bot under cProfile, stats to this file")
    parser.add_argument("--keep-log", type=Path, help="copy the bot's log to this file")
    parser.add_argument(
        "--drain-days", type=float, default=1.0, help="sim days to wait after the extra day for a backlog"
    )
    args = parser.parse_args(argv)
    if args.days < 1 or args.channels < 1 or args.guilds < 1 or args.watches < 0:
        parser.error("--days, --channels and --guilds must be at least 1")
    return args


async def main_async(args: argparse.Namespace, report: dict[str, Any]) -> int:
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    assert task is not None
    for signum in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, task.cancel)
    try:
        return await asyncio.wait_for(soak(args, report), timeout=args.timeout)
    except TimeoutError:
        report["aborted"] = f"the soak did not finish within {args.timeout:.0f} s (--timeout)"
    except SoakError as exc:
        report["aborted"] = str(exc)
    except asyncio.CancelledError:
        report["aborted"] = "interrupted"
    return 2


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report: dict[str, Any] = {"benchmark": "soak", "issue": "#4 item 5"}
    began = time.time()
    try:
        code = asyncio.run(main_async(args, report))
    except KeyboardInterrupt:
        report["aborted"] = "interrupted"
        code = 2
    report.setdefault("wall_seconds", round(time.time() - began, 1))
    if "aborted" in report:
        report["ok"] = False
        print(f"\nsoak ABORTED: {report['aborted']}", file=sys.stderr)
    show(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"results: {args.output}")
    return code


if __name__ == "__main__":
    sys.exit(main())
