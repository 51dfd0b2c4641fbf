"""Applying a passenger's choice: rebooking onto an offer (a new ticket number per passenger,
the seats moved from one flight to the other, loyalty as it was) or a full refund.

Both are idempotent: a case already settled is left as it is, so a step run again after a crash
changes nothing twice.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, insert, select, update

from jetbridge.booking import inventory, service
from jetbridge.booking.events import booking_bus, booking_event
from jetbridge.booking.identifiers import ticket_number
from jetbridge.booking.tasks import next_serial
from jetbridge.disruption import offers, store
from jetbridge.events.backbone import Backbone
from jetbridge.storage.schema import bookings, ticket_reissues, tickets


class SeatsLost(Exception):
    """The offer's held seats are gone (the hold was released or taken)."""


def rebook(
    conn: Connection,
    backbone: Backbone,
    *,
    booking_id: str,
    flight_key: str,
    offer: dict[str, Any],
    accounting_code: str,
) -> list[dict[str, Any]]:
    """Move a confirmed booking onto `offer`; the reissued tickets (old and new numbers)."""
    booking = service.get_booking(conn, booking_id=booking_id)
    index = int(offer["offer"])
    inventory.release_sold(conn, booking_id=booking_id)
    sold = inventory.confirm_hold(
        conn, hold_id=offers.hold_id(booking_id, index), booking_id=booking_id
    )
    if len(sold) < booking["passenger_count"]:
        raise SeatsLost(f"the seats held on {offer['flight_id']} are no longer held")
    offers.release_offers(conn, booking_id=booking_id)
    conn.execute(
        update(bookings)
        .where(bookings.c.booking_id == booking_id)
        .values(flight_id=offer["flight_id"], cabin=offer["cabin"], updated_at=time.time())
    )
    reissued = _reissue(conn, booking_id, sorted(sold), offer["flight_id"], accounting_code)
    store.set_case(
        conn,
        flight_key=flight_key,
        booking_id=booking_id,
        status="rebooked",
        new_flight_id=offer["flight_id"],
    )
    bus = booking_bus(conn, booking_id=booking_id)
    data = {
        "previous_flight_id": booking["flight_id"],
        "flight_id": offer["flight_id"],
        "cabin": offer["cabin"],
        "tickets": reissued,
    }
    backbone.publish(
        conn,
        bus=bus,
        events=[
            booking_event("booking.rebooked", booking_id=booking_id, data=data, key=flight_key),
            booking_event(
                "ticket.reissued",
                booking_id=booking_id,
                data={"tickets": reissued},
                key=flight_key,
            ),
        ],
    )
    return reissued


def _reissue(
    conn: Connection, booking_id: str, seats: list[str], flight_id: str, accounting_code: str
) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(tickets)
        .where(tickets.c.booking_id == booking_id)
        .order_by(tickets.c.passenger_index)
    ).all()
    reissued = []
    now = time.time()
    for row, seat in zip(rows, seats, strict=False):
        number = ticket_number(accounting_code, next_serial(conn))
        conn.execute(
            update(tickets)
            .where(tickets.c.ticket_number == row.ticket_number)
            .values(ticket_number=number, seat=seat, issued_at=now)
        )
        conn.execute(
            insert(ticket_reissues).values(
                old_ticket=row.ticket_number,
                new_ticket=number,
                booking_id=booking_id,
                passenger_index=row.passenger_index,
                flight_id=flight_id,
                reason="involuntary rebooking",
                at=now,
            )
        )
        reissued.append(
            {
                "passenger_index": row.passenger_index,
                "previous_ticket_number": row.ticket_number,
                "ticket_number": number,
                "seat": seat,
            }
        )
    return reissued


def cancel_for_refund(
    conn: Connection, backbone: Backbone, *, booking_id: str, flight_key: str, revoke: Any
) -> dict[str, Any]:
    """Cancel the booking and free its seats and offers; the refund is paid afterwards."""
    booking = service.get_booking(conn, booking_id=booking_id)
    inventory.release_sold(conn, booking_id=booking_id)
    offers.release_offers(conn, booking_id=booking_id)
    service.set_status(
        conn,
        booking_id=booking_id,
        status="cancelled",
        failure="refunded in full: the flight was disrupted",
    )
    revoke(conn, booking)
    store.set_case(conn, flight_key=flight_key, booking_id=booking_id, status="refunded")
    backbone.publish(
        conn,
        bus=booking_bus(conn, booking_id=booking_id),
        events=[
            booking_event(
                "booking.cancelled",
                booking_id=booking_id,
                data={"refund": booking["amount"], "rule": "involuntary: full refund"},
                key=flight_key,
            )
        ],
    )
    return booking
