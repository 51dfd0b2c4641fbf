"""Public reference data kept in the repository (see SOURCES.md): airports with coordinates and
time zones, airline designators, and a demo network of flights at Zurich. Depends on nothing."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import time
from functools import cache
from importlib import resources
from zoneinfo import ZoneInfo

EARTH_RADIUS_KM = 6371.0
TAXI_CLIMB_DESCENT_MINUTES = 40
CRUISE_KMH = 860.0


@dataclass(frozen=True, slots=True)
class Airport:
    iata: str
    icao: str
    name: str
    city: str
    country: str
    latitude: float
    longitude: float
    time_zone: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


@dataclass(frozen=True, slots=True)
class Airline:
    iata: str
    icao: str
    name: str
    country: str
    alliance: str
    hub: str


@dataclass(frozen=True, slots=True)
class Route:
    """One daily flight of the demo network, its departure in the origin's local time."""

    airline: str
    number: str
    origin: str
    destination: str
    departs: time
    aircraft: str
    terminal: str | None
    arrival_terminal: str | None
    codeshares: tuple[str, ...]


def _rows(name: str) -> list[dict[str, str]]:
    text = resources.files("jetbridge.reference").joinpath(name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


@cache
def airports() -> dict[str, Airport]:
    return {
        row["iata"]: Airport(
            row["iata"],
            row["icao"],
            row["name"],
            row["city"],
            row["country"],
            float(row["lat"]),
            float(row["lon"]),
            row["tz"],
        )
        for row in _rows("airports.csv")
    }


@cache
def airlines() -> dict[str, Airline]:
    return {
        row["iata"]: Airline(
            row["iata"], row["icao"], row["name"], row["country"], row["alliance"], row["hub"]
        )
        for row in _rows("airlines.csv")
    }


@cache
def network() -> tuple[Route, ...]:
    return tuple(
        Route(
            airline=row["airline"],
            number=row["number"],
            origin=row["origin"],
            destination=row["destination"],
            departs=time.fromisoformat(row["departs"]),
            aircraft=row["aircraft"],
            terminal=row["terminal"] or None,
            arrival_terminal=row["arrival_terminal"] or None,
            codeshares=tuple(row["codeshares"].split()),
        )
        for row in _rows("network.csv")
    )


def time_zone(code: str) -> str | None:
    """The IANA time zone of an airport in the reference data, if it is there."""
    airport = airports().get(code.upper())
    return airport.time_zone if airport else None


def great_circle_km(origin: str, destination: str) -> float:
    """Distance between two reference airports along the great circle (haversine)."""
    a, b = airports()[origin], airports()[destination]
    phi1, phi2 = math.radians(a.latitude), math.radians(b.latitude)
    dphi = phi2 - phi1
    dlambda = math.radians(b.longitude - a.longitude)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


def block_minutes(origin: str, destination: str) -> int:
    """Gate-to-gate time: taxi, climb and descent, plus the distance at cruise speed; 5-minute
    steps."""
    flying = great_circle_km(origin, destination) / CRUISE_KMH * 60
    return int(round((TAXI_CLIMB_DESCENT_MINUTES + flying) / 5) * 5)
