"""The flight hub: applies updates to the stored flight state and publishes the derived events
in the same transaction (so the state and its events commit together, in version order)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from jetbridge.bounds import checked_id
from jetbridge.events.backbone import Backbone
from jetbridge.events.envelope import CloudEvent
from jetbridge.flights.merge import FlightState, MergeResult, Update, apply
from jetbridge.flights.model import FlightIdentity
from jetbridge.storage.schema import flights, ingest_errors

SOURCE = "jetbridge.flights"
BUS = "default"


def is_flight_update(event: Mapping[str, Any]) -> bool:
    """A `flight.updated` event the hub published (callers cannot publish its source)."""
    return event.get("source") == SOURCE and event.get("type") == "flight.updated"


@dataclass(frozen=True, slots=True)
class Applied:
    flight_key: str
    version: int
    changed: list[str]


def load_state(
    conn: Connection, flight_key: str, *, for_update: bool = False
) -> FlightState | None:
    query = select(flights).where(flights.c.flight_key == flight_key)
    if for_update and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    return None if row is None else _state(row.state, row.version)


def load_states(conn: Connection, flight_keys: Collection[str]) -> dict[str, FlightState]:
    """The stored states of these flights (those that exist), locked for this transaction
    in key order on PostgreSQL."""
    query = (
        select(flights.c.flight_key, flights.c.state, flights.c.version)
        .where(flights.c.flight_key.in_(sorted(flight_keys)))
        .order_by(flights.c.flight_key)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return {key: _state(state, version) for key, state, version in conn.execute(query)}


def _state(stored: str, version: int) -> FlightState:
    body = json.loads(stored)
    identity = FlightIdentity.create(**body["identity"])
    provenance = {k: (v[0], v[1], int(v[2])) for k, v in body["provenance"].items()}
    unknown = {k: (v[0], v[1], v[2]) for k, v in body.get("unknown", {}).items()}
    return FlightState(identity, version, body["fields"], provenance, unknown)


def _body(state: FlightState) -> str:
    return json.dumps(
        {
            "identity": state.identity.to_json(),
            "fields": state.fields,
            "provenance": state.provenance,
            **({"unknown": state.unknown} if state.unknown else {}),
        }
    )


def _new_row(state: FlightState, now: float) -> dict[str, Any]:
    identity = state.identity
    return {
        "flight_key": identity.key,
        "airline": identity.airline,
        "flight_number": identity.flight_number,
        "origin_date": identity.origin_date.isoformat(),
        "departure_airport": identity.departure_airport,
        "arrival_airport": identity.arrival_airport,
        "version": state.version,
        "state": _body(state),
        "updated_at": now,
    }


def _save(conn: Connection, state: FlightState, *, new: bool) -> None:
    if new:
        conn.execute(insert(flights).values(**_new_row(state, time.time())))
    else:
        values = {"version": state.version, "state": _body(state), "updated_at": time.time()}
        conn.execute(
            update(flights).where(flights.c.flight_key == state.identity.key).values(**values)
        )


# Many flights' new states in one statement (bound names differ from the columns').
_UPDATE_MANY = (
    update(flights)
    .where(flights.c.flight_key == bindparam("key"))
    .values(version=bindparam("new_version"), state=bindparam("body"), updated_at=bindparam("now"))
)


def flight_events(result: MergeResult) -> list[CloudEvent]:
    key = result.state.identity.key
    return [
        CloudEvent(
            id=f"{key}:{result.state.version}:{event.type}",
            source=SOURCE,
            type=event.type,
            subject=key,
            partitionkey=key,
            data=event.data,
        )
        for event in result.events
    ]


class FlightHub:
    """Applies canonical updates; each one is its own transaction with its events."""

    def __init__(self, backbone: Backbone) -> None:
        self.backbone = backbone

    def apply(
        self, conn: Connection, item: Update, *, pending: list[CloudEvent] | None = None
    ) -> Applied | None:
        """Merge one update inside `conn`'s transaction; None if it changed nothing. With
        `pending`, its events are added there for the caller to publish (in order, in the same
        transaction) with those of the other updates of a batch, in one append."""
        current = load_state(conn, item.identity.key, for_update=True)
        result = apply(current, item)
        if current is not None and not result.changed:
            if result.kept:  # only raw values no field holds: kept, no version, no event
                _save(conn, result.state, new=False)
            return None
        _save(conn, result.state, new=current is None)
        if pending is None:
            self.backbone.publish(conn, bus=BUS, events=flight_events(result))
        else:
            pending += flight_events(result)
        return Applied(item.identity.key, result.state.version, sorted(result.changed))

    def apply_many(
        self, conn: Connection, items: Sequence[Update], pending: list[CloudEvent]
    ) -> list[Applied]:
        """Merge `items` in their order inside `conn`'s transaction, as `apply` would one by
        one, but reading each flight once and writing each once; their events are added to
        `pending` in order."""
        states: dict[str, FlightState | None] = dict(
            load_states(conn, {item.identity.key for item in items})
        )
        stored = set(states)
        touched: dict[str, None] = {}
        applied = []
        for item in items:
            key = item.identity.key
            current = states.get(key)
            result = apply(current, item)
            if current is not None and not result.changed:
                if result.kept:
                    states[key] = result.state
                    touched[key] = None
                continue
            states[key] = result.state
            touched[key] = None
            pending += flight_events(result)
            applied.append(Applied(key, result.state.version, sorted(result.changed)))
        now = time.time()
        new = [
            _new_row(state, now) for key in touched if (state := states[key]) and key not in stored
        ]
        if new:
            conn.execute(insert(flights), new)
        changed = [
            {"key": key, "new_version": state.version, "body": _body(state), "now": now}
            for key in touched
            if (state := states[key]) is not None and key in stored
        ]
        if changed:
            conn.execute(_UPDATE_MANY, changed)
        return applied

    def apply_all(self, updates: Iterable[Update]) -> list[Applied]:
        applied = []
        for item in updates:
            with self.backbone.transaction() as conn:
                outcome = self.apply(conn, item)
            if outcome is not None:
                applied.append(outcome)
        return applied

    def record_error(
        self, *, source: str, location: str, message: str, excerpt: str = "", level: str = "error"
    ) -> None:
        """Keep a malformed message for operators in a transaction of its own; the feed goes
        on. Inside an open transaction use `record_error(conn, ...)` instead."""
        with self.backbone.transaction() as conn:
            record_error(
                conn,
                source=source,
                location=location,
                message=message,
                excerpt=excerpt,
                level=level,
            )


def record_error(
    conn: Connection,
    *,
    source: str,
    location: str,
    message: str,
    excerpt: str = "",
    level: str = "error",
) -> None:
    """Keep a refused message (level `error`), or what an accepted one carried that was not
    understood (level `warning`), for operators inside `conn`'s transaction."""
    conn.execute(
        insert(ingest_errors).values(
            source=source,
            location=location[:512],
            message=message[:4000],
            excerpt=excerpt[:2000],
            received_at=time.time(),
            level=level,
        )
    )


def remove_flight(backbone: Backbone, conn: Connection, flight_key: str) -> bool:
    """Take a flight off the hub (its source deleted it) and say so with `flight.removed`."""
    state = load_state(conn, flight_key, for_update=True)
    if state is None:
        return False
    conn.execute(delete(flights).where(flights.c.flight_key == flight_key))
    version = state.version + 1
    event = CloudEvent(
        id=f"{flight_key}:{version}:flight.removed",
        source=SOURCE,
        type="flight.removed",
        subject=flight_key,
        partitionkey=flight_key,
        data={"flight_key": flight_key, "version": version, "flight": state.view()},
    )
    backbone.publish(conn, bus=BUS, events=[event])
    return True


def get_flight(conn: Connection, flight_key: str) -> dict[str, Any] | None:
    state = load_state(conn, flight_key)
    return None if state is None else state.view()


def flights_at(
    conn: Connection, *, airport: str, day: date, direction: str
) -> list[dict[str, Any]]:
    """Departures or arrivals of an airport whose origin date is `day`."""
    column = flights.c.departure_airport if direction == "departures" else flights.c.arrival_airport
    rows = conn.execute(
        select(flights.c.flight_key).where(
            column == airport, flights.c.origin_date == day.isoformat()
        )
    )
    views = [get_flight(conn, key) for key in rows.scalars()]
    return [view for view in views if view is not None]


def find_flights(conn: Connection, *, airline: str, number: str, day: date) -> list[dict[str, Any]]:
    """The legs of a flight number on a day: the airline's own legs, else the operating legs
    that carry it as a codeshare (`LH5790` finds the `LX318` leg it is marketed on)."""
    rows = conn.execute(
        select(flights.c.flight_key).where(
            flights.c.airline == airline,
            flights.c.flight_number == number,
            flights.c.origin_date == day.isoformat(),
        )
    )
    views = [get_flight(conn, key) for key in rows.scalars()]
    found = [view for view in views if view is not None]
    return found or _marketed_as(conn, airline=airline, number=number, day=day)


_DESIGNATOR = re.compile(r"^([A-Z0-9]{2}[A-Z]?)\s*(\d{1,4})([A-Z]?)$")


def _designator(text: str) -> tuple[str, int, str] | None:
    match = _DESIGNATOR.match(text.strip().upper())
    if match is None:
        return None
    return match.group(1), int(match.group(2)), match.group(3)


def _marketed_as(conn: Connection, *, airline: str, number: str, day: date) -> list[dict[str, Any]]:
    wanted = _designator(airline + number)
    if wanted is None:
        return []
    # The stored state names codeshares as text: its digits narrow the day's legs, and each
    # candidate's codeshare list decides.
    rows = conn.execute(
        select(flights.c.flight_key).where(
            flights.c.origin_date == day.isoformat(),
            flights.c.state.contains(str(wanted[1])),
        )
    )
    found = []
    for key in rows.scalars():
        view = get_flight(conn, key)
        shares = str((view or {}).get("codeshares") or "").split(",")
        if view is not None and wanted in {_designator(share) for share in shares}:
            found.append(view)
    return found


def list_errors(
    conn: Connection, *, source: str | None, after_id: int, limit: int
) -> list[dict[str, Any]]:
    checked_id(after_id, "after_id")
    query = (
        select(ingest_errors)
        .where(ingest_errors.c.id > after_id)
        .order_by(ingest_errors.c.id)
        .limit(limit)
    )
    if source:
        query = query.where(ingest_errors.c.source == source)
    return [dict(row._mapping) for row in conn.execute(query)]
