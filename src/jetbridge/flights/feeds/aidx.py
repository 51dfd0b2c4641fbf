"""IATA AIDX `IATA_AIDX_FlightLegNotifRQ` messages to canonical updates, parsed safely.

DTDs, entity declarations (XXE, billion laughs) and external references are refused, as is
input over `max_bytes`. A message without `TimeStamp` is refused: without the source's own time
a re-delivered old message could overwrite newer values.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError as XmlParseError
from defusedxml.ElementTree import fromstring

from jetbridge.flights.feeds.errors import ParseError
from jetbridge.flights.merge import Update
from jetbridge.flights.model import FlightIdentity, InvalidFlight

MAX_BYTES = 1_000_000
_QUALIFIERS = {
    "OFB": "off_block",
    "TKO": "take_off",
    "TDN": "touchdown",
    "ONB": "on_block",
    "CIO": "check_in_open",
    "CIC": "check_in_close",
    "GTO": "gate_open",
    "BRD": "boarding_start",
    "FCL": "final_call",
    "GCL": "gate_close",
}
_TIME_TYPES = {"SCT": "scheduled", "EST": "estimated", "ACT": "actual", "TAR": "target"}
_STATUS = {
    "SCH": "scheduled",
    "DEL": "delayed",
    "BRD": "boarding",
    "DEP": "departed",
    "OFB": "departed",
    "AIR": "departed",
    "ARR": "arrived",
    "LND": "arrived",
    "ONB": "arrived",
    "CNX": "cancelled",
    "CXX": "cancelled",
    "CAN": "cancelled",
    "DIV": "diverted",
    "NOP": "not_operating",
    "OPR": "operating",
}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(node: Element, name: str) -> Element | None:
    return next((c for c in node if _local(c.tag) == name), None)


def _children(node: Element, name: str) -> list[Element]:
    return [c for c in node if _local(c.tag) == name]


def _text(node: Element | None) -> str | None:
    if node is None or node.text is None:
        return None
    return node.text.strip() or None


def parse_aidx(
    text: str | bytes,
    *,
    source_name: str = "aidx",
    file: str | None = None,
    max_bytes: int = MAX_BYTES,
) -> list[Update]:
    data = text.encode() if isinstance(text, str) else text
    if len(data) > max_bytes:
        raise ParseError(
            f"message is {len(data)} bytes, more than the {max_bytes}-byte limit", file=file
        )
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise ParseError(f"unsafe XML refused ({type(exc).__name__})", file=file) from None
    except XmlParseError as exc:
        line, column = getattr(exc, "position", (0, 0))
        raise ParseError(
            f"malformed XML: {exc}", file=file, location=f"line {line} column {column}"
        ) from None
    if _local(root.tag) != "IATA_AIDX_FlightLegNotifRQ":
        raise ParseError(
            "not an AIDX flight leg notification",
            file=file,
            location=_local(root.tag),
            token=_local(root.tag),
        )
    stamp = root.get("TimeStamp")
    if not stamp:
        raise ParseError(
            "TimeStamp is required so that an old message cannot overwrite newer data",
            file=file,
            location="IATA_AIDX_FlightLegNotifRQ",
        )
    source_time = _time(stamp, file, "IATA_AIDX_FlightLegNotifRQ@TimeStamp")
    sequence = int(root.get("SequenceNmbr", "0")) if root.get("SequenceNmbr", "0").isdigit() else 0
    legs = _children(root, "FlightLeg")
    if not legs:
        raise ParseError("no FlightLeg element", file=file, location="IATA_AIDX_FlightLegNotifRQ")
    return [
        _leg(leg, index, source_name, source_time, sequence, file)
        for index, leg in enumerate(legs, 1)
    ]


def _time(value: str, file: str | None, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ParseError(
            "not an ISO 8601 time", file=file, location=where, token=value[:64]
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # AIDX times without an offset are UTC
    return moment.astimezone(UTC)


def _leg(
    leg: Element, index: int, source: str, source_time: datetime, sequence: int, file: str | None
) -> Update:
    where = f"FlightLeg[{index}]"
    ident = _child(leg, "LegIdentifier")
    if ident is None:
        raise ParseError("LegIdentifier is required", file=file, location=where)
    values = {
        name: _text(_child(ident, element))
        for name, element in (
            ("airline", "Airline"),
            ("flight_number", "FlightNumber"),
            ("origin_date", "OriginDate"),
            ("departure_airport", "DepartureAirport"),
            ("arrival_airport", "ArrivalAirport"),
            ("repeat_number", "RepeatNumber"),
        )
    }
    try:
        identity = FlightIdentity.create(**values)
    except InvalidFlight as exc:
        field = str(exc).split(":", 1)[0]
        raise ParseError(
            str(exc).split(": ", 1)[-1],
            file=file,
            location=f"{where}/LegIdentifier/{field}",
            token=str(values.get(field)),
        ) from None
    data = _child(leg, "LegData")
    fields = {} if data is None else _leg_data(data, f"{where}/LegData", file)
    try:
        return Update(identity, source, source_time, fields, sequence=sequence)
    except InvalidFlight as exc:
        raise ParseError(str(exc), file=file, location=where) from None


def _leg_data(data: Element, where: str, file: str | None) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    status = _text(_child(data, "OperationalStatus")) or _text(_child(data, "PublicStatus"))
    if status:
        mapped = _STATUS.get(status.upper())
        if mapped is None:
            raise ParseError(
                "unknown operational status",
                file=file,
                location=f"{where}/OperationalStatus",
                token=status,
            )
        fields["status"] = mapped
    for time_node in _children(data, "OperationTime"):
        _operation_time(time_node, fields, where, file)
    for resources in _children(data, "AirportResources"):
        for resource in _children(resources, "Resource"):
            _resource(resource, fields)
    aircraft = _child(data, "AircraftInfo")
    if aircraft is not None:
        fields["aircraft_type"] = _text(_child(aircraft, "AircraftType"))
        fields["registration"] = _text(_child(aircraft, "Registration"))
    codeshares = [
        _text(_child(c, "MarketingCarrierInfo")) or _text(c)
        for c in _children(data, "CodeShareInfo")
    ]
    if any(codeshares):
        fields["codeshares"] = ",".join(c.replace(" ", "") for c in codeshares if c)
    for position, delay in enumerate(_children(data, "DelayReason")[:4]):
        fields[f"delays.{position}.code"] = _text(_child(delay, "DelayCode")) or delay.get(
            "DelayCode"
        )
        fields[f"delays.{position}.minutes"] = _minutes(
            _text(_child(delay, "Duration")) or "", f"{where}/DelayReason", file
        )
    remark = _text(_child(data, "Remarks"))
    if remark:
        fields["remarks"] = remark
    return {k: v for k, v in fields.items() if v is not None}


def _operation_time(node: Element, fields: dict[str, Any], where: str, file: str | None) -> None:
    qualifier, kind = node.get("OperationQualifier", ""), node.get("TimeType", "")
    milestone, time_type = _QUALIFIERS.get(qualifier), _TIME_TYPES.get(kind)
    location = f"{where}/OperationTime[@OperationQualifier='{qualifier}']"
    if milestone is None:
        raise ParseError(
            "unknown OperationQualifier", file=file, location=location, token=qualifier
        )
    if time_type is None:
        raise ParseError("unknown TimeType", file=file, location=location, token=kind)
    value = _text(node)
    if value:
        fields[f"times.{milestone}.{time_type}"] = _time(value, file, location)


def _resource(resource: Element, fields: dict[str, Any]) -> None:
    arrival = resource.get("DepartureOrArrival", "Departure").lower().startswith("arr")
    for child in resource:
        name, value = _local(child.tag), _text(child)
        if value is None:
            continue
        if name == "PassengerGate" and not arrival:
            fields["gate"] = value
        elif name == "AircraftParkingPosition":
            fields["stand"] = value
        elif name == "AircraftTerminal":
            fields["arrival_terminal" if arrival else "terminal"] = value
        elif name == "BaggageClaimUnit" and arrival:
            fields["baggage_belt"] = value
        elif name in {"CheckInCounter", "CheckInCounters"}:
            fields["check_in_counters"] = value


def _minutes(value: str, where: str, file: str | None) -> int | None:
    """ISO 8601 durations (PT1H25M) or plain minutes."""
    if not value:
        return None
    if value.isdigit():
        return int(value)
    match = re.fullmatch(r"P(?:T(?:(\d+)H)?(?:(\d+)M)?)", value)
    if not match or not any(match.groups()):
        raise ParseError(
            "not a duration (PT1H25M or minutes)", file=file, location=where, token=value
        )
    return int(match.group(1) or 0) * 60 + int(match.group(2) or 0)
