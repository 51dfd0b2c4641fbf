"""What counts as a disruption of a flight, from the hub's view of it (plain data, no I/O).

A flight event may raise several kinds at once: a cancellation, a diversion, a delay above the
airline's threshold, a gate or terminal change. Each kind has a fingerprint of what its notice
says, so a later event that says the same again is recognised and sends nothing new.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

CANCELLATION = "cancellation"
DIVERSION = "diversion"
DELAY = "delay"
GATE_CHANGE = "gate_change"
MISSED_CONNECTION = "missed_connection"
KINDS = (CANCELLATION, DIVERSION, DELAY, GATE_CHANGE, MISSED_CONNECTION)
# Kinds after which passengers are offered other flights.
REACCOMMODATE = frozenset({CANCELLATION, MISSED_CONNECTION})


@dataclass(frozen=True, slots=True)
class DisruptionRules:
    """The operator's settings: delay thresholds per airline and minimum connection times per
    airport (minutes), how long a passenger has to choose, and each airline's partners."""

    delay_minutes: int = 60
    delay_minutes_by_airline: Mapping[str, int] = field(default_factory=dict)
    connection_minutes: int = 60
    connection_minutes_by_airport: Mapping[str, int] = field(default_factory=dict)
    choice_seconds: int = 24 * 3600
    partners: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    offers: int = 3

    def delay_threshold(self, airline: str) -> timedelta:
        return timedelta(minutes=self.delay_minutes_by_airline.get(airline, self.delay_minutes))

    def connection_time(self, airport: str) -> timedelta:
        minutes = self.connection_minutes_by_airport.get(airport, self.connection_minutes)
        return timedelta(minutes=minutes)


@dataclass(frozen=True, slots=True)
class Disruption:
    kind: str
    summary: str
    facts: dict[str, Any]

    @property
    def fingerprint(self) -> str:
        """A digest of what the notice says: equal notices have equal fingerprints."""
        body = json.dumps({"kind": self.kind, **self.facts}, sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()[:32]


def classify(flight: Mapping[str, Any], rules: DisruptionRules) -> list[Disruption]:
    """The disruptions a flight's current state amounts to (from its hub view)."""
    name = f"{flight['flight']} {flight['departure_airport']}-{flight['arrival_airport']}"
    status = flight.get("status")
    if status in {"cancelled", "not_operating"}:
        return [Disruption(CANCELLATION, f"{name} is cancelled", {})]
    found = []
    if status == "diverted" or flight.get("diversion_airport"):
        airport = flight.get("diversion_airport") or ""
        where = f" to {airport}" if airport else ""
        found.append(
            Disruption(DIVERSION, f"{name} is diverted{where}", {"diversion_airport": airport})
        )
    late = delay(flight)
    if late is not None and late >= rules.delay_threshold(str(flight["airline"])):
        estimated = departure_estimate(flight)
        minutes = int(late.total_seconds() // 60)
        shown = _time(str(estimated)).strftime("%Y-%m-%d %H:%M UTC")
        found.append(
            Disruption(
                DELAY,
                f"{name} is delayed by {minutes} minutes, now departing {shown}",
                {"estimated_departure": estimated},
            )
        )
    gate, terminal = flight.get("gate"), flight.get("terminal")
    if gate or terminal:
        where = ", ".join(
            part
            for part in (f"terminal {terminal}" if terminal else "", f"gate {gate}" if gate else "")
            if part
        )
        found.append(
            Disruption(
                GATE_CHANGE,
                f"{name} departs from {where}",
                {"gate": gate or "", "terminal": terminal or ""},
            )
        )
    return found


def departure_estimate(flight: Mapping[str, Any]) -> str | None:
    times = flight.get("times") or {}
    off_block = times.get("off_block") or {}
    value = off_block.get("actual") or off_block.get("estimated")
    return str(value) if value else None


def delay(flight: Mapping[str, Any]) -> timedelta | None:
    """How late the flight leaves (estimated or actual against scheduled off-block)."""
    off_block = (flight.get("times") or {}).get("off_block") or {}
    scheduled, later = off_block.get("scheduled"), departure_estimate(flight)
    if not scheduled or not later:
        return None
    return _time(later) - _time(str(scheduled))


def arrival_estimate(flight: Mapping[str, Any], scheduled_arrival: datetime) -> datetime:
    """When the flight now arrives: the hub's estimate, else the schedule shifted by the delay."""
    on_block = (flight.get("times") or {}).get("on_block") or {}
    known = on_block.get("actual") or on_block.get("estimated")
    if known:
        return _time(str(known))
    return scheduled_arrival + max(delay(flight) or timedelta(0), timedelta(0))


def misses_connection(
    *, arrives: datetime, onward_departs: datetime, airport: str, rules: DisruptionRules
) -> bool:
    """Whether an onward flight leaves sooner after the arrival than the airport's minimum."""
    return onward_departs - arrives < rules.connection_time(airport)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


_CODE = re.compile(r"^[A-Z0-9]{2,3}$")


def parse_minutes(text: str) -> dict[str, int]:
    """`LX=30,ZRH=45`: minutes per airline or airport code; ValueError names the bad part."""
    found: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        code, _, minutes = part.partition("=")
        code = code.strip()
        if not _CODE.match(code) or not minutes.strip().isdigit():
            raise ValueError(f"{part!r}: expected CODE=MINUTES, e.g. LX=30 or ZRH=45")
        value = int(minutes)
        if not 1 <= value <= 24 * 60:
            raise ValueError(f"{part!r}: minutes must be between 1 and 1440")
        found[code] = value
    return found


def parse_partners(text: str) -> dict[str, tuple[str, ...]]:
    """`LX=LH+OS,LH=LX`: each airline's partners; ValueError names the bad part."""
    found: dict[str, tuple[str, ...]] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        code, _, partners = part.partition("=")
        names = tuple(name.strip() for name in partners.split("+"))
        if not _CODE.match(code.strip()) or not all(_CODE.match(name) for name in names):
            raise ValueError(f"{part!r}: expected AIRLINE=PARTNER+PARTNER, e.g. LX=LH+OS")
        found[code.strip()] = names
    return found
