"""The canonical flight leg: identity as in IATA AIDX, per-field state, times in UTC.

State is kept flat, one entry per field path (`gate`, `times.off_block.estimated`,
`delays.0.code`), because every field is merged on its own; `nested()` gives the JSON shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from jetbridge.bounds import OutOfRange, checked_day, utc_moment


class FlightStatus(StrEnum):
    SCHEDULED = "scheduled"
    OPERATING = "operating"
    DELAYED = "delayed"
    BOARDING = "boarding"
    DEPARTED = "departed"
    ARRIVED = "arrived"
    CANCELLED = "cancelled"
    DIVERTED = "diverted"
    NOT_OPERATING = "not_operating"


MILESTONES = (
    "off_block",
    "take_off",
    "touchdown",
    "on_block",
    "check_in_open",
    "check_in_close",
    "gate_open",
    "boarding_start",
    "final_call",
    "gate_close",
)
TIME_TYPES = ("scheduled", "estimated", "actual", "target")
SCALAR_FIELDS = {
    "status": "operational status: " + ", ".join(s.value for s in FlightStatus),
    "terminal": "departure terminal",
    "gate": "departure gate",
    "stand": "aircraft parking stand",
    "check_in_counters": "check-in counters, e.g. '41-48'",
    "baggage_belt": "arrival baggage reclaim belt",
    "arrival_terminal": "arrival terminal",
    "aircraft_type": "IATA or ICAO aircraft type, e.g. A320",
    "registration": "aircraft registration, e.g. HB-JLA",
    "codeshares": "marketing flights sharing this leg, comma separated, e.g. 'LH4711,SN2031'",
    "remarks": "free-text remark from the source",
    "next_information": "when the operator will next report on a delayed flight (MVT NI), UTC",
    "diversion_airport": "IATA code of the airport the flight diverted to",
}
MAX_DELAYS = 4
MAX_REPEAT = 99  # a flight returning to its stand and leaving again, this many times at most
_AIRLINE = re.compile(r"^([A-Z0-9]{2}|[A-Z]{3})$")
_NUMBER = re.compile(r"^(\d{1,4})([A-Z]?)$")
_AIRPORT = re.compile(r"^[A-Z]{3}$")


class InvalidFlight(ValueError):
    """A flight identity or field value that cannot be accepted; names the field."""


def field_names() -> list[str]:
    """Every canonical field path."""
    times = [f"times.{m}.{t}" for m in MILESTONES for t in TIME_TYPES]
    delays = [f"delays.{n}.{part}" for n in range(MAX_DELAYS) for part in ("code", "minutes")]
    return [*SCALAR_FIELDS, *times, *delays]


FIELDS = frozenset(field_names())


@dataclass(frozen=True, slots=True)
class FlightIdentity:
    """Airline, flight number, origin date (+ repeat number), departure and arrival airports."""

    airline: str
    flight_number: str
    origin_date: date
    departure_airport: str
    arrival_airport: str
    repeat_number: int = 0

    @classmethod
    def create(
        cls,
        *,
        airline: Any,
        flight_number: Any,
        origin_date: Any,
        departure_airport: Any,
        arrival_airport: Any,
        repeat_number: Any = 0,
    ) -> FlightIdentity:
        """Normalise and validate (e.g. flight number 12 -> '0012')."""
        carrier = str(airline or "").strip().upper()
        if not _AIRLINE.match(carrier):
            raise InvalidFlight(f"airline: {airline!r} is not an IATA (2) or ICAO (3) designator")
        number = _NUMBER.match(str(flight_number or "").strip().upper())
        if not number:
            raise InvalidFlight(
                f"flight_number: {flight_number!r} is not 1-4 digits and an optional suffix"
            )
        day = _origin_date(origin_date)
        airports = []
        for name, value in (
            ("departure_airport", departure_airport),
            ("arrival_airport", arrival_airport),
        ):
            code = str(value or "").strip().upper()
            if not _AIRPORT.match(code):
                raise InvalidFlight(f"{name}: {value!r} is not an IATA airport code")
            airports.append(code)
        repeat = _repeat_number(repeat_number)
        return cls(
            carrier,
            f"{int(number.group(1)):04d}{number.group(2)}",
            day,
            airports[0],
            airports[1],
            repeat,
        )

    @property
    def key(self) -> str:
        """Stable flight key, e.g. `LX0100-2026-11-24-ZRH-LHR` (`-R1` appended for a repeat)."""
        route = f"{self.departure_airport}-{self.arrival_airport}"
        base = f"{self.airline}{self.flight_number}-{self.origin_date.isoformat()}-{route}"
        return base + (f"-R{self.repeat_number}" if self.repeat_number else "")

    @property
    def display_number(self) -> str:
        """As passengers read it: `LX100`."""
        number = _NUMBER.match(self.flight_number)
        assert number is not None
        return f"{self.airline}{int(number.group(1))}{number.group(2)}"

    def to_json(self) -> dict[str, Any]:
        return {
            "airline": self.airline,
            "flight_number": self.flight_number,
            "origin_date": self.origin_date.isoformat(),
            "departure_airport": self.departure_airport,
            "arrival_airport": self.arrival_airport,
            "repeat_number": self.repeat_number,
        }


def _parse_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise InvalidFlight(f"origin_date: {value!r} is not a date (YYYY-MM-DD)") from None


def _origin_date(value: Any) -> date:
    day = value if isinstance(value, date) else _parse_date(value)
    try:
        return checked_day(day, "origin_date")
    except OutOfRange as exc:
        raise InvalidFlight(str(exc)) from None


def _repeat_number(value: Any) -> int:
    try:
        repeat = int(value or 0)
    except (TypeError, ValueError):
        raise InvalidFlight(f"repeat_number: {value!r} is not a whole number") from None
    if not 0 <= repeat <= MAX_REPEAT:
        raise InvalidFlight(f"repeat_number: must be from 0 to {MAX_REPEAT}")
    return repeat


def normalise_value(field: str, value: Any) -> Any:
    """Canonical form of one field value: UTC ISO times, integers, upper-case codes, strings."""
    if value is None:
        return None
    if field.startswith("times."):
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise InvalidFlight(f"{field}: {value!r} is not an ISO 8601 time") from None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise InvalidFlight(f"{field}: a time with a UTC offset is required")
        try:
            moment = utc_moment(value, field)
        except OutOfRange as exc:
            raise InvalidFlight(str(exc)) from None
        return moment.isoformat().replace("+00:00", "Z")
    if field.endswith(".minutes"):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise InvalidFlight(f"{field}: {value!r} is not a number of minutes") from None
    if field == "status":
        try:
            return FlightStatus(str(value)).value
        except ValueError:
            raise InvalidFlight(
                f"status: {value!r} is not one of {', '.join(s.value for s in FlightStatus)}"
            ) from None
    text = str(value).strip()
    return (
        text.upper()
        if field in {"aircraft_type", "registration", "diversion_airport", "gate", "stand"}
        else text
    )


def nested(flat: dict[str, Any]) -> dict[str, Any]:
    """Flat field paths to the nested JSON shape; delays become a list."""
    tree: dict[str, Any] = {}
    delays: dict[int, dict[str, Any]] = {}
    for path, value in flat.items():
        parts = path.split(".")
        if parts[0] == "delays":
            delays.setdefault(int(parts[1]), {})[parts[2]] = value
            continue
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    tree["delays"] = [
        delays[n] for n in sorted(delays) if delays[n].get("code") or delays[n].get("minutes")
    ]
    return tree


def flight_json_schema() -> dict[str, Any]:
    """JSON Schema of a flight as the API, SSE, MQTT and webhooks show it."""
    time_type = {"type": "string", "format": "date-time", "description": "UTC, ISO 8601"}
    milestone = {
        "type": "object",
        "properties": {
            kind: {**time_type, "description": f"{kind} time (UTC)"} for kind in TIME_TYPES
        },
        "additionalProperties": False,
    }
    identity = {
        "flight_key": {"type": "string", "description": "stable key: airline+number-date-from-to"},
        "flight": {
            "type": "string",
            "description": "flight number as passengers read it, e.g. LX100",
        },
        "airline": {"type": "string", "description": "IATA (2) or ICAO (3) airline designator"},
        "flight_number": {"type": "string", "description": "four digits and an optional suffix"},
        "origin_date": {
            "type": "string",
            "format": "date",
            "description": "scheduled departure date",
        },
        "departure_airport": {"type": "string", "description": "IATA airport code"},
        "arrival_airport": {"type": "string", "description": "IATA airport code"},
        "repeat_number": {"type": "integer", "description": "AIDX repeat number, 0 normally"},
        "version": {"type": "integer", "description": "rises by one with every effective change"},
    }
    scalars: dict[str, dict[str, Any]] = {
        name: {"type": "string", "description": text} for name, text in SCALAR_FIELDS.items()
    }
    scalars["status"] = {
        "enum": [s.value for s in FlightStatus],
        "description": SCALAR_FIELDS["status"],
    }
    delays = {
        "type": "array",
        "description": "IATA AHM 730 delay codes with minutes and meaning",
        "items": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "minutes": {"type": "integer"},
                "meaning": {"type": ["string", "null"]},
            },
        },
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "jetbridge flight leg",
        "type": "object",
        "required": ["flight_key", "airline", "flight_number", "origin_date", "version", "status"],
        "properties": {
            **identity,
            **scalars,
            "times": {
                "type": "object",
                "description": "per milestone, its scheduled/estimated/actual/target times",
                "properties": dict.fromkeys(MILESTONES, milestone),
            },
            "delays": delays,
        },
    }
