"""What a traveller does with a booking after paying: see it with its tickets, seats and flight
in local time, pick other seats on the seat map, learn the refund before cancelling, and change
to another flight on the same route paying (or getting back) the fare difference."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select, update

from jetbridge.booking import catalog, inventory, points, reissue, seating, segments, service
from jetbridge.booking.events import booking_bus, booking_event
from jetbridge.booking.money import Money
from jetbridge.booking.presentation import failure_message, moment
from jetbridge.booking.refunds import RefundDecision, refund_for
from jetbridge.booking.seatmap import check_choice, seat_plan
from jetbridge.booking.tasks import BookingTasks
from jetbridge.errors import Conflict, InvalidRequest, NotFound
from jetbridge.events.backbone import Backbone
from jetbridge.payments.provider import PaymentError
from jetbridge.storage.schema import bookings, payments, scheduled_flights


class PaymentRefused(Conflict):
    """The card paying a fare difference was declined (the message says why, in words)."""


def view(conn: Connection, booking: dict[str, Any]) -> dict[str, Any]:
    """A booking with its tickets (number, seat and a coupon per segment), its flights in travel
    order with local times (`flight` is the first), the tickets it exchanged, and, if it failed,
    why in plain words."""
    booking_id = booking["booking_id"]
    legs = segments.segments_of(conn, booking_id) or [
        segments.Leg(booking["flight_id"], booking["cabin"])
    ]
    return booking | {
        "tickets": seating.tickets_of(conn, booking_id=booking_id),
        "flight": flight_summary(conn, booking["flight_id"]),
        "segments": [
            leg.to_json() | {"position": n, "flight": flight_summary(conn, leg.flight_id)}
            for n, leg in enumerate(legs)
        ],
        "exchanged_tickets": reissue.exchanged_tickets(conn, booking_id=booking_id),
        "failure_message": failure_message(booking.get("failure")),
    }


def flight_summary(conn: Connection, flight_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        select(scheduled_flights).where(scheduled_flights.c.flight_id == flight_id)
    ).first()
    if row is None:
        return None
    return {
        "flight_id": row.flight_id,
        "airline": row.airline,
        "flight_number": row.flight_number,
        "origin": row.origin,
        "destination": row.destination,
        "aircraft_type": row.aircraft_type,
        "departure": moment(row.departs_at, row.origin),
        "arrival": moment(row.arrives_at, row.destination),
    }


def refund_decision(booking: dict[str, Any], *, departs_at: float, now: float) -> RefundDecision:
    """What cancelling the booking now gives back, by the fare rules."""
    paid = Money(booking["amount"]["amount"], booking["amount"]["currency"])
    return refund_for(
        paid=paid,
        booked_at=datetime.fromisoformat(booking["created_at"]),
        departure=datetime.fromtimestamp(departs_at, UTC),
        cancelled_at=datetime.fromtimestamp(now, UTC),
    )


def _departs_at(conn: Connection, flight_id: str) -> float:
    departs = conn.execute(
        select(scheduled_flights.c.departs_at).where(scheduled_flights.c.flight_id == flight_id)
    ).scalar_one()
    return float(departs)


def _confirmed(conn: Connection, booking_id: str) -> dict[str, Any]:
    booking = service.get_booking(conn, booking_id=booking_id)
    if booking["status"] != "confirmed":
        raise Conflict(f"booking {booking_id} is {booking['status']}, not confirmed")
    return booking


class Changes:
    def __init__(self, *, backbone: Backbone, tasks: BookingTasks) -> None:
        self.backbone = backbone
        self.tasks = tasks

    def seat_map(self, *, flight_id: str) -> dict[str, Any]:
        """The flight's cabins, rows and seats, each free or taken."""
        now = time.time()
        with self.backbone.reading() as conn:
            offer = catalog.flight_offer(conn, flight_id=flight_id, now=now)
            if offer is None:
                raise NotFound(f"flight {flight_id!r} does not exist")
            taken = seating.taken_seats(conn, flight_id=flight_id, now=now)
        return {
            "flight_id": flight_id,
            "aircraft_type": offer["aircraft_type"],
            "cabins": seat_plan(offer["aircraft_type"], cabins=set(offer["cabins"]), taken=taken),
        }

    def refund_quote(self, *, booking_id: str) -> dict[str, Any]:
        """What cancelling now would refund, and by which rule (nothing is changed)."""
        with self.backbone.reading() as conn:
            booking = _confirmed(conn, booking_id)
            decision = refund_decision(
                booking, departs_at=_departs_at(conn, booking["flight_id"]), now=time.time()
            )
        return {
            "booking_id": booking_id,
            "paid": booking["amount"],
            "refund": decision.refund.to_json(),
            "rule": decision.rule,
        }

    def select_seats(self, *, booking_id: str, seats: list[str]) -> dict[str, Any]:
        """Move the passengers of a confirmed booking to these seats (passenger order)."""
        with self.backbone.transaction() as conn:
            booking = _confirmed(conn, booking_id)
            if len(seats) != booking["passenger_count"]:
                raise InvalidRequest(
                    f"seats: choose {booking['passenger_count']} seat(s), one per passenger; "
                    f"{len(seats)} given"
                )
            aircraft = conn.execute(
                select(scheduled_flights.c.aircraft_type).where(
                    scheduled_flights.c.flight_id == booking["flight_id"]
                )
            ).scalar_one()
            try:
                check_choice(aircraft, booking["cabin"], list(seats))
            except ValueError as exc:
                raise InvalidRequest(str(exc).replace("passengers[", "seats[")) from None
            issued = seating.reseat(
                conn,
                booking_id=booking_id,
                flight_id=booking["flight_id"],
                chosen=list(seats),
                now=time.time(),
            )
            self._publish(conn, booking, "booking.seats_changed", {"tickets": issued})
        return {"booking_id": booking_id, "tickets": issued}

    def change_quote(self, *, booking_id: str, flight_id: str) -> dict[str, Any]:
        """The fare of the same cabin on another flight of the route, and the difference."""
        with self.backbone.reading() as conn:
            booking, offer = self._checked_change(conn, booking_id, flight_id)
        return self._quote(booking, offer)

    def _checked_change(
        self, conn: Connection, booking_id: str, flight_id: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        booking = _confirmed(conn, booking_id)
        now = time.time()
        offer = catalog.flight_offer(conn, flight_id=flight_id, now=now)
        if offer is None:
            raise NotFound(f"flight_id: no flight {flight_id!r}")
        current = flight_summary(conn, booking["flight_id"])
        assert current is not None
        if flight_id == booking["flight_id"]:
            raise InvalidRequest("flight_id: the booking is already on this flight")
        if (offer["origin"], offer["destination"]) != (current["origin"], current["destination"]):
            raise InvalidRequest(
                f"flight_id: {flight_id} does not fly {current['origin']} to "
                f"{current['destination']}; choose a flight on the booked route"
            )
        if datetime.fromisoformat(offer["departure"]).timestamp() <= now:
            raise InvalidRequest(f"flight_id: {flight_id} has already left")
        cabin = offer["cabins"].get(booking["cabin"])
        if cabin is None:
            raise InvalidRequest(f"flight_id: {flight_id} has no {booking['cabin']} cabin")
        if cabin["seats_left"] < booking["passenger_count"]:
            raise Conflict(
                f"flight_id: {flight_id} has {cabin['seats_left']} {booking['cabin']} seat(s) "
                f"left, {booking['passenger_count']} needed"
            )
        return booking, offer

    @staticmethod
    def _quote(booking: dict[str, Any], offer: dict[str, Any]) -> dict[str, Any]:
        fare = offer["cabins"][booking["cabin"]]["fare"]
        total = Money(fare["amount"] * booking["passenger_count"], fare["currency"])
        paid = Money(booking["amount"]["amount"], booking["amount"]["currency"])
        return {
            "booking_id": booking["booking_id"],
            "flight_id": offer["flight_id"],
            "paid": paid.to_json(),
            "new_total": total.to_json(),
            "difference": (total - paid).to_json(),
        }

    def change(self, *, booking_id: str, flight_id: str, card: str | None) -> dict[str, Any]:
        """Move a confirmed booking to another flight of its route in the same cabin: the
        difference is charged to `card` (required when the new fare is higher) or refunded."""
        with self.backbone.reading() as conn:
            booking, offer = self._checked_change(conn, booking_id, flight_id)
        quote = self._quote(booking, offer)
        difference = Money(quote["difference"]["amount"], quote["difference"]["currency"])
        if difference.amount > 0:
            self._charge(booking, flight_id, difference, card)
        with self.backbone.transaction() as conn:
            issued = self._move(conn, booking, flight_id, quote)
        refunded = 0
        if difference.amount < 0:
            payment_id = self._payment_of(booking_id)
            if payment_id:
                back = Money(-difference.amount, difference.currency)
                refunded = self.tasks.refund(
                    booking_id, payment_id, back, key=f"change:{flight_id}"
                )
        return quote | {"status": "confirmed", "tickets": issued, "refunded": refunded}

    def _charge(
        self, booking: dict[str, Any], flight_id: str, amount: Money, card: str | None
    ) -> None:
        if not card:
            raise InvalidRequest(
                f"payment.card: the new flight costs {amount.format()} more; "
                "give a card to pay the difference"
            )
        card = card.replace(" ", "")
        # One payment per change and card: a retry is the same payment, another card a new one.
        digest = hashlib.sha256(card.encode()).hexdigest()[:16]
        key = f"{booking['booking_id']}:change:{flight_id}:{digest}"
        try:
            auth = self.tasks.payments.authorize(
                key=f"{key}:authorize",
                amount=amount,
                card=card,
                description=booking["locator"],
            )
            self.tasks.payments.capture(key=f"{key}:capture", payment_id=auth.payment_id)
        except PaymentError as exc:
            message = failure_message(str(exc)) or "the payment failed"
            raise PaymentRefused(f"payment.card: {message}") from None

    def _move(
        self, conn: Connection, booking: dict[str, Any], flight_id: str, quote: dict[str, Any]
    ) -> list[dict[str, object]]:
        booking_id = booking["booking_id"]
        current = _confirmed(conn, booking_id)  # re-read inside the write transaction
        if current["flight_id"] != booking["flight_id"]:
            raise Conflict(f"booking {booking_id} was changed meanwhile; look at it again")
        hold = f"change:{booking_id}"
        now = time.time()
        try:
            inventory.hold_seats(
                conn,
                flight_id=flight_id,
                cabin=booking["cabin"],
                count=booking["passenger_count"],
                hold_id=hold,
                ttl=60,
                now=now,
            )
        except inventory.SoldOut as exc:
            raise Conflict(f"flight_id: {exc}") from None
        inventory.release_sold(conn, booking_id=booking_id, flight_id=booking["flight_id"])
        inventory.confirm_hold(conn, hold_id=hold, booking_id=booking_id)
        conn.execute(
            update(bookings)
            .where(bookings.c.booking_id == booking_id)
            .values(amount=quote["new_total"]["amount"], updated_at=time.time())
        )
        before = segments.segments_of(conn, booking_id)
        journey = [
            segments.Leg(flight_id, leg.cabin) if leg.flight_id == booking["flight_id"] else leg
            for leg in before
        ]
        issued = reissue.reissue_for_journey(
            conn,
            booking_id=booking_id,
            legs=journey,
            passengers=booking["passenger_count"],
            accounting_code=self.tasks.accounting_code,
            reason=reissue.VOLUNTARY,
        )
        earned = points.adjust_for_change(
            conn,
            booking=booking,
            difference=int(quote["difference"]["amount"]),
            cabin=booking["cabin"],
        )
        data = {
            "from": booking["flight_id"],
            "to": flight_id,
            "difference": quote["difference"],
            "tickets": issued,
            "points": earned,
        }
        self._publish(conn, booking, "booking.changed", data)
        return issued

    def _payment_of(self, booking_id: str) -> str | None:
        with self.backbone.reading() as conn:
            found = conn.execute(
                select(payments.c.payment_id).where(payments.c.booking_id == booking_id)
            ).scalar()
        return None if found is None else str(found)

    def _publish(
        self, conn: Connection, booking: dict[str, Any], kind: str, data: dict[str, Any]
    ) -> None:
        key = str(time.time_ns())  # each change is its own event
        self.backbone.publish(
            conn,
            bus=booking_bus(conn, tenant=booking.get("tenant")),
            events=[booking_event(kind, booking_id=booking["booking_id"], data=data, key=key)],
        )
