"""Who is booked on one hub flight: the confirmed bookings, their passengers, tickets and seats.

Other contexts (the disruption workflow, the operations view) name a flight by the hub's identity;
this is the one place that turns it into the catalogue's flight and its bookings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, select

from jetbridge.booking import segments
from jetbridge.booking.personal_data import PASSENGERS, PersonalData
from jetbridge.flights.model import FlightIdentity
from jetbridge.storage.schema import bookings, scheduled_flights, ticket_coupons, tickets


@dataclass(frozen=True, slots=True)
class BookedPassenger:
    """One traveller of a booking; names only when the manifest was read with the keyring."""

    index: int
    ticket_number: str | None
    seat: str | None
    given_name: str | None = None
    family_name: str | None = None


@dataclass(frozen=True, slots=True)
class FlightBooking:
    """A confirmed booking on the flight."""

    booking_id: str
    locator: str
    flight_id: str
    flight_key: str
    cabin: str
    customer_id: str
    tenant: str | None
    passengers: list[BookedPassenger] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "booking_id": self.booking_id,
            "locator": self.locator,
            "flight_id": self.flight_id,
            "flight_key": self.flight_key,
            "cabin": self.cabin,
            "customer_id": self.customer_id,
            "tenant": self.tenant,
            "passengers": [
                {
                    "index": p.index,
                    "ticket_number": p.ticket_number,
                    "seat": p.seat,
                    "given_name": p.given_name,
                    "family_name": p.family_name,
                }
                for p in self.passengers
            ],
        }


def catalogue_flight_id(conn: Connection, identity: FlightIdentity | str) -> str | None:
    """The sellable flight that is this hub flight (by its identity or its key), if any."""
    key = identity.key if isinstance(identity, FlightIdentity) else identity
    return conn.execute(
        select(scheduled_flights.c.flight_id).where(scheduled_flights.c.flight_key == key)
    ).scalar()


def bookings_on_flight(
    conn: Connection, identity: FlightIdentity | str, *, personal: PersonalData | None = None
) -> list[FlightBooking]:
    """The confirmed bookings on one hub flight, oldest first, each with its passengers' tickets
    and seats; with `personal`, the passengers' names too. Empty for a flight nobody sells."""
    key = identity.key if isinstance(identity, FlightIdentity) else identity
    flight_id = catalogue_flight_id(conn, key)
    if flight_id is None:
        return []
    rows = conn.execute(
        select(bookings)
        .where(
            bookings.c.booking_id.in_(segments.booking_ids_on(flight_id)),
            bookings.c.status == "confirmed",
        )
        .order_by(bookings.c.created_at, bookings.c.booking_id)
    ).mappings()
    found = [dict(row) for row in rows]
    issued = _tickets(conn, [row["booking_id"] for row in found], flight_id)
    return [
        _booking(row, key, flight_id, issued.get(row["booking_id"], {}), personal) for row in found
    ]


def _tickets(
    conn: Connection, booking_ids: list[str], flight_id: str
) -> dict[str, dict[int, BookedPassenger]]:
    """Per booking and passenger, the ticket and the seat on this flight (its coupon's)."""
    issued: dict[str, dict[int, BookedPassenger]] = {}
    for start in range(0, len(booking_ids), 500):
        chunk = booking_ids[start : start + 500]
        rows = conn.execute(
            select(tickets, ticket_coupons.c.seat.label("coupon_seat"))
            .outerjoin(
                ticket_coupons,
                and_(
                    ticket_coupons.c.ticket_number == tickets.c.ticket_number,
                    ticket_coupons.c.flight_id == flight_id,
                ),
            )
            .where(tickets.c.booking_id.in_(chunk))
        )
        for row in rows:
            issued.setdefault(row.booking_id, {})[row.passenger_index] = BookedPassenger(
                index=row.passenger_index,
                ticket_number=row.ticket_number,
                seat=row.coupon_seat or row.seat,
            )
    return issued


def _booking(
    row: dict[str, Any],
    key: str,
    flight_id: str,
    issued: dict[int, BookedPassenger],
    personal: PersonalData | None,
) -> FlightBooking:
    names: list[dict[str, Any]] = []
    if personal is not None:
        names = list(personal.open(row["booking_id"], PASSENGERS, row["passengers"]))
    passengers = []
    for index in range(int(row["passenger_count"])):
        ticket = issued.get(index)
        name = names[index] if index < len(names) else {}
        passengers.append(
            BookedPassenger(
                index=index,
                ticket_number=ticket.ticket_number if ticket is not None else None,
                seat=ticket.seat if ticket is not None else None,
                given_name=name.get("given_name"),
                family_name=name.get("family_name"),
            )
        )
    return FlightBooking(
        booking_id=row["booking_id"],
        locator=row["locator"],
        flight_id=flight_id,
        flight_key=key,
        cabin=row["cabin"],
        customer_id=row["customer_id"],
        tenant=row.get("tenant"),
        passengers=passengers,
    )
