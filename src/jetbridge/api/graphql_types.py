"""The GraphQL schema's types, and how the booking service's and the hub's answers become them.

Money is in integer minor units with its ISO 4217 currency; times carry UTC and the airport's
local time with its zone, as the pages show them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import strawberry


@strawberry.type(description="An amount in integer minor units (cents) of an ISO 4217 currency")
class Money:
    amount: int
    currency: str


@strawberry.type(description="A moment at an airport: in UTC and in the airport's local time")
class AirportTime:
    utc: datetime
    local: datetime
    zone: str = strawberry.field(description="IANA time zone, e.g. Europe/Zurich")
    abbreviation: str = strawberry.field(description="e.g. CET")


@strawberry.type(description="A cabin's current fare and the seats left in it")
class Fare:
    cabin: str
    price: Money
    seats_left: int


@strawberry.type(description="A bookable flight with its fares now")
class Flight:
    flight_id: str
    airline: str
    flight_number: str
    origin: str
    destination: str
    aircraft_type: str
    departure: AirportTime
    arrival: AirportTime
    fares: list[Fare]


@strawberry.type(description="One time of a flight (off block, take off...): planned to actual")
class FlightTime:
    name: str
    scheduled: str | None
    estimated: str | None
    actual: str | None


@strawberry.type(description="A delay with its IATA code and what it means")
class Delay:
    code: str | None
    minutes: int | None
    meaning: str | None


@strawberry.type(description="A flight leg as the flight hub knows it now (operational status)")
class FlightStatus:
    flight_key: str
    flight: str
    airline: str
    flight_number: str
    origin_date: str
    departure_airport: str
    arrival_airport: str
    version: int
    status: str
    gate: str | None
    terminal: str | None
    stand: str | None
    baggage_belt: str | None
    diversion_airport: str | None
    remarks: str | None
    times: list[FlightTime]
    delays: list[Delay]


@strawberry.type(description="A traveller on a booking, with the seat they chose when booking")
class Passenger:
    given_name: str
    family_name: str
    seat: str | None


@strawberry.type(description="A ticket's flight coupon: one per segment, with that flight's seat")
class Coupon:
    coupon: int = strawberry.field(description="1 for the first segment, 2 for the second...")
    flight_id: str
    seat: str


@strawberry.type(description="An e-ticket: its 13-digit number, whose it is and the seat")
class Ticket:
    ticket_number: str
    passenger_index: int
    seat: str = strawberry.field(description="The seat on the first flight")
    coupons: list[Coupon]


@strawberry.type(description="An earlier ticket number, exchanged when the flights changed")
class ExchangedTicket:
    ticket_number: str
    exchanged_for: str
    passenger_index: int
    reason: str = strawberry.field(description="voluntary change or involuntary rebooking")
    at: datetime


@strawberry.type(description="The flight of a booking, times at the airports' local time")
class BookedFlight:
    flight_id: str
    airline: str
    flight_number: str
    origin: str
    destination: str
    aircraft_type: str
    departure: AirportTime
    arrival: AirportTime


@strawberry.type(description="One flight of a booking's journey, in travel order")
class Segment:
    position: int
    flight_id: str
    cabin: str
    flight: BookedFlight | None


@strawberry.type(description="A booking (PNR) and its tickets")
class Booking:
    booking_id: str
    locator: str = strawberry.field(
        description="The record locator; it exists once the booking is accepted"
    )
    status: str = strawberry.field(
        description="requested, reserved, paid, confirmed, failed or cancelled"
    )
    flight_id: str
    cabin: str
    customer_id: str | None
    amount: Money
    passenger_count: int
    passengers: list[Passenger]
    tickets: list[Ticket]
    flight: BookedFlight | None = strawberry.field(description="The first flight")
    segments: list[Segment] = strawberry.field(
        description="Every flight of the journey in travel order (a connection has two)"
    )
    exchanged_tickets: list[ExchangedTicket]
    failure_message: str | None = strawberry.field(
        description="Why a failed booking did not go through, in plain words"
    )
    created_at: str
    guest_token: str | None = strawberry.field(
        description="For a guest: the token that follows, changes or cancels this booking"
    )


@strawberry.type(description="One flight of an offer, with the seats held on it")
class OfferLeg:
    flight_id: str
    flight: str
    origin: str
    destination: str
    departure: datetime
    arrival: datetime
    cabin: str


@strawberry.type(description="Another flight, or a connection, with seats held for a booking")
class Offer:
    offer: int = strawberry.field(description="The offer's number, as chosen with the link")
    flight_id: str = strawberry.field(description="The first flight")
    flight: str = strawberry.field(description="The flight numbers, LX910/LX922 for a connection")
    origin: str
    destination: str
    departure: datetime
    arrival: datetime = strawberry.field(description="At the journey's end")
    cabin: str
    via: str | None = strawberry.field(description="The connecting airport, if any")
    legs: list[OfferLeg]


@strawberry.type(description="A disruption of a booking's flight and where the booking stands")
class Disruption:
    flight_key: str
    kind: str = strawberry.field(
        description="cancellation, diversion, delay, gate_change or missed_connection"
    )
    status: str = strawberry.field(
        description="affected, waiting (offers held), rebooked, refunded or superseded"
    )
    offers: list[Offer]
    new_flight_id: str | None = strawberry.field(description="The flight it was rebooked on")
    choose_by: datetime | None = strawberry.field(description="When the offers are no longer held")
    notices: list[str] = strawberry.field(description="The subjects of the notices sent")


@strawberry.type(description="A seat on the seat map; who holds a taken seat is never shown")
class Seat:
    seat: str
    letter: str
    taken: bool


@strawberry.type
class SeatRow:
    row: int
    seats: list[Seat]


@strawberry.type(description="One cabin of the seat map: its seat letters and rows")
class SeatMapCabin:
    cabin: str
    letters: str
    rows: list[SeatRow]


@strawberry.type(description="A flight's seat map with the seats taken")
class SeatMap:
    flight_id: str
    aircraft_type: str
    cabins: list[SeatMapCabin]


@strawberry.type
class LoyaltyEntry:
    booking_id: str
    kind: str
    points: int


@strawberry.type(description="A customer's loyalty points, tier and history")
class LoyaltyAccount:
    customer_id: str
    points: int
    tier: str
    history: list[LoyaltyEntry]


@strawberry.type(description="What cancelling now would refund, and by which fare rule")
class RefundQuote:
    booking_id: str
    paid: Money
    refund: Money
    rule: str


@strawberry.type(description="A cancelled booking and the refund made")
class Cancellation:
    booking_id: str
    status: str
    refund: Money
    refunded: int = strawberry.field(description="Minor units refunded to the card so far")
    rule: str


@strawberry.type(description="Another flight of the route: its total and the difference")
class ChangeOffer:
    booking_id: str
    flight_id: str
    paid: Money
    new_total: Money
    difference: Money = strawberry.field(description="Positive: to pay; negative: refunded")


@strawberry.type(description="A booking moved to another flight")
class FlightChange:
    booking_id: str
    flight_id: str
    paid: Money
    new_total: Money
    difference: Money
    status: str
    tickets: list[Ticket]
    refunded: int


@strawberry.type(description="A booking's passengers' seats after choosing on the seat map")
class SeatSelection:
    booking_id: str
    tickets: list[Ticket]


def money(value: dict[str, Any]) -> Money:
    return Money(amount=int(value["amount"]), currency=str(value["currency"]))


def airport_time(value: dict[str, Any]) -> AirportTime:
    return AirportTime(
        utc=datetime.fromisoformat(value["utc"]),
        local=datetime.fromisoformat(value["local"]),
        zone=value["zone"],
        abbreviation=value["abbreviation"],
    )


def flight(offer: dict[str, Any]) -> Flight:
    return Flight(
        flight_id=offer["flight_id"],
        airline=offer["airline"],
        flight_number=offer["flight_number"],
        origin=offer["origin"],
        destination=offer["destination"],
        aircraft_type=offer["aircraft_type"],
        departure=airport_time(offer["departure_local"]),
        arrival=airport_time(offer["arrival_local"]),
        fares=[
            Fare(cabin=cabin, price=money(fare["fare"]), seats_left=fare["seats_left"])
            for cabin, fare in offer["cabins"].items()
        ],
    )


def flight_status(view: dict[str, Any]) -> FlightStatus:
    times = view.get("times") or {}
    return FlightStatus(
        flight_key=view["flight_key"],
        flight=view["flight"],
        airline=view["airline"],
        flight_number=view["flight_number"],
        origin_date=view["origin_date"],
        departure_airport=view["departure_airport"],
        arrival_airport=view["arrival_airport"],
        version=int(view["version"]),
        status=view["status"],
        gate=view.get("gate"),
        terminal=view.get("terminal"),
        stand=view.get("stand"),
        baggage_belt=view.get("baggage_belt"),
        diversion_airport=view.get("diversion_airport"),
        remarks=view.get("remarks"),
        times=[
            FlightTime(
                name=name,
                scheduled=value.get("scheduled"),
                estimated=value.get("estimated"),
                actual=value.get("actual"),
            )
            for name, value in times.items()
            if isinstance(value, dict)
        ],
        delays=[
            Delay(code=d.get("code"), minutes=d.get("minutes"), meaning=d.get("meaning"))
            for d in view.get("delays", [])
        ],
    )


def tickets(issued: list[dict[str, Any]]) -> list[Ticket]:
    return [
        Ticket(
            ticket_number=str(t["ticket_number"]),
            passenger_index=int(t["passenger_index"]),
            seat=str(t["seat"]),
            coupons=[
                Coupon(coupon=int(c["coupon"]), flight_id=c["flight_id"], seat=c["seat"])
                for c in t.get("coupons", [])
            ],
        )
        for t in issued
    ]


def booked_flight(summary: dict[str, Any] | None) -> BookedFlight | None:
    if summary is None:
        return None
    return BookedFlight(
        flight_id=summary["flight_id"],
        airline=summary["airline"],
        flight_number=summary["flight_number"],
        origin=summary["origin"],
        destination=summary["destination"],
        aircraft_type=summary["aircraft_type"],
        departure=airport_time(summary["departure"]),
        arrival=airport_time(summary["arrival"]),
    )


def booking(found: dict[str, Any]) -> Booking:
    return Booking(
        booking_id=found["booking_id"],
        locator=found["locator"],
        status=found["status"],
        flight_id=found["flight_id"],
        cabin=found["cabin"],
        customer_id=found.get("customer_id"),
        amount=money(found["amount"]),
        passenger_count=int(found["passenger_count"]),
        passengers=[
            Passenger(given_name=p["given_name"], family_name=p["family_name"], seat=p.get("seat"))
            for p in found.get("passengers", [])
        ],
        tickets=tickets(found.get("tickets", [])),
        flight=booked_flight(found.get("flight")),
        segments=[
            Segment(
                position=int(s["position"]),
                flight_id=s["flight_id"],
                cabin=s["cabin"],
                flight=booked_flight(s.get("flight")),
            )
            for s in found.get("segments", [])
        ],
        exchanged_tickets=[
            ExchangedTicket(
                ticket_number=e["ticket_number"],
                exchanged_for=e["exchanged_for"],
                passenger_index=int(e["passenger_index"]),
                reason=e["reason"],
                at=datetime.fromisoformat(e["at"]),
            )
            for e in found.get("exchanged_tickets", [])
        ],
        failure_message=found.get("failure_message"),
        created_at=found["created_at"],
        guest_token=found.get("guest_token"),
    )


def seat_map(plan: dict[str, Any]) -> SeatMap:
    return SeatMap(
        flight_id=plan["flight_id"],
        aircraft_type=plan["aircraft_type"],
        cabins=[
            SeatMapCabin(
                cabin=cabin["cabin"],
                letters=cabin["letters"],
                rows=[
                    SeatRow(row=row["row"], seats=[Seat(**seat) for seat in row["seats"]])
                    for row in cabin["rows"]
                ],
            )
            for cabin in plan["cabins"]
        ],
    )


def loyalty(account: dict[str, Any]) -> LoyaltyAccount:
    return LoyaltyAccount(
        customer_id=account["customer_id"],
        points=int(account["points"]),
        tier=account["tier"],
        history=[LoyaltyEntry(**entry) for entry in account["history"]],
    )


def change_offer(quote: dict[str, Any]) -> ChangeOffer:
    return ChangeOffer(
        booking_id=quote["booking_id"],
        flight_id=quote["flight_id"],
        paid=money(quote["paid"]),
        new_total=money(quote["new_total"]),
        difference=money(quote["difference"]),
    )


def flight_change(done: dict[str, Any]) -> FlightChange:
    offer = change_offer(done)
    return FlightChange(
        booking_id=offer.booking_id,
        flight_id=offer.flight_id,
        paid=offer.paid,
        new_total=offer.new_total,
        difference=offer.difference,
        status=done["status"],
        tickets=tickets(done["tickets"]),
        refunded=int(done["refunded"]),
    )


def _offer_leg(leg: dict[str, Any]) -> OfferLeg:
    return OfferLeg(
        flight_id=leg["flight_id"],
        flight=leg["flight"],
        origin=leg["origin"],
        destination=leg["destination"],
        departure=datetime.fromisoformat(leg["departure"]),
        arrival=datetime.fromisoformat(leg["arrival"]),
        cabin=leg["cabin"],
    )


def offer(found: dict[str, Any]) -> Offer:
    """An offer as stored (one held before connections were offered has no `legs`)."""
    legs = found.get("legs") or [found]
    return Offer(
        offer=int(found["offer"]),
        flight_id=found["flight_id"],
        flight=found["flight"],
        origin=found["origin"],
        destination=found["destination"],
        departure=datetime.fromisoformat(found["departure"]),
        arrival=datetime.fromisoformat(found["arrival"]),
        cabin=found["cabin"],
        via=found.get("via"),
        legs=[_offer_leg(leg) for leg in legs],
    )


def disruptions(found: dict[str, Any]) -> list[Disruption]:
    """A booking's disruptions, as `GET /api/bookings/{id}/disruptions` answers them."""
    shown = []
    for case in found["disruptions"]:
        key = case["flight_key"]
        subjects = [
            str(n["message"].get("subject", "")) for n in found["notices"] if n["flight_key"] == key
        ]
        choose_by = case.get("choose_by")
        shown.append(
            Disruption(
                flight_key=key,
                kind=case["kind"],
                status=case["status"],
                offers=[offer(o) for o in case.get("offers") or []],
                new_flight_id=case.get("new_flight_id"),
                choose_by=None if choose_by is None else datetime.fromtimestamp(choose_by, UTC),
                notices=subjects,
            )
        )
    return shown
