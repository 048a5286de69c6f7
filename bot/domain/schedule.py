"""Digest schedules: a local time of day, an IANA timezone and a set of weekdays."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALL_DAYS = 0b1111111
_TIME = re.compile(r"^\s*(\d{1,2})(?::(\d{2}))?\s*$")
_ALIASES = {
    "daily": ALL_DAYS,
    "everyday": ALL_DAYS,
    "all": ALL_DAYS,
    "weekdays": 0b0011111,
    "workdays": 0b0011111,
    "weekends": 0b1100000,
    "weekend": 0b1100000,
}


class ScheduleError(ValueError):
    """A time, timezone or weekday list that cannot be used; the message says why."""


def shown(text: str, limit: int = 64) -> str:
    """`text` as a refusal may quote it: invisible and control characters spelled U+XXXX."""
    out: list[str] = []
    for char in text[:limit]:
        if unicodedata.category(char)[0] in "CZ" and char != " ":
            out.append(f"U+{ord(char):04X}")
        else:
            out.append("'" if char == "`" else char)
    return "".join(out) + ("…" if len(text) > limit else "")


@dataclass(frozen=True, slots=True)
class Schedule:
    at: time
    timezone: str
    weekdays: int = ALL_DAYS
    """Bit 0 is Monday … bit 6 is Sunday."""

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def next_after(self, moment: datetime) -> datetime:
        """The first scheduled instant strictly after `moment`, in UTC."""
        zone = self.zone
        local = moment.astimezone(zone)
        day = local.date()
        for offset in range(8):
            candidate_day = day + timedelta(days=offset)
            if not self.weekdays >> candidate_day.weekday() & 1:
                continue
            candidate = datetime.combine(candidate_day, self.at, tzinfo=zone)
            # A local time skipped by a DST change is moved forward by the gap.
            candidate = candidate.astimezone(UTC).astimezone(zone)
            if candidate.astimezone(UTC) > moment.astimezone(UTC):
                return candidate.astimezone(UTC)
        raise ScheduleError("a schedule needs at least one weekday")

    def describe(self) -> str:
        return f"{self.at.strftime('%H:%M')} {self.timezone}, {format_weekdays(self.weekdays)}"


def parse_time(text: str) -> time:
    found = _TIME.match(text)
    hour, minute = (int(found.group(1)), int(found.group(2) or 0)) if found else (-1, -1)
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise ScheduleError(f"`{shown(text)}` is not a time of day; use HH:MM, 24-hour (e.g. 09:00)")
    return time(hour, minute)


def parse_timezone(text: str) -> str:
    name = text.strip()
    if name.upper() == "UTC":
        return "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(
            f"`{shown(name)}` is not a known IANA timezone (e.g. Europe/Paris, America/New_York)"
        ) from None
    return name


def parse_weekdays(text: str | None) -> int:
    """`mon,wed,fri`, `mon-fri`, `weekdays`, `daily`… into a weekday bitmask."""
    if text is None or not text.strip():
        return ALL_DAYS
    mask = 0
    for raw in re.split(r"[\s,]+", text.strip().lower()):
        if not raw:
            continue
        if raw in _ALIASES:
            mask |= _ALIASES[raw]
            continue
        if "-" in raw:
            first, _, last = raw.partition("-")
            start, end = _day_index(first), _day_index(last)
            index = start
            while True:
                mask |= 1 << index
                if index == end:
                    break
                index = (index + 1) % 7
            continue
        mask |= 1 << _day_index(raw)
    if not mask:
        raise ScheduleError("name at least one weekday (e.g. mon-fri)")
    return mask


_FULL_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _day_index(name: str) -> int:
    for index, full in enumerate(_FULL_NAMES):
        if len(name) >= 3 and full.startswith(name):
            return index
    raise ScheduleError(f"`{shown(name, 20)}` is not a weekday; use mon, tue, wed, thu, fri, sat, sun")


def format_weekdays(mask: int) -> str:
    if mask & ALL_DAYS == ALL_DAYS:
        return "every day"
    if mask == 0b0011111:
        return "Mon–Fri"
    return ", ".join(name.capitalize() for i, name in enumerate(WEEKDAY_NAMES) if mask >> i & 1)


def timezone_suggestions(prefix: str, limit: int = 25) -> list[str]:
    """IANA timezone names for autocomplete: those starting with, then containing, the text."""
    wanted = prefix.strip().lower().replace(" ", "_")
    names = _zone_names()
    if not wanted:
        return ["UTC", *[n for n in names if n.startswith(("Europe/", "America/", "Asia/"))][: limit - 1]]
    starts = [n for n in names if n.lower().startswith(wanted)]
    contains = [n for n in names if wanted in n.lower() and n not in starts]
    return (starts + contains)[:limit]


_ZONES: list[str] = []


def _zone_names() -> list[str]:
    if not _ZONES:
        _ZONES.extend(sorted(z for z in available_timezones() if not z.startswith(("Etc/", "SystemV/"))))
    return _ZONES
