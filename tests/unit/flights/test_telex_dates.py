"""Telex times without a day belong to the flight's day; midnight is crossed by the order of the
message's own milestones or by the flight's schedule, never by when the message arrived."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from jetbridge.flights.feeds.errors import ParseError
from jetbridge.flights.feeds.mvt import parse_mvt
from jetbridge.flights.feeds.telex import anchor_times, resolve_day, resolve_time


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def fail() -> ParseError:
    return ParseError("bad")


def fields(text: str, received: datetime) -> dict[str, Any]:
    (update,) = parse_mvt(text, received_at=received)
    return update.fields


def test_the_issue_example_off_block_on_the_flights_day_not_the_receipt_day() -> None:
    got = fields("MVT\nSD200/21.PMDFG.CDG\nAD1100/1115", at(2026, 11, 22, 8, 0))
    assert got["times.off_block.actual"] == at(2026, 11, 21, 11, 0)
    assert got["times.take_off.actual"] == at(2026, 11, 21, 11, 15)


@pytest.mark.parametrize(
    ("received", "expected"),
    [
        (at(2026, 11, 21, 0, 5), at(2026, 11, 21, 11, 0)),
        (at(2026, 11, 21, 23, 59), at(2026, 11, 21, 11, 0)),
        (at(2026, 11, 23, 6, 0), at(2026, 11, 21, 11, 0)),  # a late message, days later
    ],
)
def test_receipt_time_never_moves_a_day_less_time(received: datetime, expected: datetime) -> None:
    got = fields("MVT\nSD200/21.PMDFG.CDG\nAD1100", received)
    assert got["times.off_block.actual"] == expected


def test_23_59_off_block_and_00_01_take_off_cross_midnight_in_order() -> None:
    got = fields("MVT\nLX318/24.HBJDA.ZRH\nAD2359/0001 EA0105 LHR", at(2026, 11, 25, 0, 5))
    assert got["times.off_block.actual"] == at(2026, 11, 24, 23, 59)
    assert got["times.take_off.actual"] == at(2026, 11, 25, 0, 1)
    assert got["times.on_block.estimated"] == at(2026, 11, 25, 1, 5)


def test_touchdown_23_59_and_on_block_00_01() -> None:
    got = fields("MVT\nLX318/24.HBJDA.LHR\nAA2359/0001", at(2026, 11, 25, 0, 5))
    assert got["times.touchdown.actual"] == at(2026, 11, 24, 23, 59)
    assert got["times.on_block.actual"] == at(2026, 11, 25, 0, 1)


@pytest.mark.parametrize(
    ("flight_day", "token", "expected"),
    [
        (date(2026, 1, 31), "010005", at(2026, 2, 1, 0, 5)),  # month end
        (date(2026, 12, 31), "010010", at(2027, 1, 1, 0, 10)),  # year end
        (date(2027, 1, 1), "312350", at(2026, 12, 31, 23, 50)),  # the day before, last year
        (date(2028, 2, 29), "290001", at(2028, 2, 29, 0, 1)),  # leap day
        (date(2028, 2, 28), "292359", at(2028, 2, 29, 23, 59)),
        (date(2028, 2, 29), "010030", at(2028, 3, 1, 0, 30)),
        (date(2026, 11, 24), "2359", at(2026, 11, 24, 23, 59)),
        (date(2026, 11, 24), "0001", at(2026, 11, 24, 0, 1)),
    ],
)
def test_times_with_a_day_of_month_near_the_flights_day(
    flight_day: date, token: str, expected: datetime
) -> None:
    assert resolve_time(token, flight_day, fail) == expected


@pytest.mark.parametrize(
    ("day", "near", "expected"),
    [
        (30, at(2026, 12, 1, 0, 30), date(2026, 11, 30)),
        (1, at(2026, 11, 30, 23, 50), date(2026, 12, 1)),
        (31, at(2027, 1, 1, 0, 10), date(2026, 12, 31)),
        (1, at(2026, 12, 31, 23, 55), date(2027, 1, 1)),
        (29, at(2028, 3, 1, 2, 0), date(2028, 2, 29)),
        (28, at(2027, 3, 1, 2, 0), date(2027, 2, 28)),
    ],
)
def test_flight_day_of_month_resolves_near_the_message(
    day: int, near: datetime, expected: date
) -> None:
    """Where the message gives no month, the time it was sent (or received) chooses one."""
    assert resolve_day(day, near, fail) == expected


def test_29_february_of_a_year_without_one_is_never_invented() -> None:
    got = resolve_day(29, at(2027, 2, 27, 12, 0), fail)
    assert (got.month, got.day) != (2, 29)


def test_a_29th_february_mvt_in_a_leap_year() -> None:
    got = fields("MVT\nLX318/29.HBJDA.ZRH\nAD2358/0004", at(2028, 3, 1, 0, 10))
    assert got["times.off_block.actual"] == at(2028, 2, 29, 23, 58)
    assert got["times.take_off.actual"] == at(2028, 3, 1, 0, 4)


SCHEDULE = {
    "times.off_block.scheduled": "2026-11-24T23:50:00Z",
    "times.on_block.scheduled": "2026-11-25T01:30:00Z",
}


@pytest.mark.parametrize(
    ("name", "value", "schedule", "expected"),
    [
        # Scheduled at 23:50, off blocks at 00:20: the next day.
        ("times.off_block.actual", at(2026, 11, 24, 0, 20), SCHEDULE, at(2026, 11, 25, 0, 20)),
        # Scheduled at 23:50, off blocks at 23:59 on time: the same day.
        ("times.off_block.actual", at(2026, 11, 24, 23, 59), SCHEDULE, at(2026, 11, 24, 23, 59)),
        # Scheduled on block at 01:30 the next day: an arrival at 01:25 is then.
        ("times.on_block.actual", at(2026, 11, 24, 1, 25), SCHEDULE, at(2026, 11, 25, 1, 25)),
        # Scheduled at 00:05, an early off-block at 23:58 is the day before.
        (
            "times.off_block.actual",
            at(2026, 11, 24, 23, 58),
            {"times.off_block.scheduled": "2026-11-24T00:05:00Z"},
            at(2026, 11, 23, 23, 58),
        ),
        # Only a departure is scheduled: an arrival reads as after it.
        (
            "times.touchdown.actual",
            at(2026, 11, 24, 0, 40),
            {"times.off_block.scheduled": "2026-11-24T22:00:00Z"},
            at(2026, 11, 25, 0, 40),
        ),
        # No schedule: the flight's day stays.
        ("times.off_block.actual", at(2026, 11, 24, 0, 20), {}, at(2026, 11, 24, 0, 20)),
    ],
)
def test_the_schedule_places_day_less_times(
    name: str, value: datetime, schedule: dict[str, Any], expected: datetime
) -> None:
    got = {name: value}
    anchor_times(got, {name}, schedule)
    assert got[name] == expected


def test_times_with_a_day_are_not_moved_by_the_schedule() -> None:
    got: dict[str, Any] = {"times.off_block.actual": at(2026, 11, 24, 0, 20)}
    anchor_times(got, set(), SCHEDULE)
    assert got["times.off_block.actual"] == at(2026, 11, 24, 0, 20)
