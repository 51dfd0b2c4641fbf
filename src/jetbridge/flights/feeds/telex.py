"""Shared pieces of the telex parsers: the SITA Type B envelope, message splitting, partial
identities, and day and time resolution.

A file or push may hold several messages. Each begins with its envelope (an optional `ZCZC`
line, the priority and address lines such as `QU ZRHKKLX LHRKKBA`, further address lines, the
originator line `.FRAKKLH 241530/1234ABC`) or directly with its standard message identifier
(`MVT`); it ends at `NNNN`, a line holding only `=`, or where the next one begins. SOH, STX and
ETX framing characters are dropped; line ends may be LF, CRLF or CR.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from jetbridge.flights.feeds.errors import ParseError
from jetbridge.flights.merge import Update
from jetbridge.flights.model import FlightIdentity, normalise_value

MAX_BYTES = 64_000
_LINE_BREAK = re.compile(r"\r*\n|\r")
_FRAMING = str.maketrans("", "", "\x01\x02\x03")
_UNPRINTABLE = re.compile(r"[^\t\x20-\x7e]")
_PRIORITY = re.compile(r"^Q[A-Z](?:\s+[A-Z0-9]{7})*$")
_ADDRESSES = re.compile(r"^[A-Z0-9]{7}(?:\s+[A-Z0-9]{7})*$")
_ORIGINATOR = re.compile(r"^\.([A-Z0-9]{7})(?:\s+(\d{6}))?(?:\s*/\s*\S+)?(?:\s.*)?$")
_END = {"NNNN", "="}
_TIME = re.compile(r"\d{4}|\d{6}")
_DAY = timedelta(days=1)


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
class Telex:
    """One message's text lines (numbered as in the file, upper-cased, envelope removed).

    Blank lines inside the text are kept as empty strings: they end an MVT's SI text.
    """

    items: list[tuple[int, str]]
    file: str | None
    originator_time: str | None = None

    def error(self, message: str, number: int, token: str | None = None) -> ParseError:
        return ParseError(message, file=self.file, location=f"line {number}", token=token)

    def text_lines(self) -> list[tuple[int, str]]:
        return [(number, line) for number, line in self.items if line]


def decode(data: str | bytes) -> str:
    """Telex bytes as text: UTF-8 (a BOM is dropped), else Latin-1 so that the printable-ASCII
    check can name the offending line and character."""
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_telexes(data: str | bytes, file: str | None, identifiers: Collection[str]) -> list[Telex]:
    """Split `data` into messages that start with one of `identifiers` (e.g. `MVT`)."""
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "replace"))
    if size > MAX_BYTES:
        raise ParseError(f"message longer than {MAX_BYTES} bytes", file=file)
    text = decode(data)
    if "\x01" in text or "\x02" in text or "\x03" in text:
        text = text.translate(_FRAMING)
    lines = _LINE_BREAK.split(text)
    if _UNPRINTABLE.search("".join(lines)):
        _refuse_unprintable(lines, file)
    reader = _Reader(file, frozenset(identifiers))
    for number, raw in enumerate(lines, 1):
        line = raw.strip().upper()
        if "  " in line or "\t" in line:
            line = " ".join(line.split())
        reader.feed(number, line)
    return reader.finish()


def _refuse_unprintable(lines: list[str], file: str | None) -> None:
    for number, line in enumerate(lines, 1):
        bad = _UNPRINTABLE.search(line)
        if bad:
            raise ParseError(
                "telex text must be printable ASCII",
                file=file,
                location=f"line {number}",
                token=bad.group(0),
            )


class _Reader:
    """Between messages, in an envelope (after its priority line), or in a message's text."""

    def __init__(self, file: str | None, identifiers: frozenset[str]) -> None:
        self.file = file
        self.identifiers = identifiers
        self.messages: list[Telex] = []
        self.current: Telex | None = None
        self.heading = False  # after a priority line, further address lines may follow
        self.stamp: str | None = None  # the next message's originator time

    def feed(self, number: int, line: str) -> None:
        first = line[:1]
        originator = _ORIGINATOR.match(line) if first == "." else None
        if line in _END or (first == "Z" and line.startswith("ZCZC")):
            self._close()
            self.stamp = None
        elif (first == "Q" and _PRIORITY.match(line)) or (self.heading and _ADDRESSES.match(line)):
            self._close()
            self.heading = True
            self.stamp = None
        elif originator and self._between():
            self._close()
            self.heading = False
            self.stamp = originator.group(2)
        elif line.split(" ", 1)[0] in self.identifiers:
            self._close()
            self._open(number, line)
        elif self.current is None:
            if line:
                self._open(number, line)
        elif line[-1:] == "=":
            self.current.items.append((number, line[:-1].rstrip()))
            self._close()
            self.stamp = None
        else:
            self.current.items.append((number, line))

    def finish(self) -> list[Telex]:
        self._close()
        return self.messages

    def _between(self) -> bool:
        """An originator line belongs to an envelope, not to text that has begun."""
        return self.current is None or self.heading or self.current.items[-1][1] == ""

    def _open(self, number: int, line: str) -> None:
        self.heading = False
        self.current = Telex([(number, line)], self.file, self.stamp)
        self.stamp = None

    def _close(self) -> None:
        if self.current is not None:
            self.messages.append(self.current)
        self.current = None


def resolve_day(day_of_month: int, near: datetime, fail: Callable[[], ParseError]) -> date:
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
        raise fail()
    return min(candidates, key=lambda d: abs(datetime(d.year, d.month, d.day, tzinfo=UTC) - near))


def resolve_time(
    token: str, flight_day: date, near: datetime, fail: Callable[[], ParseError]
) -> datetime:
    """`HHMM` (the day nearest `near`) or `DDHHMM`, in UTC as telex times are."""
    if not _TIME.fullmatch(token):
        raise fail()
    hours, minutes = int(token[-4:-2]), int(token[-2:])
    if hours > 23 or minutes > 59:
        raise fail()
    if len(token) == 6:
        day = resolve_day(int(token[:2]), near, fail)
        return datetime(day.year, day.month, day.day, hours, minutes, tzinfo=UTC)
    base = datetime(flight_day.year, flight_day.month, flight_day.day, hours, minutes, tzinfo=UTC)
    nearest = math.ceil((near - base) / _DAY - 0.5)  # the day before, the same day or the next
    return base + _DAY * max(-1, min(1, nearest))


def source_time(telex: Telex, received_at: datetime) -> datetime:
    """The originator's timestamp (DDHHMM) when the envelope has one, else the receipt time."""
    if telex.originator_time:
        return resolve_time(
            telex.originator_time,
            received_at.date(),
            received_at,
            lambda: ParseError("bad originator time", file=telex.file),
        )
    return received_at.astimezone(UTC)
