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
from jetbridge.storage.schema import scheduled_flights, seats


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a UTC offset")
    return value.astimezone(UTC)


UtcDateTime = Annotated[datetime, AfterValidator(_utc)]
Airport = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


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

    @model_validator(mode="after")
    def _consistent(self) -> ScheduleEntry:
        if self.arrival <= self.departure:
            raise ValueError("arrival must be after departure")
        if self.origin == self.destination:
            raise ValueError("origin and destination must differ")
        unknown = set(self.fares) - set(seat_map(self.aircraft_type))
        if unknown:
            raise ValueError(f"fares for cabins the aircraft does not have: {sorted(unknown)}")
        return self

    @property
    def flight_id(self) -> str:
        """Airline, zero-padded number (with suffix) and departure date: `LX0100-2026-12-01`."""
        digits = self.flight_number.rstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
        suffix = self.flight_number[len(digits) :]
        return f"{self.airline}{int(digits):04d}{suffix}-{self.departure.date().isoformat()}"


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
        added += 1
    return added


def _flight_row(entry: ScheduleEntry) -> dict[str, Any]:
    return {
        "flight_id": entry.flight_id,
        "airline": entry.airline,
        "flight_number": entry.flight_number,
        "origin": entry.origin,
        "destination": entry.destination,
        "departure_date": entry.departure.date().isoformat(),
        "departs_at": entry.departure.timestamp(),
        "arrives_at": entry.arrival.timestamp(),
        "aircraft_type": entry.aircraft_type,
        "currency": entry.currency,
        "fares": json.dumps(entry.fares),
    }


def current_fare(*, base: int, capacity: int, left: int) -> int:
    """Price rises with the load factor, up to double the base fare; whole currency units."""
    price = base if capacity <= 0 else base * (2 * capacity - left) // capacity
    return (price + 50) // 100 * 100


def flight_offer(conn: Connection, *, flight_id: str, now: float) -> dict[str, Any] | None:
    row = conn.execute(
        select(scheduled_flights).where(scheduled_flights.c.flight_id == flight_id)
    ).first()
    if row is None:
        return None
    return _offer(conn, row, now)


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
    """Flights on a route and date (departure date in UTC), earliest first, with fares now."""
    rows = conn.execute(
        select(scheduled_flights)
        .where(
            scheduled_flights.c.origin == origin,
            scheduled_flights.c.destination == destination,
            scheduled_flights.c.departure_date == day.isoformat(),
        )
        .order_by(scheduled_flights.c.departs_at)
    )
    return [_offer(conn, row, now) for row in rows]


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
