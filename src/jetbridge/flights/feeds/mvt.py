"""IATA AHM 780 aircraft movement messages (MVT): AD, AA, EA, ED, NI, EO, RR, FR, DL, PX, SI;
COR (correction) and PDM (possible duplicate) headers; telex envelope lines are skipped."""

from __future__ import annotations

import re
from datetime import datetime

from jetbridge.flights.feeds.errors import ParseError
from jetbridge.flights.feeds.telex import FeedUpdate, Lines, resolve_day, resolve_time, source_time

_FLIGHT = re.compile(
    r"^([A-Z0-9]{2}[A-Z]?)(\d{1,4}[A-Z]?)/(\d{2})(?:\.([A-Z0-9-]{2,10}))?\.([A-Z]{3})$"
)
_DELAY = re.compile(r"^DL(\d{2}[A-Z]?|[A-Z]{2})(?:/(\d{2}[A-Z]?|[A-Z]{2}))?/(\d{4})(?:/(\d{4}))?$")


def parse_mvt(text: str, *, received_at: datetime, file: str | None = None) -> list[FeedUpdate]:
    lines = Lines.read(text, file)
    if not lines.items:
        raise ParseError("empty message", file=file)
    number, first = lines.items[0]
    header = first.split()
    if header[0] != "MVT":
        raise lines.error("expected the MVT message identifier", number, header[0])
    rest = lines.items[1:]
    while rest and rest[0][1] in {"COR", "PDM"}:
        rest = rest[1:]
    if not rest:
        raise lines.error("missing the flight identification line", number)
    number, flight_line = rest[0]
    flight = _FLIGHT.match(flight_line)
    if not flight:
        raise lines.error(
            "flight identification must look like BA0123/24.GBLNA.LHR", number, flight_line
        )
    airline, flight_number, day, registration, station = flight.groups()
    when = source_time(lines, received_at)
    origin = resolve_day(int(day), when, lines.error("day of month does not exist", number, day))
    update = FeedUpdate(airline, flight_number, origin, station, None, "mvt", when, line=number)
    if registration:
        update.fields["registration"] = registration.replace("-", "")
    for number, line in rest[1:]:
        _element(line, number, update, lines, when)
    return [update]


def _element(line: str, number: int, update: FeedUpdate, lines: Lines, near: datetime) -> None:
    code = line[:2]
    body = line[2:].strip()

    def at(token: str) -> datetime:
        return resolve_time(
            token,
            update.origin_date,
            near,
            lines.error("time must be HHMM or DDHHMM", number, token),
        )

    if code == "AD":
        parts = body.split()
        times = parts[0].split("/")
        update.fields["times.off_block.actual"] = at(times[0])
        if len(times) > 1:
            update.fields["times.take_off.actual"] = at(times[1])
        if len(parts) >= 3 and parts[1].startswith("EA"):
            update.fields["times.on_block.estimated"] = at(parts[1][2:])
            update.arrival_airport = _airport(parts[2], number, lines)
    elif code == "AA":
        # An arrival message is sent by the arrival station: its station is the arrival airport.
        update.arrival_airport, update.departure_airport = update.departure_airport, None
        times = body.split("/")
        update.fields["times.touchdown.actual"] = at(times[0])
        if len(times) > 1:
            update.fields["times.on_block.actual"] = at(times[1])
    elif code == "EA":
        parts = body.split()
        update.fields["times.on_block.estimated"] = at(parts[0])
        if len(parts) > 1:
            update.arrival_airport = _airport(parts[1], number, lines)
    elif code in {"ED", "EO"}:
        update.fields["times.off_block.estimated"] = at(body)
        update.fields["status"] = "delayed"
    elif code == "NI":
        update.fields["remarks"] = f"next information {at(body).strftime('%H:%MZ')}"
    elif code == "RR":
        update.fields["remarks"] = f"returned to ramp {at(body.split('/')[0]).strftime('%H:%MZ')}"
    elif code == "FR":
        update.fields["remarks"] = f"forced return {at(body.split('/')[0]).strftime('%H:%MZ')}"
    elif code == "DL":
        _delays(line, number, update, lines)
    elif code == "PX" or code == "SI":
        if code == "SI":
            update.fields["remarks"] = body[:200]
    else:
        raise lines.error("unknown MVT element", number, line.split()[0][:8])


def _delays(line: str, number: int, update: FeedUpdate, lines: Lines) -> None:
    match = _DELAY.match(line.replace(" ", ""))
    if not match:
        raise lines.error("delay must look like DL72/0030 or DL31/72/0030/0015", number, line)
    first, second, first_time, second_time = match.groups()
    for position, (code, duration) in enumerate(((first, first_time), (second, second_time))):
        if code is None:
            continue
        update.fields[f"delays.{position}.code"] = code
        if duration:
            hours, minutes = int(duration[:2]), int(duration[2:])
            if minutes > 59:
                raise lines.error("delay duration must be HHMM", number, duration)
            update.fields[f"delays.{position}.minutes"] = hours * 60 + minutes


def _airport(token: str, number: int, lines: Lines) -> str:
    if not re.fullmatch(r"[A-Z]{3}", token):
        raise lines.error("airport must be a 3-letter IATA code", number, token)
    return token
