"""What a flight information display shows: local times and the remarks passengers know."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

AIRPORT_ZONES = {
    "ZRH": "Europe/Zurich",
    "GVA": "Europe/Zurich",
    "BSL": "Europe/Zurich",
    "LHR": "Europe/London",
    "LGW": "Europe/London",
    "MAN": "Europe/London",
    "EDI": "Europe/London",
    "DUB": "Europe/Dublin",
    "CDG": "Europe/Paris",
    "ORY": "Europe/Paris",
    "NCE": "Europe/Paris",
    "FRA": "Europe/Berlin",
    "MUC": "Europe/Berlin",
    "HAM": "Europe/Berlin",
    "BER": "Europe/Berlin",
    "AMS": "Europe/Amsterdam",
    "BRU": "Europe/Brussels",
    "MAD": "Europe/Madrid",
    "BCN": "Europe/Madrid",
    "PMI": "Europe/Madrid",
    "LIS": "Europe/Lisbon",
    "OPO": "Europe/Lisbon",
    "FCO": "Europe/Rome",
    "MXP": "Europe/Rome",
    "VIE": "Europe/Vienna",
    "PRG": "Europe/Prague",
    "WAW": "Europe/Warsaw",
    "CPH": "Europe/Copenhagen",
    "ARN": "Europe/Stockholm",
    "OSL": "Europe/Oslo",
    "HEL": "Europe/Helsinki",
    "ATH": "Europe/Athens",
    "IST": "Europe/Istanbul",
    "DXB": "Asia/Dubai",
    "DOH": "Asia/Qatar",
    "SIN": "Asia/Singapore",
    "BKK": "Asia/Bangkok",
    "NRT": "Asia/Tokyo",
    "HND": "Asia/Tokyo",
    "JFK": "America/New_York",
    "EWR": "America/New_York",
    "BOS": "America/New_York",
    "ORD": "America/Chicago",
    "YUL": "America/Toronto",
    "LAX": "America/Los_Angeles",
    "SFO": "America/Los_Angeles",
}


def zone_for(airport: str) -> ZoneInfo:
    return ZoneInfo(AIRPORT_ZONES.get(airport.upper(), "UTC"))


def local_time(value: str | None, airport: str) -> str | None:
    """`2026-11-24T07:05:00Z` at ZRH -> `08:05`."""
    if not value:
        return None
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment.astimezone(zone_for(airport)).strftime("%H:%M")


def _time(view: dict[str, Any], milestone: str, kind: str) -> str | None:
    value = view.get("times", {}).get(milestone, {}).get(kind)
    return value if isinstance(value, str) else None


def departure_remark(view: dict[str, Any]) -> str:
    status = view["status"]
    airport = view["departure_airport"]
    if status == "cancelled":
        return "Cancelled"
    if status == "diverted":
        return f"Diverted {view.get('diversion_airport', '')}".strip()
    if status in {"departed", "arrived"}:
        return f"Departed {local_time(_time(view, 'off_block', 'actual'), airport) or ''}".strip()
    if _time(view, "gate_close", "actual"):
        return "Gate Closed"
    if _time(view, "final_call", "actual"):
        return "Final Call"
    if status == "boarding":
        return "Boarding"
    if status == "delayed":
        estimate = _time(view, "off_block", "estimated")
        return f"Delayed {local_time(estimate, airport)}" if estimate else "Delayed"
    if view.get("gate"):
        return f"Gate {view['gate']}"
    return ""


def arrival_remark(view: dict[str, Any]) -> str:
    status = view["status"]
    airport = view["arrival_airport"]
    if status == "cancelled":
        return "Cancelled"
    if status == "diverted":
        return f"Diverted {view.get('diversion_airport', '')}".strip()
    if status == "arrived":
        landed = local_time(
            _time(view, "on_block", "actual") or _time(view, "touchdown", "actual"), airport
        )
        belt = view.get("baggage_belt")
        return f"Baggage belt {belt}" if belt else f"Landed {landed or ''}".strip()
    estimate = _time(view, "on_block", "estimated")
    if estimate and estimate != _time(view, "on_block", "scheduled"):
        return f"Expected {local_time(estimate, airport)}"
    return ""


@dataclass(frozen=True, slots=True)
class Linger:
    """How long a flight stays on the board after it left (take-off, else off-block) or
    arrived (on-block, else touchdown); a cancelled one stays this long after its schedule."""

    departed: timedelta = timedelta(minutes=10)
    arrived: timedelta = timedelta(minutes=20)


def leaves_at(view: dict[str, Any], *, direction: str, linger: Linger) -> str | None:
    """When the flight leaves this board (UTC, ISO 8601), or None while it stays."""
    status = view["status"]
    if direction == "departures":
        after = linger.departed
        if status in {"departed", "arrived", "diverted"}:
            moment = _time(view, "take_off", "actual") or _time(view, "off_block", "actual")
        elif status == "cancelled":
            moment = _time(view, "off_block", "scheduled")
        else:
            moment = None
    else:
        after = linger.arrived
        if status == "arrived":
            moment = _time(view, "on_block", "actual") or _time(view, "touchdown", "actual")
        elif status in {"cancelled", "diverted"}:
            moment = _time(view, "on_block", "scheduled")
        else:
            moment = None
    if moment is None:
        return None
    leaving = datetime.fromisoformat(moment.replace("Z", "+00:00")) + after
    return leaving.strftime("%Y-%m-%dT%H:%M:%SZ")


def on_board(row: dict[str, Any], now: datetime) -> bool:
    """Whether a board row is still shown at `now` (an aware time)."""
    leaving = row.get("leaves_at")
    return not leaving or datetime.fromisoformat(leaving.replace("Z", "+00:00")) > now


def board_row(view: dict[str, Any], *, direction: str, linger: Linger = Linger()) -> dict[str, Any]:
    """One line of a departures or arrivals board, in the airport's local time."""
    departing = direction == "departures"
    airport = view["departure_airport"] if departing else view["arrival_airport"]
    milestone = "off_block" if departing else "on_block"
    codeshares = [c for c in str(view.get("codeshares") or "").split(",") if c]
    return {
        "flight_key": view["flight_key"],
        "version": view["version"],
        "flight": view["flight"],
        "airline": view["airline"],
        "codeshares": codeshares,
        "scheduled": local_time(_time(view, milestone, "scheduled"), airport),
        "scheduled_utc": _time(view, milestone, "scheduled"),
        "place": view["arrival_airport"] if departing else view["departure_airport"],
        "terminal": view.get("terminal") if departing else view.get("arrival_terminal"),
        "gate": view.get("gate") if departing else None,
        "belt": None if departing else view.get("baggage_belt"),
        "status": view["status"],
        "remark": departure_remark(view) if departing else arrival_remark(view),
        "leaves_at": leaves_at(view, direction=direction, linger=linger),
    }
