"""The booking service as the API sees it: search (cached), create, read, cancel, loyalty;
seat maps and seat choice, refund quotes and flight changes are in `changes.py`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import date
from typing import Any, Protocol

from sqlalchemy import insert, select, update

from jetbridge.booking import catalog, changes, inventory, seating, service
from jetbridge.booking.events import booking_bus, booking_event
from jetbridge.booking.loyalty import tier_for
from jetbridge.booking.personal_data import PersonalData
from jetbridge.booking.points import held_by
from jetbridge.booking.presentation import with_local_times
from jetbridge.booking.service import BookingRequest
from jetbridge.booking.tasks import BookingTasks
from jetbridge.booking.trip_status import with_flight_status
from jetbridge.errors import Conflict, NotFound
from jetbridge.events.backbone import Backbone
from jetbridge.ops import metrics
from jetbridge.storage.schema import loyalty_accounts, loyalty_ledger, payments, scheduled_flights


class SearchCache(Protocol):
    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str, ttl: int) -> None: ...


class NoCache:
    def get(self, key: str) -> str | None:
        return None

    def set(self, key: str, value: str, ttl: int) -> None:
        return None


SagaStarter = Callable[[str, dict[str, Any]], None]


class Bookings:
    def __init__(
        self,
        *,
        backbone: Backbone,
        tasks: BookingTasks,
        start_saga: SagaStarter,
        personal: PersonalData,
        cache: SearchCache | None = None,
    ) -> None:
        self.backbone = backbone
        self.tasks = tasks
        self.personal = personal
        self.start_saga = start_saga
        self.cache = cache or NoCache()
        self.changes = changes.Changes(backbone=backbone, tasks=tasks)

    def search(self, *, origin: str, destination: str, day: date) -> list[dict[str, Any]]:
        key = f"search:{origin}:{destination}:{day.isoformat()}"
        cached = self.cache.get(key)
        metrics.CACHE.labels("search", "miss" if cached is None else "hit").inc()
        if cached is not None:
            return list(json.loads(cached))
        with self.backbone.reading() as conn:
            found = catalog.search(
                conn, origin=origin, destination=destination, day=day, now=time.time()
            )
        offers = [with_local_times(offer) for offer in found]
        self.cache.set(key, json.dumps(offers), ttl=5)
        return offers

    def offer(self, *, flight_id: str) -> dict[str, Any]:
        with self.backbone.reading() as conn:
            offer = catalog.flight_offer(conn, flight_id=flight_id, now=time.time())
        if offer is None:
            raise NotFound(f"flight {flight_id!r} does not exist")
        return with_local_times(offer)

    def create(
        self, *, request: BookingRequest, card: str, caller: str, idempotency_key: str
    ) -> tuple[dict[str, Any], bool]:
        """Record the booking and start its saga. The key is the caller's own: repeating the
        request under it returns the first booking, another request under it is refused
        (`Unprocessable`), and another caller's key of the same text is unrelated.

        The saga's input is the booking id alone: workflow inputs and histories are kept in
        clear, so personal data and the card stay sealed in the booking row.
        """
        with self.backbone.transaction() as conn:
            booking, created = service.request_booking(
                conn,
                self.backbone,
                personal=self.personal,
                request=request,
                card=card.replace(" ", ""),
                caller=caller,
                idempotency_key=idempotency_key,
            )
            chosen = [p.seat for p in request.passengers]
            if created and all(chosen):
                # Held in the booking's own transaction: a taken seat refuses the whole
                # request, so no record locator exists for a booking that could not be made.
                seating.hold_chosen(
                    conn,
                    flight_id=request.flight_id,
                    chosen=[str(seat) for seat in chosen],
                    hold_id=booking["booking_id"],
                    ttl=self.tasks.hold_seconds,
                    now=time.time(),
                )
        if created:
            self.start_saga(booking["booking_id"], {"booking_id": booking["booking_id"]})
        return booking, created

    def get(self, *, booking_id: str) -> dict[str, Any]:
        """A booking with its passengers decrypted and its flight's live status, for its owner."""
        with self.backbone.reading() as conn:
            booking = service.get_booking(conn, booking_id=booking_id, personal=self.personal)
            return with_flight_status(conn, [changes.view(conn, booking)])[0]

    def of_customer(self, *, customer_id: str) -> list[dict[str, Any]]:
        """A customer's bookings with their passengers decrypted."""
        with self.backbone.reading() as conn:
            found = service.customer_bookings(conn, customer_id=customer_id, personal=self.personal)
            return with_flight_status(conn, [changes.view(conn, booking) for booking in found])

    def find(self, *, locator: str, family_name: str) -> dict[str, Any]:
        """A guest's view of a booking, by record locator and one traveller's family name."""
        with self.backbone.reading() as conn:
            found = service.find_by_locator(
                conn, personal=self.personal, locator=locator, family_name=family_name
            )
            return with_flight_status(conn, [changes.view(conn, found)])[0]

    def cancel(self, *, booking_id: str) -> dict[str, Any]:
        now = time.time()
        with self.backbone.transaction() as conn:
            booking = service.get_booking(conn, booking_id=booking_id)
            if booking["status"] != "confirmed":
                raise Conflict(f"booking {booking_id} is {booking['status']}, not confirmed")
            flight = conn.execute(
                select(scheduled_flights.c.departs_at).where(
                    scheduled_flights.c.flight_id == booking["flight_id"]
                )
            ).scalar_one()
            decision = changes.refund_decision(booking, departs_at=flight, now=now)
            inventory.release_sold(conn, booking_id=booking_id)
            service.set_status(
                conn, booking_id=booking_id, status="cancelled", failure=decision.rule
            )
            self.revoke_points(conn, booking)
            event = {"refund": decision.refund.to_json(), "rule": decision.rule}
            self.backbone.publish(
                conn,
                bus=booking_bus(conn, tenant=booking.get("tenant")),
                events=[booking_event("booking.cancelled", booking_id=booking_id, data=event)],
            )
            payment_id = conn.execute(
                select(payments.c.payment_id).where(payments.c.booking_id == booking_id)
            ).scalar()
        refunded = 0
        if decision.refund.amount > 0 and payment_id:
            refunded = self.tasks.refund(booking_id, payment_id, decision.refund, key="cancel")
        return {
            "booking_id": booking_id,
            "status": "cancelled",
            "refund": decision.refund.to_json(),
            "refunded": refunded,
            "rule": decision.rule,
        }

    def revoke_points(self, conn: Any, booking: dict[str, Any]) -> None:
        """Take back what the booking holds (its award and its changes' adjustments), once."""
        award = held_by(conn, booking["booking_id"])
        revoked = conn.execute(
            select(loyalty_ledger.c.points).where(
                loyalty_ledger.c.booking_id == booking["booking_id"],
                loyalty_ledger.c.kind == "revoke",
            )
        ).scalar()
        if not award or revoked is not None:
            return
        conn.execute(
            insert(loyalty_ledger).values(
                booking_id=booking["booking_id"],
                kind="revoke",
                customer_id=booking["customer_id"],
                points=-award,
                at=time.time(),
            )
        )
        balance = (
            conn.execute(
                select(loyalty_accounts.c.points).where(
                    loyalty_accounts.c.customer_id == booking["customer_id"]
                )
            ).scalar()
            or 0
        )
        left = max(int(balance) - int(award), 0)
        conn.execute(
            update(loyalty_accounts)
            .where(loyalty_accounts.c.customer_id == booking["customer_id"])
            .values(points=left, tier=tier_for(left).value, updated_at=time.time())
        )

    def loyalty(self, *, customer_id: str) -> dict[str, Any]:
        with self.backbone.reading() as conn:
            account = conn.execute(
                select(loyalty_accounts).where(loyalty_accounts.c.customer_id == customer_id)
            ).first()
            ledger = conn.execute(
                select(loyalty_ledger)
                .where(loyalty_ledger.c.customer_id == customer_id)
                .order_by(loyalty_ledger.c.at)
            ).all()
        points = account.points if account else 0
        return {
            "customer_id": customer_id,
            "points": points,
            "tier": tier_for(points).value,
            "history": [
                {"booking_id": r.booking_id, "kind": r.kind, "points": r.points} for r in ledger
            ],
        }
