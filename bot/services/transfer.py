"""Moving a channel's watches: export them as TOML text, import such text into a channel.

The file holds one `[[watch]]` table per watch (query, mode, min_upvotes, paused) and the
channel's digest schedule (`[digest]`: time, timezone, days). An import checks every watch
with the rules of `/watch add` and the channel and server limits, then adds all of them in
one transaction, or none: a refusal names the line of each bad watch's table and why.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.db.models import MODE_DIGEST, TargetRow, WatchRow
from bot.db.repo import TargetRepository, WatchRepository
from bot.domain.schedule import WEEKDAY_NAMES, Schedule
from bot.services.access import Caller, UserError, own_channel, require_guild, require_manage
from bot.services.digests import apply_schedule, parse_schedule, target_schedule
from bot.services.subscriptions import Subscriptions, WatchOptions, WatchView, view_of

FORMAT_VERSION = 1
MAX_IMPORT_BYTES = 64 * 1024
"""The largest file `/watch import` reads (a full channel of watches is a few KiB)."""

WATCH_KEYS = frozenset({"query", "mode", "min_upvotes", "paused"})
DIGEST_KEYS = frozenset({"time", "timezone", "days"})
TOP_KEYS = frozenset({"version", "digest", "watch"})
_WATCH_HEADER = re.compile(r"^\s*\[\[\s*watch\s*\]\]\s*(#.*)?$")
_DIGEST_HEADER = re.compile(r"^\s*\[\s*digest\s*\]\s*(#.*)?$")
_TOML_LINE = re.compile(r"\(at line (\d+), column \d+\)")


@dataclass(frozen=True, slots=True)
class ExportedWatches:
    filename: str
    text: str
    count: int


@dataclass(frozen=True, slots=True)
class ImportProblem:
    line: int | None
    """The line of the file where the offending table starts (None: the file as a whole)."""
    reason: str
    query: str | None = None
    """The watch's query as the file has it, to quote beside the reason."""


class ImportRefused(UserError):  # noqa: N818 - reads as the answer the user gets
    """Nothing was imported; `problems` says what to fix, by line."""

    def __init__(self, problems: list[ImportProblem]) -> None:
        super().__init__(f"Nothing was imported: {len(problems)} problem(s) in the file.")
        self.problems = problems


@dataclass(frozen=True, slots=True)
class ImportedWatches:
    channel_id: int
    watches: list[WatchView]
    schedule: Schedule | None
    """The digest schedule the file set, if it had one."""


@dataclass(slots=True)
class _Entry:
    """One `[[watch]]` table, checked."""

    line: int | None
    query: str
    options: WatchOptions
    paused: bool


@dataclass(slots=True)
class _Parsed:
    entries: list[_Entry] = field(default_factory=list)
    schedule: Schedule | None = None
    problems: list[ImportProblem] = field(default_factory=list)


def toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char == '"':
            out.append('\\"')
        elif char == "\\":
            out.append("\\\\")
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04X}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def weekday_list(mask: int) -> str:
    return ",".join(name for index, name in enumerate(WEEKDAY_NAMES) if mask >> index & 1)


def export_text(channel_name: str, schedule: Schedule, watches: list[WatchRow], when: datetime) -> str:
    lines = [
        f"# paperwatch watches of #{' '.join(channel_name.split())}, exported {when:%Y-%m-%d %H:%M} UTC.",
        "# Import them into any channel with /watch import (Manage Channels).",
        f"version = {FORMAT_VERSION}",
        "",
        "[digest]",
        f"time = {toml_string(schedule.at.strftime('%H:%M'))}",
        f"timezone = {toml_string(schedule.timezone)}",
        f"days = {toml_string(weekday_list(schedule.weekdays))}",
    ]
    for watch in watches:
        lines += ["", "[[watch]]", f"query = {toml_string(watch.query)}", f"mode = {toml_string(watch.mode)}"]
        if watch.min_upvotes is not None:
            lines.append(f"min_upvotes = {watch.min_upvotes}")
        lines.append(f"paused = {'true' if watch.paused else 'false'}")
    return "\n".join(lines) + "\n"


def export_filename(channel_name: str) -> str:
    """`watches-<channel>.toml`, the name reduced to letters, digits, `-` and `_`."""
    slug = re.sub(r"[^\w-]+", "-", channel_name.strip(), flags=re.ASCII).strip("-")[:80]
    return f"watches-{slug or 'channel'}.toml"


def header_lines(text: str, pattern: re.Pattern[str]) -> list[int]:
    """1-based numbers of the lines that open a table (`[[watch]]` or `[digest]`)."""
    return [number for number, line in enumerate(text.splitlines(), 1) if pattern.match(line)]


class TransferService:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], settings: Settings, subscriptions: Subscriptions
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.subscriptions = subscriptions

    async def export_channel(self, guild_id: int, channel_id: int, channel_name: str) -> ExportedWatches:
        """The channel's watches and digest schedule as TOML; refused if it has no watches."""
        async with self.sessions() as session:
            target = await TargetRepository(session).channel(channel_id)
            if target is None or target.guild_id != guild_id:
                watches: list[WatchRow] = []
            else:
                watches = await WatchRepository(session).for_target(target.id)
        if target is None or not watches:
            raise UserError(f"<#{channel_id}> has no watches to export.")
        text = export_text(channel_name, target_schedule(target), watches, self.subscriptions.clock.now())
        return ExportedWatches(export_filename(channel_name), text, len(watches))

    async def import_channel(self, caller: Caller, channel_id: int, data: bytes) -> ImportedWatches:
        """Add every watch of the file to the channel (and set its digest schedule), or none."""
        guild_id = require_guild(caller, "Watches are imported into a server channel.")
        require_manage(caller)
        parsed = self.parse(data)
        if parsed.problems:
            raise ImportRefused(parsed.problems)
        async with self.sessions.begin() as session:
            target = await own_channel(session, caller, channel_id, self.settings)
            await self._check_limits(session, target, guild_id, len(parsed.entries))
            views = await self._add_all(session, target, parsed.entries, caller.user_id)
            if parsed.schedule is not None:
                apply_schedule(target, parsed.schedule)
                target.next_digest_at = parsed.schedule.next_after(self.subscriptions.clock.now())
            if target.paused_reason:
                target.paused_reason = None
                target.paused_notice_sent = False
            return ImportedWatches(channel_id, views, parsed.schedule)

    async def _check_limits(
        self, session: AsyncSession, target: TargetRow, guild_id: int, adding: int
    ) -> None:
        limits = self.settings.limits
        watches = WatchRepository(session)
        problems: list[ImportProblem] = []
        in_channel = await watches.count_for_target(target.id)
        if in_channel + adding > limits.watches_per_channel:
            problems.append(
                ImportProblem(
                    None,
                    f"the channel has {in_channel} watches and the file adds {adding}; "
                    f"a channel holds at most {limits.watches_per_channel}.",
                )
            )
        in_guild = await watches.count_in_guild(guild_id)
        if in_guild + adding > limits.watches_per_guild:
            problems.append(
                ImportProblem(
                    None,
                    f"the server has {in_guild} watches and the file adds {adding}; "
                    f"a server holds at most {limits.watches_per_guild}.",
                )
            )
        if problems:
            raise ImportRefused(problems)

    async def _add_all(
        self, session: AsyncSession, target: TargetRow, entries: list[_Entry], user_id: int
    ) -> list[WatchView]:
        """Add each watch as `/watch add` does (catch-up included); any refusal undoes them all."""
        views: list[WatchView] = []
        problems: list[ImportProblem] = []
        for entry in entries:
            try:
                added = await self.subscriptions.add(session, target, entry.options, user_id)
            except UserError as exc:
                problems.append(ImportProblem(entry.line, str(exc), entry.query))
                continue
            row = await WatchRepository(session).get(added.watch.id)
            assert row is not None
            row.paused = entry.paused
            views.append(view_of(row, target))
        if problems:
            raise ImportRefused(problems)
        await session.flush()
        return views

    def parse(self, data: bytes) -> _Parsed:
        """Decode, parse and check the whole file without touching the database."""
        parsed = _Parsed()
        if len(data) > MAX_IMPORT_BYTES:
            parsed.problems.append(
                ImportProblem(
                    None, f"the file is {len(data):,} bytes; the most accepted is {MAX_IMPORT_BYTES:,}."
                )
            )
            return parsed
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            parsed.problems.append(ImportProblem(None, f"the file is not UTF-8 text (byte {exc.start + 1})."))
            return parsed
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            found = _TOML_LINE.search(str(exc))
            line = int(found.group(1)) if found else None
            parsed.problems.append(
                ImportProblem(line, f"this is not valid TOML: {_TOML_LINE.sub('', str(exc)).strip()}.")
            )
            return parsed
        self._check_document(document, text, parsed)
        return parsed

    def _check_document(self, document: dict[str, Any], text: str, parsed: _Parsed) -> None:
        unknown = sorted(set(document) - TOP_KEYS)
        if unknown:
            parsed.problems.append(ImportProblem(None, f"unknown top-level key(s): {', '.join(unknown)}."))
        version = document.get("version", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            parsed.problems.append(
                ImportProblem(None, f"`version = {version}` is not a format this bot reads (it reads 1).")
            )
        digest = document.get("digest")
        if digest is not None:
            digest_lines = header_lines(text, _DIGEST_HEADER)
            self._check_digest(digest, digest_lines[0] if digest_lines else None, parsed)
        watches = document.get("watch")
        if not isinstance(watches, list) or not watches:
            parsed.problems.append(ImportProblem(None, "the file has no `[[watch]]` tables."))
            return
        lines: list[int | None] = list(header_lines(text, _WATCH_HEADER))
        if len(lines) != len(watches):
            lines = [None] * len(watches)  # e.g. written as an inline array: no header to point at
        for line, raw in zip(lines, watches, strict=True):
            self._check_watch(raw, line, parsed)

    def _check_digest(self, digest: Any, line: int | None, parsed: _Parsed) -> None:
        if not isinstance(digest, dict):
            parsed.problems.append(ImportProblem(line, "`digest` is a table with time, timezone and days."))
            return
        unknown = sorted(set(digest) - DIGEST_KEYS)
        time, timezone, days = digest.get("time"), digest.get("timezone"), digest.get("days")
        if unknown:
            parsed.problems.append(ImportProblem(line, f"[digest]: unknown key(s) {', '.join(unknown)}."))
        elif not isinstance(time, str) or not isinstance(timezone, str):
            parsed.problems.append(ImportProblem(line, "[digest]: `time` and `timezone` are text."))
        elif days is not None and not isinstance(days, str):
            parsed.problems.append(ImportProblem(line, '[digest]: `days` is text, e.g. "mon,wed,fri".'))
        else:
            try:
                parsed.schedule = parse_schedule(time, timezone, days)
            except UserError as exc:
                parsed.problems.append(ImportProblem(line, f"[digest]: {exc}"))

    def _check_watch(self, raw: Any, line: int | None, parsed: _Parsed) -> None:
        if not isinstance(raw, dict):
            parsed.problems.append(ImportProblem(line, "a watch is a `[[watch]]` table."))
            return
        query = raw.get("query")
        shown = query if isinstance(query, str) else None
        unknown = sorted(set(raw) - WATCH_KEYS)
        mode, floor, paused = raw.get("mode", MODE_DIGEST), raw.get("min_upvotes"), raw.get("paused", False)
        reason: str | None = None
        if unknown:
            reason = f"unknown key(s) {', '.join(unknown)} (a watch has query, mode, min_upvotes, paused)."
        elif not isinstance(query, str):
            reason = "`query` is missing or not text."
        elif not isinstance(mode, str):
            reason = "`mode` is text: digest or instant."
        elif floor is not None and (isinstance(floor, bool) or not isinstance(floor, int)):
            reason = "`min_upvotes` is a whole number."
        elif not isinstance(paused, bool):
            reason = "`paused` is true or false."
        if reason is not None:
            parsed.problems.append(ImportProblem(line, reason, shown))
            return
        assert isinstance(query, str) and isinstance(mode, str)
        try:
            options = self.subscriptions.options(query, mode, floor)
        except UserError as exc:
            parsed.problems.append(ImportProblem(line, str(exc), shown))
            return
        parsed.entries.append(_Entry(line, query, options, paused))
