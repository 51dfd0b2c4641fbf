"""Shared pieces of the telex parsers: partial identities, envelopes, day and time resolution."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from jetbridge.flights.feeds.errors import ParseError
from jetbridge.flights.merge import Update
from jetbridge.flights.model import FlightIdentity, normalise_value

_ENVELOPE = re.compile(r"^(Q[A-Z]|[A-Z]{2})( [A-Z0-9]{7})+$")
_ORIGINATOR = re.compile(r"^\.([A-Z0-9]{7})( (\d{6}))?")


@dataclass
class FeedUpdate:
    """An update whose flight may still need one airport looked up (MVT names only one)."""

    airline: str
    flight_number: str
    origin_date: date
    departure_airport: str | None
    arrival_airport: str | None
    source: str
    source_time: datetime
    fields: dict[str, Any] = field(default_factory=dict)
    line: int = 0

    def complete(self) -> bool:
        return bool(self.departure_airport and self.arrival_airport)

    def to_update(self, identity: FlightIdentity | None = None) -> Update:
        if identity is None:
            identity = FlightIdentity.create(
                airline=self.airline,
                flight_number=self.flight_number,
                origin_date=self.origin_date,
                departure_airport=self.departure_airport,
                arrival_airport=self.arrival_airport,
            )
        return Update(identity, self.source, self.source_time, self.fields)

    def to_json(self) -> dict[str, Any]:
        return {
            "airline": self.airline,
            "flight_number": self.flight_number,
            "origin_date": self.origin_date.isoformat(),
            "departure_airport": self.departure_airport,
            "arrival_airport": self.arrival_airport,
            "source": self.source,
            "source_time": self.source_time.isoformat(),
            "fields": {k: normalise_value(k, v) for k, v in self.fields.items()},
        }


@dataclass
class Lines:
    """The message's lines with their numbers, envelope (addresses, originator) removed."""

    items: list[tuple[int, str]]
    file: str | None
    originator_time: str | None = None

    @classmethod
    def read(cls, text: str, file: str | None, *, max_bytes: int = 64_000) -> Lines:
        if len(text.encode()) > max_bytes:
            raise ParseError(f"message longer than {max_bytes} bytes", file=file)
        items: list[tuple[int, str]] = []
        stamp = None
        for number, raw in enumerate(text.replace("\r", "").split("\n"), 1):
            line = raw.strip()
            if not line or line in {"=", "NNNN"}:
                continue
            if any(ord(char) > 126 or (ord(char) < 32 and char != "\t") for char in line):
                bad = next(c for c in line if ord(c) > 126 or ord(c) < 32)
                raise ParseError(
                    "telex text must be printable ASCII",
                    file=file,
                    location=f"line {number}",
                    token=bad,
                )
            originator = _ORIGINATOR.match(line)
            if originator and not items:
                stamp = originator.group(3)
                continue
            if _ENVELOPE.match(line) and not items:
                continue
            items.append((number, line))
        return cls(items, file, stamp)

    def error(self, message: str, number: int, token: str | None = None) -> ParseError:
        return ParseError(message, file=self.file, location=f"line {number}", token=token)


def resolve_day(day_of_month: int, near: datetime, where: ParseError) -> date:
    """The date with this day of month closest to `near` (telex dates carry only the day)."""
    candidates = []
    for shift in (-1, 0, 1):
        month = (near.month - 1 + shift) % 12 + 1
        year = near.year + (near.month - 1 + shift) // 12
        try:
            candidates.append(date(year, month, day_of_month))
        except ValueError:
            continue
    if not candidates:
        raise where
    return min(candidates, key=lambda d: abs(datetime(d.year, d.month, d.day, tzinfo=UTC) - near))


def resolve_time(token: str, flight_day: date, near: datetime, where: ParseError) -> datetime:
    """`HHMM` (the day nearest `near`) or `DDHHMM`, in UTC as telex times are."""
    if not re.fullmatch(r"\d{4}|\d{6}", token):
        raise where
    hours, minutes = int(token[-4:-2]), int(token[-2:])
    if hours > 23 or minutes > 59:
        raise where
    if len(token) == 6:
        day = resolve_day(int(token[:2]), near, where)
        return datetime(day.year, day.month, day.day, hours, minutes, tzinfo=UTC)
    base = datetime(flight_day.year, flight_day.month, flight_day.day, hours, minutes, tzinfo=UTC)
    options = [base + timedelta(days=shift) for shift in (-1, 0, 1)]
    return min(options, key=lambda moment: abs(moment - near))


def source_time(lines: Lines, received_at: datetime) -> datetime:
    """The originator's timestamp (DDHHMM) when the envelope has one, else the receipt time."""
    if lines.originator_time:
        return resolve_time(
            lines.originator_time,
            received_at.date(),
            received_at,
            ParseError("bad originator time"),
        )
    return received_at.astimezone(UTC)
