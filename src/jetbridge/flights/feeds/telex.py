"""Shared pieces of the telex parsers: the SITA Type B envelope, message splitting, partial
identities, and day and time resolution.

A file or push may hold several messages. Each begins with its envelope (an optional `ZCZC`
line, the priority and address lines such as `QU ZRHKKLX LHRKKBA`, further address lines, the
originator line `.FRAKKLH 241530/1234ABC`; or the fields of a SITATEX file, `=PRIORITY`,
`=DESTINATION TYPE B`, `=ORIGIN`, `=MSGID`, `=SMI` up to `=TEXT`) or directly with its standard
message identifier (`MVT`); it ends at `NNNN`, a line holding only `=`, or where the next one
begins. SOH, STX and ETX framing characters are dropped; line ends may be LF, CRLF or CR.
"""

from __future__ import annotations

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
_FLAGS = {"COR", "REV", "PDM"}
_SITATEX_FIELD = re.compile(r"^=[A-Z][A-Z ]{1,30}$")
_STAMP = re.compile(r"\d{6}")
_LABEL = re.compile(r"[A-Z0-9]{3}")
_TIME = re.compile(r"\d{4}|\d{6}")
_DAY = timedelta(days=1)
_HOUR = timedelta(hours=1)


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
    # Raw text not understood (an unknown element, a new action code), by where it was found.
    unknown: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)  # why a kept part was not understood
    correction: bool = False  # COR: supersedes the message it corrects
    possible_duplicate: bool = False  # PDM: fills what is missing, changes nothing known
    # Time fields the message gave without a day (HHMM): placed on the flight's day, they move
    # to the day before or after when the flight's schedule says so (see `anchor_times`).
    dayless: set[str] = field(default_factory=set)
    # Fields the message withdraws (an MVT RR: the flight is back on its stand, not departed).
    clears: set[str] = field(default_factory=set)

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
        return Update(
            identity,
            self.source,
            self.source_time,
            self.fields,
            clears=frozenset(self.clears - set(self.fields)),
            sequence=1 if self.correction else 0,
            unknown=self.unknown,
            only_missing=self.possible_duplicate,
        )

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
            **({"clears": sorted(self.clears)} if self.clears else {}),
            **({"unknown": dict(self.unknown)} if self.unknown else {}),
            **({"correction": True} if self.correction else {}),
            **({"possible_duplicate": True} if self.possible_duplicate else {}),
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
        self.field: str | None = None  # in a SITATEX file envelope: the field being read
        self.smi: str | None = None  # its `=SMI`, the identifier its text may leave out
        self.flags: list[tuple[int, str]] = []  # `COR`/`PDM` lines read before an identifier

    def feed(self, number: int, line: str) -> None:
        first = line[:1]
        if first == "=" and _SITATEX_FIELD.match(line):
            self._sitatex(number, line[1:])
            return
        if self.field is not None:
            if self.field == "MSGID" and _STAMP.fullmatch(line):
                self.stamp = line
            elif self.field == "SMI" and line:
                self.smi = line.split()[0]
            return
        if self.smi and line:
            if line.split(" ", 1)[0] not in self.identifiers:
                self._open(number, self.smi)  # the identifier given only in `=SMI`
            self.smi = None
        originator = _ORIGINATOR.match(line) if first == "." else None
        if line in _END or (first == "Z" and line.startswith("ZCZC")):
            self._close()
            self.stamp = None
        elif (first == "Q" and _PRIORITY.match(line)) or (
            (self.heading or self.current is None) and _ADDRESSES.match(line)
        ):  # the address line, with its priority code or without (then of normal priority)
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
        elif (line == "-" or line.startswith("- ")) and self._air_ground_heading():
            self.current = None  # the air-ground heading ends; the text follows the dash
            if line[2:].strip():
                self.feed(number, line[2:].strip())
        elif self.current is None and line in _FLAGS:
            self.flags.append((number, line))  # `COR` or `PDM` before the identifier
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
        if self.flags:  # flags and nothing after them: a message without its identifier
            self.messages.append(Telex(self.flags, self.file, self.stamp))
        return self.messages

    def _sitatex(self, number: int, field: str) -> None:
        """SITATEX files (`=HEADER`, `=PRIORITY`, `=DESTINATION TYPE B`, `=ORIGIN`, `=MSGID`,
        `=SMI`, `=TEXT`): the fields before `=TEXT` are envelope, `=MSGID` its DDHHMM time."""
        self._close()
        self.heading = False
        name = field.strip()
        if name == "TEXT":
            self.field = None
        else:
            if name in {"HEADER", "PRIORITY"}:
                self.stamp = None
                self.smi = None
            self.field = name.split()[0]

    def _air_ground_heading(self) -> bool:
        """An air-ground (ACARS) message relayed as type B: a label (`A80`), `FI` and `DT`
        lines, then `-` before the text; the label and lines are envelope, not text."""
        current = self.current
        return (
            current is not None
            and _LABEL.fullmatch(current.items[0][1]) is not None
            and any(text.startswith("FI ") for _, text in current.items[1:])
            and all(text[:3] in {"FI ", "DT "} for _, text in current.items[1:])
        )

    def _between(self) -> bool:
        """An originator line belongs to an envelope, not to text that has begun."""
        return self.current is None or self.heading or self.current.items[-1][1] == ""

    def _open(self, number: int, line: str) -> None:
        """A message begins; flag lines read before its identifier follow it, as they may."""
        self.heading = False
        self.current = Telex([(number, line), *self.flags], self.file, self.stamp)
        self.flags = []
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


def resolve_time(token: str, flight_day: date, fail: Callable[[], ParseError]) -> datetime:
    """`HHMM` on the flight's day, or `DDHHMM` on the date with that day of month nearest the
    flight's day (a month or year end may lie between), in UTC as telex times are.

    A time without a day is placed on the flight's day here; whether it lies across midnight
    is for the flight's schedule to say (`anchor_times`), or, without one, for the order of
    the times in the message itself (`in_order`). The time a message was received plays no
    part: a late message about yesterday's flight still speaks of yesterday.
    """
    if not _TIME.fullmatch(token):
        raise fail()
    hours, minutes = int(token[-4:-2]), int(token[-2:])
    if hours > 23 or minutes > 59:
        raise fail()
    if len(token) == 6:
        near = datetime(flight_day.year, flight_day.month, flight_day.day, 12, tzinfo=UTC)
        day = resolve_day(int(token[:2]), near, fail)
        return datetime(day.year, day.month, day.day, hours, minutes, tzinfo=UTC)
    return datetime(flight_day.year, flight_day.month, flight_day.day, hours, minutes, tzinfo=UTC)


# The order of a flight's milestones: a later one given without a day that reads earlier than
# one before it lies across midnight.
ORDER = ("off_block", "take_off", "touchdown", "on_block")
_DEPARTING = {"off_block", "take_off"}


def in_order(fields: dict[str, Any], dayless: set[str]) -> None:
    """Move day-less times that read earlier than an earlier milestone of the same message to
    the next day: `AD2350/0005` took off after midnight, `AA2355/0004` was on blocks after it."""
    for kind in ("actual", "estimated"):
        previous: datetime | None = None
        for milestone in ORDER:
            name = f"times.{milestone}.{kind}"
            value = fields.get(name)
            if not isinstance(value, datetime):
                continue
            if previous is not None and name in dayless and value < previous:
                value = value + _DAY
                fields[name] = value
            previous = value
    actual_off = fields.get("times.off_block.actual")
    for milestone in ("touchdown", "on_block"):
        name = f"times.{milestone}.estimated"
        value = fields.get(name)
        if (
            isinstance(value, datetime)
            and isinstance(actual_off, datetime)
            and name in dayless
            and value < actual_off
        ):
            fields[name] = value + _DAY


def anchor_times(fields: dict[str, Any], dayless: set[str], schedule: dict[str, Any]) -> None:
    """Place each day-less time on the day before, of or after the flight's day, whichever
    brings it nearest the flight's schedule: departure milestones by the scheduled off-block,
    arrival ones by the scheduled on-block. A flight scheduled at 23:50 that leaves at 00:20
    left the next day; one scheduled at 00:05 that leaves at 23:58 left the day before."""
    departure = _moment(schedule.get("times.off_block.scheduled"))
    arrival = _moment(schedule.get("times.on_block.scheduled"))
    for name in sorted(dayless):
        value = fields.get(name)
        if not isinstance(value, datetime):
            continue
        candidates = [value + _DAY * shift for shift in (-1, 0, 1)]
        reference = departure if name.split(".")[1] in _DEPARTING else arrival
        if reference is not None:
            fields[name] = min(candidates, key=lambda moment: abs(moment - reference))
        elif departure is not None:  # an arrival, and only the departure is scheduled
            fields[name] = next((c for c in candidates if c >= departure - _HOUR), candidates[-1])


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


def source_time(telex: Telex, received_at: datetime) -> datetime:
    """The originator's timestamp (DDHHMM) when the envelope has one, else the receipt time."""
    if telex.originator_time:
        return resolve_time(
            telex.originator_time,
            received_at.astimezone(UTC).date(),
            lambda: ParseError("bad originator time", file=telex.file),
        )
    return received_at.astimezone(UTC)
