"""Digest schedules: next run across DST changes, weekday masks, timezone names, parse errors.

Expected instants are worked out by hand from the tz rules: Europe/Paris moves to CEST
(UTC+2) on 2025-03-30 at 02:00 and back to CET (UTC+1) on 2025-10-26 at 03:00;
America/New_York moves to EDT on 2025-03-09 at 02:00 and back to EST on 2025-11-02 at 02:00.
"""

from __future__ import annotations

import asyncio
import logging
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest

from bot.config import Settings
from bot.domain.schedule import (
    ALL_DAYS,
    Schedule,
    ScheduleError,
    parse_time,
    parse_timezone,
    parse_weekdays,
    timezone_suggestions,
)
from bot.services.scheduling import SKIPPED_RUNS, Timetable

MON, TUE, WED, THU, FRI, SAT, SUN = (1 << i for i in range(7))


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def run_times(schedule: Schedule, start: datetime, count: int) -> list[datetime]:
    out, moment = [], start
    for _ in range(count):
        moment = schedule.next_after(moment)
        out.append(moment)
    return out


# --- next_after ------------------------------------------------------------------------------


def test_utc_daily_strictly_after() -> None:
    schedule = Schedule(time(9, 0), "UTC")
    assert schedule.next_after(utc(2025, 3, 14, 8, 59)) == utc(2025, 3, 14, 9, 0)
    assert schedule.next_after(utc(2025, 3, 14, 9, 0)) == utc(2025, 3, 15, 9, 0)  # not the same instant
    assert schedule.next_after(utc(2025, 3, 14, 9, 0, 1)) == utc(2025, 3, 15, 9, 0)


def test_result_is_utc_whatever_the_zone_of_the_moment() -> None:
    schedule = Schedule(time(9, 0), "Europe/Paris")
    moment = datetime(2025, 1, 10, 12, 0, tzinfo=ZoneInfo("Asia/Tokyo"))  # 03:00 UTC
    result = schedule.next_after(moment)
    assert result.utcoffset() == timedelta(0)
    assert result == utc(2025, 1, 10, 8, 0)  # 09:00 CET


def test_paris_spring_forward_keeps_local_time() -> None:
    schedule = Schedule(time(9, 0), "Europe/Paris")
    assert run_times(schedule, utc(2025, 3, 28, 12, 0), 3) == [
        utc(2025, 3, 29, 8, 0),  # 09:00 CET
        utc(2025, 3, 30, 7, 0),  # 09:00 CEST, 23 h later
        utc(2025, 3, 31, 7, 0),
    ]


def test_paris_fall_back_keeps_local_time() -> None:
    schedule = Schedule(time(9, 0), "Europe/Paris")
    assert run_times(schedule, utc(2025, 10, 25, 0, 0), 2) == [
        utc(2025, 10, 25, 7, 0),  # 09:00 CEST
        utc(2025, 10, 26, 8, 0),  # 09:00 CET, 25 h later
    ]


def test_paris_time_skipped_by_dst_runs_once_that_day() -> None:
    schedule = Schedule(time(2, 30), "Europe/Paris")  # 02:30 does not exist on 2025-03-30
    times = run_times(schedule, utc(2025, 3, 29, 12, 0), 2)
    assert times[0].astimezone(ZoneInfo("Europe/Paris")).date().isoformat() == "2025-03-30"
    assert utc(2025, 3, 30, 0, 0) < times[0] <= utc(2025, 3, 30, 2, 0)
    assert times[1] == utc(2025, 3, 31, 0, 30)  # 02:30 CEST


def test_paris_repeated_time_runs_once_that_day() -> None:
    schedule = Schedule(time(2, 30), "Europe/Paris")  # 02:30 happens twice on 2025-10-26
    times = run_times(schedule, utc(2025, 10, 25, 12, 0), 2)
    assert times[0] in (utc(2025, 10, 26, 0, 30), utc(2025, 10, 26, 1, 30))
    assert times[1] == utc(2025, 10, 27, 1, 30)  # the next day, 02:30 CET; not the second 02:30


def test_new_york_across_both_changes() -> None:
    schedule = Schedule(time(8, 15), "America/New_York")
    assert run_times(schedule, utc(2025, 3, 8, 0, 0), 2) == [
        utc(2025, 3, 8, 13, 15),  # 08:15 EST
        utc(2025, 3, 9, 12, 15),  # 08:15 EDT
    ]
    assert run_times(schedule, utc(2025, 11, 1, 0, 0), 2) == [
        utc(2025, 11, 1, 12, 15),  # 08:15 EDT
        utc(2025, 11, 2, 13, 15),  # 08:15 EST
    ]


def test_new_york_repeated_hour_runs_once() -> None:
    schedule = Schedule(time(1, 30), "America/New_York")  # 01:30 twice on 2025-11-02
    times = run_times(schedule, utc(2025, 11, 1, 12, 0), 2)
    assert times[0] in (utc(2025, 11, 2, 5, 30), utc(2025, 11, 2, 6, 30))
    assert times[1] == utc(2025, 11, 3, 6, 30)


def test_weekdays_only_skip_the_weekend() -> None:
    schedule = Schedule(time(9, 0), "UTC", parse_weekdays("mon-fri"))
    # Friday 2025-03-14 after 09:00 → Monday 2025-03-17
    assert schedule.next_after(utc(2025, 3, 14, 10, 0)) == utc(2025, 3, 17, 9, 0)
    assert schedule.next_after(utc(2025, 3, 15, 10, 0)) == utc(2025, 3, 17, 9, 0)


def test_single_weekday_a_full_week_later() -> None:
    schedule = Schedule(time(9, 0), "UTC", SUN)
    assert schedule.next_after(utc(2025, 3, 16, 9, 30)) == utc(2025, 3, 23, 9, 0)  # Sunday → Sunday


def test_weekday_is_the_local_day_not_the_utc_day() -> None:
    schedule = Schedule(time(8, 0), "Asia/Tokyo", MON)
    # Sunday 23:30 UTC is Monday 08:30 in Tokyo: this Monday's 08:00 is past.
    assert schedule.next_after(utc(2025, 3, 16, 23, 30)) == utc(2025, 3, 23, 23, 0)
    # Sunday 22:30 UTC is Monday 07:30 in Tokyo: 08:00 is still to come, on Sunday 23:00 UTC.
    assert schedule.next_after(utc(2025, 3, 16, 22, 30)) == utc(2025, 3, 16, 23, 0)


def test_far_east_zone_crosses_the_date_line() -> None:
    schedule = Schedule(time(9, 0), "Pacific/Auckland")  # NZDT, UTC+13, in March 2025
    assert schedule.next_after(utc(2025, 3, 14, 0, 0)) == utc(2025, 3, 14, 20, 0)


def test_schedule_without_weekdays_is_refused() -> None:
    with pytest.raises(ScheduleError):
        Schedule(time(9, 0), "UTC", 0).next_after(utc(2025, 1, 1))


def test_describe_mentions_time_zone_and_days() -> None:
    text = Schedule(time(7, 5), "Europe/Paris", parse_weekdays("mon-fri")).describe()
    assert "07:05" in text
    assert "Europe/Paris" in text


# --- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("09:00", time(9, 0)),
        ("9:05", time(9, 5)),
        (" 23:59 ", time(23, 59)),
        ("00:00", time(0, 0)),
        ("7", time(7, 0)),
    ],
)
def test_parse_time(text: str, expected: time) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize("text", ["24:00", "12:60", "noon", "", "9am", "09:00:00", "-1:00", "9:5"])
def test_parse_time_errors(text: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_time(text)
    assert "HH:MM" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("UTC", "UTC"),
        ("utc", "UTC"),
        ("Europe/Paris", "Europe/Paris"),
        (" America/New_York ", "America/New_York"),
    ],
)
def test_parse_timezone(text: str, expected: str) -> None:
    assert parse_timezone(text) == expected


@pytest.mark.parametrize("text", ["Mars/Olympus_Mons", "Europe/Pariss", "../../etc/passwd", "", "CEST+2"])
def test_parse_timezone_errors(text: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_timezone(text)
    assert "timezone" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, ALL_DAYS),
        ("", ALL_DAYS),
        ("daily", ALL_DAYS),
        ("mon,wed,fri", MON | WED | FRI),
        ("Mon Wed", MON | WED),
        ("monday, tuesday", MON | TUE),
        ("mon-fri", MON | TUE | WED | THU | FRI),
        ("fri-mon", FRI | SAT | SUN | MON),
        ("weekdays", MON | TUE | WED | THU | FRI),
        ("weekends", SAT | SUN),
        ("sat,sun,sun", SAT | SUN),
    ],
)
def test_parse_weekdays(text: str | None, expected: int) -> None:
    assert parse_weekdays(text) == expected


@pytest.mark.parametrize("text", ["funday", "mo", "mon-xyz", "1,2,3"])
def test_parse_weekdays_errors(text: str) -> None:
    with pytest.raises(ScheduleError):
        parse_weekdays(text)


def test_timezone_suggestions() -> None:
    assert "Europe/Paris" in timezone_suggestions("paris")
    starting = timezone_suggestions("america/new")
    assert starting and starting[0] == "America/New_York"
    assert all("europe/p" in name.lower() for name in timezone_suggestions("Europe/P"))
    assert len(timezone_suggestions("a")) <= 25
    assert timezone_suggestions("")[0] == "UTC"
    assert timezone_suggestions("new york")[0] == "America/New_York"
    assert timezone_suggestions("zzzz-no-such") == []
    for name in timezone_suggestions("a"):
        assert parse_timezone(name) == name  # every suggestion is accepted back


@pytest.mark.parametrize(
    ("parse", "raw", "spelled"),
    [
        (parse_time, "09:00\u202e", "09:00U+202E"),
        (parse_time, "\x1b[2J", "U+001B[2J"),
        (parse_timezone, "Europe/Paris\u200b", "Europe/ParisU+200B"),
        (parse_weekdays, "mon-fri\x00", "friU+0000"),
        (parse_timezone, "a`b", "a'b"),
    ],
)
def test_refusals_spell_out_invisible_characters(
    parse: Callable[[str], object], raw: str, spelled: str
) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse(raw)
    message = str(caught.value)
    assert spelled in message
    assert not any(unicodedata.category(c)[0] == "C" for c in message)
    assert message.count("`") == 2


def test_a_long_refusal_quote_is_cut() -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_timezone("x" * 500)
    assert "x" * 64 + "…" in str(caught.value)
    assert "x" * 65 not in str(caught.value)


def test_a_run_skipped_because_the_last_is_still_going_is_not_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scheduler_log = logging.getLogger("apscheduler.scheduler")
    scheduler_log.addFilter(SKIPPED_RUNS)
    try:
        with caplog.at_level(logging.INFO, logger="apscheduler"):
            scheduler_log.warning(
                'Execution of job "Timetable.check" skipped: maximum number of running instances reached (1)'
            )
            scheduler_log.warning('Run time of job "Timetable.check" was missed by 0:00:05')
    finally:
        scheduler_log.removeFilter(SKIPPED_RUNS)
    assert [r.getMessage()[:20] for r in caplog.records] == ['Run time of job "Tim']


async def test_shutdown_lets_a_job_end_then_cancels_one_past_the_grace(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing a job does may outlive shutdown: the database is closed right after it.

    A job ending within the grace is left to end (a query is never cut short); one still
    running past it is cancelled, and shutdown returns only once it has unwound.
    """
    timetable = Timetable(make_settings(), cast(Any, None), cast(Any, None), check_interval=60)
    started: dict[str, asyncio.Event] = {"quick": asyncio.Event(), "stuck": asyncio.Event()}
    ended: dict[str, str] = {}

    async def quick_job() -> None:
        started["quick"].set()
        await asyncio.sleep(0.3)  # the send under way
        ended["quick"] = "finished"

    async def stuck_job() -> None:
        started["stuck"].set()
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0.05)  # a rollback, a connection handed back
            ended["stuck"] = "unwound"

    now = datetime.now(UTC)
    timetable._every(3600, quick_job, "quick", now)
    timetable._every(3600, stuck_job, "stuck", now)
    timetable.scheduler.start()
    for event in started.values():
        await asyncio.wait_for(event.wait(), 5)
    timetable.pause()
    assert ended == {}
    with caplog.at_level(logging.INFO):
        await timetable.shutdown(grace=1.0)
    assert ended == {"quick": "finished", "stuck": "unwound"}
    assert "stuck stopped by shutdown" in caplog.messages
    assert "quick stopped by shutdown" not in caplog.messages
    assert "1 scheduled jobs were cancelled at shutdown; 0 did not stop" in caplog.messages
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not timetable.scheduler.running
