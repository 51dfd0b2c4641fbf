"""The disruption workflows' steps, as task handlers of two system state machines:

- `disruption` (one execution per disrupted flight, kind and version): FindAffectedBookings,
  NotifyPassengers, StartReaccommodation;
- `rebooking` (one execution per affected booking): OfferAlternatives, SendOffers (a
  `.waitForTaskToken` callback answered through the signed link), Rebook, Refund.

Every step is idempotent: cases are keyed by flight and booking, notices by their content,
offers' holds by booking and offer, and executions by name.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from jetbridge.booking import service
from jetbridge.booking.money import Money
from jetbridge.booking.tasks import BookingTasks
from jetbridge.disruption import offers, rebook, store
from jetbridge.disruption.connections import missed_connections, scheduled_arrival
from jetbridge.disruption.links import Choice, LinkSigner
from jetbridge.disruption.notices import Notices
from jetbridge.disruption.policy import (
    MISSED_CONNECTION,
    DisruptionRules,
    arrival_estimate,
)
from jetbridge.events.backbone import Backbone
from jetbridge.flights.hub import get_flight
from jetbridge.storage.schema import disruptions, payments, scheduled_flights

Handler = Callable[[Any], Any]
CHUNK = 50  # bookings per transaction when notifying or opening cases


class StepFailed(Exception):
    """A step failed; `error` is the ASL error name."""

    def __init__(self, error: str, message: str) -> None:
        self.error = error
        self.cause = message
        super().__init__(message)


@dataclass
class DisruptionTasks:
    backbone: Backbone
    booking_tasks: BookingTasks
    notices: Notices
    signer: LinkSigner
    rules: DisruptionRules
    start_rebooking: Callable[[str, dict[str, Any]], None]
    revoke_points: Callable[[Any, dict[str, Any]], None]
    public_url: str

    def flight_handlers(self) -> dict[str, Handler]:
        return {
            "FindAffectedBookings": self.find_affected,
            "NotifyPassengers": self.notify_passengers,
            "StartReaccommodation": self.start_reaccommodation,
        }

    def rebooking_handlers(self) -> dict[str, Handler]:
        return {
            "OfferAlternatives": self.offer_alternatives,
            "SendOffers": self.send_offers,
            "Rebook": self.rebook,
            "Refund": self.refund,
        }

    # --- the flight's workflow ----------------------------------------------------------

    def find_affected(self, payload: Any) -> list[str]:
        flight_key, kind = payload["flight_key"], payload["kind"]
        with self.backbone.transaction() as conn:
            flight = get_flight(conn, flight_key)
            if flight is None:
                return []
            if kind == MISSED_CONNECTION:
                found = [item["booking_id"] for item in self._missed(conn, flight)]
            else:
                found = store.bookings_on_flight(conn, flight)
            for booking_id in found:
                store.open_case(
                    conn,
                    flight_key=flight_key,
                    booking_id=booking_id,
                    kind=kind,
                    airline=payload["airline"],
                )
        return found

    def _missed(self, conn: Any, flight: dict[str, Any]) -> list[dict[str, Any]]:
        """Onward bookings of this flight's customers that now leave too soon after it lands."""
        return missed_connections(conn, flight, self.rules)

    def notify_passengers(self, payload: Any) -> dict[str, int]:
        flight_key, kind = payload["flight_key"], payload["kind"]
        message = {"subject": payload["summary"], "text": payload["summary"] + "."}
        sent = 0
        bookings: list[str] = payload["bookings"]
        for start in range(0, len(bookings), CHUNK):
            with self.backbone.transaction() as conn:
                for booking_id in bookings[start : start + CHUNK]:
                    notice_id = f"{booking_id}:{flight_key}:{kind}:{payload['fingerprint']}"
                    if self.notices.issue(
                        conn,
                        notice_id=notice_id,
                        booking_id=booking_id,
                        flight_key=flight_key,
                        kind=kind,
                        message=message,
                    ):
                        sent += 1
        return {"notified": sent}

    def start_reaccommodation(self, payload: Any) -> dict[str, int]:
        for booking_id in payload["bookings"]:
            self.start_rebooking(
                booking_id,
                {
                    "booking_id": booking_id,
                    "flight_key": payload["flight_key"],
                    "kind": payload["kind"],
                },
            )
        return {"started": len(payload["bookings"])}

    # --- one booking's re-accommodation ---------------------------------------------------

    def offer_alternatives(self, payload: Any) -> dict[str, Any]:
        booking_id, flight_key = payload["booking_id"], payload["flight_key"]
        now = time.time()
        with self.backbone.transaction() as conn:
            booking = service.get_booking(conn, booking_id=booking_id)
            case = store.get_case(conn, flight_key=flight_key, booking_id=booking_id)
            if booking["status"] != "confirmed" or case is None:
                return {"offers": [], "choice_seconds": 1, "settled": True, "summary": ""}
            flight = conn.execute(
                select(scheduled_flights).where(
                    scheduled_flights.c.flight_id == booking["flight_id"]
                )
            ).one()
            earliest = self._earliest(conn, payload, flight, now)
            airline = booking["flight_id"][:2]
            held = offers.hold_offers(
                conn,
                booking=booking,
                origin=flight.origin,
                destination=flight.destination,
                earliest=earliest,
                airlines=[airline, *self.rules.partners.get(airline, ())],
                exclude=offers.cancelled_flight_ids(conn),
                limit=self.rules.offers,
                ttl=self.rules.choice_seconds + 3600,
                now=now,
            )
            store.set_case(
                conn,
                flight_key=flight_key,
                booking_id=booking_id,
                status="waiting",
                offers=json.dumps(held),
            )
            summary = conn.execute(
                select(disruptions.c.summary).where(
                    disruptions.c.flight_key == flight_key, disruptions.c.kind == payload["kind"]
                )
            ).scalar()
        return {
            "offers": held,
            "choice_seconds": self.rules.choice_seconds,
            "settled": False,
            "summary": summary or f"{booking['flight_id']} is disrupted",
        }

    def _earliest(self, conn: Any, payload: Any, flight: Any, now: float) -> datetime:
        departs = datetime.fromtimestamp(max(flight.departs_at, now), UTC)
        if payload["kind"] != MISSED_CONNECTION:
            return departs
        inbound = get_flight(conn, payload["flight_key"])
        if inbound is None:
            return departs
        scheduled = scheduled_arrival(conn, inbound)
        lands = arrival_estimate(inbound, scheduled)
        return max(
            lands + self.rules.connection_time(flight.origin), datetime.fromtimestamp(now, UTC)
        )

    def send_offers(self, payload: Any) -> None:
        """Tell the passenger of the disruption and the offers, with the signed link to choose."""
        booking_id, flight_key = payload["booking_id"], payload["flight_key"]
        expires = int(time.time()) + int(payload["choice_seconds"])
        link = self.signer.sign(
            Choice(
                booking_id=booking_id,
                flight_key=flight_key,
                task_token=payload["task_token"],
                expires_at=expires,
            )
        )
        url = f"{self.public_url}/disruption/choose?link={link}"
        message = offer_message(payload["summary"], payload["offers"], url, expires)
        with self.backbone.transaction() as conn:
            self.notices.issue(
                conn,
                notice_id=f"{booking_id}:{flight_key}:{payload['kind']}:offers",
                booking_id=booking_id,
                flight_key=flight_key,
                kind=payload["kind"],
                message=message,
            )

    def rebook(self, payload: Any) -> dict[str, Any]:
        booking_id, flight_key = payload["booking_id"], payload["flight_key"]
        choice = payload.get("choice") or {}
        available = payload.get("offers") or []
        index = choice.get("offer", 0)
        if not available or not isinstance(index, int) or not 0 <= index < len(available):
            return self.refund(payload)
        with self.backbone.transaction() as conn:
            case = store.get_case(conn, flight_key=flight_key, booking_id=booking_id)
            if case is None or case["status"] in {"rebooked", "refunded"}:
                return {"booking_id": booking_id, "status": case["status"] if case else "none"}
            try:
                tickets = rebook.rebook(
                    conn,
                    self.backbone,
                    booking_id=booking_id,
                    flight_key=flight_key,
                    offer=available[index],
                    accounting_code=self.booking_tasks.accounting_code,
                )
            except rebook.SeatsLost as exc:
                raise StepFailed("SeatsLost", str(exc)) from None
        return {"booking_id": booking_id, "status": "rebooked", "tickets": tickets}

    def refund(self, payload: Any) -> dict[str, Any]:
        booking_id, flight_key = payload["booking_id"], payload["flight_key"]
        with self.backbone.transaction() as conn:
            case = store.get_case(conn, flight_key=flight_key, booking_id=booking_id)
            if case is not None and case["status"] not in {"rebooked", "refunded"}:
                rebook.cancel_for_refund(
                    conn,
                    self.backbone,
                    booking_id=booking_id,
                    flight_key=flight_key,
                    revoke=self.revoke_points,
                )
            paid = conn.execute(select(payments).where(payments.c.booking_id == booking_id)).first()
        refunded = 0
        if paid is not None and paid.status == "captured":
            owed = Money(paid.amount - paid.refunded, paid.currency)
            if owed.amount > 0:
                refunded = self.booking_tasks.refund(
                    booking_id, paid.payment_id, owed, key="disruption"
                )
        return {"booking_id": booking_id, "status": "refunded", "refunded": refunded}


def offer_message(
    summary: str, alternatives: list[dict[str, Any]], url: str, expires: int
) -> dict[str, Any]:
    """The notice with offers: the disruption, each alternative, and the link to choose."""
    until = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"{summary}.", ""]
    if alternatives:
        lines.append("We are holding seats for you on:")
        for offer in alternatives:
            route = f"{offer['origin']}-{offer['destination']}"
            lines.append(
                f"  {offer['offer'] + 1}. {offer['flight']} {route}"
                f" departing {offer['departure']} ({offer['cabin']})"
            )
        lines += [
            "",
            f"Choose one or ask for a refund by {until}; without an answer we keep offer 1:",
        ]
    else:
        lines.append("No other flight has seats; ask for a full refund here:")
    lines.append(url)
    return {
        "subject": summary,
        "text": "\n".join(lines) + "\n",
        "offers": alternatives,
        "link": url,
        "choose_by": until,
    }
