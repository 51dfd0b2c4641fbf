"""Schedule expressions: rate() and AWS cron() with its own day-of-week numbering and years."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jetbridge.events.schedule import InvalidScheduleExpression, parse_schedule

NOW = datetime(2026, 11, 24, 10, 7, tzinfo=UTC)  # a Tuesday


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("cron(0 10 * * ? *)", at(2026, 11, 25, 10, 0)),
        ("cron(15 12 * * ? *)", at(2026, 11, 24, 12, 15)),
        ("cron(0 18 ? * MON-FRI *)", at(2026, 11, 24, 18, 0)),
        ("cron(0 8 1 * ? *)", at(2026, 12, 1, 8, 0)),
        ("cron(0/15 * * * ? *)", at(2026, 11, 24, 10, 15)),
        ("cron(0/10 * ? * MON-FRI *)", at(2026, 11, 24, 10, 10)),
        ("cron(0/5 8-17 ? * MON-FRI *)", at(2026, 11, 24, 10, 10)),
        ("cron(0 9 ? * 2#1 *)", at(2026, 12, 7, 9, 0)),
        ("cron(0 0 L * ? *)", at(2026, 11, 30, 0, 0)),
        ("cron(0 12 ? * 1 *)", at(2026, 11, 29, 12, 0)),
        ("cron(0 12 ? * 7 *)", at(2026, 11, 28, 12, 0)),
        ("cron(0 0 1 1 ? 2028)", at(2028, 1, 1, 0, 0)),
    ],
)
def test_cron_next_fire_times(expression: str, expected: datetime) -> None:
    assert parse_schedule(expression).next_after(NOW, anchor=NOW) == expected


def test_cron_in_a_past_year_never_fires() -> None:
    assert parse_schedule("cron(0 0 1 1 ? 2020)").next_after(NOW, anchor=NOW) is None


def test_rate_counts_from_its_anchor() -> None:
    schedule = parse_schedule("rate(5 minutes)")
    anchor = at(2026, 11, 24, 10, 0)
    assert schedule.next_after(anchor, anchor=anchor) == anchor + timedelta(minutes=5)
    assert schedule.next_after(NOW, anchor=anchor) == at(2026, 11, 24, 10, 10)
    assert parse_schedule("rate(1 day)").next_after(NOW, anchor=anchor) == at(2026, 11, 25, 10, 0)


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("rate(0 minutes)", "positive"),
        ("rate(1 minutes)", "minute"),
        ("rate(5 minute)", "minutes"),
        ("rate(5 weeks)", "rate"),
        ("rate(-1 minutes)", "rate"),
        ("cron(0 10 * * * *)", "exactly one"),
        ("cron(0 10 ? * ? *)", "exactly one"),
        ("cron(0 10 * *)", "6 fields"),
        ("cron(0 25 * * ? *)", "not a valid"),
        ("cron(0 10 ? * 8 *)", "1-7"),
        ("cron(0 10 * * ? 1900)", "1970-2199"),
        ("cron(0 10 * FOO ? *)", "Month"),
        ("every day", "rate(...) or cron(...)"),
    ],
)
def test_invalid_expressions_name_the_problem(expression: str, fragment: str) -> None:
    with pytest.raises(
        InvalidScheduleExpression,
        match=fragment.replace("(", r"\(").replace(")", r"\)").replace(".", r"\."),
    ):
        parse_schedule(expression)
