"""The disruption workflows' steps, as task handlers of two system state machines:

- `disruption` (one execution per disrupted flight, kind and version): FindAffectedBookings,
  NotifyPassengers, OfferAlternatives (held seats and the notice with the signed link),
  StartReaccommodation;
- `rebooking` (one execution per affected booking): AwaitChoice (a `.waitForTaskToken`
  callback answered through the signed link), Rebook, Refund.

Every step is idempotent: cases are keyed by flight and booking, notices by their content,
offers' holds by booking and offer, and executions by name.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from jetbridge.booking import service
from jetbridge.booking.manifest import bookings_on_flight
from jetbridge.booking.money import Money
from jetbridge.booking.tasks import BookingTasks
from jetbridge.disruption import offers, rebook, store
from jetbridge.disruption.connections import missed_connections, scheduled_arrival
from jetbridge.disruption.journey import Stretch, disrupted_stretches
from jetbridge.disruption.links import Choice, LinkSigner
from jetbridge.disruption.notices import Notice, Notices
from jetbridge.disruption.policy import (
    MISSED_CONNECTION,
    DisruptionRules,
    arrival_estimate,
)
from jetbridge.errors import Conflict
from jetbridge.events.backbone import Backbone
from jetbridge.flights.hub import get_flight
from jetbridge.storage.schema import bookings as booking_rows
from jetbridge.storage.schema import payments

Handler = Callable[[Any], Any]
CHUNK = 50  # most bookings per transaction when notifying, opening cases or holding offers
OFFER_CHUNK = 5  # bookings in the first transaction holding offers: notices leave early


def chunks(items: Sequence[str], *, first: int, most: int) -> Iterator[list[str]]:
    """`items` in consecutive chunks of `first`, then twice as many each time, up to `most`."""
    start, size = 0, first
    while start < len(items):
        yield list(items[start : start + size])
        start += size
        size = min(most, size * 2)


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
    answer: Callable[[str, dict[str, Any]], None]
    public_url: str

    def flight_handlers(self) -> dict[str, Handler]:
        return {
            "FindAffectedBookings": self.find_affected,
            "NotifyPassengers": self.notify_passengers,
            "OfferAlternatives": self.offer_alternatives,
            "StartReaccommodation": self.start_reaccommodation,
        }

    def rebooking_handlers(self) -> dict[str, Handler]:
        return {
            "AwaitChoice": self.await_choice,
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
                found = [b.booking_id for b in bookings_on_flight(conn, flight_key)]
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
        for chunk in chunks(payload["bookings"], first=CHUNK, most=CHUNK):
            notices = [
                Notice(
                    f"{booking_id}:{flight_key}:{kind}:{payload['fingerprint']}",
                    booking_id,
                    flight_key,
                    kind,
                    message,
                )
                for booking_id in chunk
            ]
            with self.backbone.transaction() as conn:
                sent += len(self.notices.issue_many(conn, notices))
        return {"notified": sent}

    def offer_alternatives(self, payload: Any) -> dict[str, int]:
        """Hold the best alternatives for every affected booking and send each passenger the
        notice with their offers and signed link: a chunk of bookings per transaction, the
        first chunks small so that the first notices leave at once, the later ones larger so
        that each transaction's reads and writes serve more bookings."""
        flight_key, kind = payload["flight_key"], payload["kind"]
        offered = 0
        for chunk in chunks(payload["bookings"], first=OFFER_CHUNK, most=CHUNK):
            with self.backbone.transaction() as conn:
                found = conn.execute(
                    select(booking_rows).where(booking_rows.c.booking_id.in_(chunk))
                ).mappings()
                rows = {row["booking_id"]: service.describe(dict(row)) for row in found}
                cases = store.get_cases(conn, flight_key=flight_key, booking_ids=chunk)
                now = time.time()
                open_ones = [
                    rows[b]
                    for b in dict.fromkeys(chunk)
                    if b in rows
                    and rows[b]["status"] == "confirmed"
                    and cases.get(b, {}).get("status") in {"affected", "waiting"}
                ]  # the others are gone or settled already
                stretches = disrupted_stretches(conn, open_ones, kind=kind, flight_key=flight_key)
                # The chunk's bookings by the search serving them (one per stretch and time),
                # each with the positions of the segments its offers replace.
                searches: dict[tuple[Any, ...], offers.Search] = {}
                served: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
                replaces: dict[str, list[int]] = {}
                for booking in open_ones:
                    booking_id = booking["booking_id"]
                    stretch = stretches[booking_id]
                    where = self._search(conn, booking, stretch, payload, searches, now)
                    legs = [leg.to_json() for leg in stretch.legs]
                    served.setdefault(where, []).append(booking | {"segments": legs})
                    replaces[booking_id] = stretch.replaces
                held = offers.held_offers_of(conn, replaces)
                offered_to: dict[str, list[dict[str, Any]]] = {}
                for where, group in served.items():
                    offered_to |= offers.hold_offers_many(
                        conn,
                        bookings=group,
                        search=searches[where],
                        replaces=replaces,
                        limit=self.rules.offers,
                        ttl=self.rules.choice_seconds + 3600,
                        now=now,
                        held=held,
                    )
                notices, changes = [], []
                for booking_id in chunk:
                    if booking_id in offered_to:
                        notice, change = self._notice(
                            booking_id, cases[booking_id], offered_to[booking_id], payload, now
                        )
                        notices.append(notice)
                        changes.append(change)
                store.set_cases(conn, flight_key=flight_key, changes=changes)
                self.notices.issue_many(conn, notices)
                offered += len(notices)
        return {"offered": offered}

    def _search(
        self,
        conn: Any,
        booking: dict[str, Any],
        stretch: Stretch,
        payload: dict[str, Any],
        searches: dict[tuple[Any, ...], offers.Search],
        now: float,
    ) -> tuple[Any, ...]:
        """The alternatives for a booking's disrupted stretch (loaded once for the bookings
        sharing them): the key of its search in `searches`."""
        airline = booking["flight_id"][:2]
        earliest = self._earliest(conn, payload["kind"], payload["flight_key"], stretch.first, now)
        where = (stretch.origin, stretch.destination, earliest, airline)
        if where not in searches:
            searches[where] = offers.Search.load(
                conn,
                origin=stretch.origin,
                destination=stretch.destination,
                earliest=earliest,
                airlines=[airline, *self.rules.partners.get(airline, ())],
                exclude=offers.cancelled_flight_ids(conn),
                now=now,
                connection_time=self.rules.connection_time,
            )
        return where

    def _notice(
        self,
        booking_id: str,
        case: dict[str, Any],
        held: list[dict[str, Any]],
        payload: dict[str, Any],
        now: float,
    ) -> tuple[Notice, dict[str, Any]]:
        """A booking's notice with its held offers, and the change that marks its case
        waiting (both written by the caller, with those of the other bookings)."""
        flight_key, kind = payload["flight_key"], payload["kind"]
        expires = int(case["choose_by"] or now + self.rules.choice_seconds)
        change = {
            "booking_id": booking_id,
            "status": "waiting",
            "offers": json.dumps(held),
            "choose_by": expires,
        }
        link = self.signer.sign(Choice(booking_id, flight_key, expires))
        url = f"{self.public_url}/disruption/choose?link={link}"
        notice = Notice(
            f"{booking_id}:{flight_key}:{kind}:offers",
            booking_id,
            flight_key,
            kind,
            offer_message(payload["summary"], held, url, expires),
        )
        return notice, change

    def start_reaccommodation(self, payload: Any) -> dict[str, int]:
        for booking_id in payload["bookings"]:
            self.start_rebooking(
                booking_id,
                {
                    "booking_id": booking_id,
                    "flight_key": payload["flight_key"],
                    "kind": payload["kind"],
                    "choice_seconds": self.rules.choice_seconds,
                },
            )
        return {"started": len(payload["bookings"])}

    def _earliest(self, conn: Any, kind: str, flight_key: str, flight: Any, now: float) -> datetime:
        departs = datetime.fromtimestamp(max(flight.departs_at, now), UTC)
        if kind != MISSED_CONNECTION:
            return departs
        inbound = get_flight(conn, flight_key)
        if inbound is None:
            return departs
        lands = arrival_estimate(inbound, scheduled_arrival(conn, inbound))
        return max(
            lands + self.rules.connection_time(flight.origin), datetime.fromtimestamp(now, UTC)
        )

    # --- one booking's re-accommodation ---------------------------------------------------

    def await_choice(self, payload: Any) -> None:
        """The callback task's handler: make the task token findable by the signed link; a
        choice made before it got here (or a case settled already) answers it at once."""
        booking_id, flight_key = payload["booking_id"], payload["flight_key"]
        token = payload["task_token"]
        with self.backbone.transaction() as conn:
            store.set_case(conn, flight_key=flight_key, booking_id=booking_id, task_token=token)
            case = store.get_case(conn, flight_key=flight_key, booking_id=booking_id)
        if case is None or case["status"] != "waiting":
            answer: dict[str, Any] | None = {"action": "none"}
        else:
            answer = case["choice"]
        if answer is not None:
            with contextlib.suppress(Conflict):  # the link's answer got there first
                self.answer(token, answer)

    def rebook(self, payload: Any) -> dict[str, Any]:
        booking_id, flight_key = payload["booking_id"], payload["flight_key"]
        choice = payload.get("choice") or {}
        index = choice.get("offer", 0)
        with self.backbone.reading() as conn:
            case = store.get_case(conn, flight_key=flight_key, booking_id=booking_id)
        if case is None or case["status"] != "waiting":
            return {"booking_id": booking_id, "status": case["status"] if case else "none"}
        available = case["offers"]
        if not isinstance(index, int) or not 0 <= index < len(available):
            return self.refund(payload)  # nothing to rebook onto: the fare comes back
        with self.backbone.transaction() as conn:
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
            others = store.supersede_others(conn, booking_id=booking_id, flight_key=flight_key)
        self._release(others)
        return {"booking_id": booking_id, "status": "rebooked", "tickets": tickets}

    def _release(self, tokens: list[str]) -> None:
        """End the other waits of a booking settled through another case."""
        for token in tokens:
            with contextlib.suppress(Conflict):
                self.answer(token, {"action": "none"})

    def refund(self, payload: Any) -> dict[str, Any]:
        """Cancel a waiting case's booking and pay back the whole fare (again after a crash:
        the payment is refunded once, by its idempotency key)."""
        booking_id, flight_key = payload["booking_id"], payload["flight_key"]
        others: list[str] = []
        with self.backbone.transaction() as conn:
            case = store.get_case(conn, flight_key=flight_key, booking_id=booking_id)
            status = case["status"] if case is not None else "none"
            if status == "waiting":
                rebook.cancel_for_refund(
                    conn,
                    self.backbone,
                    booking_id=booking_id,
                    flight_key=flight_key,
                    revoke=self.revoke_points,
                )
                others = store.supersede_others(conn, booking_id=booking_id, flight_key=flight_key)
                status = "refunded"
            paid = conn.execute(select(payments).where(payments.c.booking_id == booking_id)).first()
        self._release(others)
        if status != "refunded":
            return {"booking_id": booking_id, "status": status}
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
            via = f" via {offer['via']}" if offer.get("via") else ""
            lines.append(
                f"  {offer['offer'] + 1}. {offer['flight']} {route}{via}"
                f" departing {_shown_time(offer['departure'])}, {offer['cabin']}"
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


def _shown_time(iso: str) -> str:
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M UTC")
