"""Feeding parsed messages into the hub: one entry point for the CLI, HTTP pushes and files."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import Connection, select

from jetbridge.flights.feeds.aidx import parse_aidx
from jetbridge.flights.feeds.asm import parse_asm
from jetbridge.flights.feeds.errors import ParseError
from jetbridge.flights.feeds.limits import FeedLimits
from jetbridge.flights.feeds.mvt import parse_mvt
from jetbridge.flights.feeds.telex import FeedUpdate, anchor_times
from jetbridge.flights.hub import FlightHub, load_state, record_error
from jetbridge.flights.merge import Update
from jetbridge.flights.model import FlightIdentity, InvalidFlight
from jetbridge.ops import metrics, tracing
from jetbridge.storage.schema import flights
from jetbridge.storage.transient import retry_transient

FORMATS = ("aidx", "mvt", "asm")


@dataclass
class Ingested:
    """What one file or push did: the updates applied, the messages refused (with where), and
    the parts of accepted messages that were not understood (kept raw on the flight)."""

    applied: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)


def parse(
    kind: str,
    data: str | bytes,
    *,
    received_at: datetime,
    file: str | None = None,
    limits: FeedLimits | None = None,
) -> list[Update | FeedUpdate]:
    """Parse what one file or push holds (AIDX bytes are read in the encoding they declare);
    raises ParseError naming file, line or element, and token, or the bound a message exceeds."""
    if kind == "aidx":
        return list(parse_aidx(data, file=file, limits=limits))
    if kind == "mvt":
        return list(parse_mvt(data, received_at=received_at, file=file, limits=limits))
    if kind == "asm":
        return list(parse_asm(data, received_at=received_at, file=file, limits=limits))
    raise ParseError(f"unknown format; use one of {', '.join(FORMATS)}", file=file, token=kind)


def as_json(item: Update | FeedUpdate) -> dict[str, Any]:
    return item.to_json()


def resolve(conn: Connection, item: FeedUpdate) -> FlightIdentity | None:
    """Find the flight a telex names with one airport only (MVT names its own station)."""
    if item.complete():
        return FlightIdentity.create(
            airline=item.airline,
            flight_number=item.flight_number,
            origin_date=item.origin_date,
            departure_airport=item.departure_airport,
            arrival_airport=item.arrival_airport,
        )
    number = FlightIdentity.create(
        airline=item.airline,
        flight_number=item.flight_number,
        origin_date=item.origin_date,
        departure_airport="XXX",
        arrival_airport="XXX",
    ).flight_number
    query = select(flights.c.flight_key).where(
        flights.c.airline == item.airline,
        flights.c.flight_number == number,
        flights.c.origin_date == item.origin_date.isoformat(),
    )
    if item.departure_airport:
        query = query.where(flights.c.departure_airport == item.departure_airport)
    if item.arrival_airport:
        query = query.where(flights.c.arrival_airport == item.arrival_airport)
    keys = list(conn.execute(query).scalars())
    if len(keys) != 1:
        return None
    state = load_state(conn, keys[0])
    return None if state is None else state.identity


def ingest(
    hub: FlightHub,
    kind: str,
    data: str | bytes,
    *,
    received_at: datetime,
    origin: str,
    limits: FeedLimits | None = None,
) -> Ingested:
    """Parse and apply. Malformed input, or a message over `limits`, is written to the ingestion
    error log and raised, and nothing of it is applied. A telex naming no single known flight is
    refused alone: it is logged and listed in `refused`, and the other messages are applied."""
    with tracing.span(f"ingest {kind}", attributes={"jetbridge.feed": kind}):
        return _ingest(hub, kind, data, received_at=received_at, origin=origin, limits=limits)


def _ingest(
    hub: FlightHub,
    kind: str,
    data: str | bytes,
    *,
    received_at: datetime,
    origin: str,
    limits: FeedLimits | None,
) -> Ingested:
    try:
        items = parse(kind, data, received_at=received_at, file=origin, limits=limits)
    except ParseError as exc:
        excerpt = data[:500] if isinstance(data, str) else data[:500].decode("utf-8", "replace")
        hub.record_error(
            source=kind,
            location=f"{origin} {exc.location}".strip(),
            message=str(exc),
            excerpt=excerpt,
        )
        metrics.INGEST.labels(kind, "refused").inc()
        raise
    result = Ingested()
    for item in items:
        applied, refusal = retry_transient(
            partial(_ingest_one, hub, kind, item, origin), what=f"ingesting from {origin}"
        )
        if refusal is not None:
            result.refused.append(refusal)
            metrics.INGEST.labels(kind, "refused").inc()
        if applied is not None:
            result.applied.append(applied)
            result.warnings += applied["warnings"]
            # Applied with warnings, or changing nothing (stale or a repeat), is worth a look.
            warned = applied["warnings"] or not applied["changed"]
            metrics.INGEST.labels(kind, "warned" if warned else "accepted").inc()
    return result


def _ingest_one(
    hub: FlightHub, kind: str, item: Update | FeedUpdate, origin: str
) -> tuple[dict[str, Any] | None, dict[str, str] | None]:
    """One message in one transaction: what it applied, or why it was refused."""
    with hub.backbone.transaction() as conn:
        update = item if isinstance(item, Update) else _complete(conn, item)
        if update is None:
            assert isinstance(item, FeedUpdate)
            refusal = _refusal(item, origin)
            # The same transaction: a second connection would wait on this one's write lock.
            record_error(conn, source=kind, **refusal)
            return None, refusal
        outcome = hub.apply(conn, update)
        warnings = warnings_of(item, update, origin)
        for warning in warnings:
            record_error(conn, source=kind, level="warning", **warning)
    applied = {
        "flight_key": update.identity.key,
        "version": outcome.version if outcome else None,
        "changed": outcome.changed if outcome else [],
        "warnings": warnings,
    }
    return applied, None


def warnings_of(item: Update | FeedUpdate, update: Update, origin: str) -> list[dict[str, str]]:
    """One ingest-log warning per part of the message that was not understood and was kept
    raw on the flight: where it was (the message's path), what it said, and where the flight
    shows it (its provenance, under that path)."""
    reasons = item.reasons
    out = []
    for path, raw in update.unknown.items():
        why = reasons.get(path) or _reason(path)
        out.append(
            {
                "location": f"{origin} {path}"[:512],
                "message": (
                    f"{update.identity.key}: {why}; kept on the flight: {raw[:120]!r} "
                    f"(GET /api/flights/{update.identity.key}/provenance)"
                ),
            }
        )
    return out


def _reason(path: str) -> str:
    if path.endswith(("@OperationQualifier", "@TimeType")) or "[.=" in path:
        return "code not in the AIDX code list"
    if path.startswith("LegData/OperationTime") or path.endswith("/Duration"):
        return "value not understood"
    return "element not read by jetbridge"


def _refusal(item: FeedUpdate, origin: str) -> dict[str, str]:
    named = f"{item.airline}{item.flight_number} on {item.origin_date.isoformat()}"
    airports = "-".join(a or "?" for a in (item.departure_airport, item.arrival_airport))
    location = f"{origin} line {item.line}" if item.line else origin
    return {
        "location": location,
        "message": f"no single known flight matches {named} ({airports}); the message is refused",
    }


def _complete(conn: Connection, item: FeedUpdate) -> Update | None:
    """The update for the one flight a telex names; its day-less times placed by the flight's
    schedule. An MVT whose EA names another airport than the flight's destination tells of a
    diversion."""
    try:
        identity = resolve(conn, item)
        if identity is not None and item.source == "mvt" and item.complete():
            identity = _diverted(conn, item, identity)
    except InvalidFlight:
        return None
    if identity is None:
        return None
    if item.dayless:
        state = load_state(conn, identity.key)
        if state is not None:
            anchor_times(item.fields, item.dayless, state.fields)
    return item.to_update(identity)


def _diverted(conn: Connection, item: FeedUpdate, named: FlightIdentity) -> FlightIdentity:
    """The flight an MVT's `AD ... EA1230 BRU` speaks of: the one it names when known; else
    the one flight from that station that day, now diverted to BRU."""
    if load_state(conn, named.key) is not None:
        return named
    scheduled = resolve(conn, replace(item, arrival_airport=None))
    if scheduled is None or scheduled.arrival_airport == item.arrival_airport:
        return named
    item.fields["diversion_airport"] = item.arrival_airport
    item.fields["status"] = "diverted"
    return scheduled
