"""HTTP API for passengers and agents: search, seat maps, book, follow a booking, choose seats,
see the refund before cancelling, cancel, change flight, loyalty.

Guests book without an account and follow their booking with the `guest_token` the booking
answer carries (or later by record locator and family name); signed-in passengers see their own
bookings; agents see their airline's."""

from __future__ import annotations

import hashlib
import hmac
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from jetbridge.api.deps import BookingsDep
from jetbridge.api.policy import STAFF, Passenger, Public
from jetbridge.booking import catalog
from jetbridge.booking.service import BookingLookup, BookingRequest
from jetbridge.booking.service import Passenger as Traveller
from jetbridge.bounds import FIRST_DAY, LAST_DAY
from jetbridge.errors import Forbidden, NotFound
from jetbridge.ops.identity.principal import Principal

router = APIRouter(prefix="/api", tags=["booking"])
Airport = Annotated[str, Query(pattern=r"^[A-Z]{3}$")]
GuestToken = Annotated[str | None, Header(alias="X-Booking-Token", max_length=128)]
FLIGHT_ID = r"^[A-Z0-9]{2}\d{4}[A-Z]?-\d{4}-\d{2}-\d{2}$"
FlightId = Annotated[str, Query(pattern=FLIGHT_ID)]
SeatNumber = Annotated[str, Field(pattern=r"^[1-9][0-9]?[A-K]$")]


class PaymentDetails(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
    card: Annotated[str, Field(pattern=r"^[0-9 ]{12,23}$")]


class CreateBooking(BaseModel):
    """A booking request; `customer_id` is for agents booking for a customer (a passenger books
    for themselves, a guest for nobody's account)."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
    flight_id: Annotated[str, Field(pattern=FLIGHT_ID)]
    cabin: Annotated[str, Field(pattern=r"^(economy|premium|business|first)$")]
    passengers: Annotated[list[Traveller], Field(min_length=1, max_length=9)]
    customer_id: Annotated[
        str | None, Field(min_length=1, max_length=64, pattern=r"^[\w.@+-]+$")
    ] = None
    payment: PaymentDetails


def customer_of(caller: Principal) -> str | None:
    """The customer id of a signed-in passenger's bookings."""
    if caller.kind == "user" and "passenger" in caller.roles:
        return caller.subject.removeprefix("user:")
    return None


def guest_token(request: Request, booking_id: str) -> str:
    """The capability a guest holds for one booking: a keyed hash of its id."""
    secret: bytes = request.app.state.platform.auth.tokens.secret
    message = f"guest-booking:{booking_id}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:40]


def may_see(
    request: Request, caller: Principal, booking: dict[str, Any], token: str | None
) -> bool:
    if caller.is_operator:
        return True
    if caller.has_any(STAFF) and caller.tenant is not None:
        return bool(booking.get("tenant") == caller.tenant)
    mine = customer_of(caller)
    if mine is not None and booking.get("customer_id") == mine:
        return True
    expected = guest_token(request, str(booking["booking_id"]))
    return token is not None and hmac.compare_digest(token.encode(), expected.encode())


def customer_for(
    caller: Principal, asked: str | None, key: str, *, field: str = "customer_id"
) -> str:
    """Whose booking a request makes: a passenger's own, the customer an agent names, or a
    guest's (one per checkout key). `field` names the request's field in errors."""
    mine = customer_of(caller)
    if mine is not None:
        if asked not in (None, mine):
            raise Forbidden(f"{field}: a passenger books for their own account")
        return mine
    if caller.has_any(STAFF):
        if asked is None:
            raise Forbidden(f"{field}: an agent names the customer the booking is for")
        return asked
    return guest_customer(key)


def guest_customer(idempotency_key: str) -> str:
    """A guest belongs to no account: each checkout (its key) is a customer of its own, the same
    on every retry so that a repeated request is recognised as the same."""
    return "guest-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]


@router.get("/flights/search")
def search_flights(
    origin: Airport,
    destination: Airport,
    day: Annotated[date, Query(alias="date", ge=FIRST_DAY, le=LAST_DAY)],
    bookings: BookingsDep,
    _: Public,
) -> list[dict[str, Any]]:
    """Flights on a route and day with current fares and seats left (cached when Redis is set)."""
    return bookings.search(origin=origin, destination=destination, day=day)


@router.get("/flights/{flight_id}/offer")
def flight_offer(flight_id: str, bookings: BookingsDep, _: Public) -> dict[str, Any]:
    return bookings.offer(flight_id=flight_id)


@router.post("/bookings", status_code=202)
def create_booking(
    body: CreateBooking,
    request: Request,
    response: Response,
    bookings: BookingsDep,
    caller: Public,
    idempotency_key: Annotated[str, Header(alias="Idempotency-Key")],
) -> dict[str, Any]:
    """Accept a booking at once (202 with its reference); the saga confirms or fails it.

    The key is the caller's: the same request again answers 200 with the same booking, another
    request under the key 422."""
    booking_request = BookingRequest(
        flight_id=body.flight_id,
        cabin=body.cabin,
        passengers=body.passengers,
        customer_id=customer_for(caller, body.customer_id, idempotency_key),
    )
    booking, created = bookings.create(
        request=booking_request,
        card=body.payment.card,
        caller=caller.subject,
        idempotency_key=idempotency_key,
    )
    response.headers["Location"] = f"/api/bookings/{booking['booking_id']}"
    if not created:
        response.status_code = 200
    if not caller.authenticated:
        booking = {**booking, "guest_token": guest_token(request, booking["booking_id"])}
    return booking


@router.post("/bookings/lookup")
def lookup_booking(
    body: BookingLookup, request: Request, bookings: BookingsDep, _: Public
) -> dict[str, Any]:
    """A guest's booking by record locator and a traveller's family name (404 alike otherwise),
    with the guest token that lets them follow or cancel it."""
    found = bookings.find(locator=body.locator, family_name=body.family_name)
    return {**found, "guest_token": guest_token(request, str(found["booking_id"]))}


@router.get("/bookings/{booking_id}")
def get_booking(
    booking_id: str,
    request: Request,
    bookings: BookingsDep,
    caller: Public,
    token: GuestToken = None,
) -> dict[str, Any]:
    """A booking, for its passenger, a guest holding its token, or the airline's staff."""
    return visible_booking(request, bookings, caller, booking_id, token)


@router.post("/bookings/{booking_id}/cancel")
def cancel_booking(
    booking_id: str,
    request: Request,
    bookings: BookingsDep,
    caller: Public,
    token: GuestToken = None,
) -> dict[str, Any]:
    """Customer cancellation: seats back on sale, refund by the fare rules, points revoked."""
    visible_booking(request, bookings, caller, booking_id, token)
    return bookings.cancel(booking_id=booking_id)


def visible_booking(
    request: Request, bookings: Any, caller: Principal, booking_id: str, token: str | None
) -> dict[str, Any]:
    """The booking, if the caller may see it (its owner, its airline, or its guest token);
    NotFound otherwise, so another's booking is indistinguishable from none."""
    try:
        booking: dict[str, Any] = bookings.get(booking_id=booking_id)
    except NotFound:
        booking = {}
    if not booking or not may_see(request, caller, booking, token):
        raise NotFound(f"booking {booking_id!r} does not exist")
    return booking


@router.get("/flights/{flight_id}/seatmap")
def seat_map(flight_id: str, bookings: BookingsDep, _: Public) -> dict[str, Any]:
    """The flight's cabins, rows and seats, each free or taken (never by whom)."""
    return bookings.changes.seat_map(flight_id=flight_id)


@router.get("/bookings/{booking_id}/refund")
def refund_quote(
    booking_id: str,
    request: Request,
    bookings: BookingsDep,
    caller: Public,
    token: GuestToken = None,
) -> dict[str, Any]:
    """What cancelling now would refund and by which rule; nothing is changed."""
    visible_booking(request, bookings, caller, booking_id, token)
    return bookings.changes.refund_quote(booking_id=booking_id)


class SeatChoice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    seats: Annotated[list[SeatNumber], Field(min_length=1, max_length=9)]


@router.post("/bookings/{booking_id}/seats")
def select_seats(
    booking_id: str,
    body: SeatChoice,
    request: Request,
    bookings: BookingsDep,
    caller: Public,
    token: GuestToken = None,
) -> dict[str, Any]:
    """Move the passengers to these seats, one per passenger in booking order."""
    visible_booking(request, bookings, caller, booking_id, token)
    return bookings.changes.select_seats(booking_id=booking_id, seats=list(body.seats))


@router.get("/bookings/{booking_id}/change")
def change_quote(
    booking_id: str,
    flight_id: FlightId,
    request: Request,
    bookings: BookingsDep,
    caller: Public,
    token: GuestToken = None,
) -> dict[str, Any]:
    """The fare on another flight of the route in the booked cabin, and the difference."""
    visible_booking(request, bookings, caller, booking_id, token)
    return bookings.changes.change_quote(booking_id=booking_id, flight_id=flight_id)


class ChangeFlight(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
    flight_id: Annotated[str, Field(pattern=FLIGHT_ID)]
    payment: PaymentDetails | None = None


@router.post("/bookings/{booking_id}/change")
def change_flight(
    booking_id: str,
    body: ChangeFlight,
    request: Request,
    bookings: BookingsDep,
    caller: Public,
    token: GuestToken = None,
) -> dict[str, Any]:
    """Move the booking to another flight of its route: a higher fare is charged to the card
    given, a lower one refunded."""
    visible_booking(request, bookings, caller, booking_id, token)
    card = body.payment.card if body.payment else None
    return bookings.changes.change(booking_id=booking_id, flight_id=body.flight_id, card=card)


@router.get("/me/bookings")
def my_bookings(bookings: BookingsDep, caller: Passenger) -> list[dict[str, Any]]:
    """The signed-in passenger's bookings."""
    mine = customer_of(caller)
    if mine is None:
        raise Forbidden("only a signed-in passenger has bookings of their own")
    return bookings.of_customer(customer_id=mine)


@router.get("/customers/{customer_id}/bookings")
def customer_bookings(
    customer_id: str, bookings: BookingsDep, caller: Passenger
) -> list[dict[str, Any]]:
    """A customer's bookings: the passenger's own, or those with the agent's airline."""
    _customer_visible(caller, customer_id)
    found = bookings.of_customer(customer_id=customer_id)
    if caller.is_operator or customer_of(caller) == customer_id:
        return found
    return [booking for booking in found if booking.get("tenant") == caller.tenant]


@router.get("/customers/{customer_id}/loyalty")
def loyalty(customer_id: str, bookings: BookingsDep, caller: Passenger) -> dict[str, Any]:
    """A customer's points: the passenger's own, or a customer of the agent's airline (one who
    holds a booking with it); another airline's customers do not exist for an agent."""
    return visible_loyalty(bookings, caller, customer_id)


def visible_loyalty(bookings: Any, caller: Principal, customer_id: str) -> dict[str, Any]:
    """The customer's points if the caller may see them, else NotFound (REST and GraphQL)."""
    _customer_visible(caller, customer_id)
    if not (caller.is_operator or customer_of(caller) == customer_id):
        found = bookings.of_customer(customer_id=customer_id)
        if not any(booking.get("tenant") == caller.tenant for booking in found):
            raise NotFound(f"customer {customer_id!r} does not exist")
    points: dict[str, Any] = bookings.loyalty(customer_id=customer_id)
    return points


def _customer_visible(caller: Principal, customer_id: str) -> None:
    if caller.is_operator or customer_of(caller) == customer_id:
        return
    if caller.has_any(STAFF) and caller.tenant is not None:
        return
    raise NotFound(f"customer {customer_id!r} does not exist")


@router.get("/catalog/demo-schedule")
def demo_schedule_preview(
    start: Annotated[date, Query(ge=FIRST_DAY, le=LAST_DAY)],
    _: Public,
    days: Annotated[int, Query(ge=1, le=3)] = 1,
) -> list[dict[str, Any]]:
    return [
        entry.model_dump(mode="json") for entry in catalog.demo_schedule(start=start, days=days)
    ]
