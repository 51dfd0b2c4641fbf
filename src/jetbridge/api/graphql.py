"""GraphQL: flights, bookings and loyalty queries, the processBooking mutation, and a
subscription that follows a booking's status until it settles."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from datetime import date
from typing import Any, cast

import strawberry
from strawberry.fastapi import GraphQLRouter
from strawberry.scalars import JSON
from strawberry.types import Info

from jetbridge.api.deps import get_caller
from jetbridge.booking.service import BookingRequest, Passenger
from jetbridge.flights.hub import find_flights

SETTLED = {"confirmed", "failed", "cancelled"}


def _platform(info: Info) -> Any:
    return info.context["request"].app.state.platform


@strawberry.input
class PassengerInput:
    given_name: str
    family_name: str


@strawberry.input
class BookingInput:
    flight_id: str
    cabin: str
    customer_id: str
    passengers: list[PassengerInput]
    card: str


@strawberry.type
class Query:
    @strawberry.field(description="Bookable flights on a route and date, with fares and seats left")
    def flights(self, info: Info, origin: str, destination: str, day: date) -> JSON:
        return cast(
            JSON, _platform(info).bookings.search(origin=origin, destination=destination, day=day)
        )

    @strawberry.field(description="Operational status of a flight (all legs) on a date")
    def flight_status(self, info: Info, airline: str, number: str, day: date) -> JSON:
        with _platform(info).backbone.reading() as conn:
            return cast(
                JSON, find_flights(conn, airline=airline, number=f"{int(number):04d}", day=day)
            )

    @strawberry.field
    def booking(self, info: Info, booking_id: str) -> JSON:
        return cast(JSON, _platform(info).bookings.get(booking_id=booking_id))

    @strawberry.field
    def loyalty(self, info: Info, customer_id: str) -> JSON:
        return cast(JSON, _platform(info).bookings.loyalty(customer_id=customer_id))


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Request a booking; the saga confirms or fails it")
    def process_booking(self, info: Info, booking: BookingInput, idempotency_key: str) -> JSON:
        request = BookingRequest(
            flight_id=booking.flight_id,
            cabin=booking.cabin,
            customer_id=booking.customer_id,
            passengers=[
                Passenger(given_name=p.given_name, family_name=p.family_name)
                for p in booking.passengers
            ],
        )
        created, _ = _platform(info).bookings.create(
            request=request,
            card=booking.card,
            caller=get_caller(info.context["request"]),
            idempotency_key=idempotency_key,
        )
        return cast(JSON, created)


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="The booking's status each time it changes, until it settles"
    )
    async def booking_status(self, info: Info, booking_id: str) -> AsyncGenerator[JSON, None]:
        platform = _platform(info)
        last = None
        while True:
            booking = await asyncio.to_thread(_read, platform, booking_id)
            if booking["status"] != last:
                last = booking["status"]
                yield cast(JSON, booking)
            if last in SETTLED:
                return
            await asyncio.sleep(0.1)


def _read(platform: Any, booking_id: str) -> dict[str, Any]:
    booking: dict[str, Any] = platform.bookings.get(booking_id=booking_id)
    return booking


schema = strawberry.Schema(query=Query, mutation=Mutation, subscription=Subscription)


def graphql_router() -> GraphQLRouter[Any, Any]:
    return GraphQLRouter(schema, path="/graphql")
