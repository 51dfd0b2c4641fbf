"""GraphQL: flights, bookings and loyalty queries, the processBooking mutation, and a
subscription that follows a booking's status until it settles.

The endpoint is open; each field checks its caller exactly as the REST route it mirrors does
(the same helpers), so GraphQL is never a way around a REST policy."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncGenerator
from datetime import date
from typing import Any, cast

import strawberry
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from strawberry.fastapi import GraphQLRouter
from strawberry.scalars import JSON
from strawberry.types import Info

from jetbridge.api.booking import customer_for, guest_token, may_see, visible_loyalty
from jetbridge.api.policy import BOARDS, PASSENGER, PUBLIC, Require
from jetbridge.booking.service import BookingRequest, Passenger
from jetbridge.errors import NotFound
from jetbridge.flights.hub import find_flights
from jetbridge.ops.identity.principal import Principal
from jetbridge.web.docs import graphiql_html

SETTLED = {"confirmed", "failed", "cancelled"}


def _platform(info: Info) -> Any:
    return info.context["request"].app.state.platform


def _caller(info: Info, policy: Any = PUBLIC) -> Principal:
    return Require(policy)(info.context["request"])


def _booking(info: Info, booking_id: str, guest: str | None) -> dict[str, Any]:
    caller = _caller(info)
    request = info.context["request"]
    try:
        booking: dict[str, Any] = _platform(info).bookings.get(booking_id=booking_id)
    except NotFound:
        booking = {}
    if not booking or not may_see(request, caller, booking, guest):
        raise NotFound(f"booking {booking_id!r} does not exist")
    return booking


@strawberry.input
class PassengerInput:
    given_name: str
    family_name: str


@strawberry.input
class BookingInput:
    flight_id: str
    cabin: str
    passengers: list[PassengerInput]
    card: str
    customer_id: str | None = None


@strawberry.type
class Query:
    @strawberry.field(description="Bookable flights on a route and date, with fares and seats left")
    def flights(self, info: Info, origin: str, destination: str, day: date) -> JSON:
        _caller(info)
        return cast(
            JSON, _platform(info).bookings.search(origin=origin, destination=destination, day=day)
        )

    @strawberry.field(description="Operational status of a flight (all legs) on a date")
    def flight_status(self, info: Info, airline: str, number: str, day: date) -> JSON:
        _caller(info, BOARDS)
        if not number.isdigit() or len(number) > 4:
            raise ValueError("number: 1 to 4 digits")
        with _platform(info).backbone.reading() as conn:
            return cast(
                JSON, find_flights(conn, airline=airline, number=f"{int(number):04d}", day=day)
            )

    @strawberry.field(description="A booking: its passenger's, a guest's with its token, staff's")
    def booking(self, info: Info, booking_id: str, guest_token: str | None = None) -> JSON:
        return cast(JSON, _booking(info, booking_id, guest_token))

    @strawberry.field
    def loyalty(self, info: Info, customer_id: str) -> JSON:
        caller = _caller(info, PASSENGER)
        return cast(JSON, visible_loyalty(_platform(info).bookings, caller, customer_id))


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Request a booking; the saga confirms or fails it")
    def process_booking(self, info: Info, booking: BookingInput, idempotency_key: str) -> JSON:
        caller = _caller(info)
        request = BookingRequest(
            flight_id=booking.flight_id,
            cabin=booking.cabin,
            customer_id=customer_for(
                caller, booking.customer_id, idempotency_key, field="customerId"
            ),
            passengers=[
                Passenger(given_name=p.given_name, family_name=p.family_name)
                for p in booking.passengers
            ],
        )
        created, _ = _platform(info).bookings.create(
            request=request,
            card=booking.card,
            caller=caller.subject,
            idempotency_key=idempotency_key,
        )
        if not caller.authenticated:
            token = guest_token(info.context["request"], created["booking_id"])
            created = {**created, "guest_token": token}
        return cast(JSON, created)


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="The booking's status each time it changes, until it settles"
    )
    async def booking_status(
        self, info: Info, booking_id: str, guest_token: str | None = None
    ) -> AsyncGenerator[JSON, None]:
        last = None
        while True:
            booking = await asyncio.to_thread(_booking, info, booking_id, guest_token)
            if booking["status"] != last:
                last = booking["status"]
                yield cast(JSON, booking)
            if last in SETTLED:
                return
            await asyncio.sleep(0.1)


schema = strawberry.Schema(query=Query, mutation=Mutation, subscription=Subscription)


class _OfflineGraphiQL(GraphQLRouter[Any, Any]):
    """GraphiQL with its scripts served by the platform, not from a CDN."""

    @functools.cached_property
    def _local_ide_html(self) -> str:
        return graphiql_html(self.graphql_ide_html)

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        return HTMLResponse(self._local_ide_html)


def graphql_router() -> GraphQLRouter[Any, Any]:
    return _OfflineGraphiQL(schema, path="/graphql", dependencies=[Depends(Require(PUBLIC))])
