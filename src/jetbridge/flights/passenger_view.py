"""A flight as a passenger's trip shows it: status, gate, delay, and times in UTC and in each
airport's local time with its zone named. Pure: takes the hub's view of the leg."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from jetbridge import reference
from jetbridge.flights.fids import AIRPORT_ZONES

KIND_ORDER = ("actual", "estimated", "scheduled")


def zone_name(airport: str) -> str:
    """The airport's IANA time zone (the reference data first), UTC when it is unknown."""
    return reference.time_zone(airport) or AIRPORT_ZONES.get(airport.upper(), "UTC")


def local_moment(value: str | None, airport: str) -> dict[str, str] | None:
    """`2026-12-01T06:40:00Z` at ZRH -> its local time with offset, clock and zone."""
    if not value:
        return None
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    zone = zone_name(airport)
    local = moment.astimezone(ZoneInfo(zone))
    return {
        "local": local.isoformat(),
        "clock": local.strftime("%H:%M"),
        "date": local.date().isoformat(),
        "zone": zone,
        "abbreviation": local.tzname() or zone,
    }


def _end(view: dict[str, Any], milestone: str, airport: str) -> dict[str, Any]:
    times = view.get("times", {}).get(milestone, {})
    side: dict[str, Any] = {"airport": airport, "time_zone": zone_name(airport)}
    for kind in KIND_ORDER:
        side[kind] = times.get(kind)
        side[f"{kind}_local"] = local_moment(times.get(kind), airport)
    best = next((kind for kind in KIND_ORDER if times.get(kind)), None)
    side["best"] = best
    return side


def delay_minutes(side: dict[str, Any]) -> int:
    """How late the best known time is against the schedule, in whole minutes (0 if early)."""
    scheduled, best = side.get("scheduled"), side.get("best")
    if not scheduled or best in {None, "scheduled"}:
        return 0
    later = datetime.fromisoformat(str(side[best]).replace("Z", "+00:00"))
    planned = datetime.fromisoformat(scheduled.replace("Z", "+00:00"))
    return max(int((later - planned).total_seconds() // 60), 0)


def trip_flight(view: dict[str, Any]) -> dict[str, Any]:
    """What /trips and the booking API show of a hub flight."""
    departure = _end(view, "off_block", view["departure_airport"])
    arrival = _end(view, "on_block", view["arrival_airport"])
    return {
        "flight_key": view["flight_key"],
        "flight": view.get("flight"),
        "version": view.get("version"),
        "status": view.get("status", "scheduled"),
        "cancelled": view.get("status") == "cancelled",
        "terminal": view.get("terminal"),
        "gate": view.get("gate"),
        "arrival_terminal": view.get("arrival_terminal"),
        "baggage_belt": view.get("baggage_belt"),
        "diversion_airport": view.get("diversion_airport"),
        "codeshares": [c for c in str(view.get("codeshares") or "").split(",") if c],
        "delay_minutes": delay_minutes(departure),
        "delays": view.get("delays", []),
        "departure": departure,
        "arrival": arrival,
    }
