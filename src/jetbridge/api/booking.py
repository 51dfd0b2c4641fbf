"""HTTP API for passengers and agents: search, book, follow a booking, cancel, loyalty."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from jetbridge.api.deps import BookingsDep
from jetbridge.booking import catalog
from jetbridge.booking.service import BookingRequest
from jetbridge.bounds import FIRST_DAY, LAST_DAY

router = APIRouter(prefix="/api", tags=["booking"])
Airport = Annotated[str, Query(pattern=r"^[A-Z]{3}$")]


class PaymentDetails(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    card: Annotated[str, Field(pattern=r"^[0-9 ]{12,23}$")]


class CreateBooking(BookingRequest):
    payment: PaymentDetails


@router.get("/flights/search")
def search_flights(
    origin: Airport,
    destination: Airport,
    day: Annotated[date, Query(alias="date", ge=FIRST_DAY, le=LAST_DAY)],
    bookings: BookingsDep,
) -> list[dict[str, Any]]:
    """Flights on a route and day with current fares and seats left (cached when Redis is set)."""
    return bookings.search(origin=origin, destination=destination, day=day)


@router.get("/flights/{flight_id}/offer")
def flight_offer(flight_id: str, bookings: BookingsDep) -> dict[str, Any]:
    return bookings.offer(flight_id=flight_id)


@router.post("/bookings", status_code=202)
def create_booking(
    body: CreateBooking,
    response: Response,
    bookings: BookingsDep,
    idempotency_key: Annotated[str, Header(alias="Idempotency-Key")],
) -> dict[str, Any]:
    """Accept a booking at once (202 with its reference); the saga confirms or fails it."""
    booking, created = bookings.create(
        request=body, card=body.payment.card, idempotency_key=idempotency_key
    )
    response.headers["Location"] = f"/api/bookings/{booking['booking_id']}"
    if not created:
        response.status_code = 200
    return booking


@router.get("/bookings/{booking_id}")
def get_booking(booking_id: str, bookings: BookingsDep) -> dict[str, Any]:
    return bookings.get(booking_id=booking_id)


@router.post("/bookings/{booking_id}/cancel")
def cancel_booking(booking_id: str, bookings: BookingsDep) -> dict[str, Any]:
    """Customer cancellation: seats back on sale, refund by the fare rules, points revoked."""
    return bookings.cancel(booking_id=booking_id)


@router.get("/customers/{customer_id}/bookings")
def customer_bookings(customer_id: str, bookings: BookingsDep) -> list[dict[str, Any]]:
    return bookings.of_customer(customer_id=customer_id)


@router.get("/customers/{customer_id}/loyalty")
def loyalty(customer_id: str, bookings: BookingsDep) -> dict[str, Any]:
    return bookings.loyalty(customer_id=customer_id)


@router.get("/catalog/demo-schedule")
def demo_schedule_preview(
    start: Annotated[date, Query(ge=FIRST_DAY, le=LAST_DAY)],
    days: Annotated[int, Query(ge=1, le=3)] = 1,
) -> list[dict[str, Any]]:
    return [
        entry.model_dump(mode="json") for entry in catalog.demo_schedule(start=start, days=days)
    ]
