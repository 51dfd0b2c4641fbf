"""SSIM chapter 7 schedule files: fixed 200-byte records (1 header, 2 carrier, 3 flight leg,
4 segment data, 5 trailer, and zero-filled padding), expanded into dated flight legs.

A leg record holds a period of operation (an open end, `00XXX00`, runs to the horizon
`FeedLimits.open_period_days` from its first day), its days (Monday=1) and frequency (every
week, or every second week), the departure and arrival stations with their local times and
UTC variations, terminals and the aircraft type. Segment data element 10 lists the codeshare
numbers marketed on an operating leg; element 50 marks a leg record as a marketing duplicate
of another flight, whose number becomes a codeshare of that flight rather than a leg of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from jetbridge.flights.feeds.errors import ParseError
from jetbridge.flights.feeds.limits import MAX_PERIOD_SETTING, FeedLimits, FlightCount
from jetbridge.flights.feeds.schedule_dates import MONTHS
from jetbridge.flights.feeds.telex import decode

WIDTH = 200
PASSENGER_SERVICES = frozenset("JSUCGQO")
# IATA aircraft codes of SSIM to the ICAO designators the hub and the seat maps use.
AIRCRAFT = {
    "319": "A319", "320": "A320", "32N": "A20N", "321": "A321", "32Q": "A21N", "221": "BCS1",
    "223": "BCS3", "738": "B738", "7M8": "B38M", "E90": "E190", "E95": "E195", "333": "A333",
    "339": "A339", "343": "A343", "359": "A359", "35K": "A35K", "388": "A388", "77W": "B77W",
    "788": "B788", "789": "B789", "781": "B78X", "DH4": "DH8D", "AT7": "AT76",
}  # fmt: skip
_DESIGNATOR = re.compile(r"([A-Z0-9]{2}[A-Z]?)\s*(\d{1,4}[A-Z]?)")
_OFFSET = re.compile(r"^[+-]\d{4}$")
OPEN_PERIOD = "00XXX00"  # a period of operation without a last day


@dataclass(frozen=True, slots=True)
class ScheduledLeg:
    """One dated leg: times in UTC, the operating date as the local date of departure."""

    airline: str
    flight_number: str
    origin_date: date
    departure_airport: str
    arrival_airport: str
    departure: datetime
    arrival: datetime
    aircraft_type: str
    service_type: str
    terminal: str | None = None
    arrival_terminal: str | None = None
    codeshares: tuple[str, ...] = ()

    @property
    def carries_passengers(self) -> bool:
        return self.service_type in PASSENGER_SERVICES


@dataclass
class _Record:
    """A type 3 leg record, before its days are expanded."""

    line: int
    airline: str
    number: str
    variation: str
    sequence: str
    service_type: str
    first: date
    last: date
    days: frozenset[int]
    fortnightly: bool
    departure: tuple[str, int, int, str | None]  # station, minutes after midnight, offset, term.
    arrival: tuple[str, int, int, str | None]
    day_shift: tuple[int, int]  # departure and arrival date variation
    aircraft: str
    codeshares: list[str] = field(default_factory=list)
    duplicate_of: str | None = None

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.airline, self.number, self.variation, self.sequence)


class _Reader:
    def __init__(self, file: str | None, limits: FeedLimits) -> None:
        self.file = file
        self.limits = limits
        self.utc = False
        self.records: list[_Record] = []

    def fail(self, line: int, column: int, message: str, token: str) -> ParseError:
        return ParseError(message, file=self.file, location=f"line {line}, column {column}",
                          token=token)  # fmt: skip

    def feed(self, line: int, text: str) -> None:
        if set(text) <= {"0"}:
            return
        kind = text[0]
        if kind == "2":
            if text[1] not in "UL":
                raise self.fail(line, 2, "time mode must be U (UTC) or L (local)", text[1])
            self.utc = text[1] == "U"
        elif kind == "3":
            self.records.append(self.leg(line, text))
        elif kind == "4":
            self.segment(line, text)
        elif kind not in "15":
            raise self.fail(line, 1, "record type must be 1, 2, 3, 4 or 5", kind)

    def leg(self, line: int, text: str) -> _Record:
        airline = text[2:5].strip()
        if not re.fullmatch(r"[A-Z0-9]{2}[A-Z]?", airline):
            raise self.fail(line, 3, "airline designator must be 2 or 3 letters/digits", airline)
        number = (text[5:9].strip().lstrip("0") or "0") + text[1].strip()
        if not re.fullmatch(r"\d{1,4}[A-Z]?", number):
            raise self.fail(line, 6, "flight number must be 1-4 digits", text[5:9])
        first = self.date(line, 15, text[14:21])
        if text[21:28] == OPEN_PERIOD:
            # Open-ended: sold up to a horizon from its first day, until a file gives the end.
            last = first + timedelta(days=self.limits.open_period_horizon - 1)
        else:
            last = self.date(line, 22, text[21:28])
        if last < first:
            raise self.fail(line, 22, "period ends before it starts", text[21:28])
        if (last - first).days + 1 > self.limits.max_period_days:
            raise self.fail(line, 22, f"period longer than {self.limits.max_period_days} days "
                            f"({MAX_PERIOD_SETTING})", text[21:28])  # fmt: skip
        days = frozenset(int(c) for c in text[28:35] if c.strip())
        if not days or not days <= set(range(1, 8)) or not re.fullmatch(r"[1-7 ]{7}", text[28:35]):
            raise self.fail(line, 29, "days of operation must be digits 1-7 or spaces", text[28:35])
        if text[35] not in " 12":
            raise self.fail(line, 36, "frequency rate must be blank, 1 or 2", text[35])
        aircraft = text[72:75].strip()
        if not re.fullmatch(r"[A-Z0-9]{3}", aircraft):
            raise self.fail(line, 73, "aircraft type must be 3 letters/digits", aircraft)
        return _Record(
            line=line, airline=airline, number=number, variation=text[9:11],
            sequence=text[11:13], service_type=text[13], first=first, last=last, days=days,
            fortnightly=text[35] == "2",
            departure=self.station(line, text, 37, 40, 48, 53),
            arrival=self.station(line, text, 55, 62, 66, 71),
            day_shift=(self.shift(line, 193, text[192]), self.shift(line, 194, text[193])),
            aircraft=AIRCRAFT.get(aircraft, aircraft),
        )  # fmt: skip

    def station(
        self, line: int, text: str, at: int, time_at: int, offset_at: int, terminal_at: int
    ) -> tuple[str, int, int, str | None]:
        code = text[at - 1 : at + 2]
        if not re.fullmatch(r"[A-Z]{3}", code):
            raise self.fail(line, at, "station must be a 3-letter IATA code", code)
        clock = text[time_at - 1 : time_at + 3]
        if not re.fullmatch(r"\d{4}", clock) or int(clock[:2]) > 23 or int(clock[2:]) > 59:
            raise self.fail(line, time_at, "time must be HHMM", clock)
        offset = text[offset_at - 1 : offset_at + 4]
        if not _OFFSET.fullmatch(offset) or int(offset[1:3]) > 14 or int(offset[3:]) > 59:
            raise self.fail(line, offset_at, "UTC variation must be +HHMM or -HHMM", offset)
        sign = -1 if offset[0] == "-" else 1
        minutes = sign * (int(offset[1:3]) * 60 + int(offset[3:]))
        terminal = text[terminal_at - 1 : terminal_at + 1].strip() or None
        return code, int(clock[:2]) * 60 + int(clock[2:]), minutes, terminal

    def shift(self, line: int, column: int, char: str) -> int:
        if char in " 0":
            return 0
        if char == "A":
            return -1
        if char.isdigit():
            return int(char)
        raise self.fail(line, column, "date variation must be 0-9 or A (the day before)", char)

    def date(self, line: int, column: int, token: str) -> date:
        month = MONTHS.get(token[2:5])
        try:
            if month is None:
                raise ValueError
            return date(2000 + int(token[5:7]), month, int(token[:2]))
        except ValueError:
            raise self.fail(line, column, "date must look like 24NOV26", token) from None

    def segment(self, line: int, text: str) -> None:
        key = (text[2:5].strip(), (text[5:9].strip().lstrip("0") or "0") + text[1].strip(),
               text[9:11], text[11:13])  # fmt: skip
        owners = [r for r in self.records if r.key == key]
        if not owners:
            raise self.fail(line, 3, "segment record for a leg not given before it", text[2:13])
        element = text[30:33]
        data = text[39:194].strip()
        if element == "010":
            found = [a + n for a, n in _DESIGNATOR.findall(data)]
            if not found:
                raise self.fail(line, 40, "codeshare numbers must look like LH 4711", data)
            owners[-1].codeshares.extend(found)
        elif element == "050":
            match = _DESIGNATOR.search(data)
            if match is None:
                raise self.fail(line, 40, "the operating flight must look like LX 318", data)
            owners[-1].duplicate_of = match.group(1) + match.group(2).lstrip("0")


def parse_ssim(
    data: str | bytes, *, file: str | None = None, limits: FeedLimits | None = None
) -> list[ScheduledLeg]:
    """Every dated leg of the file's flights; raises ParseError naming line, column and token,
    or the bound the file exceeds (legs per message, length of a period)."""
    reader = _Reader(file, limits or FeedLimits())
    text = decode(data)
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        if len(raw) > WIDTH:
            raise reader.fail(number, WIDTH + 1, f"records are {WIDTH} characters", raw[WIDTH:])
        reader.feed(number, raw.ljust(WIDTH))
    count = FlightCount(reader.limits, file)
    for record in reader.records:
        count.add(len(_dates(record)), location=f"line {record.line}")
    count.check()
    return _legs(reader.records, utc=reader.utc)


def _dates(record: _Record) -> list[date]:
    days = []
    day = record.first
    while day <= record.last:
        week = (day - record.first).days // 7
        if day.isoweekday() in record.days and not (record.fortnightly and week % 2):
            days.append(day)
        day += timedelta(days=1)
    return days


def _legs(records: list[_Record], *, utc: bool) -> list[ScheduledLeg]:
    marketed: dict[str, list[str]] = {}
    for record in records:
        if record.duplicate_of is not None:
            marketed.setdefault(record.duplicate_of, []).append(record.airline + record.number)
    legs = []
    for record in records:
        if record.duplicate_of is not None:
            continue
        shares = tuple(
            dict.fromkeys(record.codeshares + marketed.get(record.airline + record.number, []))
        )
        for day in _dates(record):
            legs.append(_dated(record, day, utc=utc, codeshares=shares))
    return legs


def _moment(day: date, point: tuple[str, int, int, str | None], shift: int, utc: bool) -> datetime:
    _, minutes, offset, _ = point
    clock = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
        days=shift, minutes=minutes
    )
    return clock if utc else clock - timedelta(minutes=offset)


def _dated(record: _Record, day: date, *, utc: bool, codeshares: tuple[str, ...]) -> ScheduledLeg:
    departure = _moment(day, record.departure, record.day_shift[0], utc)
    arrival = _moment(day, record.arrival, record.day_shift[1], utc)
    if arrival <= departure:
        raise ParseError(
            "arrival must be after departure",
            location=f"line {record.line}",
            token=f"{record.airline}{record.number} {day.isoformat()}",
        )
    local_day = (departure + timedelta(minutes=record.departure[2])).date()
    return ScheduledLeg(
        airline=record.airline, flight_number=record.number, origin_date=local_day,
        departure_airport=record.departure[0], arrival_airport=record.arrival[0],
        departure=departure, arrival=arrival, aircraft_type=record.aircraft,
        service_type=record.service_type, terminal=record.departure[3],
        arrival_terminal=record.arrival[3], codeshares=codeshares,
    )  # fmt: skip
