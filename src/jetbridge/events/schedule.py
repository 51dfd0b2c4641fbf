"""EventBridge schedule expressions, `rate(value unit)` and six-field `cron(...)`, all in UTC.

cron fields are Minutes Hours Day-of-month Month Day-of-week Year, with AWS's rules rather than
Unix cron's: days of the week are numbered 1-7 from Sunday (SUN-SAT), exactly one of
Day-of-month and Day-of-week is `?`, `L`, `W`, `LW` and `#` select days within a month, ranges may
wrap (`20-2` hours, `FRI-MON`), and years run 1970-2199. Each field is matched on its own, as
cron does. A rate fires every period counted from its anchor, the rule's creation time.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

MAX_EXPRESSION_LENGTH = 256
DEFAULT_DUE_LIMIT = 1000
_UNITS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
_NUMBER = re.compile(r"[0-9]+")
_ONE_MINUTE = timedelta(minutes=1)


class InvalidScheduleExpression(ValueError):
    """A schedule expression EventBridge would reject; the message names the field and token."""


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()

    def error(self, token: str, reason: str) -> InvalidScheduleExpression:
        return InvalidScheduleExpression(f"cron {self.name} {token!r}: {reason}")


MINUTES = _Field("Minutes", 0, 59)
HOURS = _Field("Hours", 0, 23)
DAY_OF_MONTH = _Field("Day-of-month", 1, 31)
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
MONTH = _Field("Month", 1, 12, _MONTHS)
DAY_OF_WEEK = _Field("Day-of-week", 1, 7, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))
YEAR = _Field("Year", 1970, 2199)
_FIELDS = (MINUTES, HOURS, DAY_OF_MONTH, MONTH, DAY_OF_WEEK, YEAR)


def _utc(moment: datetime, name: str) -> datetime:
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise ValueError(f"{name}: expected a timezone-aware datetime")
    return moment.astimezone(UTC)


def _due(schedule: Schedule, last: datetime, now: datetime, limit: int) -> list[datetime]:
    fire_times: list[datetime] = []
    upcoming = schedule.next_after(last)
    now = _utc(now, "now")
    while upcoming is not None and upcoming <= now and len(fire_times) < limit:
        fire_times.append(upcoming)
        upcoming = schedule.next_after(upcoming)
    return fire_times


@dataclass(frozen=True, slots=True)
class RateSchedule:
    """`rate(value unit)`: every `period` after `anchor` (anchor + period is the first)."""

    expression: str
    period: timedelta
    anchor: datetime | None = None

    def anchored(self, anchor: datetime) -> RateSchedule:
        return RateSchedule(self.expression, self.period, _utc(anchor, "anchor"))

    def next_after(self, moment: datetime, *, anchor: datetime | None = None) -> datetime | None:
        """The first fire time strictly after `moment`; `anchor` overrides the stored one."""
        origin = anchor if anchor is not None else self.anchor
        if origin is None:
            raise ValueError(f"{self.expression}: a rate needs an anchor (the rule's creation)")
        origin, moment = _utc(origin, "anchor"), _utc(moment, "moment")
        periods = 1 if moment < origin else (moment - origin) // self.period + 1
        try:
            return origin + periods * self.period
        except OverflowError:
            return None

    def due_between(
        self,
        last: datetime,
        now: datetime,
        *,
        limit: int = DEFAULT_DUE_LIMIT,
        anchor: datetime | None = None,
    ) -> list[datetime]:
        """Fire times in (last, now], earliest first, at most `limit` of them."""
        schedule = self if anchor is None else self.anchored(anchor)
        return _due(schedule, last, now, limit)


@dataclass(frozen=True, slots=True)
class _Days:
    """The days of a month that match: plain day numbers or one of the special forms."""

    numbers: frozenset[int] = frozenset()  # Day-of-month values 1-31
    weekdays: frozenset[int] = frozenset()  # Day-of-week values, 1 = Sunday
    last: bool = False  # L in Day-of-month
    last_weekday: bool = False  # LW
    nearest_weekday: int = 0  # nW
    last_of: int = 0  # nL in Day-of-week: the last such weekday of the month
    nth: tuple[int, int] = (0, 0)  # n#k: the k-th such weekday of the month

    def in_month(self, year: int, month: int) -> list[int]:
        length = calendar.monthrange(year, month)[1]
        if self.numbers:
            return sorted(day for day in self.numbers if day <= length)
        if self.weekdays:
            return [
                d for d in range(1, length + 1) if _aws_weekday(year, month, d) in self.weekdays
            ]
        if self.last:
            return [length]
        if self.last_weekday:
            return [_nearest_weekday(year, month, length, length)]
        if self.nearest_weekday:
            wanted = self.nearest_weekday
            return [_nearest_weekday(year, month, wanted, length)] if wanted <= length else []
        weekday, count = (self.last_of, 0) if self.last_of else self.nth
        matching = [d for d in range(1, length + 1) if _aws_weekday(year, month, d) == weekday]
        if count == 0:
            return matching[-1:]
        return [matching[count - 1]] if count <= len(matching) else []


def _aws_weekday(year: int, month: int, day: int) -> int:
    """1 = Sunday ... 7 = Saturday (Python counts 0 = Monday)."""
    return (date(year, month, day).weekday() + 1) % 7 + 1


def _nearest_weekday(year: int, month: int, day: int, length: int) -> int:
    """The Monday-Friday closest to `day` without leaving the month."""
    weekday = date(year, month, day).weekday()
    if weekday == 5:  # Saturday: the Friday before, or the Monday after on the 1st
        return day - 1 if day > 1 else day + 2
    if weekday == 6:  # Sunday: the Monday after, or the Friday before on the last day
        return day + 1 if day < length else day - 2
    return day


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """`cron(Minutes Hours Day-of-month Month Day-of-week Year)`, evaluated in UTC."""

    expression: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: _Days
    months: tuple[int, ...]
    years: tuple[int, ...]

    def next_after(self, moment: datetime, *, anchor: datetime | None = None) -> datetime | None:
        """The first fire time strictly after `moment`, or None after 2199; ignores `anchor`."""
        start = _utc(moment, "moment").replace(second=0, microsecond=0)
        if start.year > YEAR.high:
            return None
        start += _ONE_MINUTE
        for day in self._dates_from(start.date()):
            earliest = (start.hour, start.minute) if day == start.date() else (0, 0)
            for hour in self.hours:
                for minute in self.minutes:
                    if (hour, minute) >= earliest:
                        return datetime.combine(day, time(hour, minute), UTC)
        return None

    def _dates_from(self, first: date) -> Iterator[date]:
        for year in self.years:
            for month in self.months:
                if (year, month) < (first.year, first.month):
                    continue
                for day in self.days.in_month(year, month):
                    if date(year, month, day) >= first:
                        yield date(year, month, day)

    def due_between(
        self,
        last: datetime,
        now: datetime,
        *,
        limit: int = DEFAULT_DUE_LIMIT,
        anchor: datetime | None = None,
    ) -> list[datetime]:
        """Fire times in (last, now], earliest first, at most `limit` of them."""
        return _due(self, last, now, limit)


Schedule = RateSchedule | CronSchedule


def parse_schedule(expression: str, *, anchor: datetime | None = None) -> Schedule:
    """Parse `rate(...)` or `cron(...)`; `anchor` (rule creation time) applies to rates."""
    if not isinstance(expression, str):
        raise InvalidScheduleExpression("expected a string such as rate(5 minutes)")
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise InvalidScheduleExpression(f"longer than {MAX_EXPRESSION_LENGTH} characters")
    if expression.startswith("rate(") and expression.endswith(")"):
        rate = _parse_rate(expression, expression[5:-1])
        return rate if anchor is None else rate.anchored(anchor)
    if expression.startswith("cron(") and expression.endswith(")"):
        return _parse_cron(expression, expression[5:-1].split())
    raise InvalidScheduleExpression(
        f"{expression[:40]!r}: expected rate(value unit) or cron(six fields)"
    )


def _parse_rate(expression: str, body: str) -> RateSchedule:
    value, _, unit = body.partition(" ")
    if not _NUMBER.fullmatch(value) or int(value) == 0:
        raise InvalidScheduleExpression(f"rate value {value!r}: expected a positive integer")
    base = unit[:-1] if unit.endswith("s") else unit
    if base not in _UNITS:
        raise InvalidScheduleExpression(
            f"rate unit {unit!r}: expected minute(s), hour(s) or day(s)"
        )
    count = int(value)
    if count == 1 and unit != base:
        raise InvalidScheduleExpression(f"rate unit {unit!r}: use {base!r} for a value of 1")
    if count > 1 and unit == base:
        raise InvalidScheduleExpression(f"rate unit {unit!r}: use '{base}s' for values above 1")
    try:
        return RateSchedule(expression, count * _UNITS[base])
    except OverflowError:
        raise InvalidScheduleExpression(f"rate value {value!r}: too large") from None


def _parse_cron(expression: str, fields: list[str]) -> CronSchedule:
    if len(fields) != len(_FIELDS):
        names = " ".join(field.name for field in _FIELDS)
        raise InvalidScheduleExpression(f"cron: expected 6 fields ({names}), got {len(fields)}")
    minutes, hours, day_of_month, month, day_of_week, year = fields
    if (day_of_month == "?") == (day_of_week == "?"):
        raise InvalidScheduleExpression(
            "cron Day-of-month and Day-of-week: exactly one of them must be '?'"
        )
    days = _month_days(day_of_month) if day_of_week == "?" else _week_days(day_of_week)
    return CronSchedule(
        expression,
        minutes=_values(MINUTES, minutes),
        hours=_values(HOURS, hours),
        days=days,
        months=_values(MONTH, month),
        years=_values(YEAR, year),
    )


def _month_days(text: str) -> _Days:
    upper = text.upper()
    if upper == "L":
        return _Days(last=True)
    if upper == "LW":
        return _Days(last_weekday=True)
    if upper.endswith("W"):
        return _Days(nearest_weekday=_number(DAY_OF_MONTH, text[:-1], text))
    if "L" in upper or "W" in upper:
        raise DAY_OF_MONTH.error(text, "L, LW and nW must stand alone")
    return _Days(numbers=frozenset(_values(DAY_OF_MONTH, text)))


def _week_days(text: str) -> _Days:
    upper = text.upper()
    if upper == "L":
        return _Days(weekdays=frozenset({DAY_OF_WEEK.high}))
    if upper.endswith("L") and "," not in text:
        return _Days(last_of=_number(DAY_OF_WEEK, text[:-1], text))
    if "#" in text:
        weekday, _, week = text.partition("#")
        if "," in text or not _NUMBER.fullmatch(week) or not 1 <= int(week) <= 5:
            raise DAY_OF_WEEK.error(text, "expected one day#week, with week 1-5")
        return _Days(nth=(_number(DAY_OF_WEEK, weekday, text), int(week)))
    if "L" in upper:
        raise DAY_OF_WEEK.error(text, "L and nL must stand alone")
    return _Days(weekdays=frozenset(_values(DAY_OF_WEEK, text)))


def _values(field: _Field, text: str) -> tuple[int, ...]:
    """All values of a comma list of `*`, `n`, `a-b`, each optionally with `/step`."""
    values: set[int] = set()
    for item in text.split(","):
        span, slash, step_text = item.partition("/")
        step = _step(field, step_text, item) if slash else 1
        start, end = _span(field, span, item, stepped=bool(slash))
        width = field.high - field.low + 1
        size = (end - start) % width + 1  # a range may wrap: hours 20-2, FRI-MON
        values.update(field.low + (start - field.low + k) % width for k in range(0, size, step))
    return tuple(sorted(values))


def _span(field: _Field, text: str, item: str, *, stepped: bool) -> tuple[int, int]:
    if text == "*":
        return field.low, field.high
    low_text, dash, high_text = text.partition("-")
    low = _number(field, low_text, item)
    if not dash:
        return low, field.high if stepped else low
    high = _number(field, high_text, item)
    if field is YEAR and high < low:
        raise field.error(item, "the range runs backwards")
    return low, high


def _step(field: _Field, text: str, item: str) -> int:
    span = field.high - field.low + 1
    if not _NUMBER.fullmatch(text) or not 1 <= int(text) <= span:
        raise field.error(item, f"the step after '/' must be 1-{span}")
    return int(text)


def _number(field: _Field, text: str, item: str) -> int:
    if text.upper() in field.names:
        return field.low + field.names.index(text.upper())
    if not _NUMBER.fullmatch(text):
        names = f" or {field.names[0]}-{field.names[-1]}" if field.names else ""
        raise field.error(item, f"expected {field.low}-{field.high}{names} with , - * /")
    value = int(text)
    if not field.low <= value <= field.high:
        raise field.error(item, f"{value} is outside {field.low}-{field.high}")
    return value
