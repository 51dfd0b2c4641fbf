"""IATA AIDX flight leg messages to canonical updates, parsed safely.

Accepted: `IATA_AIDX_FlightLegNotifRQ` (pushed) and `IATA_AIDX_FlightLegRS` (the answer to a
request), bare, in a SOAP 1.1 or 1.2 envelope, or in an airport's or vendor's own envelope that
holds the AIDX message as a child beside its header (a Noida AODB's `YIAPL_FlightLegNotifRQ`);
with or without namespace prefixes; UTF-8 with or without a BOM whatever the declaration says,
else the declared encoding.

DTDs, entity declarations (XXE, billion laughs) and external references are refused, as is
input over `max_bytes`. A message with flight legs but without `TimeStamp` is refused: without
the source's own time a re-delivered old message could overwrite newer values. In an envelope of
its own, the envelope's header may give that time (`OriginatorTimeStamp` or `TimeStamp`) and
the order (`SequenceNumber`) for a message that does not. A leg whose
identity (airline, flight number, origin date, airports) cannot be read is refused; anything
else a leg carries that is not understood is kept raw on the update (`Update.unknown`) and
reported as a warning, never a reason to lose the rest. Namespaces are ignored, so every AIDX
version (16.1 to 22.1, and the 2008 namespace of the first releases) reads alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError as XmlParseError
from defusedxml.ElementTree import fromstring, iterparse

from jetbridge.flights.feeds.aidx_legdata import child, children, leg_data, local, parse_time, text
from jetbridge.flights.feeds.errors import ParseError
from jetbridge.flights.feeds.limits import FeedLimits, FlightCount
from jetbridge.flights.merge import Update
from jetbridge.flights.model import MAX_REPEAT, FlightIdentity, InvalidFlight

MAX_BYTES = 1_000_000
NOTIFICATION = "IATA_AIDX_FlightLegNotifRQ"
RESPONSE = "IATA_AIDX_FlightLegRS"
_BOM = b"\xef\xbb\xbf"
_DECLARATION = re.compile(rb"""\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)""")
_SOAP = {"http://schemas.xmlsoap.org/soap/envelope/", "http://www.w3.org/2003/05/soap-envelope"}
_ENVELOPE_TIME = frozenset({"OriginatorTimeStamp", "TimeStamp"})
_ENVELOPE_SEQUENCE = frozenset({"SequenceNumber", "SequenceNmbr"})
_IDENTITY = (
    ("airline", "Airline"),
    ("flight_number", "FlightNumber"),
    ("origin_date", "OriginDate"),
    ("departure_airport", "DepartureAirport"),
    ("arrival_airport", "ArrivalAirport"),
)


@dataclass(frozen=True)
class _Found:
    """An AIDX message, where it was, and what its envelope's header says of the message's time
    and order (used only when the message itself does not)."""

    message: Element
    where: str
    stamp: tuple[str, str] | None = None  # (where, value)
    sequence: str | None = None


def parse_aidx(
    data: str | bytes,
    *,
    source_name: str = "aidx",
    file: str | None = None,
    max_bytes: int = MAX_BYTES,
    limits: FeedLimits | None = None,
) -> list[Update]:
    """One update per FlightLeg; raises ParseError naming the element and the offending token,
    or the bound when the document holds more legs than `limits` allow."""
    size = len(data.encode() if isinstance(data, str) else data)
    if size > max_bytes:
        raise ParseError(
            f"message is {size} bytes, more than the {max_bytes}-byte limit", file=file
        )
    messages = _messages(_parse_xml(data, file), file)
    count = FlightCount(limits or FeedLimits(), file)
    for found in messages:
        for index, _ in enumerate(children(found.message, "FlightLeg"), 1):
            count.add(1, location=f"{found.where}/FlightLeg[{index}]")
    count.check()
    updates = []
    for found in messages:
        updates += _legs(found, source_name, file)
    return updates


def _parse_xml(data: str | bytes, file: str | None) -> Element:
    document = _decoded(data)
    try:
        return fromstring(  # type: ignore[no-any-return]
            document, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as exc:
        raise ParseError(f"unsafe XML refused ({type(exc).__name__})", file=file) from None
    except XmlParseError as exc:
        line, column = getattr(exc, "position", (0, 0))
        raise ParseError(
            f"malformed XML: {str(exc).split(':')[0]}",
            file=file,
            location=f"line {line} column {column}",
            token=_excerpt(document, line, column) or _unclosed(document),
        ) from None
    except LookupError as exc:
        raise ParseError("unknown encoding declared", file=file, token=str(exc)[-40:]) from None


def _decoded(data: str | bytes) -> str | bytes:
    """What the XML parser should read: UTF-8 bytes as text whatever encoding they declare (a
    fixed declaration in front of UTF-8 output is common); other bytes as they are, to be read
    in the encoding they declare."""
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    declared = _DECLARATION.match(data)
    if not data.startswith(_BOM) and (
        declared is None or declared.group(1).lower() in {b"utf-8", b"utf8"}
    ):
        return data  # UTF-8 by default; the parser names the position of any bad byte
    try:
        return data.removeprefix(_BOM).decode("utf-8")
    except UnicodeDecodeError:
        return data


def _excerpt(document: str | bytes, line: int, column: int) -> str | None:
    source = document if isinstance(document, str) else document.decode("latin-1")
    lines = source.splitlines()
    if not 0 < line <= len(lines):
        return None
    return lines[line - 1][column : column + 24] or None


def _unclosed(document: str | bytes) -> str | None:
    """The innermost element still open where a truncated document ends."""
    data = document.encode() if isinstance(document, str) else document
    stack: list[str] = []
    try:
        for event, node in iterparse(
            BytesIO(data), ("start", "end"), forbid_dtd=True, forbid_entities=True
        ):
            if event == "start":
                stack.append(local(node.tag))
            else:
                stack.pop()
    except (XmlParseError, DefusedXmlException, LookupError):
        pass
    return f"<{stack[-1]}>" if stack else None


def _messages(root: Element, file: str | None) -> list[_Found]:
    """The AIDX messages in `root`: itself, those in a SOAP envelope's Body, or those an
    envelope of the sender's own holds as children."""
    name = local(root.tag)
    if name in {NOTIFICATION, RESPONSE}:
        return [_Found(root, name)]
    if name == "Envelope" and root.tag.partition("}")[0].lstrip("{") in _SOAP:
        return [_Found(node, where) for node, where in _enveloped(root, file)]
    carried = [node for node in root if local(node.tag) in {NOTIFICATION, RESPONSE}]
    if not carried:
        raise ParseError("not an AIDX flight leg message", file=file, location=name, token=name)
    header = [node for node in root if local(node.tag) not in {NOTIFICATION, RESPONSE}]
    stamp = _header_value(header, _ENVELOPE_TIME)
    sequence = _header_value(header, _ENVELOPE_SEQUENCE)
    return [
        _Found(
            node,
            f"{name}/{local(node.tag)}",
            (f"{name}//{stamp[0]}", stamp[1]) if stamp else None,
            sequence[1] if sequence else None,
        )
        for node in carried
    ]


def _header_value(header: list[Element], names: frozenset[str]) -> tuple[str, str] | None:
    """The first element named one of `names` in an envelope's header, with its text."""
    for part in header:
        for node in part.iter():
            value = text(node)
            if local(node.tag) in names and value:
                return local(node.tag), value
    return None


def _enveloped(envelope: Element, file: str | None) -> list[tuple[Element, str]]:
    """The AIDX messages anywhere in a SOAP Body, which a sender may wrap in an operation."""
    body = child(envelope, "Body")
    if body is None:
        raise ParseError("SOAP envelope without a Body", file=file, location="Envelope")
    fault = child(body, "Fault")
    if fault is not None:
        raise ParseError(
            "the sender answered with a SOAP fault",
            file=file,
            location="Envelope/Body/Fault",
            token=_fault_reason(fault),
        )
    found = [
        (node, f"Envelope/Body//{local(node.tag)}")
        for node in body.iter()
        if local(node.tag) in {NOTIFICATION, RESPONSE}
    ]
    if not found:
        first = next(iter(body), None)
        raise ParseError(
            "SOAP Body holds no AIDX flight leg message",
            file=file,
            location="Envelope/Body",
            token=None if first is None else local(first.tag),
        )
    return found


def _fault_reason(fault: Element) -> str:
    """SOAP 1.1 `faultstring` or SOAP 1.2 `Reason/Text`, else the first text in the fault."""
    said = [(local(n.tag), n.text.strip()) for n in fault.iter() if n.text and n.text.strip()]
    readable = [words for name, words in said if name in {"faultstring", "Text"}]
    return (readable or [words for _, words in said] or [""])[0][:80]


def _legs(found: _Found, source: str, file: str | None) -> list[Update]:
    message, where = found.message, found.where
    errors = child(message, "Errors")
    if errors is not None:
        error = child(errors, "Error")
        raise ParseError(
            "the sender answered with errors",
            file=file,
            location=f"{where}/Errors",
            token=(text(error) or (error.get("Type") if error is not None else None) or "")[:80],
        )
    legs = children(message, "FlightLeg")
    if not legs:
        if local(message.tag) == RESPONSE:
            return []  # a response may rightly hold no leg (e.g. only warnings)
        raise ParseError("no FlightLeg element", file=file, location=where)
    stamp = message.get("TimeStamp")
    stamp_at = f"{where}@TimeStamp"
    if not stamp and found.stamp is not None:
        stamp_at, stamp = found.stamp
    if not stamp:
        raise ParseError(
            "TimeStamp is required so that an old message cannot overwrite newer data",
            file=file,
            location=where,
        )
    source_time = parse_time(stamp, file, stamp_at)
    sequence = _sequence(message.get("SequenceNmbr") or found.sequence, where, file)
    return [
        _leg(leg, f"FlightLeg[{index}]", source, source_time, sequence, file)
        for index, leg in enumerate(legs, 1)
    ]


def _leg(
    leg: Element, where: str, source: str, source_time: datetime, sequence: int, file: str | None
) -> Update:
    ident = child(leg, "LegIdentifier")
    if ident is None:
        raise ParseError("LegIdentifier is required", file=file, location=where)
    values = {name: text(child(ident, element)) for name, element in _IDENTITY}
    suffix = text(child(ident, "OperationalSuffix"))
    if suffix and values["flight_number"]:
        values["flight_number"] += suffix
    try:
        identity = FlightIdentity.create(**values, repeat_number=_repeat(ident))
    except InvalidFlight as exc:
        field = str(exc).split(":", 1)[0]
        raise ParseError(
            str(exc).split(": ", 1)[-1],
            file=file,
            location=f"{where}/LegIdentifier/{field}",
            token=str(values.get(field)),
        ) from None
    data = child(leg, "LegData")
    unknown: dict[str, str] = {}
    reasons: dict[str, str] = {}
    airports = (identity.departure_airport, identity.arrival_airport)
    fields = (
        {}
        if data is None
        else leg_data(data, f"{where}/LegData", file, unknown, airports=airports, reasons=reasons)
    )
    try:
        return Update(
            identity,
            source,
            source_time,
            fields,
            sequence=sequence,
            unknown=unknown,
            reasons=reasons,
        )
    except InvalidFlight as exc:
        raise ParseError(str(exc), file=file, location=where) from None


def _repeat(ident: Element) -> int:
    """AIDX counts departure attempts from 1; the hub's repeat number is 0 for the first."""
    value = text(child(ident, "RepeatNumber")) or "0"
    if not re.fullmatch(r"[0-9]+", value):
        return 0
    if len(value) > 6:
        raise InvalidFlight(f"repeat_number: {value[:12]}... is not from 1 to {MAX_REPEAT + 1}")
    return max(int(value) - 1, 0)


def _sequence(value: str | None, where: str, file: str | None) -> int:
    """SequenceNmbr orders messages with the same TimeStamp; absent or not a number: 0."""
    raw = (value or "0").strip()
    if not (raw.isascii() and raw.isdigit()):
        return 0
    if len(raw) > 18:
        raise ParseError(
            "SequenceNmbr: at most 18 digits",
            file=file,
            location=f"{where}@SequenceNmbr",
            token=raw[:24],
        )
    return int(raw)
