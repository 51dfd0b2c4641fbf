"""EventBridge schedule expressions: `rate(value unit)` and six-field `cron(...)`, in UTC."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from croniter import croniter

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((.+)\)$")
_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
_FIELDS = ("Minutes", "Hours", "Day-of-month", "Month", "Day-of-week", "Year")
_ALLOWED = {
    "Minutes": r"^[\d,\-*/]+$",
    "Hours": r"^[\d,\-*/]+$",
    "Day-of-month": r"^[\d,\-*?/LW]+$",
    "Month": r"^([\d,\-*/]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)+$",
    "Day-of-week": r"^([\d,\-*?/L#]|SUN|MON|TUE|WED|THU|FRI|SAT)+$",
    "Year": r"^[\d,\-*/]+$",
}
_MAX_SEARCH = 2000


class InvalidScheduleExpression(ValueError):
    """A schedule expression EventBridge would reject; names the field."""


@dataclass(frozen=True, slots=True)
class RateSchedule:
    period: timedelta

    def next_after(self, moment: datetime, *, anchor: datetime) -> datetime | None:
        """The first fire time strictly after `moment`, counting periods from `anchor`."""
        if moment < anchor:
            return anchor
        periods = int((moment - anchor) / self.period) + 1
        return anchor + periods * self.period


@dataclass(frozen=True, slots=True)
class CronSchedule:
    expression: str
    years: str

    def next_after(self, moment: datetime, *, anchor: datetime | None = None) -> datetime | None:
        cursor = croniter(self.expression, moment.astimezone(UTC))
        for _ in range(_MAX_SEARCH):
            upcoming: datetime = cursor.get_next(datetime)
            if upcoming.year > 2199:
                return None
            if _year_matches(self.years, upcoming.year):
                return upcoming.astimezone(UTC)
        return None


Schedule = RateSchedule | CronSchedule


def parse_schedule(expression: str) -> Schedule:
    if not isinstance(expression, str):
        raise InvalidScheduleExpression(
            "expected a string like rate(5 minutes) or cron(0 6 * * ? *)"
        )
    rate = _RATE.match(expression.strip())
    if rate:
        return _rate(int(rate.group(1)), rate.group(2))
    if expression.startswith("rate("):
        raise InvalidScheduleExpression(
            f"{expression!r}: expected rate(<positive integer> minute(s)|hour(s)|day(s))"
        )
    cron = _CRON.match(expression.strip())
    if not cron:
        raise InvalidScheduleExpression(f"{expression!r}: expected rate(...) or cron(...)")
    return _cron(cron.group(1).split())


def _rate(value: int, unit: str) -> RateSchedule:
    if value <= 0:
        raise InvalidScheduleExpression("rate: the value must be a positive integer")
    singular = not unit.endswith("s")
    if singular != (value == 1):
        raise InvalidScheduleExpression(
            f"rate: use '{unit.rstrip('s')}' for 1 and '{unit.rstrip('s')}s' otherwise"
        )
    return RateSchedule(timedelta(seconds=value * _UNITS[unit.rstrip("s")]))


def _cron(fields: list[str]) -> CronSchedule:
    if len(fields) != 6:
        raise InvalidScheduleExpression(
            f"cron: expected 6 fields ({' '.join(_FIELDS)}), got {len(fields)}"
        )
    for name, value in zip(_FIELDS, fields, strict=True):
        if not re.match(_ALLOWED[name], value.upper()):
            raise InvalidScheduleExpression(f"cron: {name} field {value!r} is not valid")
    minutes, hours, dom, month, dow, years = (f.upper() for f in fields)
    if (dom == "?") == (dow == "?"):
        raise InvalidScheduleExpression(
            "cron: exactly one of Day-of-month and Day-of-week must be '?'"
        )
    day_of_week = "*" if dow == "?" else _unix_dow(dow)
    unix = f"{minutes} {hours} {'*' if dom == '?' else dom} {month} {day_of_week}"
    if not croniter.is_valid(unix):
        raise InvalidScheduleExpression(f"cron: {' '.join(fields)!r} is not a valid schedule")
    _check_years(years)
    return CronSchedule(unix, years)


def _unix_dow(field: str) -> str:
    """AWS numbers days 1-7 from Sunday; Unix cron 0-6."""

    def shift(match: re.Match[str]) -> str:
        number = int(match.group(0))
        if not 1 <= number <= 7:
            raise InvalidScheduleExpression(f"cron: Day-of-week value {number} is outside 1-7")
        return str(number - 1)

    return re.sub(r"(?<![#/])\d+", shift, field)


def _check_years(field: str) -> None:
    for number in re.findall(r"\d+", field):
        if not 1970 <= int(number) <= 2199 and not re.search(rf"/{number}\b", field):
            raise InvalidScheduleExpression(f"cron: Year value {number} is outside 1970-2199")


def _year_matches(field: str, year: int) -> bool:
    for part in field.split(","):
        base, _, step = part.partition("/")
        if base == "*":
            low, high = 1970, 2199
        elif "-" in base:
            low, high = (int(x) for x in base.split("-", 1))
        else:
            low = int(base)
            high = 2199 if step else low
        if low <= year <= high and (not step or (year - low) % int(step) == 0):
            return True
    return False
