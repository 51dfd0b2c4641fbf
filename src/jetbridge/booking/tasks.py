"""The booking saga's steps, as task handlers: ReserveSeat, ProcessPayment, IssueTicket and the
compensations CancelReservation and RefundPayment.

Every step is idempotent, because a durable workflow may run a step again after a crash: seats
are held under the booking id, payment calls carry idempotency keys derived from the booking,
tickets and loyalty entries are unique per booking. A failing step raises `StepFailed`, whose
cause carries the booking id, so compensations reached through a Catch find the booking even
when the error output replaced the state's input.

The saga carries the booking id only: steps read what they need from the booking, and the card
(sealed in the booking row) is erased once the booking is confirmed or failed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from jetbridge.booking import inventory, seating, segments, service
from jetbridge.booking.events import booking_bus, booking_event
from jetbridge.booking.identifiers import ticket_number
from jetbridge.booking.loyalty import points_for, tier_for
from jetbridge.booking.money import Money
from jetbridge.booking.personal_data import PersonalData
from jetbridge.booking.points import set_balance
from jetbridge.events.backbone import Backbone
from jetbridge.payments.provider import PaymentError, PaymentProvider
from jetbridge.storage.schema import (
    counters,
    loyalty_accounts,
    loyalty_ledger,
    payments,
    reconciliation,
    tickets,
)


class StepFailed(Exception):
    """A saga step failed; `error` is the ASL error name, the cause names the booking."""

    def __init__(self, error: str, *, booking_id: str, reason: str) -> None:
        self.error = error
        self.cause = json.dumps({"booking_id": booking_id, "reason": reason})
        super().__init__(self.cause)


def booking_id_of(payload: Any) -> str:
    """The booking a step is about: from its input, or from the cause of a caught error."""
    if isinstance(payload, dict):
        if isinstance(payload.get("booking_id"), str):
            return str(payload["booking_id"])
        cause = payload.get("Cause") or (payload.get("error") or {}).get("Cause")
        if isinstance(cause, str):
            try:
                found = json.loads(cause).get("booking_id")
            except (ValueError, AttributeError):
                found = None
            if isinstance(found, str):
                return found
    raise ValueError("the step's input names no booking_id")


class BookingTasks:
    """Handlers for the saga, bound to the platform's database, bus and payment provider."""

    def __init__(
        self,
        *,
        backbone: Backbone,
        payments: PaymentProvider,
        personal: PersonalData,
        accounting_code: str = "724",
        hold_seconds: float = 900,
    ) -> None:
        self.backbone = backbone
        self.payments = payments
        self.personal = personal
        self.accounting_code = accounting_code
        self.hold_seconds = hold_seconds

    def handlers(self) -> dict[str, Callable[[Any], Any]]:
        return {
            "ReserveSeat": self.reserve_seat,
            "ProcessPayment": self.process_payment,
            "IssueTicket": self.issue_ticket,
            "CancelReservation": self.cancel_reservation,
            "RefundPayment": self.refund_payment,
        }

    def reserve_seat(self, payload: Any) -> dict[str, Any]:
        booking_id = booking_id_of(payload)
        with self.backbone.transaction() as conn:
            booking = service.get_booking(conn, booking_id=booking_id)
            held = _held_by(conn, booking_id)
            if not held:
                try:
                    held = inventory.hold_seats(
                        conn,
                        flight_id=booking["flight_id"],
                        cabin=booking["cabin"],
                        count=booking["passenger_count"],
                        hold_id=booking_id,
                        ttl=self.hold_seconds,
                        now=time.time(),
                    )
                except inventory.SoldOut as exc:
                    raise StepFailed(
                        "SeatUnavailable", booking_id=booking_id, reason=str(exc)
                    ) from None
                service.set_status(conn, booking_id=booking_id, status="reserved")
                data = {
                    "flight_id": booking["flight_id"],
                    "cabin": booking["cabin"],
                    "held": len(held),
                }
                self._publish(conn, "inventory.updated", booking_id, data, key="hold")
        return {**_carry(payload), "booking_id": booking_id, "seats": held}

    def process_payment(self, payload: Any) -> dict[str, Any]:
        booking_id = booking_id_of(payload)
        with self.backbone.reading() as conn:
            booking = service.get_booking(conn, booking_id=booking_id)
            card = service.payment_card(conn, booking_id=booking_id, personal=self.personal)
        amount = Money(booking["amount"]["amount"], booking["amount"]["currency"])
        card = card or _card_in(payload)
        if not card:
            raise StepFailed(
                "PaymentFailed", booking_id=booking_id, reason="the booking holds no payment card"
            )
        try:
            auth = self.payments.authorize(
                key=f"{booking_id}:authorize",
                amount=amount,
                card=card,
                description=booking["locator"],
            )
        except PaymentError as exc:
            raise StepFailed(
                "PaymentDeclined" if not exc.retryable else "PaymentUnavailable",
                booking_id=booking_id,
                reason=str(exc),
            ) from None
        self._record_payment(
            booking_id, auth.payment_id, "authorized", amount, "payment.authorized"
        )
        try:
            self.payments.capture(key=f"{booking_id}:capture", payment_id=auth.payment_id)
        except PaymentError as exc:
            self._void(booking_id, auth.payment_id, amount)
            raise StepFailed("PaymentFailed", booking_id=booking_id, reason=str(exc)) from None
        self._record_payment(booking_id, auth.payment_id, "captured", amount, "payment.processed")
        return {"booking_id": booking_id, "payment_id": auth.payment_id}

    def issue_ticket(self, payload: Any) -> dict[str, Any]:
        booking_id = booking_id_of(payload)
        with self.backbone.transaction() as conn:
            booking = service.get_booking(conn, booking_id=booking_id, personal=self.personal)
            issued = self._tickets(conn, booking_id)
            if not issued:
                seats_sold = inventory.confirm_hold(conn, hold_id=booking_id, booking_id=booking_id)
                chosen = [p.get("seat") for p in booking["passengers"]]
                seats_sold = seating.in_chosen_order(seats_sold, chosen)
                if len(seats_sold) < booking["passenger_count"]:
                    raise StepFailed(
                        "SeatLost", booking_id=booking_id, reason="the seat hold was lost"
                    )
                issued = self._issue(conn, booking_id, booking["flight_id"], seats_sold)
                service.set_status(
                    conn, booking_id=booking_id, status="confirmed", payment_card=None
                )
                self._publish(conn, "ticket.issued", booking_id, {"tickets": issued})
                self._publish(
                    conn,
                    "booking.confirmed",
                    booking_id,
                    {"locator": booking["locator"], "flight_id": booking["flight_id"]},
                )
                self._award_points(conn, booking)
        return {
            **_carry(payload),
            "booking_id": booking_id,
            "tickets": issued,
            "status": "confirmed",
        }

    def cancel_reservation(self, payload: Any) -> dict[str, Any]:
        booking_id = booking_id_of(payload)
        with self.backbone.transaction() as conn:
            released = inventory.release_hold(conn, hold_id=booking_id)
            booking = service.get_booking(conn, booking_id=booking_id)
            if booking["status"] not in {"failed", "cancelled"}:
                service.set_status(
                    conn,
                    booking_id=booking_id,
                    status="failed",
                    failure=_reason(payload),
                    payment_card=None,
                )
            if released:
                self._publish(
                    conn,
                    "inventory.updated",
                    booking_id,
                    {"flight_id": booking["flight_id"], "released": released},
                    key="release",
                )
        return {"booking_id": booking_id, "released": released}

    def refund_payment(self, payload: Any) -> dict[str, Any]:
        booking_id = booking_id_of(payload)
        with self.backbone.reading() as conn:
            row = conn.execute(select(payments).where(payments.c.booking_id == booking_id)).first()
        if row is None:
            return {"booking_id": booking_id, "refunded": 0}
        amount = Money(row.amount, row.currency)
        if row.status == "authorized":
            self._void(booking_id, row.payment_id, amount)
            return {"booking_id": booking_id, "refunded": 0, "voided": True}
        refunded = self.refund(booking_id, row.payment_id, amount, key="saga")
        return {"booking_id": booking_id, "refunded": refunded}

    def refund(self, booking_id: str, payment_id: str, amount: Money, *, key: str) -> int:
        """Refund or, if the provider fails, queue for reconciliation: never silently dropped."""
        try:
            self.payments.refund(
                key=f"{booking_id}:refund:{key}", payment_id=payment_id, amount=amount
            )
        except PaymentError as exc:
            self._reconcile(booking_id, payment_id, "refund", amount, str(exc))
            return 0
        with self.backbone.transaction() as conn:
            conn.execute(
                update(payments)
                .where(payments.c.booking_id == booking_id)
                .values(
                    status="refunded",
                    refunded=payments.c.refunded + amount.amount,
                    updated_at=time.time(),
                )
            )
            self._publish(
                conn, "payment.refunded", booking_id, {"amount": amount.to_json()}, key=key
            )
        return amount.amount

    def _void(self, booking_id: str, payment_id: str, amount: Money) -> None:
        try:
            self.payments.void(key=f"{booking_id}:void", payment_id=payment_id)
        except PaymentError as exc:
            self._reconcile(booking_id, payment_id, "void", amount, str(exc))
            return
        with self.backbone.transaction() as conn:
            conn.execute(
                update(payments)
                .where(payments.c.booking_id == booking_id)
                .values(status="voided", updated_at=time.time())
            )

    def _reconcile(
        self, booking_id: str, payment_id: str, action: str, amount: Money, error: str
    ) -> None:
        with self.backbone.transaction() as conn:
            conn.execute(
                insert(reconciliation).values(
                    booking_id=booking_id,
                    payment_id=payment_id,
                    action=action,
                    amount=amount.amount,
                    currency=amount.currency,
                    error=error[:2000],
                    created_at=time.time(),
                )
            )

    def _record_payment(
        self, booking_id: str, payment_id: str, status: str, amount: Money, kind: str
    ) -> None:
        with self.backbone.transaction() as conn:
            exists = conn.execute(
                select(payments.c.status).where(payments.c.booking_id == booking_id)
            ).scalar()
            values = {
                "payment_id": payment_id,
                "status": status,
                "amount": amount.amount,
                "currency": amount.currency,
                "updated_at": time.time(),
            }
            if exists is None:
                conn.execute(insert(payments).values(booking_id=booking_id, **values))
            else:
                conn.execute(
                    update(payments).where(payments.c.booking_id == booking_id).values(**values)
                )
            service.set_status(
                conn,
                booking_id=booking_id,
                status="paid" if status == "captured" else "reserved",
                payment_id=payment_id,
            )
            self._publish(
                conn, kind, booking_id, {"payment_id": payment_id, "amount": amount.to_json()}
            )

    def _tickets(self, conn: Connection, booking_id: str) -> list[dict[str, Any]]:
        rows = conn.execute(
            select(tickets)
            .where(tickets.c.booking_id == booking_id)
            .order_by(tickets.c.passenger_index)
        )
        return [
            {"ticket_number": r.ticket_number, "passenger_index": r.passenger_index, "seat": r.seat}
            for r in rows
        ]

    def _issue(
        self, conn: Connection, booking_id: str, flight_id: str, seats_sold: list[str]
    ) -> list[dict[str, Any]]:
        issued = []
        for index, seat in enumerate(seats_sold):
            number = ticket_number(self.accounting_code, next_serial(conn))
            conn.execute(
                insert(tickets).values(
                    ticket_number=number,
                    booking_id=booking_id,
                    passenger_index=index,
                    seat=seat,
                    issued_at=time.time(),
                )
            )
            segments.write_coupons(
                conn, ticket_number=number, booking_id=booking_id, seats_by_leg=[(flight_id, seat)]
            )
            issued.append({"ticket_number": number, "passenger_index": index, "seat": seat})
        return issued

    def _award_points(self, conn: Connection, booking: dict[str, Any]) -> None:
        customer = booking["customer_id"]
        account = conn.execute(
            select(loyalty_accounts).where(loyalty_accounts.c.customer_id == customer)
        ).first()
        balance = account.points if account else 0
        points = points_for(
            fare_minor=booking["amount"]["amount"], cabin=booking["cabin"], tier=tier_for(balance)
        )
        conn.execute(
            insert(loyalty_ledger).values(
                booking_id=booking["booking_id"],
                kind="award",
                customer_id=customer,
                points=points,
                at=time.time(),
            )
        )
        set_balance(conn, customer, balance + points, exists=account is not None)
        self._publish(
            conn,
            "loyalty.points_awarded",
            booking["booking_id"],
            {"customer_id": customer, "points": points, "tier": tier_for(balance + points).value},
        )

    def _publish(
        self,
        conn: Connection,
        kind: str,
        booking_id: str,
        data: dict[str, Any],
        *,
        key: str | None = None,
    ) -> None:
        self.backbone.publish(
            conn,
            bus=booking_bus(conn, booking_id=booking_id),
            events=[booking_event(kind, booking_id=booking_id, data=data, key=key)],
        )


def next_serial(conn: Connection) -> int:
    """The next ticket serial, atomically: concurrent issuers never get the same number."""
    bumped = conn.execute(
        update(counters)
        .where(counters.c.name == "ticket_serial")
        .values(value=counters.c.value + 1)
        .returning(counters.c.value)
    ).scalar()
    if bumped is not None:
        return int(bumped)
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    conn.execute(
        dialect_insert(counters).values(name="ticket_serial", value=0).on_conflict_do_nothing()
    )
    return next_serial(conn)


def _held_by(conn: Connection, booking_id: str) -> list[str]:
    from jetbridge.storage.schema import seats

    rows = conn.execute(
        select(seats.c.seat).where(seats.c.hold_id == booking_id).order_by(seats.c.seat)
    )
    return list(rows.scalars())


def _carry(payload: Any) -> dict[str, Any]:
    """Payment details in the input of executions started before cards moved into the booking
    row ride along until ProcessPayment; newer executions carry nothing but the booking id."""
    if not isinstance(payload, dict):
        return {}
    return {key: payload[key] for key in ("payment",) if key in payload}


def _card_in(payload: Any) -> str:
    payment = payload.get("payment") if isinstance(payload, dict) else None
    return str(payment.get("card", "")) if isinstance(payment, dict) else ""


def _reason(payload: Any) -> str:
    """Why the booking failed, from the caught error (at `$` or, in our saga, `$.error`)."""
    error = payload.get("error", payload) if isinstance(payload, dict) else {}
    cause = error.get("Cause") if isinstance(error, dict) else None
    if isinstance(cause, str):
        try:
            return str(json.loads(cause).get("reason", cause))[:500]
        except (ValueError, AttributeError):
            return cause[:500]
    return "cancelled"
