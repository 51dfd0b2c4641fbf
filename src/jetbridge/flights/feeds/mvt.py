"""IATA AHM 780 aircraft movement messages (MVT, and MVA from the aircraft) as airlines send them.

Elements: AD, AA, EA, ED, EO, NI, RR, FR, DL and EDL (AHM 730 codes, AHM 731 sub-codes such as
`93A`, AHM 732 three-letter codes), PX, and SI whose text may run over several lines. COR and PDM
may follow the identifier on its line or on the next. Several messages may share one file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

from jetbridge.flights.feeds.errors import ParseError
from jetbridge.flights.feeds.limits import FeedLimits, FlightCount
from jetbridge.flights.feeds.telex import (
    FeedUpdate,
    Telex,
    read_telexes,
    resolve_day,
    resolve_time,
    source_time,
)
from jetbridge.flights.model import MAX_DELAYS

IDENTIFIERS = ("MVT", "MVA")
_FLIGHT = re.compile(
    r"^([A-Z0-9]{2}[A-Z]?)(\d{1,4}[A-Z]?)/(\d{2})(?:\.([A-Z0-9-]{2,10}))?\.([A-Z]{3})$"
)
_DELAY_CODE = re.compile(r"\d{2}[A-Z]?|[A-Z]{2,3}")
_DURATION = re.compile(r"\d{4}")
_ESTIMATE = re.compile(r"^EA\s?(\d{4}|\d{6})(?:\s?([A-Z0-9]+))?$")
_DELAY_SHAPE = "delay must look like DL72/0030 or DL72/93/0030/0015"
_SI_LIMIT = 200
_MOVEMENTS = {"AD", "AA", "EA", "ED", "EO"}
_NOTES = {"NI": "next information", "RR": "returned to ramp", "FR": "forced return"}


def parse_mvt(
    text: str | bytes,
    *,
    received_at: datetime,
    file: str | None = None,
    limits: FeedLimits | None = None,
) -> list[FeedUpdate]:
    """Every MVT in `text`, one update each; the first malformed element raises ParseError, as
    does a file with more messages than `limits` allow."""
    telexes = read_telexes(text, file, IDENTIFIERS)
    if not telexes:
        raise ParseError("empty message", file=file)
    count = FlightCount(limits or FeedLimits(), file)
    for telex in telexes:
        number, first = telex.items[0]
        count.add(1, location=f"line {number}", token=first[:20])
    count.check()
    return [_message(telex, received_at) for telex in telexes]


def _message(telex: Telex, received_at: datetime) -> FeedUpdate:
    lines = telex.text_lines()
    number, first = lines[0]
    header = first.split()
    if header[0] not in IDENTIFIERS:
        raise telex.error("expected the MVT message identifier", number, header[0])
    for word in header[1:]:
        if word not in {"COR", "PDM"}:
            raise telex.error("only COR or PDM may follow the identifier", number, word)
    rest = lines[1:]
    while rest and rest[0][1] in {"COR", "PDM"}:
        rest = rest[1:]
    if not rest:
        raise telex.error("missing the flight identification line", number)
    number, flight_line = rest[0]
    flight = _FLIGHT.match(flight_line.replace(" ", ""))
    if not flight:
        raise telex.error(
            "flight identification must look like BA0123/24.GBLNA.LHR", number, flight_line
        )
    airline, flight_number, day, registration, station = flight.groups()
    when = source_time(telex, received_at)
    origin = resolve_day(
        int(day), when, lambda: telex.error("day of month does not exist", number, day)
    )
    update = FeedUpdate(airline, flight_number, origin, station, None, "mvt", when, line=number)
    if registration:
        update.fields["registration"] = registration.replace("-", "")
    _elements(telex, [item for item in telex.items if item[0] > number], update, when)
    return update


def _elements(
    telex: Telex, items: list[tuple[int, str]], update: FeedUpdate, near: datetime
) -> None:
    remarks: list[str] = []
    in_si = False
    for number, line in items:
        if not line:
            in_si = False  # a blank line ends the supplementary information
        elif line.startswith("SI") and (len(line) == 2 or line[2] == " "):
            in_si = True
            remarks.append(line[2:].strip())
        elif in_si:
            remarks.append(line)
        else:
            _element(telex, number, line, update, near)
    text = " ".join(part for part in remarks if part)
    if text:
        update.fields["remarks"] = text[:_SI_LIMIT]


def _element(telex: Telex, number: int, line: str, update: FeedUpdate, near: datetime) -> None:
    code, body = line[:2], line[2:].strip()

    def at(token: str) -> datetime:
        return resolve_time(
            token,
            update.origin_date,
            near,
            lambda: telex.error("time must be HHMM or DDHHMM", number, token),
        )

    if line.startswith("EDL"):
        _delays(telex, number, line[3:], update, first=_delay_count(update))
    elif code == "DL":
        _delays(telex, number, body, update, first=0)
    elif code in _NOTES:
        update.fields["remarks"] = f"{_NOTES[code]} {at(body.split('/')[0]).strftime('%H:%MZ')}"
    elif code in _MOVEMENTS:
        _movement(telex, number, code, body, update, at)
    elif code != "PX":
        raise telex.error("unknown MVT element", number, line.split()[0][:8])


def _movement(
    telex: Telex,
    number: int,
    code: str,
    body: str,
    update: FeedUpdate,
    at: Callable[[str], datetime],
) -> None:
    """AD off-block/airborne, AA touchdown/on-block, EA, ED and EO estimates."""
    times = body.split(" ", 1)[0].split("/")
    if code == "AD":
        update.fields["times.off_block.actual"] = at(times[0])
        if len(times) > 1:
            update.fields["times.take_off.actual"] = at(times[1])
        if " " in body:
            _estimate(telex, number, body.split(" ", 1)[1], update, at)
    elif code == "AA":
        _at_arrival_station(update)
        update.fields["times.touchdown.actual"] = at(times[0])
        if len(times) > 1:
            update.fields["times.on_block.actual"] = at(times[1])
    elif code == "EA":
        if "times.off_block.actual" not in update.fields:
            _at_arrival_station(update)
        _estimate(telex, number, f"EA{body}", update, at)
    elif code == "ED":
        update.fields["times.off_block.estimated"] = at(body)
        update.fields["status"] = "delayed"
    else:  # EO, a delayed take-off
        update.fields["times.take_off.estimated"] = at(body)


def _at_arrival_station(update: FeedUpdate) -> None:
    """Arrival and revised-arrival messages come from the arrival station, which the flight line
    names; departure messages from the departure station."""
    if update.departure_airport is not None and update.arrival_airport is None:
        update.arrival_airport, update.departure_airport = update.departure_airport, None


def _estimate(
    telex: Telex, number: int, text: str, update: FeedUpdate, at: Callable[[str], datetime]
) -> None:
    """`EA0902 LHR`: estimated on-block, and the destination when given."""
    match = _ESTIMATE.match(text.strip())
    if not match:
        raise telex.error("estimated arrival must look like EA0902 LHR", number, text.strip())
    update.fields["times.on_block.estimated"] = at(match.group(1))
    if match.group(2):
        update.arrival_airport = _airport(telex, number, match.group(2))


def _delay_count(update: FeedUpdate) -> int:
    return sum(1 for name in update.fields if name.startswith("delays.") and name.endswith("code"))


def _delays(telex: Telex, number: int, body: str, update: FeedUpdate, *, first: int) -> None:
    """`72/0045`, `72/93/0030/0015` (codes, then durations) or `72/0010/93/0005` (pairs)."""
    tokens = body.replace(" ", "").split("/")
    for token in tokens:
        if not (_DELAY_CODE.fullmatch(token) or _DURATION.fullmatch(token)):
            raise telex.error(_DELAY_SHAPE, number, token or body)
    pairs = _pairs(tokens)
    if pairs is None:
        raise telex.error(_DELAY_SHAPE, number, body)
    for position, (code, duration) in enumerate(pairs, first):
        if position >= MAX_DELAYS:
            break
        update.fields[f"delays.{position}.code"] = code
        if duration is not None:
            hours, minutes = int(duration[:2]), int(duration[2:])
            if minutes > 59:
                raise telex.error("delay duration must be HHMM", number, duration)
            update.fields[f"delays.{position}.minutes"] = hours * 60 + minutes


def _pairs(tokens: list[str]) -> list[tuple[str, str | None]] | None:
    codes = [t for t in tokens if _DELAY_CODE.fullmatch(t)]
    durations = [t for t in tokens if _DURATION.fullmatch(t)]
    if not codes or len(durations) > len(codes):
        return None
    if tokens == codes + durations:
        return [
            (code, durations[i] if i < len(durations) else None) for i, code in enumerate(codes)
        ]
    alternating = all(bool(_DELAY_CODE.fullmatch(t)) == (i % 2 == 0) for i, t in enumerate(tokens))
    if alternating and len(tokens) % 2 == 0:
        return list(zip(tokens[::2], tokens[1::2], strict=True))
    return None


def _airport(telex: Telex, number: int, token: str) -> str:
    if not re.fullmatch(r"[A-Z]{3}", token):
        raise telex.error("airport must be a 3-letter IATA code", number, token)
    return token
