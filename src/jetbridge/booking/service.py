"""Booking requests, reads and customer cancellation (the saga's steps are in `tasks.py`)."""

from __future__ import annotations

import time
import unicodedata
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError

from jetbridge.booking import idempotency, segments
from jetbridge.booking.catalog import NOT_SELLABLE, flight_offer
from jetbridge.booking.events import booking_bus, booking_event
from jetbridge.booking.identifiers import new_record_locator
from jetbridge.booking.personal_data import PASSENGERS, PAYMENT_CARD, PersonalData
from jetbridge.booking.seatmap import check_choice
from jetbridge.errors import Conflict, InvalidRequest, NotFound
from jetbridge.events.backbone import Backbone
from jetbridge.storage.schema import bookings

Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f<>]+$")]


class TravelDocument(BaseModel):
    # Validation errors never quote the input: it is personal data.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
    kind: Annotated[str, Field(pattern=r"^(passport|id_card)$")] = "passport"
    number: Annotated[str, Field(min_length=4, max_length=20, pattern=r"^[A-Z0-9]+$")]
    country: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    expires: Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")]


class Passenger(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
    given_name: Name
    family_name: Name
    document: TravelDocument | None = None
    # The seat picked on the seat map, if any (every passenger of a booking picks, or none).
    seat: Annotated[str | None, Field(pattern=r"^[1-9][0-9]?[A-K]$")] = None


class BookingRequest(BaseModel):
    """What a customer asks for; the price is never part of it (the server computes it)."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
    flight_id: Annotated[str, Field(pattern=r"^[A-Z0-9]{2}\d{4}[A-Z]?-\d{4}-\d{2}-\d{2}$")]
    cabin: Annotated[str, Field(pattern=r"^(economy|premium|business|first)$")]
    passengers: Annotated[list[Passenger], Field(min_length=1, max_length=9)]
    customer_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[\w.@+-]+$")]


class BookingLookup(BaseModel):
    """A guest's proof of a booking: its record locator and one traveller's family name."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
    locator: Annotated[str, Field(pattern=r"^[A-Za-z0-9]{6}$")]
    family_name: Name


def request_booking(
    conn: Connection,
    backbone: Backbone,
    *,
    personal: PersonalData,
    request: BookingRequest,
    card: str,
    caller: str,
    idempotency_key: str,
) -> tuple[dict[str, Any], bool]:
    """Create a booking in status `requested`, or return the one this caller made with this key
    for the same request (a different request under the key raises `Unprocessable`).

    Returns the booking and whether it was created now. The amount is the current fare times
    the number of passengers, computed here. Passengers and card are stored sealed.
    """
    idempotency.check_key(idempotency_key)
    idempotency.check_caller(caller)
    document = idempotency.request_document(
        caller=caller, key=idempotency_key, request=request, card=card
    )
    existing = _repeat(conn, personal, caller, idempotency_key, document)
    if existing is not None:
        return existing, False
    now = time.time()
    offer = flight_offer(conn, flight_id=request.flight_id, now=now)
    if offer is None:
        raise NotFound(f"flight_id: no flight {request.flight_id!r}")
    if offer["status"] in NOT_SELLABLE:
        raise Conflict(f"flight_id: {request.flight_id} is {offer['status']}; it is not for sale")
    cabin = offer["cabins"].get(request.cabin)
    if cabin is None:
        raise InvalidRequest(f"cabin: {request.flight_id} has no {request.cabin} cabin")
    try:
        check_choice(offer["aircraft_type"], request.cabin, [p.seat for p in request.passengers])
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    fare = cabin["fare"]
    booking_id = str(uuid.uuid4())
    passengers = [p.model_dump() for p in request.passengers]
    row = {
        "booking_id": booking_id,
        "locator": new_record_locator(),
        "status": "requested",
        # A codeshare number is sold as its operating flight: the seats are that flight's.
        "flight_id": offer["flight_id"],
        "cabin": request.cabin,
        "customer_id": request.customer_id,
        "tenant": airline_of(request.flight_id),
        "amount": fare["amount"] * len(request.passengers),
        "currency": fare["currency"],
        "caller": caller,
        "idempotency_key": idempotency_key,
        "request_fingerprint": idempotency.fingerprint(personal.keyring, document),
        "passengers": personal.seal(booking_id, PASSENGERS, passengers),
        "passenger_count": len(passengers),
        "payment_card": personal.seal(booking_id, PAYMENT_CARD, card),
        "created_at": now,
        "updated_at": now,
    }
    try:
        with conn.begin_nested():
            conn.execute(bookings.insert().values(**row))
            segments.set_segments(
                conn, booking_id=booking_id, legs=[segments.Leg(row["flight_id"], request.cabin)]
            )
    except IntegrityError:
        # A concurrent request with the same key committed first (or, rarely, the locator
        # was taken): the unique constraint decides, and the winner's booking is the answer.
        raced = _repeat(conn, personal, caller, idempotency_key, document)
        if raced is None:
            raise Conflict("record locator collision; retry the request") from None
        return raced, False
    booking = describe(row) | {"passengers": passengers}
    backbone.publish(
        conn,
        bus=booking_bus(conn, tenant=row["tenant"]),
        events=[
            booking_event(
                "booking.requested",
                booking_id=row["booking_id"],
                data=_public(booking) | {"flight_key": offer["flight_key"]},
            )
        ],
    )
    return booking, True


def airline_of(flight_id: str) -> str:
    """The airline selling a flight (the tenant its bookings belong to)."""
    return flight_id[:2]


def _repeat(
    conn: Connection, personal: PersonalData, caller: str, key: str, document: bytes
) -> dict[str, Any] | None:
    """The booking this caller made with this key, if the request is the same one."""
    row = (
        conn.execute(
            select(bookings).where(bookings.c.caller == caller, bookings.c.idempotency_key == key)
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    idempotency.check_repeat(personal.keyring, row["request_fingerprint"], document)
    return describe(dict(row), personal=personal)


def get_booking(
    conn: Connection, *, booking_id: str, personal: PersonalData | None = None
) -> dict[str, Any]:
    """A booking; its passengers only when `personal` is given to decrypt them."""
    row = (
        conn.execute(select(bookings).where(bookings.c.booking_id == booking_id)).mappings().first()
    )
    if row is None:
        raise NotFound(f"booking {booking_id!r} does not exist")
    return describe(dict(row), personal=personal)


def payment_card(conn: Connection, *, booking_id: str, personal: PersonalData) -> str | None:
    """The card a booking pays with, until the booking settles and the card is erased."""
    sealed = conn.execute(
        select(bookings.c.payment_card).where(bookings.c.booking_id == booking_id)
    ).scalar()
    return None if sealed is None else str(personal.open(booking_id, PAYMENT_CARD, sealed))


def find_by_locator(
    conn: Connection, *, personal: PersonalData, locator: str, family_name: str
) -> dict[str, Any]:
    """Guest lookup: record locator plus a traveller's family name, as at an airline site.

    The locator selects at most one booking, whose passengers are decrypted to compare the name
    (case-insensitive, Unicode-normalised). A wrong locator and a wrong name fail alike, in the
    same time; travel document numbers come back masked.
    """
    row = (
        conn.execute(select(bookings).where(bookings.c.locator == locator.upper()))
        .mappings()
        .first()
    )
    if row is None:
        personal.open_decoy()
        raise NotFound(NO_SUCH_BOOKING)
    booking = describe(dict(row), personal=personal)
    wanted = _comparable(family_name)
    if not any(_comparable(p["family_name"]) == wanted for p in booking["passengers"]):
        raise NotFound(NO_SUCH_BOOKING)
    return _for_guest(booking)


NO_SUCH_BOOKING = "no booking matches that record locator and family name"


def _comparable(name: str) -> str:
    return unicodedata.normalize("NFKC", name).casefold().strip()


def _for_guest(booking: dict[str, Any]) -> dict[str, Any]:
    """What a locator and a name show: this booking, document numbers masked, and nothing that
    leads to the customer's other bookings."""
    hidden = {"customer_id", "payment_id"}
    shown = {key: value for key, value in booking.items() if key not in hidden}
    shown["passengers"] = [_masked(p) for p in booking["passengers"]]
    return shown


def _masked(passenger: dict[str, Any]) -> dict[str, Any]:
    document = passenger.get("document")
    if not document:
        return passenger
    number = str(document["number"])
    return passenger | {"document": document | {"number": "*" * (len(number) - 3) + number[-3:]}}


def customer_bookings(
    conn: Connection, *, customer_id: str, personal: PersonalData | None = None
) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(bookings)
        .where(bookings.c.customer_id == customer_id)
        .order_by(bookings.c.created_at)
    ).mappings()
    return [describe(dict(row), personal=personal) for row in rows]


def set_status(
    conn: Connection, *, booking_id: str, status: str, failure: str | None = None, **extra: Any
) -> None:
    conn.execute(
        update(bookings)
        .where(bookings.c.booking_id == booking_id)
        .values(status=status, failure=failure, updated_at=time.time(), **extra)
    )


def describe(row: dict[str, Any], *, personal: PersonalData | None = None) -> dict[str, Any]:
    """A booking row as callers see it; with `personal`, its passengers decrypted."""
    booking = {
        "booking_id": row["booking_id"],
        "locator": row["locator"],
        "status": row["status"],
        "flight_id": row["flight_id"],
        "cabin": row["cabin"],
        "customer_id": row["customer_id"],
        "tenant": row.get("tenant"),
        "amount": {"amount": row["amount"], "currency": row["currency"]},
        "passenger_count": row["passenger_count"],
        "payment_id": row.get("payment_id"),
        "failure": row.get("failure"),
        "created_at": datetime.fromtimestamp(row["created_at"], UTC).isoformat(),
    }
    if personal is not None:
        booking["passengers"] = personal.open(row["booking_id"], PASSENGERS, row["passengers"])
    return booking


def _public(booking: dict[str, Any]) -> dict[str, Any]:
    """What events carry: no names or documents (personal data stays in the bookings table)."""
    keep = ("locator", "status", "flight_id", "cabin", "customer_id", "amount", "passenger_count")
    return {key: booking[key] for key in keep}
