"""rate() and AWS cron(): its own day-of-week numbering, ?, L, W, #, wrapping ranges and years.

Expected fire times are worked out by hand from a calendar: 2026-11-24 is a Tuesday, 2026-12-01
a Tuesday, 2026-08-01 a Saturday, 2027-01-31 a Sunday, 2022-12-30 a Friday.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from jetbridge.events.schedule import (
    CronSchedule,
    InvalidScheduleExpression,
    RateSchedule,
    parse_schedule,
)

NOW = datetime(2026, 11, 24, 10, 7, tzinfo=UTC)


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def rejected(fragment: str) -> Any:
    return pytest.raises(InvalidScheduleExpression, match=re.escape(fragment))


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # The examples table of the EventBridge user guide.
        ("cron(0 10 * * ? *)", at(2026, 11, 25, 10, 0)),  # 10:00 today has passed
        ("cron(15 12 * * ? *)", at(2026, 11, 24, 12, 15)),
        ("cron(0 18 ? * MON-FRI *)", at(2026, 11, 24, 18, 0)),
        ("cron(0 8 1 * ? *)", at(2026, 12, 1, 8, 0)),
        ("cron(0/15 * * * ? *)", at(2026, 11, 24, 10, 15)),
        ("cron(0/10 * ? * MON-FRI *)", at(2026, 11, 24, 10, 10)),
        ("cron(0/5 8-17 ? * MON-FRI *)", at(2026, 11, 24, 10, 10)),
        ("cron(0/30 20-2 ? * MON-FRI *)", at(2026, 11, 24, 20, 0)),
        ("cron(5,35 14 * * ? *)", at(2026, 11, 24, 14, 5)),
        ("cron(0 9 ? * 2#1 *)", at(2026, 12, 7, 9, 0)),  # first Monday of December
        ("cron(0 0 L * ? *)", at(2026, 11, 30, 0, 0)),
        # AWS numbers the week from Sunday = 1 to Saturday = 7; L alone is Saturday.
        ("cron(0 12 ? * 1 *)", at(2026, 11, 29, 12, 0)),
        ("cron(0 12 ? * 7 *)", at(2026, 11, 28, 12, 0)),
        ("cron(0 12 ? * SUN *)", at(2026, 11, 29, 12, 0)),
        ("cron(0 12 ? * L *)", at(2026, 11, 28, 12, 0)),
        ("cron(0 12 ? * 3 *)", at(2026, 11, 24, 12, 0)),  # 3 = Tuesday, today
        ("cron(0 12 ? * mon,wed *)", at(2026, 11, 25, 12, 0)),
        ("cron(0 9 lw * ? *)", at(2026, 11, 30, 9, 0)),
        ("cron(0 9 ? * fri#4 *)", at(2026, 11, 27, 9, 0)),
        ("cron(0 12 ? * FRI-MON *)", at(2026, 11, 27, 12, 0)),  # wraps over the weekend
        ("cron(0 9 ? * 6L *)", at(2026, 11, 27, 9, 0)),  # last Friday of November
        ("cron(0 9 ? * 3#5 *)", at(2026, 12, 29, 9, 0)),  # November has four Tuesdays
        ("cron(0 9 ? * TUE#4 *)", at(2026, 12, 22, 9, 0)),  # the 4th Tuesday was this morning
        ("cron(0 9 15W * ? *)", at(2026, 12, 15, 9, 0)),
        ("cron(0 9 LW * ? *)", at(2026, 11, 30, 9, 0)),  # the 30th is a Monday
        ("cron(0 0 1 JAN,JUL ? *)", at(2027, 1, 1, 0, 0)),
        ("cron(0 0 1 NOV-FEB ? *)", at(2026, 12, 1, 0, 0)),
        ("cron(*/20 10 * * ? *)", at(2026, 11, 24, 10, 20)),
        ("cron(10-30/10 * * * ? *)", at(2026, 11, 24, 10, 10)),
        ("cron(0 0 29 2 ? *)", at(2028, 2, 29, 0, 0)),
        ("cron(0 0 1 1 ? 2028)", at(2028, 1, 1, 0, 0)),
        ("cron(0 0 1 1 ? 2030/5)", at(2030, 1, 1, 0, 0)),
    ],
)
def test_cron_next_fire_times(expression: str, expected: datetime) -> None:
    schedule = parse_schedule(expression)
    assert isinstance(schedule, CronSchedule)
    assert schedule.next_after(NOW) == expected


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("cron(15 10 ? * 6L 2019-2022)", at(2022, 12, 1), at(2022, 12, 30, 10, 15)),
        ("cron(0 9 1W * ? *)", at(2026, 7, 15), at(2026, 8, 3, 9, 0)),  # 1st is a Saturday
        ("cron(0 9 LW * ? *)", at(2027, 1, 15), at(2027, 1, 29, 9, 0)),  # 31st is a Sunday
        ("cron(0 9 31W * ? *)", at(2027, 1, 15), at(2027, 1, 29, 9, 0)),
        ("cron(0 9 31 * ? *)", at(2026, 11, 1), at(2026, 12, 31, 9, 0)),  # skips November
        ("cron(0 0 1 1 ? 2030/5)", at(2030, 1, 1), at(2035, 1, 1)),
        ("cron(0/30 20-2 ? * MON-FRI *)", at(2026, 11, 27, 23, 45), at(2026, 11, 30, 0, 0)),
        ("cron(59 23 31 12 ? 2199)", at(2199, 12, 31, 23, 58), at(2199, 12, 31, 23, 59)),
    ],
)
def test_cron_from_other_moments(expression: str, after: datetime, expected: datetime) -> None:
    assert parse_schedule(expression).next_after(after) == expected


@pytest.mark.parametrize(
    ("expression", "after"),
    [
        ("cron(0 0 1 1 ? 2020)", NOW),
        ("cron(15 10 ? * 6L 2019-2022)", NOW),
        ("cron(0 0 31 2 ? *)", NOW),  # valid, never fires
        ("cron(59 23 31 12 ? 2199)", at(2199, 12, 31, 23, 59)),
        ("cron(0 0 * * ? *)", at(2300, 1, 1)),
    ],
)
def test_cron_with_no_further_fire_time(expression: str, after: datetime) -> None:
    assert parse_schedule(expression).next_after(after) is None


def test_cron_fire_times_are_strictly_after_and_in_utc() -> None:
    schedule = parse_schedule("cron(0/15 * * * ? *)")
    assert schedule.next_after(at(2026, 11, 24, 10, 15)) == at(2026, 11, 24, 10, 30)
    assert schedule.next_after(at(2026, 11, 24, 10, 14, 59, 999999)) == at(2026, 11, 24, 10, 15)
    paris = timezone(timedelta(hours=1))
    upcoming = schedule.next_after(datetime(2026, 11, 24, 11, 7, tzinfo=paris))
    assert upcoming == at(2026, 11, 24, 10, 15)
    assert upcoming is not None and upcoming.tzinfo is UTC
    with pytest.raises(ValueError, match="moment: expected a timezone-aware datetime"):
        schedule.next_after(datetime(2026, 11, 24, 10, 7))


def test_cron_due_between() -> None:
    schedule = parse_schedule("cron(0/15 * * * ? *)")
    last, now = at(2026, 11, 24, 10, 0), at(2026, 11, 24, 11, 0)
    assert schedule.due_between(last, now) == [
        at(2026, 11, 24, 10, 15),
        at(2026, 11, 24, 10, 30),
        at(2026, 11, 24, 10, 45),
        at(2026, 11, 24, 11, 0),
    ]
    assert schedule.due_between(last, now, limit=2) == [
        at(2026, 11, 24, 10, 15),
        at(2026, 11, 24, 10, 30),
    ]
    assert schedule.due_between(last, at(2026, 11, 24, 10, 14)) == []
    assert len(parse_schedule("cron(* * * * ? *)").due_between(last, at(2027, 1, 1))) == 1000


@pytest.mark.parametrize(
    ("expression", "period"),
    [
        ("rate(1 minute)", timedelta(minutes=1)),
        ("rate(5 minutes)", timedelta(minutes=5)),
        ("rate(1 hour)", timedelta(hours=1)),
        ("rate(12 hours)", timedelta(hours=12)),
        ("rate(1 day)", timedelta(days=1)),
        ("rate(7 days)", timedelta(days=7)),
    ],
)
def test_rate_forms(expression: str, period: timedelta) -> None:
    schedule = parse_schedule(expression)
    assert isinstance(schedule, RateSchedule)
    assert schedule.period == period


def test_rate_counts_from_its_anchor() -> None:
    anchor = at(2026, 11, 24, 10, 0, 30)
    schedule = parse_schedule("rate(5 minutes)", anchor=anchor)
    assert schedule.next_after(anchor) == at(2026, 11, 24, 10, 5, 30)
    assert schedule.next_after(NOW) == at(2026, 11, 24, 10, 10, 30)
    assert schedule.next_after(at(2026, 11, 24, 10, 10, 30)) == at(2026, 11, 24, 10, 15, 30)
    assert schedule.next_after(at(2026, 1, 1)) == at(2026, 11, 24, 10, 5, 30)
    day = parse_schedule("rate(1 day)")
    assert day.next_after(NOW, anchor=anchor) == at(2026, 11, 25, 10, 0, 30)
    assert schedule.next_after(NOW, anchor=at(2026, 11, 24, 10, 6)) == at(2026, 11, 24, 10, 11)


def test_rate_due_between() -> None:
    anchor = at(2026, 11, 24, 10, 0)
    schedule = parse_schedule("rate(5 minutes)")
    assert schedule.due_between(anchor, at(2026, 11, 24, 10, 15), anchor=anchor) == [
        at(2026, 11, 24, 10, 5),
        at(2026, 11, 24, 10, 10),
        at(2026, 11, 24, 10, 15),
    ]
    anchored = parse_schedule("rate(1 hour)", anchor=anchor)
    assert anchored.due_between(at(2026, 11, 24, 11, 0), at(2026, 11, 24, 11, 59)) == []


def test_rate_needs_an_anchor_and_aware_times() -> None:
    schedule = parse_schedule("rate(5 minutes)")
    with pytest.raises(ValueError, match="needs an anchor"):
        schedule.next_after(NOW)
    with pytest.raises(ValueError, match="anchor: expected a timezone-aware datetime"):
        schedule.next_after(NOW, anchor=datetime(2026, 11, 24))
    with pytest.raises(ValueError, match="anchor: expected a timezone-aware datetime"):
        parse_schedule("rate(5 minutes)", anchor=datetime(2026, 11, 24))


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("rate(0 minutes)", "rate value '0': expected a positive integer"),
        ("rate(-1 minutes)", "rate value '-1': expected a positive integer"),
        ("rate(1.5 hours)", "rate value '1.5'"),
        ("rate(five minutes)", "rate value 'five'"),
        ("rate()", "rate value ''"),
        ("rate(1 minutes)", "rate unit 'minutes': use 'minute' for a value of 1"),
        ("rate(5 hour)", "rate unit 'hour': use 'hours' for values above 1"),
        ("rate(5 weeks)", "rate unit 'weeks': expected minute(s), hour(s) or day(s)"),
        ("rate(5 Minutes)", "rate unit 'Minutes'"),
        ("rate(5  minutes)", "rate unit ' minutes'"),
        ("rate(5minutes)", "rate value '5minutes'"),
        ("rate(" + "9" * 30 + " days)", "too large"),
        ("RATE(5 minutes)", "expected rate(value unit) or cron(six fields)"),
        (" rate(5 minutes)", "expected rate(value unit) or cron(six fields)"),
        ("every day", "expected rate(value unit) or cron(six fields)"),
        ("cron(" + "* " * 200 + ")", "longer than 256 characters"),
    ],
)
def test_invalid_rates(expression: str, fragment: str) -> None:
    with rejected(fragment):
        parse_schedule(expression)


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("cron(0 10 * *)", "cron: expected 6 fields (Minutes Hours Day-of-month Month"),
        ("cron(0 10 * * ? * *)", "got 7"),
        ("cron(0 10 * * * *)", "Day-of-month and Day-of-week: exactly one of them must be '?'"),
        ("cron(0 10 ? * ? *)", "exactly one of them must be '?'"),
        ("cron(0 10 1 * MON *)", "exactly one of them must be '?'"),
        ("cron(60 10 * * ? *)", "cron Minutes '60': 60 is outside 0-59"),
        ("cron(0 25 * * ? *)", "cron Hours '25': 25 is outside 0-23"),
        ("cron(0 10 0 * ? *)", "cron Day-of-month '0': 0 is outside 1-31"),
        ("cron(0 10 32 * ? *)", "cron Day-of-month '32': 32 is outside 1-31"),
        ("cron(0 10 * 13 ? *)", "cron Month '13': 13 is outside 1-12"),
        ("cron(0 10 * FOO ? *)", "cron Month 'FOO': expected 1-12 or JAN-DEC"),
        ("cron(0 10 ? * 8 *)", "cron Day-of-week '8': 8 is outside 1-7"),
        ("cron(0 10 ? * 0 *)", "cron Day-of-week '0': 0 is outside 1-7"),
        ("cron(0 10 ? * MON-FUN *)", "cron Day-of-week 'MON-FUN': expected 1-7 or SUN-SAT"),
        ("cron(0 10 * * ? 1969)", "cron Year '1969': 1969 is outside 1970-2199"),
        ("cron(0 10 * * ? 2200)", "cron Year '2200': 2200 is outside 1970-2199"),
        ("cron(0 10 * * ? 2030-2020)", "cron Year '2030-2020': the range runs backwards"),
        ("cron(? 10 * * ? *)", "cron Minutes '?': expected 0-59"),
        ("cron(0 L * * ? *)", "cron Hours 'L': expected 0-23"),
        ("cron(0/0 10 * * ? *)", "cron Minutes '0/0': the step after '/' must be 1-60"),
        ("cron(0/x 10 * * ? *)", "cron Minutes '0/x'"),
        ("cron(1,,2 10 * * ? *)", "cron Minutes ''"),
        ("cron(0 10 L,15 * ? *)", "cron Day-of-month 'L,15': L, LW and nW must stand alone"),
        ("cron(0 10 W * ? *)", "cron Day-of-month 'W'"),
        ("cron(0 10 32W * ? *)", "cron Day-of-month '32W': 32 is outside 1-31"),
        ("cron(0 10 ? * 3#1,6#3 *)", "cron Day-of-week '3#1,6#3': expected one day#week"),
        ("cron(0 10 ? * 2#6 *)", "week 1-5"),
        ("cron(0 10 ? * 9#1 *)", "cron Day-of-week '9#1': 9 is outside 1-7"),
        ("cron(0 10 ? * 2,6L *)", "cron Day-of-week '2,6L': L and nL must stand alone"),
        ("cron(0 10 ? * 8L *)", "8 is outside 1-7"),
    ],
)
def test_invalid_crons_name_the_field(expression: str, fragment: str) -> None:
    with rejected(fragment):
        parse_schedule(expression)


def test_non_string_expression() -> None:
    with rejected("expected a string"):
        parse_schedule(5)  # type: ignore[arg-type]
