"""Applying a passenger's choice: rebooking onto an offer (a new ticket number per passenger with
a coupon per segment, the seats moved from the replaced flights to the offer's, loyalty as it
was) or a full refund.

Both are idempotent: a case already settled is left as it is, so a step run again after a crash
changes nothing twice.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from jetbridge.booking import inventory, reissue, segments, service
from jetbridge.booking.events import booking_bus, booking_event
from jetbridge.disruption import offers, store
from jetbridge.events.backbone import Backbone


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
    """Move a confirmed booking onto `offer` (a direct flight or a connection) in place of the
    segments it replaces; the reissued tickets (old and new numbers, a coupon per segment)."""
    booking = service.get_booking(conn, booking_id=booking_id)
    before = segments.segments_of(conn, booking_id) or [
        segments.Leg(booking["flight_id"], booking["cabin"])
    ]
    replaces = [n for n in offer.get("replaces") or range(len(before)) if n < len(before)]
    legs = offer.get("legs") or [offer]
    new_legs = [segments.Leg(leg["flight_id"], leg["cabin"]) for leg in legs]
    for position in replaces:
        inventory.release_sold(conn, booking_id=booking_id, flight_id=before[position].flight_id)
    sold = inventory.confirm_hold(
        conn, hold_id=offers.hold_id(booking_id, int(offer["offer"])), booking_id=booking_id
    )
    if len(sold) < booking["passenger_count"] * len(new_legs):
        raise SeatsLost(f"the seats held on {offer['flight']} are no longer held")
    offers.release_offers(conn, booking_id=booking_id)
    first, last = min(replaces, default=0), max(replaces, default=len(before) - 1)
    journey = before[:first] + new_legs + before[last + 1 :]
    reissued = reissue.reissue_for_journey(
        conn,
        booking_id=booking_id,
        legs=journey,
        passengers=booking["passenger_count"],
        accounting_code=accounting_code,
        reason=reissue.INVOLUNTARY,
    )
    store.set_case(
        conn,
        flight_key=flight_key,
        booking_id=booking_id,
        status="rebooked",
        new_flight_id=new_legs[0].flight_id,
    )
    data = {
        "previous_flight_id": booking["flight_id"],
        "flight_id": journey[0].flight_id,
        "cabin": journey[0].cabin,
        "segments": [leg.to_json() for leg in journey],
        "tickets": reissued,
    }
    backbone.publish(
        conn,
        bus=booking_bus(conn, booking_id=booking_id),
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
