"""The bot as a real `python -m bot run` process against the local Discord and feeds.

Crash tests start the bot as a subprocess, kill it (SIGKILL or SIGTERM) at precise points
of a send, restart it on the same SQLite file and check what the local Discord holds.

The kill points are observed on the fake, which runs in the test's event loop: a predicate
over the fake's state is checked on every change and every 10 ms, and the signal is sent in
the same step in which the predicate held, so the fake's state at the kill is known exactly.
Message POSTs are slowed twice (before the fake handles them and after it stored the
message), which opens two windows per message:

- *before store*: the request reached "Discord" but nothing is stored yet;
- *stored, unanswered*: the message exists on "Discord", the bot cannot have its answer
  (the fake is still sleeping), so the bot cannot have recorded it as sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.fakediscord.model import StoredMessage
from tests.fakediscord.server import FakeDiscord, RecordedRequest
from tests.feedserver import FeedServer

REPO = Path(__file__).resolve().parents[2]
MESSAGES = r"/channels/\d+/messages"
OPEN_DM = r"/users/@me/channels"
_MESSAGES = re.compile(MESSAGES)
_OPEN_DM = re.compile(OPEN_DM)


def paper_url(entry: dict[str, Any]) -> str:
    """The URL an embed of this HF entry must carry (docs/delivery.md: the paper's Hugging Face page)."""
    return f"https://huggingface.co/papers/{entry['paper']['id']}"


def today_iso() -> str:
    return datetime.now(UTC).date().isoformat()


def bot_environ(fake: FakeDiscord, feeds: FeedServer, db: Path, **extra: str) -> dict[str, str]:
    """The process environment of `python -m bot run` against the fakes (as tests/e2e `bot_settings`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERWATCH_") and k != "DISCORD_TOKEN"}
    pythonpath = [str(REPO), *filter(None, [env.get("PYTHONPATH")])]
    env.update(
        {
            "PYTHONPATH": os.pathsep.join(pythonpath),
            "PYTHONUNBUFFERED": "1",
            "DISCORD_TOKEN": fake.token,
            "PAPERWATCH_DISCORD__API_BASE": fake.api_base,
            "PAPERWATCH_DISCORD__GATEWAY_URL": fake.gateway_url,
            "PAPERWATCH_DISCORD__GUILD_READY_TIMEOUT": "0.05",
            "PAPERWATCH_DISCORD__IDENTIFY_DELAY": "0",
            "PAPERWATCH_DATABASE__URL": f"sqlite+aiosqlite:///{db}",
            "PAPERWATCH_FEEDS__HUGGINGFACE__URL": feeds.hf_url,
            "PAPERWATCH_FEEDS__HUGGINGFACE__POLL_INTERVAL": "3600",
            # Yesterday too: a test that runs over midnight UTC still reads "its" day.
            "PAPERWATCH_FEEDS__HUGGINGFACE__BACKFILL_DAYS": "1",
            "PAPERWATCH_FEEDS__ARXIV__RSS_URL": feeds.rss_url,
            "PAPERWATCH_FEEDS__ARXIV__ENABLED": "false",
            "PAPERWATCH_FEEDS__MAX_ATTEMPTS": "2",
            "PAPERWATCH_FEEDS__TIMEOUT": "5",
            "PAPERWATCH_DIGEST__CHECK_INTERVAL": "0.2",
            "PAPERWATCH_LIMITS__COMMAND_COOLDOWN": "0",
            "PAPERWATCH_LIMITS__COMMANDS_PER_MINUTE": "1000",
            "PAPERWATCH_LIMITS__LOOKUP_COOLDOWN": "0",
            "PAPERWATCH_LIMITS__LOOKUPS_PER_MINUTE": "1000",
        }
    )
    env.update(extra)
    return env


class BotDied(AssertionError):
    """The bot process exited although nobody stopped it."""


class BotProcess:
    """`python -m bot run`, started again and again on the same database; output appended to one log."""

    def __init__(self, env: dict[str, str], cwd: Path, log_path: Path) -> None:
        self.env = env
        self.cwd = cwd
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.exit_codes: list[int] = []

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        assert not self.alive, "the previous bot process is still running"
        self.starts += 1
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write(f"\n===== start #{self.starts} at {time.strftime('%H:%M:%S')} =====\n")
            log.flush()
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "run",
                cwd=self.cwd,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )

    def signal(self, signum: int) -> None:
        """Send `signum` now (synchronously: no await between the caller's check and the signal)."""
        assert self.proc is not None
        self.proc.send_signal(signum)

    async def wait(self, timeout: float) -> int:
        assert self.proc is not None
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        self.exit_codes.append(code)
        return code

    async def close(self) -> None:
        """Clean-up: kill the process this object started, if it still runs."""
        if self.alive:
            assert self.proc is not None
            self.proc.kill()
            await self.proc.wait()

    def log_tail(self, lines: int = 80) -> str:
        if not self.log_path.exists():
            return "(no bot log)"
        text = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])


@dataclass
class KillRecord:
    number: int
    point: str
    start: int
    """Which process start was killed (1 = the first process)."""
    at: float
    """Seconds since the world was created."""
    unanswered: tuple[str, ...]
    """`METHOD path [phase]` of every REST request the fake had not answered at the kill."""
    stored_unanswered: bool
    """A message the fake had just stored was still unanswered: the bot could not record it as sent."""
    messages_stored: int


@dataclass
class Target:
    name: str
    channel_id: int | None = None
    user_id: int | None = None


@dataclass
class CrashWorld:
    """The fakes, one bot process that is started, killed and restarted, and what was seen."""

    fake: FakeDiscord
    feeds: FeedServer
    bot: BotProcess
    db: Path
    targets: list[Target] = field(default_factory=list)
    kills: list[KillRecord] = field(default_factory=list)
    created: float = field(default_factory=time.monotonic)
    life_start: int = 0
    hf_start: int = 0
    identify_start: int = 0
    known_nonces: set[str] = field(default_factory=set)
    """Nonces of messages stored before the current process started."""
    starts: list[tuple[int, set[str]]] = field(default_factory=list)
    """Per process start: where its requests begin in `fake.requests`, and `known_nonces` then."""
    expected: set[str] = field(default_factory=set)
    """Paper URLs every target must get once (for failure messages)."""

    # -- the process ---------------------------------------------------------------------------

    async def start(self) -> None:
        self.life_start = len(self.fake.requests)
        self.hf_start = len(self.feeds.hf_requests())
        self.identify_start = self.fake.identify_count
        self.known_nonces = self.stored_nonces()
        self.starts.append((self.life_start, self.known_nonces))
        await self.bot.start()

    async def wait_ready(self, timeout: float = 20.0) -> None:
        await self.until(
            lambda: self.fake.identify_count > self.identify_start and self.fake.connected,
            timeout,
            "the bot to connect to the gateway",
        )

    async def until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait for `predicate` (checked on each change of the fake and every 10 ms); fail if the bot dies."""

        def check() -> bool:
            if not self.bot.alive:
                raise BotDied(f"the bot exited (code {self.bot.proc and self.bot.proc.returncode}) {what!r}")
            return predicate()

        try:
            await self.fake.wait_for(check, timeout, what)
        except TimeoutError as exc:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{self.state()}") from exc

    def state(self) -> str:
        """What was delivered so far: delivery rows per status, and per-target problems."""
        lines = [f"delivery rows by status: {dict(delivery_statuses(self.db))}"]
        if self.expected:
            problems = exactly_once_problems(self.urls_by_target(), self.expected)
            lines += problems or ["every target has every paper exactly once"]
        return "\n".join(lines)

    async def kill(self, point: str, *, lose_unhandled: bool = False, note: str = "") -> KillRecord:
        """SIGKILL the bot now, record what was in flight, and let the fake settle.

        `lose_unhandled`: message POSTs the fake had not handled yet never take effect (a request
        lost on the way); otherwise the fake goes on and handles them after the bot died (a
        request that reached Discord just before the crash). `note`: something else in flight.
        """
        if not self.bot.alive:
            raise BotDied(f"the bot exited by itself before kill point {point!r}")
        in_flight = [r for r in self.life_requests() if r.status is None]
        self.bot.signal(signal.SIGKILL)  # same step as the caller's check: the fake cannot have moved
        record = KillRecord(
            number=len(self.kills) + 1,
            point=point,
            start=self.bot.starts,
            at=round(time.monotonic() - self.created, 2),
            unanswered=tuple(f"{r.method} {r.path} [{self.phase(r)}]" for r in in_flight)
            + ((note,) if note else ()),
            stored_unanswered=any(self.phase(r) == "stored, unanswered" for r in in_flight),
            messages_stored=sum(len(m) for m in self.target_messages().values()),
        )
        self.kills.append(record)
        unhandled = [r for r in in_flight if self.phase(r) == "before store"]
        rule = None
        if lose_unhandled and unhandled:
            rule = self.fake.fail_next("POST", MESSAGES, 503, times=len(unhandled))
        code = await self.bot.wait(10)
        assert code == -signal.SIGKILL, f"kill {point!r}: exit code {code}"
        # The dead process's requests finish on the fake's side before the next start.
        with contextlib.suppress(TimeoutError):
            await self.fake.wait_for(lambda: all(r.status is not None for r in in_flight), 3, "settle")
        if rule is not None:
            rule.cancel()
        return record

    async def terminate(self, timeout: float) -> tuple[int, float]:
        """SIGTERM; the exit code and the seconds it took."""
        began = time.monotonic()
        self.bot.signal(signal.SIGTERM)
        code = await self.bot.wait(timeout)
        return code, time.monotonic() - began

    # -- what the fake saw -----------------------------------------------------------------------

    def life_requests(self) -> list[RecordedRequest]:
        return self.fake.requests[self.life_start :]

    def life_posts(self) -> list[RecordedRequest]:
        return [r for r in self.life_requests() if r.method == "POST" and _MESSAGES.fullmatch(r.path)]

    def fresh_posts(self) -> list[RecordedRequest]:
        """This process's message POSTs whose nonce no stored message had when it started."""
        return [r for r in self.life_posts() if nonce_of(r) not in self.known_nonces]

    def resends_in_flight(self) -> list[RecordedRequest]:
        """Unanswered POSTs re-sending a nonce whose message Discord already has."""
        return [r for r in self.life_posts() if r.status is None and nonce_of(r) in self.known_nonces]

    def dm_opening(self) -> bool:
        return any(
            r.status is None and r.method == "POST" and _OPEN_DM.fullmatch(r.path)
            for r in self.life_requests()
        )

    def is_stored(self, request: RecordedRequest) -> bool:
        nonce = nonce_of(request)
        channel_id = int(request.path.split("/")[2])
        return nonce is not None and any(m.nonce == nonce for m in self.fake.messages(channel_id))

    def phase(self, request: RecordedRequest) -> str:
        if request.status is not None:
            return "answered"
        if not _MESSAGES.fullmatch(request.path) or request.method != "POST":
            return "in flight"
        if nonce_of(request) in self.known_nonces:
            return "re-send of a stored message"
        return "stored, unanswered" if self.is_stored(request) else "before store"

    def stored_nonces(self) -> set[str]:
        return {m.nonce for messages in self.target_messages().values() for m in messages if m.nonce}

    def target_messages(self) -> dict[str, list[StoredMessage]]:
        found: dict[str, list[StoredMessage]] = {}
        for target in self.targets:
            if target.channel_id is not None:
                found[target.name] = self.fake.messages(target.channel_id, include_interaction_replies=False)
            else:
                assert target.user_id is not None
                found[target.name] = self.fake.dm_messages(target.user_id)
        return found

    def urls_by_target(self) -> dict[str, Counter[str]]:
        return {name: Counter(embed_urls(messages)) for name, messages in self.target_messages().items()}

    def all_delivered(self, expected: set[str]) -> bool:
        return all(expected <= counts.keys() for counts in self.urls_by_target().values())

    def resends_after(self, start: int) -> int:
        """Message POSTs of the process after `start` (1-based) that re-sent a nonce Discord had."""
        if start >= len(self.starts):
            return 0
        begin, known = self.starts[start]
        end = self.starts[start + 1][0] if start + 1 < len(self.starts) else len(self.fake.requests)
        return sum(
            1
            for r in self.fake.requests[begin:end]
            if r.method == "POST" and _MESSAGES.fullmatch(r.path) and nonce_of(r) in known
        )

    def kill_report(self) -> str:
        lines = [
            f"{len(self.kills)} kills over {self.bot.starts} starts "
            "(stored = bot messages on Discord at the kill; dedup = re-sends the next start made "
            "of messages Discord already had):"
        ]
        for k in self.kills:
            flight = "; ".join(k.unanswered) or "nothing in flight"
            lines.append(
                f"  #{k.number:2d} t={k.at:6.2f}s {k.point:<60} stored={k.messages_stored:3d} "
                f"dedup={self.resends_after(k.start)} | {flight}"
            )
        return "\n".join(lines)


@contextlib.contextmanager
def show_on_failure(world: CrashWorld) -> Iterator[None]:
    try:
        yield
    except BaseException:
        print(world.kill_report())
        print(f"----- bot log, last lines ({world.bot.log_path}) -----")
        print(world.bot.log_tail(150))
        raise


async def command(
    world: CrashWorld, guild_id: int, channel_id: int, user_id: int, name: str, **options: Any
) -> str:
    """Run a slash command through the local Discord; the text of the bot's answer."""
    record = await world.fake.invoke_command(guild_id, channel_id, user_id, name, options=options)
    await record.wait_response(timeout=10)
    data = (record.callback or {}).get("data") or {}
    return str(data.get("content") or "")


def stored_unanswered(n: int) -> Callable[[CrashWorld], bool]:
    """From this process's n-th new message on: one is stored on Discord, its answer not sent."""
    return lambda w: any(w.phase(r) == "stored, unanswered" for r in w.fresh_posts()[n - 1 :])


def nonce_of(request: RecordedRequest) -> str | None:
    body = request.json if isinstance(request.json, dict) else {}
    nonce = body.get("nonce")
    return None if nonce is None else str(nonce)


def embed_urls(messages: Iterable[StoredMessage]) -> Iterator[str]:
    for message in messages:
        for embed in message.data.get("embeds") or []:
            yield str(embed.get("url"))


def delivery_statuses(db: Path) -> Counter[str]:
    """Delivery rows per status, read straight from the bot's SQLite file (WAL: never blocks it)."""
    if not db.exists():
        return Counter()
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        try:
            rows = conn.execute("SELECT status, count(*) FROM deliveries GROUP BY status").fetchall()
        except sqlite3.OperationalError:  # not migrated yet
            return Counter()
    return Counter(dict(rows))


def delivery_rows(db: Path) -> list[sqlite3.Row]:
    """Every delivery row (paper_id, status, nonce, message_id, ...), read straight from the bot's file."""
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute("SELECT * FROM deliveries ORDER BY id").fetchall()


def exactly_once_problems(found: dict[str, Counter[str]], expected: set[str]) -> list[str]:
    """Per target: papers posted twice or more, papers missing, and papers that should not be there."""
    problems = []
    for name, counts in found.items():
        twice = sorted(f"{url} x{n}" for url, n in counts.items() if n > 1)
        missing = sorted(expected - counts.keys())
        extra = sorted(counts.keys() - expected)
        if twice or missing or extra:
            problems.append(
                f"{name}: {len(twice)} duplicated {twice[:5]}, {len(missing)} missing {missing[:5]}, "
                f"{len(extra)} unexpected {extra[:5]}"
            )
    return problems
