"""Dates in schedule messages: `24`, `24NOV` and `24NOV26`, and SSM-style periods of operation
such as `30NOV26 20DEC26 1357/W2` (from, to, days of operation Monday=1, every second week)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from jetbridge.flights.feeds.errors import ParseError
from jetbridge.flights.feeds.limits import MAX_PERIOD_SETTING
from jetbridge.flights.feeds.telex import resolve_day

MONTHS = {
    name: n
    for n, name in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], 1
    )
}
DATE = r"\d{2}(?:[A-Z]{3}(?:\d{2})?)?"
DATE_TOKEN = re.compile(DATE)
PERIOD = re.compile(rf"^({DATE})\s+({DATE})\s+([1-7]{{1,7}})(?:/W(\d))?$")

Fail = Callable[[str, str], ParseError]


def parse_date(token: str, near: datetime, fail: Fail) -> date:
    """`24` (the nearest such day), `24NOV` (the nearest such date), `24NOV26`."""
    if not DATE_TOKEN.fullmatch(token) or (len(token) > 2 and token[2:5] not in MONTHS):
        raise fail("date must look like 24NOV26, 24NOV or 24", token)
    day = int(token[:2])
    if len(token) == 2:
        return resolve_day(day, near, lambda: fail("day of month does not exist", token))
    month = MONTHS[token[2:5]]
    years = [2000 + int(token[5:7])] if len(token) == 7 else [near.year + s for s in (-1, 0, 1)]
    options = []
    for year in years:
        try:
            options.append(date(year, month, day))
        except ValueError:
            continue
    if not options:
        raise fail("date must look like 24NOV26, 24NOV or 24", token)
    if len(options) == 1:
        return options[0]
    return min(options, key=lambda d: abs(datetime(d.year, d.month, d.day, tzinfo=UTC) - near))


@dataclass(frozen=True, slots=True)
class Period:
    """A period of operation: from `first` to `last` (both included), on `weekdays` (Monday=1),
    every `weeks`-th week counted from the first."""

    first: date
    last: date
    weekdays: frozenset[int]
    weeks: int = 1

    def count(self) -> int:
        """How many dates the period holds, without listing them."""
        span = (self.last - self.first).days + 1
        total = 0
        for offset in range(min(7, span)):
            if (self.first + timedelta(days=offset)).isoweekday() in self.weekdays:
                occurrences = (span - offset + 6) // 7  # this weekday, week 0, 1, 2, ...
                total += (occurrences + self.weeks - 1) // self.weeks
        return total

    def dates(self) -> list[date]:
        span = (self.last - self.first).days + 1
        moments = (self.first + timedelta(days=n) for n in range(span))
        return [
            d
            for d in moments
            if d.isoweekday() in self.weekdays and ((d - self.first).days // 7) % self.weeks == 0
        ]


def parse_period(match: re.Match[str], near: datetime, fail: Fail, *, max_days: int) -> Period:
    """The period a `PERIOD` line names; one longer than `max_days` days is refused."""
    first_token, last_token, days, every = match.groups()
    first = parse_date(first_token, near, fail)
    last = parse_date(last_token, near, fail)
    if len(last_token) < 7 and last < first:
        with contextlib.suppress(ValueError):  # 29FEB has no next year: ends before it begins
            last = last.replace(year=last.year + 1)
    if last < first:
        raise fail("a period must not end before it begins", last_token)
    span = (last - first).days + 1
    if span > max_days:
        raise fail(
            f"the period covers {span} days, more than the {max_days} a period may cover "
            f"({MAX_PERIOD_SETTING})",
            match.group(0),
        )
    weeks = int(every or 1)
    if weeks < 1:
        raise fail("frequency must be /W1 to /W9", f"/W{every}")
    return Period(first, last, frozenset(int(d) for d in days), weeks)
