"""An AIDX `LegData` element to canonical fields, by the element names of the IATA schema.

Elements marked `xsi:nil` read as absent: AODBs send them for values not known yet, so they
never erase what another source said.

What is not understood never loses the rest of the leg: an enumerated code outside the lists
in `aidx_codes` (a local or newer code), a value that does not parse, or an element this module
does not read is kept raw in `unknown` under the path where it was found
(`LegData/OperationTime[@OperationQualifier='CMA'][@TimeType='ACT']/@OperationQualifier`), and
the caller reports each one as a warning, with the reason kept in `reasons` where there is
more to say than "not understood".

Times in local time (SCL, ESL, ACL) are converted to UTC with the time zone of the airport
where the milestone happens, as the reference data gives it. Without an offset, a local time
whose airport has no known zone, that does not exist (the hour skipped when clocks go forward)
or that happens twice (the hour repeated when they go back) is kept raw with the reason: a
guess could be an hour off. A local time that carries its offset is unambiguous and converted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from xml.etree.ElementTree import Element
from zoneinfo import ZoneInfo

from jetbridge.bounds import OutOfRange, utc_moment
from jetbridge.flights.feeds.aidx_codes import (
    LOCAL_TIME_TYPES,
    MILESTONES,
    STATUS,
    STATUS_RANK,
    TIME_TYPES,
    UNMAPPED_MILESTONES,
    UNMAPPED_TIME_TYPES,
)
from jetbridge.flights.feeds.errors import ParseError
from jetbridge.flights.model import MAX_DELAYS
from jetbridge.reference import time_zone

_DURATION = re.compile(
    r"P(?:([0-9]{1,4})D)?(?:T(?:([0-9]{1,5})H)?(?:([0-9]{1,6})M)?(?:([0-9]{1,7}(?:\.[0-9]+)?)S)?)?"
)
_WHOLE = re.compile(r"[0-9]{1,6}")  # counts and minutes: ASCII digits, a sane number of them
_ARRIVAL_MILESTONES = frozenset({"touchdown", "on_block"})


@dataclass
class Kept:
    """What a leg carried that no canonical field holds: raw values by path, and why, where
    the reason is more than "not understood"."""

    raw: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)


@lru_cache(maxsize=512)
def local(tag: str) -> str:
    """The element name without its namespace, whatever prefix the sender chose."""
    return tag.rsplit("}", 1)[-1]


def child(node: Element, name: str) -> Element | None:
    for item in node:
        if local(item.tag) == name:
            return item
    return None


def children(node: Element, name: str) -> list[Element]:
    return [c for c in node if local(c.tag) == name]


def by_name(node: Element) -> dict[str, list[Element]]:
    named: dict[str, list[Element]] = {}
    for item in node:
        named.setdefault(local(item.tag), []).append(item)
    return named


def text(node: Element | None) -> str | None:
    if node is None or node.text is None:
        return None
    return node.text.strip() or None


def repeat_index(node: Element) -> int:
    value = node.get("RepeatIndex", "").strip()
    return int(value) if _WHOLE.fullmatch(value) else 0


def parse_time(value: str, file: str | None, where: str) -> datetime:
    """An ISO 8601 date-time; without an offset it is UTC, as AIDX times are."""
    try:
        if len(value.strip()) <= 10:
            raise ValueError(value)  # a date alone names no moment
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ParseError(
            "not an ISO 8601 date-time", file=file, location=where, token=value[:64]
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return utc_moment(moment, "time")
    except OutOfRange as exc:
        raise ParseError(str(exc), file=file, location=where, token=value[:64]) from None


# LegData elements the schema defines (IATA_AIDX_CommonTypes.xsd, 17.1) that no canonical field
# holds: read past, not reported.
SKIPPED = frozenset(
    {
        "OperatingAlliance",
        "ServiceType",
        "TechnicalStopInd",
        "DepSecurityCheckInd",
        "ArrSecurityCheckInd",
        "EstFlightDuration",
        "OwnerAirline",
        "PlannedArrivalAptHistory",
        "SpecialEmphasis",
        "CabinClass",
        "SpecialCargo",
        "AssociatedFlightLegAircraft",
        "AssociatedFlightLegSchedule",
        "RemarkTextCode",
        "ClearanceAgreement",
        "PublicFlightDisplay",
        "FlightCrewAirline",
        "CabinCrewAirline",
        "OperationDuration",
    }
)
_READ = frozenset(
    {
        "OperationalStatus",
        "PublicStatus",
        "OperationTime",
        "AirportResources",
        "AircraftInfo",
        "CodeShareInfo",
        "IrregularityDelay",
        "RemarkFreeText",
    }
)
_RAW_LIMIT = 200


def raw_text(node: Element) -> str:
    """An element's text and its descendants', as one line of at most 200 characters."""
    words = " ".join(" ".join(node.itertext()).split())
    attributes = " ".join(f"{local(k)}={v}" for k, v in node.attrib.items() if "}" not in k)
    return " ".join(part for part in (attributes, words) if part)[:_RAW_LIMIT]


def leg_data(
    data: Element,
    where: str,
    file: str | None,
    unknown: dict[str, str] | None = None,
    *,
    airports: tuple[str, str] | None = None,
    reasons: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The canonical fields of a LegData; what is not understood goes into `unknown` (and why,
    when there is more to say, into `reasons`). `airports` (departure, arrival) place local
    times."""
    kept: dict[str, str] = {} if unknown is None else unknown
    why: dict[str, str] = {} if reasons is None else reasons
    parts = by_name(data)
    fields: dict[str, Any] = {}
    _status(parts, fields, kept)
    _times(parts.get("OperationTime", []), fields, Kept(kept, why), file, airports)
    planned_first = sorted(
        parts.get("AirportResources", []),
        key=lambda r: (r.get("Usage") or "").lower() == "actual",  # actual replaces planned
    )
    for resources in planned_first:
        for resource in children(resources, "Resource"):
            _resource(resource, fields)
    for aircraft in parts.get("AircraftInfo", [])[:1]:
        _aircraft(aircraft, fields)
    codeshares = [_codeshare(info) for info in parts.get("CodeShareInfo", [])]
    if any(codeshares):
        fields["codeshares"] = ",".join(c for c in codeshares if c)
    _delays(parts.get("IrregularityDelay", []), fields, kept, file)
    remarks = [t for t in (text(r) for r in parts.get("RemarkFreeText", [])) if t]
    if remarks:
        fields["remarks"] = " / ".join(remarks)
    for name, nodes in parts.items():
        if name not in _READ and name not in SKIPPED:
            for index, node in enumerate(nodes, 1):
                suffix = f"[{index}]" if len(nodes) > 1 else ""
                kept[f"LegData/{name}{suffix}"] = raw_text(node)
    return {k: v for k, v in fields.items() if v is not None}


def _status(parts: dict[str, list[Element]], fields: dict[str, Any], kept: dict[str, str]) -> None:
    element = "OperationalStatus"
    codes = [c for c in (text(s) for s in parts.get(element, [])) if c]
    if not codes:  # PublicStatus is deprecated, but some AODBs still send only it
        element = "PublicStatus"
        codes = [c for c in (text(s) for s in parts.get(element, [])) if c]
    statuses = []
    for code in codes:
        mapped = STATUS.get(code.upper())
        if mapped is None:
            kept[f"LegData/{element}[.='{code[:32]}']"] = code[:_RAW_LIMIT]
            continue
        statuses.append(mapped)
    if statuses:
        fields["status"] = max(statuses, key=STATUS_RANK.__getitem__)


def _times(
    nodes: list[Element],
    fields: dict[str, Any],
    kept: Kept,
    file: str | None,
    airports: tuple[str, str] | None,
) -> None:
    """Every OperationTime; of repeated ones for the same milestone and type, the one with the
    highest RepeatIndex (or, without one, the last) counts, and a UTC time beats the same in
    local time. An unknown qualifier or time type, or a time that does not parse or cannot be
    placed, is kept raw."""
    chosen: dict[str, tuple[tuple[int, int, int], datetime]] = {}
    for position, node in enumerate(nodes):
        qualifier, kind = node.get("OperationQualifier", ""), node.get("TimeType", "")
        path = (
            f"LegData/OperationTime[@OperationQualifier='{qualifier[:16]}']"
            f"[@TimeType='{kind[:16]}']"
        )
        milestone = MILESTONES.get(qualifier)
        time_type = TIME_TYPES.get(kind) or LOCAL_TIME_TYPES.get(kind)
        value = text(node)
        if milestone is None and qualifier not in UNMAPPED_MILESTONES:
            kept.raw[f"{path}/@OperationQualifier"] = (value or "")[:_RAW_LIMIT]
            continue
        if time_type is None and kind not in UNMAPPED_TIME_TYPES:
            kept.raw[f"{path}/@TimeType"] = (value or "")[:_RAW_LIMIT]
            continue
        if milestone is None or time_type is None or value is None:
            continue
        try:
            if kind in LOCAL_TIME_TYPES:
                moment = _local_time(value, milestone, airports, file, path)
            else:
                moment = parse_time(value, file, path)
        except ParseError as exc:
            kept.raw[path] = value[:_RAW_LIMIT]
            if kind in LOCAL_TIME_TYPES:
                kept.reasons[path] = exc.reason
            continue
        order = (0 if kind in LOCAL_TIME_TYPES else 1, repeat_index(node), position)
        name = f"times.{milestone}.{time_type}"
        if name not in chosen or order > chosen[name][0]:
            chosen[name] = (order, moment)
    fields.update({name: moment for name, (_, moment) in chosen.items()})


def _local_time(
    value: str, milestone: str, airports: tuple[str, str] | None, file: str | None, where: str
) -> datetime:
    """A local time of the airport where `milestone` happens, in UTC."""
    try:
        if len(value.strip()) <= 10:
            raise ValueError(value)
        naive = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ParseError(
            "not an ISO 8601 date-time", file=file, location=where, token=value[:64]
        ) from None
    if naive.tzinfo is not None:
        return parse_time(value, file, where)  # the sender gave the offset
    airport = None
    if airports is not None:
        airport = airports[1] if milestone in _ARRIVAL_MILESTONES else airports[0]
    name = time_zone(airport) if airport else None
    if name is None:
        raise ParseError(
            f"a local time, and the time zone of {airport or 'its airport'} is not in the "
            "reference data",
            file=file,
            location=where,
            token=value[:64],
        )
    zone = ZoneInfo(name)
    first, second = naive.replace(tzinfo=zone, fold=0), naive.replace(tzinfo=zone, fold=1)
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
        raise ParseError(
            f"a local time that does not exist at {airport} ({name}): the clocks went forward",
            file=file,
            location=where,
            token=value[:64],
        )
    if first.utcoffset() != second.utcoffset():
        raise ParseError(
            f"a local time that happens twice at {airport} ({name}): the clocks went back",
            file=file,
            location=where,
            token=value[:64],
        )
    return parse_time(first.astimezone(UTC).isoformat(), file, where)


def _resource(resource: Element, fields: dict[str, Any]) -> None:
    arrival = (resource.get("DepartureOrArrival") or "Departure").lower().startswith("arr")
    gates = _ordered(children(resource, "PassengerGate"))
    if gates and not arrival:
        fields["gate"] = gates[0]
    stand = text(child(resource, "AircraftParkingPosition"))
    if stand:
        fields["stand"] = stand
    terminal = next(iter(_ordered(children(resource, "PublicTerminal"))), None) or text(
        child(resource, "AircraftTerminal")
    )
    if terminal:
        fields["arrival_terminal" if arrival else "terminal"] = terminal
    belts = _ordered(children(resource, "BaggageClaimUnit"))
    if belts and arrival:
        fields["baggage_belt"] = belts[0]
    counters = [_counter_range(info) for info in children(resource, "CheckInInfo")]
    if any(counters) and not arrival:
        fields["check_in_counters"] = ",".join(c for c in counters if c)


def _ordered(nodes: list[Element]) -> list[str]:
    """Values of repeated elements, in RepeatIndex order where given."""
    keyed = [(repeat_index(n), i, text(n)) for i, n in enumerate(nodes)]
    return [value for _, _, value in sorted(keyed) if value]


def _counter_range(info: Element) -> str | None:
    first, last = text(child(info, "FirstPosition")), text(child(info, "LastPosition"))
    if first and last and first != last:
        return f"{first}-{last}"
    return first or last


def _aircraft(aircraft: Element, fields: dict[str, Any]) -> None:
    """The ICAO type when given, else the IATA subtype, else the (first) type."""
    types = [
        (t.get("CodeContext", "").upper(), text(t)) for t in children(aircraft, "AircraftType")
    ]
    icao = next((value for context, value in types if context == "ICAO" and value), None)
    first = next((value for _, value in types if value), None)
    fields["aircraft_type"] = icao or text(child(aircraft, "AircraftSubType")) or first
    registration = text(child(aircraft, "Registration"))
    if registration:
        # Telex sends registrations without the hyphen; so does the hub, whatever the source.
        fields["registration"] = registration.replace("-", "").replace(" ", "")


def _codeshare(info: Element) -> str | None:
    airline, number = text(child(info, "Airline")), text(child(info, "FlightNumber"))
    if not airline or not number or not _WHOLE.fullmatch(number):
        return None
    return f"{airline}{int(number)}{text(child(info, 'OperationalSuffix')) or ''}"


def _delays(
    nodes: list[Element], fields: dict[str, Any], kept: dict[str, str], file: str | None
) -> None:
    """Departure delays (IrregularityDelay) with AHM 730/731/732 reason codes; a duration that
    does not parse is kept raw."""
    delays = [
        d for d in nodes if (d.get("DepartureOrArrival") or "Departure").lower().startswith("dep")
    ]
    delays.sort(key=repeat_index)
    for position, delay in enumerate(delays[:MAX_DELAYS]):
        fields[f"delays.{position}.code"] = text(child(delay, "ReasonCode"))
        duration = text(child(delay, "Duration")) or ""
        minutes = _minutes(duration)
        if duration and minutes is None:
            kept[f"LegData/IrregularityDelay[{position + 1}]/Duration"] = duration[:_RAW_LIMIT]
        fields[f"delays.{position}.minutes"] = minutes


def _minutes(value: str) -> int | None:
    """ISO 8601 durations (PT1H25M, P0DT0H20M0S) or plain minutes; None if neither."""
    if not value:
        return None
    if _WHOLE.fullmatch(value):
        return int(value)
    match = _DURATION.fullmatch(value)
    if not match or not any(match.groups()):
        return None
    days, hours, minutes, _ = (int(float(g)) if g else 0 for g in match.groups())
    return days * 1440 + hours * 60 + minutes
