"""The rule on the hub's flight events that starts the disruption workflow.

Each flight event is classified (cancellation, diversion, delay over the airline's threshold,
gate or terminal change, missed connections); each kind remembers the newest flight version
and what its notice said. An event of an older or the same version (a duplicate, or one
delivered out of order) is ignored; a newer one saying the same only moves the version on; a
newer one saying something new starts an execution named after flight, kind and version.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, update

from jetbridge.booking.manifest import bookings_on_flight
from jetbridge.disruption.connections import missed_connections, scheduled_arrival
from jetbridge.disruption.policy import (
    GATE_CHANGE,
    MISSED_CONNECTION,
    REACCOMMODATE,
    Disruption,
    DisruptionRules,
    arrival_estimate,
    classify,
)
from jetbridge.events import registry
from jetbridge.events.backbone import Backbone
from jetbridge.events.handlers import HandlerRegistry
from jetbridge.events.specs import RuleSpec
from jetbridge.storage.schema import disruptions
from jetbridge.storage.transient import retry_transient

RULE = "disruption-detect"
WATCHED = [
    "status",
    "gate",
    "terminal",
    "diversion_airport",
    "times.off_block.estimated",
    "times.off_block.actual",
    "times.on_block.estimated",
]
StartFlight = Callable[[str, dict[str, Any]], None]


def install_rule(conn: Connection, *, handlers: HandlerRegistry) -> None:
    """The platform's rule on the hub's bus (idempotent; run at start)."""
    rule = {
        "name": RULE,
        "event_pattern": {
            "source": ["jetbridge.flights"],
            "detail-type": ["flight.updated"],
            "detail": {"changed": WATCHED},
        },
        "targets": [{"id": "detect", "kind": "python", "handler": "service:disruption.detect"}],
    }
    registry.install_rule(
        conn, bus="default", spec=RuleSpec.model_validate(rule), handlers=handlers
    )


def execution_name(flight_key: str, kind: str, version: int) -> str:
    return f"disruption-{flight_key}-{kind}-v{version}"


@dataclass
class Detector:
    backbone: Backbone
    rules: DisruptionRules
    start_flight: StartFlight

    def detect(self, event: dict[str, Any]) -> None:
        """The rule's target: act on one `flight.updated` event of the hub."""
        detail = event["detail"]
        flight, version = detail["flight"], int(detail["version"])
        found = classify(flight, self.rules)
        missed = retry_transient(lambda: self._missed(flight), what="finding connections")
        if missed is not None:
            found.append(missed)
        for disruption in found:
            retry_transient(
                lambda d=disruption: self._consider(flight, version, d),  # type: ignore[misc]
                what=f"handling {event['id']}",
            )

    def _missed(self, flight: dict[str, Any]) -> Disruption | None:
        times = flight.get("times") or {}
        if not (times.get("off_block") or {}).get("estimated") and not (
            times.get("on_block") or {}
        ).get("estimated"):
            return None
        with self.backbone.reading() as conn:
            missed = missed_connections(conn, flight, self.rules)
            if not missed:
                return None
            lands = arrival_estimate(flight, scheduled_arrival(conn, flight))
        name = f"{flight['flight']} {flight['departure_airport']}-{flight['arrival_airport']}"
        return Disruption(
            MISSED_CONNECTION,
            f"{name} now lands at {lands.strftime('%H:%M UTC')}, too late for your connection",
            {"arrival": lands.isoformat(), "bookings": sorted(m["booking_id"] for m in missed)},
        )

    def _consider(self, flight: dict[str, Any], version: int, disruption: Disruption) -> None:
        key, kind = str(flight["flight_key"]), disruption.kind
        with self.backbone.reading() as conn:
            row = conn.execute(
                select(disruptions).where(
                    disruptions.c.flight_key == key, disruptions.c.kind == kind
                )
            ).first()
            # Most flights on a hub carry none of the airline's bookings: nothing to start.
            nobody = kind != MISSED_CONNECTION and not bookings_on_flight(conn, key)
        if row is not None and row.version >= version:
            return  # a duplicate, or older than what was handled
        same = row is not None and row.fingerprint == disruption.fingerprint
        baseline = row is None and kind == GATE_CHANGE  # the first gate known is no change
        quiet = same or baseline or nobody
        name = "" if quiet else execution_name(key, kind, version)
        if name:
            self.start_flight(
                name,
                {
                    "flight_key": key,
                    "kind": kind,
                    "version": version,
                    "airline": flight["airline"],
                    "summary": disruption.summary,
                    "fingerprint": disruption.fingerprint,
                    "reaccommodate": kind in REACCOMMODATE,
                },
            )
        with self.backbone.transaction() as conn:
            _record(conn, flight, version, disruption, name or (row.execution if row else ""))


def _record(
    conn: Connection, flight: dict[str, Any], version: int, disruption: Disruption, name: str
) -> None:
    key, kind, now = flight["flight_key"], disruption.kind, time.time()
    values = {
        "version": version,
        "fingerprint": disruption.fingerprint,
        "summary": disruption.summary,
        "execution": name,
        "updated_at": now,
    }
    changed = conn.execute(
        update(disruptions)
        .where(
            disruptions.c.flight_key == key,
            disruptions.c.kind == kind,
            disruptions.c.version < version,
        )
        .values(**values)
    )
    if changed.rowcount:
        return
    exists = conn.execute(
        select(disruptions.c.version).where(
            disruptions.c.flight_key == key, disruptions.c.kind == kind
        )
    ).first()
    if exists is None:
        conn.execute(
            insert(disruptions).values(
                flight_key=key, kind=kind, airline=flight["airline"], created_at=now, **values
            )
        )
