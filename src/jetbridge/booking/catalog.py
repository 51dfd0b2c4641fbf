"""Flight catalog: import a schedule, lay out each flight's seats, search with live fares."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Connection, insert, select

from jetbridge.booking.inventory import availability
from jetbridge.booking.money import Money
from jetbridge.booking.seatmap import seat_map
from jetbridge.bounds import OutOfRange, checked_day
from jetbridge.flights.hub import load_state
from jetbridge.flights.model import FlightIdentity
from jetbridge.storage.schema import codeshare_flights, scheduled_flights, seats


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a UTC offset")
    return value.astimezone(UTC)


UtcDateTime = Annotated[datetime, AfterValidator(_utc)]
Airport = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
Designator = Annotated[str, Field(pattern=r"^[A-Z0-9]{2}\d{1,4}[A-Z]?$")]


class ScheduleEntry(BaseModel):
    """One dated flight of a schedule file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    airline: Annotated[str, Field(pattern=r"^[A-Z0-9]{2}$")]
    flight_number: Annotated[str, Field(pattern=r"^\d{1,4}[A-Z]?$")]
    origin: Airport
    destination: Airport
    departure: UtcDateTime
    arrival: UtcDateTime
    aircraft_type: Annotated[str, Field(pattern=r"^[A-Z0-9]{3,4}$")]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    fares: dict[str, Annotated[int, Field(gt=0)]]
    # The operating date as the airline counts it: the local date of departure. Without it,
    # the UTC date of departure.
    origin_date: date | None = None
    terminal: Annotated[str, Field(pattern=r"^[A-Z0-9]{1,2}$")] | None = None
    arrival_terminal: Annotated[str, Field(pattern=r"^[A-Z0-9]{1,2}$")] | None = None
    codeshares: Annotated[list[Designator], Field(max_length=8)] = []

    @model_validator(mode="after")
    def _consistent(self) -> ScheduleEntry:
        if self.arrival <= self.departure:
            raise ValueError("arrival must be after departure")
        if self.origin == self.destination:
            raise ValueError("origin and destination must differ")
        if self.origin_date is not None and abs((self.origin_date - self.day_in_utc).days) > 1:
            raise ValueError("origin_date must be within a day of the departure (UTC)")
        if self.designator in self.codeshares:
            raise ValueError("codeshares: the operating flight cannot be its own codeshare")
        unknown = set(self.fares) - set(seat_map(self.aircraft_type))
        if unknown:
            raise ValueError(f"fares for cabins the aircraft does not have: {sorted(unknown)}")
        return self

    @property
    def day_in_utc(self) -> date:
        return self.departure.date()

    @property
    def operating_date(self) -> date:
        return self.origin_date or self.day_in_utc

    @property
    def designator(self) -> str:
        return f"{self.airline}{self.flight_number}"

    @property
    def flight_id(self) -> str:
        """Airline, zero-padded number (with suffix) and operating date: `LX0100-2026-12-01`."""
        return sellable_id(self.airline, self.flight_number, self.operating_date)

    @property
    def identity(self) -> FlightIdentity:
        """The hub's flight leg this entry is."""
        return FlightIdentity.create(
            airline=self.airline,
            flight_number=self.flight_number,
            origin_date=self.operating_date,
            departure_airport=self.origin,
            arrival_airport=self.destination,
        )


def sellable_id(airline: str, flight_number: str, day: date) -> str:
    """The catalogue's id of a flight number on a day: `LX0100-2026-12-01`."""
    digits = flight_number.rstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    suffix = flight_number[len(digits) :]
    return f"{airline}{int(digits):04d}{suffix}-{day.isoformat()}"


def _split(designator: str) -> tuple[str, str]:
    return designator[:2], designator[2:]


def import_schedule(conn: Connection, entries: Sequence[ScheduleEntry]) -> int:
    """Add flights not yet known, with all their seats free; returns how many were new."""
    added = 0
    for entry in entries:
        exists = conn.execute(
            select(scheduled_flights.c.flight_id).where(
                scheduled_flights.c.flight_id == entry.flight_id
            )
        ).first()
        if exists:
            continue
        conn.execute(insert(scheduled_flights).values(**_flight_row(entry)))
        layout = seat_map(entry.aircraft_type)
        rows = [
            {"flight_id": entry.flight_id, "seat": seat, "cabin": cabin, "status": "free"}
            for cabin, cabin_seats in layout.items()
            if cabin in entry.fares
            for seat in cabin_seats
        ]
        conn.execute(insert(seats), rows)
        _add_codeshares(conn, entry)
        added += 1
    return added


def _add_codeshares(conn: Connection, entry: ScheduleEntry) -> None:
    for designator in entry.codeshares:
        airline, number = _split(designator)
        marketing_id = sellable_id(airline, number, entry.operating_date)
        known = conn.execute(
            select(codeshare_flights.c.flight_id).where(
                codeshare_flights.c.marketing_id == marketing_id
            )
        ).first()
        if known is None:
            conn.execute(
                insert(codeshare_flights).values(
                    marketing_id=marketing_id,
                    airline=airline,
                    flight_number=number,
                    flight_id=entry.flight_id,
                )
            )


def _flight_row(entry: ScheduleEntry) -> dict[str, Any]:
    return {
        "flight_id": entry.flight_id,
        "airline": entry.airline,
        "flight_number": entry.flight_number,
        "origin": entry.origin,
        "destination": entry.destination,
        "departure_date": entry.operating_date.isoformat(),
        "departs_at": entry.departure.timestamp(),
        "arrives_at": entry.arrival.timestamp(),
        "aircraft_type": entry.aircraft_type,
        "currency": entry.currency,
        "fares": json.dumps(entry.fares),
        "flight_key": entry.identity.key,
    }


def current_fare(*, base: int, capacity: int, left: int) -> int:
    """Price rises with the load factor, up to double the base fare; whole currency units."""
    price = base if capacity <= 0 else base * (2 * capacity - left) // capacity
    return (price + 50) // 100 * 100


def operating_flight_id(conn: Connection, flight_id: str) -> str:
    """The flight sold under this id: itself, or the operating flight of a codeshare number."""
    operating = conn.execute(
        select(codeshare_flights.c.flight_id).where(codeshare_flights.c.marketing_id == flight_id)
    ).scalar()
    return str(operating) if operating is not None else flight_id


def flight_offer(conn: Connection, *, flight_id: str, now: float) -> dict[str, Any] | None:
    """A flight's offer, by its id or a codeshare number's (the offer names the operating one)."""
    row = conn.execute(
        select(scheduled_flights).where(
            scheduled_flights.c.flight_id == operating_flight_id(conn, flight_id)
        )
    ).first()
    if row is None:
        return None
    return _offer(conn, row, now)


def codeshares_of(conn: Connection, flight_ids: Sequence[str]) -> dict[str, list[str]]:
    """The marketing numbers each operating flight is also sold as (`LH4711`)."""
    found: dict[str, list[str]] = {}
    if not flight_ids:
        return found
    rows = conn.execute(
        select(codeshare_flights)
        .where(codeshare_flights.c.flight_id.in_(list(flight_ids)))
        .order_by(codeshare_flights.c.marketing_id)
    )
    for row in rows:
        found.setdefault(row.flight_id, []).append(f"{row.airline}{row.flight_number}")
    return found


# A flight the hub reports in one of these states is no longer sold.
NOT_SELLABLE = frozenset({"cancelled", "not_operating", "diverted", "departed", "arrived"})


def hub_status(conn: Connection, flight_key: str) -> str:
    """The flight's status in the hub; `scheduled` while the hub has not heard of it."""
    state = load_state(conn, flight_key)
    return "scheduled" if state is None else state.status


def _offer(conn: Connection, row: Any, now: float) -> dict[str, Any]:
    fares: dict[str, int] = json.loads(row.fares)
    free = availability(conn, flight_id=row.flight_id, now=now)
    layout = seat_map(row.aircraft_type)
    cabins = {}
    for cabin, base in fares.items():
        left = free.get(cabin, 0)
        fare = Money(current_fare(base=base, capacity=len(layout[cabin]), left=left), row.currency)
        cabins[cabin] = {"fare": fare.to_json(), "seats_left": left}
    return {
        "flight_id": row.flight_id,
        "flight_key": row.flight_key,
        "codeshares": codeshares_of(conn, [row.flight_id]).get(row.flight_id, []),
        "status": hub_status(conn, row.flight_key),
        "airline": row.airline,
        "flight_number": row.flight_number,
        "origin": row.origin,
        "destination": row.destination,
        "departure": datetime.fromtimestamp(row.departs_at, UTC).isoformat(),
        "arrival": datetime.fromtimestamp(row.arrives_at, UTC).isoformat(),
        "aircraft_type": row.aircraft_type,
        "cabins": cabins,
    }


def search(
    conn: Connection, *, origin: str, destination: str, day: date, now: float
) -> list[dict[str, Any]]:
    """Flights on a route and date (the local date of departure: the operating date), earliest
    first, with fares now; flights the hub reports cancelled, diverted or gone are left out."""
    rows = conn.execute(
        select(scheduled_flights)
        .where(
            scheduled_flights.c.origin == origin,
            scheduled_flights.c.destination == destination,
            scheduled_flights.c.departure_date == day.isoformat(),
        )
        .order_by(scheduled_flights.c.departs_at)
    )
    offers = [_offer(conn, row, now) for row in rows]
    return [offer for offer in offers if offer["status"] not in NOT_SELLABLE]


ROUTES = [
    ("ZRH", "LHR", 100), ("ZRH", "JFK", 520), ("ZRH", "CDG", 75), ("ZRH", "FRA", 60),
    ("LHR", "ZRH", 100), ("JFK", "ZRH", 480), ("CDG", "ZRH", 75), ("ZRH", "BCN", 110),
]  # fmt: skip


def demo_schedule(*, start: date, days: int, seed: int = 1) -> list[ScheduleEntry]:
    """A plausible schedule for the demo: three daily flights per route."""
    checked_day(start, "start")
    if not 0 <= days <= 366:
        raise OutOfRange(f"days: {days} is not between 0 and 366")
    if days:
        checked_day(start + timedelta(days=days - 1), "start + days")
    rng = random.Random(seed)
    entries = []
    for offset in range(days):
        day = start + timedelta(days=offset)
        for route_index, (origin, destination, minutes) in enumerate(ROUTES):
            for slot, hour in enumerate((7, 12, 18)):
                departure = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
                departure += timedelta(minutes=rng.choice([0, 15, 30, 45]))
                entries.append(
                    _demo_entry(
                        100 + route_index * 10 + slot, origin, destination, departure, minutes
                    )
                )
    return entries


def standard_fares(*, block_minutes: int, aircraft_type: str) -> dict[str, int]:
    """Base fares (minor units) for every cabin the aircraft has, rising with the block time."""
    ladder = {
        "economy": 9_900 + block_minutes * 60,
        "premium": 19_900 + block_minutes * 120,
        "business": 39_900 + block_minutes * 250,
        "first": 99_900 + block_minutes * 600,
    }
    return {cabin: ladder[cabin] for cabin in seat_map(aircraft_type) if cabin in ladder}


def _demo_entry(
    number: int, origin: str, destination: str, departure: datetime, minutes: int
) -> ScheduleEntry:
    long_haul = minutes > 300
    fares = {"economy": 9_900 + minutes * 60, "business": 39_900 + minutes * 250}
    if long_haul:
        fares["premium"] = 19_900 + minutes * 120
    return ScheduleEntry(
        airline="LX",
        flight_number=str(number),
        origin=origin,
        destination=destination,
        departure=departure,
        arrival=departure + timedelta(minutes=minutes),
        aircraft_type="B77W" if long_haul else "A320",
        currency="CHF",
        fares=fares,
    )
