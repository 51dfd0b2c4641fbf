"""GraphQL: a typed schema over flights, seat maps, bookings, tickets and loyalty, with
mutations for everything the passenger pages do and subscriptions fed from the bus.

Each field answers through the REST route it mirrors (`graphql_rest.call`): the same policy,
validation, visibility and errors, so GraphQL is never a way around a REST rule. A subscription
follows the process's one reader of the bus's log (the broadcaster the SSE streams share), so
subscribers do not poll the database; each re-reads only when an event about its booking or
flight arrives."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable, Iterator
from datetime import date
from functools import partial
from typing import Any

import strawberry
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from graphql import GraphQLError
from starlette.requests import HTTPConnection
from strawberry.extensions import (
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.fastapi import GraphQLRouter
from strawberry.types import ExecutionContext, Info

from jetbridge.api import booking as rest
from jetbridge.api import disruption as disruption_rest
from jetbridge.api import flights as flights_rest
from jetbridge.api import graphql_types as t
from jetbridge.api.graphql_rest import as_graphql_error, call
from jetbridge.api.policy import PUBLIC, Require
from jetbridge.booking.events import booking_bus
from jetbridge.flights.hub import BUS as FLIGHT_BUS
from jetbridge.web.broadcast import LogBroadcaster
from jetbridge.web.docs import graphiql_html

SETTLED = {"confirmed", "failed", "cancelled"}


def _connection(info: Info) -> HTTPConnection:
    connection: HTTPConnection = info.context["request"]
    return connection


def _rest(info: Info, endpoint: Callable[..., Any], **given: Any) -> Any:
    labels = {"token": "guestToken", "idempotency_key": "idempotencyKey", "body": ""}
    return call(_connection(info), endpoint, labels=labels, **given)


@strawberry.input(description="A traveller; seat is the one picked on the seat map, if any")
class PassengerInput:
    given_name: str
    family_name: str
    seat: str | None = None


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
    def flights(self, info: Info, origin: str, destination: str, day: date) -> list[t.Flight]:
        found = _rest(info, rest.search_flights, origin=origin, destination=destination, day=day)
        return [t.flight(offer) for offer in found]

    @strawberry.field(description="One bookable flight with its fares now")
    def flight(self, info: Info, flight_id: str) -> t.Flight:
        return t.flight(_rest(info, rest.flight_offer, flight_id=flight_id))

    @strawberry.field(description="Operational status of a flight (all legs), e.g. LX100")
    def flight_status(
        self, info: Info, flight: str, day: date | None = None
    ) -> list[t.FlightStatus]:
        legs = _rest(info, flights_rest.flight_status, flight=flight, day=day)
        return [t.flight_status(leg) for leg in legs]

    @strawberry.field(description="A flight's seat map with the seats taken")
    def seat_map(self, info: Info, flight_id: str) -> t.SeatMap:
        return t.seat_map(_rest(info, rest.seat_map, flight_id=flight_id))

    @strawberry.field(
        description="A booking's disruptions with their held offers and the notices sent: "
        "its passenger's, a guest's with its token, its airline's staff's"
    )
    def disruptions(
        self, info: Info, booking_id: str, guest_token: str | None = None
    ) -> list[t.Disruption]:
        found = _rest(
            info, disruption_rest.booking_disruptions, booking_id=booking_id, token=guest_token
        )
        return t.disruptions(found)

    @strawberry.field(description="A booking: its passenger's, a guest's with its token, staff's")
    def booking(self, info: Info, booking_id: str, guest_token: str | None = None) -> t.Booking:
        return t.booking(_rest(info, rest.get_booking, booking_id=booking_id, token=guest_token))

    @strawberry.field(description="A guest's booking by record locator and a family name")
    def find_booking(self, info: Info, locator: str, family_name: str) -> t.Booking:
        body = {"locator": locator, "family_name": family_name}
        return t.booking(_rest(info, rest.lookup_booking, body=body))

    @strawberry.field(description="The signed-in passenger's bookings")
    def my_bookings(self, info: Info) -> list[t.Booking]:
        return [t.booking(found) for found in _rest(info, rest.my_bookings)]

    @strawberry.field(description="A customer's loyalty points and tier")
    def loyalty(self, info: Info, customer_id: str) -> t.LoyaltyAccount:
        return t.loyalty(_rest(info, rest.loyalty, customer_id=customer_id))

    @strawberry.field(description="What cancelling the booking now would refund")
    def refund_quote(
        self, info: Info, booking_id: str, guest_token: str | None = None
    ) -> t.RefundQuote:
        quote = _rest(info, rest.refund_quote, booking_id=booking_id, token=guest_token)
        return t.RefundQuote(
            booking_id=quote["booking_id"],
            paid=t.money(quote["paid"]),
            refund=t.money(quote["refund"]),
            rule=quote["rule"],
        )

    @strawberry.field(description="The fare difference of moving the booking to another flight")
    def change_offer(
        self, info: Info, booking_id: str, flight_id: str, guest_token: str | None = None
    ) -> t.ChangeOffer:
        quote = _rest(
            info, rest.change_quote, booking_id=booking_id, flight_id=flight_id, token=guest_token
        )
        return t.change_offer(quote)


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Request a booking; the saga confirms or fails it")
    def process_booking(self, info: Info, booking: BookingInput, idempotency_key: str) -> t.Booking:
        body = {
            "flight_id": booking.flight_id,
            "cabin": booking.cabin,
            "customer_id": booking.customer_id,
            "passengers": [
                {"given_name": p.given_name, "family_name": p.family_name}
                | ({"seat": p.seat} if p.seat is not None else {})
                for p in booking.passengers
            ],
            "payment": {"card": booking.card},
        }
        created = call(
            _connection(info),
            rest.create_booking,
            labels={"body": "booking", "idempotency_key": "idempotencyKey"},
            body=body,
            idempotency_key=idempotency_key,
        )
        return t.booking({"tickets": [], "flight": None} | created)

    @strawberry.mutation(description="Move the passengers to these seats, in passenger order")
    def select_seats(
        self, info: Info, booking_id: str, seats: list[str], guest_token: str | None = None
    ) -> t.SeatSelection:
        chosen = _rest(
            info, rest.select_seats, booking_id=booking_id, body={"seats": seats}, token=guest_token
        )
        return t.SeatSelection(booking_id=booking_id, tickets=t.tickets(chosen["tickets"]))

    @strawberry.mutation(description="Cancel: seats back on sale, refund by the fare rules")
    def cancel_booking(
        self, info: Info, booking_id: str, guest_token: str | None = None
    ) -> t.Cancellation:
        done = _rest(info, rest.cancel_booking, booking_id=booking_id, token=guest_token)
        return t.Cancellation(
            booking_id=done["booking_id"],
            status=done["status"],
            refund=t.money(done["refund"]),
            refunded=int(done["refunded"]),
            rule=done["rule"],
        )

    @strawberry.mutation(description="Move the booking to another flight of its route")
    def change_flight(
        self,
        info: Info,
        booking_id: str,
        flight_id: str,
        card: str | None = None,
        guest_token: str | None = None,
    ) -> t.FlightChange:
        body: dict[str, Any] = {"flight_id": flight_id}
        if card is not None:
            body["payment"] = {"card": card}
        done = _rest(info, rest.change_flight, booking_id=booking_id, body=body, token=guest_token)
        return t.flight_change(done)


class _Signal:
    """What the broadcaster writes to for one subscriber: a note that something arrived."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()

    async def write(self, chunk: bytes) -> None:
        self.arrived.set()

    def write_now(self, chunk: bytes) -> Awaitable[None] | None:
        self.arrived.set()
        return None


async def _changes(
    broadcaster: LogBroadcaster, after: int, view: Hashable, subjects: frozenset[str]
) -> AsyncGenerator[None, None]:
    """Once per batch of the bus's events that names one of `subjects`, from `after` on."""

    def render(batch: list[tuple[int, dict[str, Any]]]) -> bytes:
        return b"!" if any(event.get("subject") in subjects for _, event in batch) else b""

    signal = _Signal()
    follower = asyncio.create_task(
        broadcaster.serve(after, writer=signal, view=view, render=render)  # type: ignore[arg-type]
    )
    try:
        while True:
            waiter = asyncio.create_task(signal.arrived.wait())
            await asyncio.wait({waiter, follower}, return_when=asyncio.FIRST_COMPLETED)
            if follower.done():
                waiter.cancel()
                follower.result()  # the reader stopped: say why
                return
            signal.arrived.clear()
            yield
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await follower


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="The booking each time its status changes, until it settles"
    )
    async def booking_status(
        self, info: Info, booking_id: str, guest_token: str | None = None
    ) -> AsyncGenerator[t.Booking, None]:
        connection = _connection(info)
        platform = connection.app.state.platform

        def read() -> dict[str, Any]:
            found: dict[str, Any] = call(
                connection, rest.get_booking, booking_id=booking_id, token=guest_token
            )
            return found

        first = await asyncio.to_thread(read)
        with platform.backbone.reading() as conn:
            bus = booking_bus(conn, tenant=first.get("tenant"))
        broadcaster: LogBroadcaster = platform.broadcaster(bus)
        after = await asyncio.to_thread(broadcaster.latest)
        current = await asyncio.to_thread(read)  # read after `after`: no change falls between
        yield t.booking(current)
        if current["status"] in SETTLED:
            return
        view = ("graphql-booking", booking_id)
        async for _ in _changes(broadcaster, after, view, frozenset({booking_id})):
            found = await asyncio.to_thread(read)
            if found["status"] != current["status"]:
                current = found
                yield t.booking(current)
            if current["status"] in SETTLED:
                return

    @strawberry.subscription(description="A flight's status (all legs) each time it changes")
    async def flight_updates(
        self, info: Info, flight: str, day: date | None = None
    ) -> AsyncGenerator[list[t.FlightStatus], None]:
        connection = _connection(info)
        broadcaster: LogBroadcaster = connection.app.state.platform.broadcaster(FLIGHT_BUS)

        def read() -> list[dict[str, Any]]:
            legs: list[dict[str, Any]] = call(
                connection, flights_rest.flight_status, flight=flight, day=day
            )
            return legs

        after = await asyncio.to_thread(broadcaster.latest)
        legs = await asyncio.to_thread(read)
        yield [t.flight_status(leg) for leg in legs]
        keys = frozenset(leg["flight_key"] for leg in legs)
        versions = [leg["version"] for leg in legs]
        view = ("graphql-flight", keys)
        async for _ in _changes(broadcaster, after, view, keys):
            legs = await asyncio.to_thread(read)
            if [leg["version"] for leg in legs] != versions:
                versions = [leg["version"] for leg in legs]
                yield [t.flight_status(leg) for leg in legs]


class UserErrors(SchemaExtension):
    """Every error a field raises becomes a GraphQL error with `extensions.code`, and so does
    a document that does not parse or validate."""

    def on_parse(self) -> Iterator[None]:
        yield
        _coded(self.execution_context.pre_execution_errors, "GRAPHQL_PARSE_FAILED")

    def on_validate(self) -> Iterator[None]:
        yield
        _coded(self.execution_context.pre_execution_errors, "GRAPHQL_VALIDATION_FAILED")

    def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            result = _next(root, info, *args, **kwargs)
        except Exception as exc:
            raise as_graphql_error(exc) from None
        if asyncio.iscoroutine(result):
            return _awaited(result)
        if hasattr(result, "__anext__"):
            return _iterated(result)
        return result


def _coded(errors: list[GraphQLError] | None, code: str) -> None:
    for error in errors or []:
        if not (error.extensions or {}).get("code"):
            error.extensions = {**(error.extensions or {}), "code": code}


async def _awaited(pending: Awaitable[Any]) -> Any:
    try:
        return await pending
    except Exception as exc:
        raise as_graphql_error(exc) from None


async def _iterated(stream: AsyncGenerator[Any, None]) -> AsyncGenerator[Any, None]:
    try:
        async for item in stream:
            yield item
    except Exception as exc:
        raise as_graphql_error(exc) from None
    finally:
        await stream.aclose()


class Schema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """A caller's mistakes are answered, not logged: unexpected errors were logged where
        they happened (`as_graphql_error`), and invalid documents are the client's."""
        return


# A hostile document cannot make one request do the work of thousands: bounded depth (the
# schema's deepest useful selection is the seat map's, five levels), aliases and tokens.
LIMITS: list[Callable[[], SchemaExtension]] = [
    partial(QueryDepthLimiter, max_depth=8),
    partial(MaxAliasesLimiter, max_alias_count=20),
    partial(MaxTokensLimiter, max_token_count=2_000),
]
schema = Schema(
    query=Query, mutation=Mutation, subscription=Subscription, extensions=[*LIMITS, UserErrors]
)


class _OfflineGraphiQL(GraphQLRouter[Any, Any]):
    """GraphiQL with its scripts served by the platform, not from a CDN."""

    @functools.cached_property
    def _local_ide_html(self) -> str:
        return graphiql_html(self.graphql_ide_html)

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        return HTMLResponse(self._local_ide_html)


def graphql_router() -> GraphQLRouter[Any, Any]:
    return _OfflineGraphiQL(schema, path="/graphql", dependencies=[Depends(Require(PUBLIC))])
