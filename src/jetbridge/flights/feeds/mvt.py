"""IATA AHM 780 aircraft movement messages (MVT, and MVA from the aircraft) and AHM 781
diversion messages (DIV) as airlines send them.

Elements: AD (off-block/airborne), AA (touchdown/on-block), ED (estimated off-block), EO
(delayed take-off), EA (estimated arrival, with the destination), EB (estimated on-block),
NI (next information), RR (return to ramp), FR (forced return from airborne), DL and EDL delays (AHM
730 codes, AHM 731 sub-codes such as `93A`, AHM 732 three-letter codes), DLA (codes with
sub-codes and empty positions, `DLA81A///`), PX, and SI whose text may run over several lines.
COR (a correction: it supersedes what the message it corrects said) and PDM (a possible
duplicate: it fills in only what nothing set yet) may stand on the line before the identifier,
follow it on its line or stand on the next. Several messages may share one file.

Only a message whose flight identification line cannot be read is refused. An element that
is unknown (a local or newer one) or malformed is kept raw on the update, under
`MVT/<element>`, with the reason, and the rest of the message is applied; the ingest log
reports it as a warning.

RR and FR are sent by the departure station (the flight line names it). RR (`RR1230`, or `RR`
alone) tells that the aircraft went back to its stand before taking off: the flight has not
departed, so its actual off-block and take-off times are withdrawn and it is delayed until a new
AD says when it left. FR (`FR1315/1325` touchdown/on-block, `FR/1325`, `FR1315` or `FR`) tells
that it landed back at its airport of departure after being airborne: the flight ends there,
so it is diverted to its own origin, with the FR times as its actual touchdown and on-block.
Both keep a note in the remarks.

Times without a day (`HHMM`) belong to the flight's day, moved across midnight only by the
order of the message's own milestones here, and by the flight's schedule when it is applied.
"""

from __future__ import annotations

import re
from datetime import datetime

from jetbridge.flights.feeds.errors import ParseError
from jetbridge.flights.feeds.limits import FeedLimits, FlightCount
from jetbridge.flights.feeds.schedule_dates import parse_date
from jetbridge.flights.feeds.telex import (
    FeedUpdate,
    Telex,
    in_order,
    read_telexes,
    resolve_day,
    resolve_time,
    source_time,
)
from jetbridge.flights.model import MAX_DELAYS

IDENTIFIERS = ("MVT", "MVA", "DIV")
_FLAGS = {"COR", "REV", "PDM"}
# `BA0123/24.GBLNA.LHR`; also as some senders write it, `CA 1501/01AUG B2443 PEK`, or with
# the year and the registration padded to seven characters, `QF1620/12DEC24.VH8NZ  .PER`.
_MONTH = "JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC"
_FLIGHT = re.compile(
    rf"^([A-Z0-9]{{2}}[A-Z]?)\s?(\d{{1,4}}[A-Z]?)/(\d{{1,2}})\s?(?:({_MONTH})(\d{{2}})?)?"
    rf"(?:\s?[.\s]\s?([A-Z0-9-]{{2,10}}))?\s{{0,6}}[.\s]\s?([A-Z]{{3}})(?:\s.*)?$"
)
_DELAY_CODE = re.compile(r"\d{2}[A-Z]?|[A-Z]{2,3}")
_DURATION = re.compile(r"\d{4}")
_ESTIMATE = re.compile(r"^EA\s?(\d{4}|\d{6})(?:\s?([A-Z0-9]+))?$")
_CODE = re.compile(r"^[A-Z]+")
_DIVERTED_TO = re.compile(r"^EA\s?(\d{4}|\d{6})\s+([A-Z]{3})(?:\s+(.*))?$")
_DELAY_SHAPE = "delay must look like DL72/0030 or DL72/93/0030/0015"
_SI_LIMIT = 200
_RAW_LIMIT = 200
_MOVEMENTS = {"AD", "AA", "EA", "ED", "EO", "EB"}
_NOTES = {"RR": "returned to ramp", "FR": "returned from airborne"}
_DEPARTED = ("times.off_block.actual", "times.take_off.actual")
# Read, but no canonical field holds them: passengers on board.
_READ_ONLY = {"PX"}


def parse_mvt(
    text: str | bytes,
    *,
    received_at: datetime,
    file: str | None = None,
    limits: FeedLimits | None = None,
) -> list[FeedUpdate]:
    """Every MVT, MVA or DIV in `text`, one update each. A message whose flight cannot be
    identified raises ParseError, as does a file with more messages than `limits` allow."""
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
    identifier = header[0]
    if identifier not in IDENTIFIERS:
        raise telex.error("expected the MVT, MVA or DIV message identifier", number, header[0])
    flags = set(header[1:]) & _FLAGS
    odd = [word for word in header[1:] if word not in _FLAGS]
    rest = lines[1:]
    while rest and rest[0][1] in _FLAGS:
        flags.add(rest[0][1])
        rest = rest[1:]
    if not rest:
        raise telex.error("missing the flight identification line", number)
    flight_number_line, flight_line = rest[0]
    flight = _FLIGHT.match(flight_line)
    if not flight:
        raise telex.error(
            "flight identification must look like BA0123/24.GBLNA.LHR",
            flight_number_line,
            flight_line[:40],
        )
    airline, flight_number, day, month, year, registration, station = flight.groups()
    when = source_time(telex, received_at)
    if month:
        origin = parse_date(
            f"{int(day):02d}{month}{year or ''}",
            when,
            lambda message, token: telex.error(message, flight_number_line, token),
        )
    else:
        origin = resolve_day(
            int(day),
            when,
            lambda: telex.error("day of month does not exist", flight_number_line, day),
        )
    update = FeedUpdate(
        airline, flight_number, origin, station, None, "mvt", when, line=flight_number_line
    )
    update.correction = bool({"COR", "REV"} & flags)  # a revision supersedes as a correction
    update.possible_duplicate = "PDM" in flags
    if odd:
        why = "only COR, REV or PDM may follow"
        _keep(update, f"{identifier}/header", " ".join(odd), number, why)
    if registration:
        update.fields["registration"] = registration.replace("-", "")
    items = [item for item in telex.items if item[0] > flight_number_line]
    if identifier == "DIV":
        _diversion(telex, items, update)
    else:
        _elements(telex, identifier, items, update)
    in_order(update.fields, update.dayless)
    return update


def _keep(update: FeedUpdate, path: str, raw: str, number: int, reason: str) -> None:
    """Keep what was not understood, with where and why, for the flight and the ingest log."""
    if path in update.unknown:
        path = f"{path}@line{number}"
    update.unknown[path] = raw[:_RAW_LIMIT]
    update.reasons[path] = f"line {number}: {reason}"


def _elements(
    telex: Telex, identifier: str, items: list[tuple[int, str]], update: FeedUpdate
) -> None:
    remarks: list[str] = []
    notes: list[str] = []
    in_si = False
    for number, line in items:
        if not line:
            in_si = False  # a blank line ends the supplementary information
        elif _is_si(line):
            in_si = True
            remarks.append(line[2:].lstrip(" :"))
        elif in_si:
            remarks.append(line)
        else:
            code = _element_code(line)
            try:
                note = _element(telex, number, line, update)
            except ParseError as exc:
                _keep(update, f"{identifier}/{code}", line, number, exc.reason)
                continue
            if note:
                notes.append(note)
    text = " / ".join(part for part in [*notes, " ".join(p for p in remarks if p)] if part)
    if text:
        update.fields["remarks"] = text[:_SI_LIMIT]


def _is_si(line: str) -> bool:
    """`SI text`, also `SI:text` as some senders write it."""
    return line.startswith("SI") and (len(line) == 2 or line[2] in " :")


def _element_code(line: str) -> str:
    if line.startswith(("EDL", "DLA")):
        return line[:3]
    found = _CODE.match(line)
    return (found.group(0) if found else line[:2])[:2] or "?"


def _at(telex: Telex, number: int, update: FeedUpdate, name: str, token: str) -> datetime:
    """Set the time field `name` from `token` (HHMM or DDHHMM) and remember a day-less one."""
    moment = _time(telex, number, update, token)
    update.fields[name] = moment
    if len(token) == 4:
        update.dayless.add(name)
    else:
        update.dayless.discard(name)
    return moment


def _times(telex: Telex, number: int, update: FeedUpdate, body: str) -> list[datetime]:
    """The times of `1125` or `1200/1215` (a following airport or text is not read)."""
    tokens = body.split(" ", 1)[0].split("/") if body else [""]
    return [_time(telex, number, update, token) for token in tokens]


def _time(telex: Telex, number: int, update: FeedUpdate, token: str) -> datetime:
    return resolve_time(
        token,
        update.origin_date,
        lambda: telex.error("time must be HHMM or DDHHMM", number, token),
    )


def _element(telex: Telex, number: int, line: str, update: FeedUpdate) -> str | None:
    """Apply one element line; a note for the remarks, if it makes one."""
    code, body = line[:2], line[2:].strip()
    if line.startswith("EDL"):
        _delays(telex, number, line[3:], update, first=_delay_count(update))
    elif line.startswith("DLA"):
        # `DLA81A///`: codes with their AHM 731 sub-codes, positions left empty.
        body = "/".join(token for token in line[3:].split("/") if token.strip())
        _delays(telex, number, body, update, first=0)
    elif code == "DL":
        _delays(telex, number, body, update, first=0)
    elif code == "NI":
        (moment,) = _times(telex, number, update, body.split("/")[0])
        update.fields["next_information"] = moment.isoformat().replace("+00:00", "Z")
        return f"next information {moment.strftime('%H:%MZ')}"
    elif code in _NOTES and (len(line) == 2 or not line[2].isalpha()):
        return _returned(telex, number, code, body, update)
    elif code in _MOVEMENTS and (len(line) == 2 or not line[2].isalpha()):
        _movement(telex, number, code, body, update)
    elif code in _READ_ONLY and (len(line) == 2 or not line[2].isalpha()):
        return None
    else:
        raise telex.error("unknown MVT element", number, line.split()[0][:8])
    return None


def _returned(telex: Telex, number: int, code: str, body: str, update: FeedUpdate) -> str:
    """RR: back on the stand before take-off (its time is when); FR: landed back at the airport
    of departure (touchdown/on-block). The note for the remarks."""
    tokens = body.split(" ", 1)[0].split("/") if body else []
    times = [_time(telex, number, update, token) if token else None for token in tokens]
    if len(times) > (1 if code == "RR" else 2):
        raise telex.error(
            f"{code} takes at most {'one time' if code == 'RR' else 'two times'}", number, body[:20]
        )
    if code == "RR":
        for name in _DEPARTED:
            update.fields.pop(name, None)
            update.dayless.discard(name)
        update.clears.update(_DEPARTED)
        update.fields["status"] = "delayed"
    else:
        names = ("times.touchdown.actual", "times.on_block.actual")
        for position, token in enumerate(tokens):
            if token:
                _at(telex, number, update, names[position], token)
        update.fields["status"] = "diverted"
        if update.departure_airport:
            update.fields["diversion_airport"] = update.departure_airport
    said = "/".join(m.strftime("%H:%MZ") if m else "" for m in times)
    return f"{_NOTES[code]} {said}".strip()


def _movement(telex: Telex, number: int, code: str, body: str, update: FeedUpdate) -> None:
    """AD off-block/airborne, AA touchdown/on-block, EA, EB, ED and EO estimates."""
    if not body:
        raise telex.error("a movement element needs a time", number, code)
    times = body.split(" ", 1)[0].split("/")
    if code == "AD":
        _at(telex, number, update, "times.off_block.actual", times[0])
        if len(times) > 1 and times[1]:
            _at(telex, number, update, "times.take_off.actual", times[1])
        if " " in body:
            _estimate(telex, number, body.split(" ", 1)[1], update)
    elif code == "AA":
        _at_arrival_station(update)
        _at(telex, number, update, "times.touchdown.actual", times[0])
        if len(times) > 1 and times[1]:
            _at(telex, number, update, "times.on_block.actual", times[1])
    elif code == "EA":
        if "times.off_block.actual" not in update.fields:
            _at_arrival_station(update)
        _estimate(telex, number, f"EA{body}", update)
    elif code == "EB":
        if "times.off_block.actual" not in update.fields:
            _at_arrival_station(update)
        _at(telex, number, update, "times.on_block.estimated", times[0])
    elif code == "ED":
        _at(telex, number, update, "times.off_block.estimated", times[0])
        update.fields["status"] = "delayed"
    else:  # EO, a delayed take-off
        _at(telex, number, update, "times.take_off.estimated", times[0])


def _diversion(telex: Telex, items: list[tuple[int, str]], update: FeedUpdate) -> None:
    """AHM 781: the flight line names the airport of intended landing; `EA1230 BGO` the
    estimated touchdown at the airport diverted to. Other elements are kept raw."""
    _at_arrival_station(update)
    update.fields["status"] = "diverted"
    remarks: list[str] = []
    for number, line in items:
        if not line:
            continue
        match = _DIVERTED_TO.match(line)
        if _is_si(line):
            remarks.append(line[2:].lstrip(" :"))
        elif match:
            try:
                _at(telex, number, update, "times.touchdown.estimated", match.group(1))
            except ParseError as exc:
                _keep(update, "DIV/EA", line, number, exc.reason)
                continue
            update.fields["diversion_airport"] = match.group(2)
            if match.group(3):
                _keep(update, "DIV/EA", match.group(3), number, "not read after the airport")
        else:
            code = _element_code(line)
            _keep(update, f"DIV/{code}", line, number, "DIV element kept, not applied")
    text = " ".join(part for part in remarks if part)
    if text:
        update.fields["remarks"] = text[:_SI_LIMIT]


def _at_arrival_station(update: FeedUpdate) -> None:
    """Arrival and revised-arrival messages come from the arrival station, which the flight line
    names; departure messages from the departure station."""
    if update.departure_airport is not None and update.arrival_airport is None:
        update.arrival_airport, update.departure_airport = update.departure_airport, None


def _estimate(telex: Telex, number: int, text: str, update: FeedUpdate) -> None:
    """`EA0902 LHR`: estimated on-block, and the destination when given."""
    match = _ESTIMATE.match(text.strip())
    if not match:
        raise telex.error("estimated arrival must look like EA0902 LHR", number, text.strip())
    destination = match.group(2) and _airport(telex, number, match.group(2))
    _at(telex, number, update, "times.on_block.estimated", match.group(1))
    if destination:
        update.arrival_airport = destination


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
    found: dict[str, object] = {}
    for position, (code, duration) in enumerate(pairs, first):
        if position >= MAX_DELAYS:
            break
        found[f"delays.{position}.code"] = code
        if duration is not None:
            hours, minutes = int(duration[:2]), int(duration[2:])
            if minutes > 59:
                raise telex.error("delay duration must be HHMM", number, duration)
            found[f"delays.{position}.minutes"] = hours * 60 + minutes
    update.fields.update(found)


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
