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
    CANCELLATION,
    DELAY,
    DIVERSION,
    GATE_CHANGE,
    KINDS,
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
# The flight fields each kind is made of: an update that changes none of a kind's fields
# cannot change what that kind's notice says, so it is not looked up for that kind.
INPUTS = {
    CANCELLATION: frozenset({"status"}),
    DIVERSION: frozenset({"status", "diversion_airport"}),
    DELAY: frozenset({"status", "times.off_block.estimated", "times.off_block.actual"}),
    GATE_CHANGE: frozenset({"status", "gate", "terminal"}),
    MISSED_CONNECTION: frozenset(
        {
            "status",
            "times.off_block.estimated",
            "times.off_block.actual",
            "times.on_block.estimated",
        }
    ),
}
# The rule's pattern: an update that changes none of these fields reaches no kind.
WATCHED = sorted(frozenset().union(*INPUTS.values()))

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


def affected_kinds(changed: Any) -> frozenset[str]:
    """The kinds an update with these changed fields may change (all, if it does not say)."""
    if not isinstance(changed, list):
        return frozenset(KINDS)
    fields = set(changed)
    return frozenset(kind for kind, inputs in INPUTS.items() if inputs & fields)


@dataclass
class Detector:
    backbone: Backbone
    rules: DisruptionRules
    start_flight: StartFlight

    def detect(self, event: dict[str, Any]) -> None:
        """The rule's target: act on one `flight.updated` event of the hub."""
        detail = event["detail"]
        flight, version = detail["flight"], int(detail["version"])
        kinds = affected_kinds(detail.get("changed"))
        found = [d for d in classify(flight, self.rules) if d.kind in kinds]
        if not found and MISSED_CONNECTION not in kinds:
            return  # nothing a disruption is made of changed: no database work at all
        retry_transient(
            lambda: self._handle(flight, version, found, MISSED_CONNECTION in kinds),
            what=f"handling {event['id']}",
        )

    def _handle(
        self, flight: dict[str, Any], version: int, found: list[Disruption], connections: bool
    ) -> None:
        """Read what every kind needs in one connection, start what is new, and record the
        kinds' versions in one write transaction."""
        key = str(flight["flight_key"])
        with self.backbone.reading() as conn:
            missed = self._missed(conn, flight) if connections else None
            found = found + ([missed] if missed is not None else [])
            if not found:
                return
            rows = {
                row.kind: row
                for row in conn.execute(
                    select(disruptions).where(
                        disruptions.c.flight_key == key,
                        disruptions.c.kind.in_([d.kind for d in found]),
                    )
                )
            }
            # A duplicate, or older than what was handled, is left alone.
            fresh = [d for d in found if rows.get(d.kind) is None or rows[d.kind].version < version]
            # Most flights on a hub carry none of the airline's bookings: nothing to start.
            booked = any(d.kind != MISSED_CONNECTION for d in fresh) and bool(
                bookings_on_flight(conn, key)
            )
        if not fresh:
            return
        names = {d.kind: self._start(flight, version, d, rows.get(d.kind), booked) for d in fresh}
        with self.backbone.transaction() as conn:
            for disruption in fresh:
                _record(conn, flight, version, disruption, names[disruption.kind])

    def _missed(self, conn: Connection, flight: dict[str, Any]) -> Disruption | None:
        times = flight.get("times") or {}
        if not (times.get("off_block") or {}).get("estimated") and not (
            times.get("on_block") or {}
        ).get("estimated"):
            return None
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

    def _start(
        self,
        flight: dict[str, Any],
        version: int,
        disruption: Disruption,
        row: Any,
        booked: bool,
    ) -> str:
        """The execution this version of the kind starts ("" when quiet), or the one it had."""
        key, kind = str(flight["flight_key"]), disruption.kind
        same = row is not None and row.fingerprint == disruption.fingerprint
        baseline = row is None and kind == GATE_CHANGE  # the first gate known is no change
        nobody = kind != MISSED_CONNECTION and not booked
        if same or baseline or nobody:
            return str(row.execution) if row is not None else ""
        name = execution_name(key, kind, version)
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
        return name


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
