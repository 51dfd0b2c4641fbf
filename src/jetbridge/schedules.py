"""Publishing a schedule: each dated leg becomes the hub's flight and the catalogue's sellable
flight in one transaction, under one identity (`LX0100-2026-11-24-ZRH-LHR`).

The hub learns the scheduled times, aircraft, terminals and codeshare numbers from the schedule
(source `schedule`); the catalogue lays out the seats and fares. Importing the same schedule
again adds nothing and changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter, ValidationError

from jetbridge import reference
from jetbridge.aodb.simulator import PlannedLeg
from jetbridge.booking.catalog import ScheduleEntry, import_schedule, standard_fares
from jetbridge.bounds import OutOfRange, checked_day
from jetbridge.events.backbone import Backbone
from jetbridge.flights.feeds.asm import parse_asm
from jetbridge.flights.feeds.errors import ParseError
from jetbridge.flights.feeds.limits import FeedLimits
from jetbridge.flights.feeds.ssim import AIRCRAFT, ScheduledLeg, parse_ssim
from jetbridge.flights.feeds.telex import FeedUpdate
from jetbridge.flights.hub import FlightHub
from jetbridge.flights.merge import Update

SOURCE = "schedule"
FORMATS = ("ssim", "asm", "json")
_LEG_FIELDS = ("times.off_block.scheduled", "times.on_block.scheduled", "aircraft_type")
_ENTRIES = TypeAdapter(list[ScheduleEntry])


@dataclass
class Published:
    """What one import did: sellable flights added, hub flights created or changed."""

    sellable_added: int = 0
    hub_changed: list[str] = field(default_factory=list)
    flight_keys: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "legs": len(self.flight_keys),
            "sellable_added": self.sellable_added,
            "hub_changed": len(self.hub_changed),
            "flight_keys": self.flight_keys,
        }


def hub_update(entry: ScheduleEntry, *, received_at: datetime) -> Update:
    """What the schedule says about the leg, as a hub update."""
    fields: dict[str, Any] = {
        "times.off_block.scheduled": entry.departure,
        "times.on_block.scheduled": entry.arrival,
        "aircraft_type": entry.aircraft_type,
        "terminal": entry.terminal,
        "arrival_terminal": entry.arrival_terminal,
        "codeshares": ",".join(entry.codeshares) or None,
    }
    return Update(
        identity=entry.identity,
        source=SOURCE,
        source_time=received_at,
        fields={name: value for name, value in fields.items() if value is not None},
    )


def publish_schedule(
    backbone: Backbone,
    entries: Sequence[ScheduleEntry],
    *,
    received_at: datetime | None = None,
) -> Published:
    """Create (or bring up to date) the hub's flights and the sellable inventory of a schedule,
    all in one transaction: either every leg is published or none."""
    moment = received_at or datetime.now(UTC)
    hub = FlightHub(backbone)
    published = Published()
    with backbone.transaction() as conn:
        for entry in entries:
            applied = hub.apply(conn, hub_update(entry, received_at=moment))
            if applied is not None:
                published.hub_changed.append(applied.flight_key)
            published.flight_keys.append(entry.identity.key)
        published.sellable_added = import_schedule(conn, entries)
    return published


def entry_for(leg: ScheduledLeg, *, currency: str) -> ScheduleEntry:
    """A leg of a schedule file as a sellable flight, with the standard fares for its block."""
    minutes = int((leg.arrival - leg.departure).total_seconds() // 60)
    return ScheduleEntry(
        airline=leg.airline, flight_number=leg.flight_number, origin=leg.departure_airport,
        destination=leg.arrival_airport, departure=leg.departure, arrival=leg.arrival,
        aircraft_type=leg.aircraft_type, currency=currency,
        fares=standard_fares(block_minutes=minutes, aircraft_type=leg.aircraft_type),
        origin_date=leg.origin_date, terminal=leg.terminal,
        arrival_terminal=leg.arrival_terminal, codeshares=list(leg.codeshares),
    )  # fmt: skip


def read_schedule(
    kind: str,
    data: str | bytes,
    *,
    currency: str = "EUR",
    file: str | None = None,
    limits: FeedLimits | None = None,
) -> list[ScheduleEntry]:
    """The dated passenger legs of an SSIM chapter 7 file, of ASM/SSM messages that define legs
    (NEW, RPL: route, times and equipment), or of a JSON list of entries; raises ParseError
    naming the line (or entry) and what is wrong."""
    bounds = limits or FeedLimits()
    if kind == "asm":
        updates = parse_asm(data, received_at=datetime.now(UTC), file=file, limits=bounds)
        try:
            return [_asm_entry(update, currency=currency, file=file) for update in updates]
        except ValidationError as exc:
            raise ParseError(_first_error(exc), file=file) from None
    if kind == "ssim":
        legs = parse_ssim(data, file=file, limits=bounds)
        try:
            return [entry_for(leg, currency=currency) for leg in legs if leg.carries_passengers]
        except ValidationError as exc:
            raise ParseError(_first_error(exc), file=file) from None
    if kind == "json":
        try:
            entries = _ENTRIES.validate_json(data)
        except ValidationError as exc:
            raise ParseError(_first_error(exc), file=file) from None
        if len(entries) > bounds.max_flights:
            raise ParseError(
                f"{len(entries)} entries, more than the {bounds.max_flights} one message may "
                "hold (JETBRIDGE_FEED_MAX_FLIGHTS_PER_MESSAGE)",
                file=file,
            )
        return entries
    raise ParseError(f"unknown format; use one of {', '.join(FORMATS)}", file=file, token=kind)


def _asm_entry(update: FeedUpdate, *, currency: str, file: str | None) -> ScheduleEntry:
    """A leg an ASM/SSM message defines in full; any other change belongs to the hub's feed."""
    fields = update.fields
    if (
        not update.complete()
        or fields.get("status") == "cancelled"
        or any(not fields.get(name) for name in _LEG_FIELDS)
    ):
        raise ParseError(
            "only messages that define legs (NEW or RPL with route, times and equipment) make "
            "a schedule; send other changes to the flight feed (/api/ingest/asm)",
            file=file,
            location=f"line {update.line}",
            token=f"{update.airline}{update.flight_number}",
        )
    aircraft = str(fields["aircraft_type"]).upper()
    aircraft = AIRCRAFT.get(aircraft, aircraft)
    departure = _utc(fields["times.off_block.scheduled"])
    arrival = _utc(fields["times.on_block.scheduled"])
    minutes = int((arrival - departure).total_seconds() // 60)
    return ScheduleEntry(
        airline=update.airline, flight_number=update.flight_number,
        origin=str(update.departure_airport), destination=str(update.arrival_airport),
        departure=departure, arrival=arrival, aircraft_type=aircraft, currency=currency,
        fares=standard_fares(block_minutes=minutes, aircraft_type=aircraft),
        origin_date=update.origin_date,
    )  # fmt: skip


def _utc(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.astimezone(UTC)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors(include_input=False)[0]
    where = ".".join(str(part) for part in error["loc"]) or "document"
    return f"{where}: {error['msg']}"


# The currency a flight is sold in: that of the country it departs from.
CURRENCIES = {"CH": "CHF", "GB": "GBP", "US": "USD", "CA": "CAD", "SG": "SGD", "DK": "DKK",
              "SE": "SEK", "NO": "NOK", "AE": "AED", "QA": "QAR", "TR": "EUR"}  # fmt: skip


def network_schedule(*, start: date, days: int) -> list[ScheduleEntry]:
    """The reference network (real carriers on routes they fly, terminals as at the airports)
    for `days` days from `start`: departures at their local times, block times from the
    great-circle distance, standard fares in the currency of the departure country."""
    checked_day(start, "start")
    if not 0 <= days <= 366:
        raise OutOfRange(f"days: {days} is not between 0 and 366")
    entries = []
    for offset in range(days):
        day = start + timedelta(days=offset)
        for route in reference.network():
            entries.append(_network_entry(route, day))
    return entries


def _network_entry(route: reference.Route, day: date) -> ScheduleEntry:
    origin = reference.airports()[route.origin]
    local = datetime.combine(day, route.departs, tzinfo=ZoneInfo(origin.time_zone))
    departure = local.astimezone(UTC)
    minutes = reference.block_minutes(route.origin, route.destination)
    return ScheduleEntry(
        airline=route.airline, flight_number=route.number, origin=route.origin,
        destination=route.destination, departure=departure,
        arrival=departure + timedelta(minutes=minutes), aircraft_type=route.aircraft,
        currency=CURRENCIES.get(origin.country, "EUR"),
        fares=standard_fares(block_minutes=minutes, aircraft_type=route.aircraft),
        origin_date=day, terminal=route.terminal, arrival_terminal=route.arrival_terminal,
        codeshares=list(route.codeshares),
    )  # fmt: skip


def planned_legs(entries: Sequence[ScheduleEntry]) -> list[PlannedLeg]:
    """Published legs as the AODB simulator flies them, under the same identity."""
    return [
        PlannedLeg(
            airline=e.airline,
            number=e.flight_number,
            origin=e.origin,
            destination=e.destination,
            departure=e.departure,
            arrival=e.arrival,
            aircraft_type=e.aircraft_type,
            origin_date=e.operating_date,
            terminal=e.terminal,
            codeshares=tuple(e.codeshares),
        )
        for e in entries
    ]
