"""SSIM chapter 5 ad hoc schedule messages (ASM), and the chapter 4 SSM form of the same
changes over periods of operation, in UTC or LT, inside a Type B envelope or bare.

A message may hold several sub-messages separated by `//`, each with its action identifiers
(`TIM`, or combined as `EQT/CON`) and optional change reasons (`TIM WEAT`). Flight lines carry
their dates (`LX544A/12MAY03`, `LX544/12MAY`, `LX544/12`, several dates) or are followed by
period lines (`30NOV26 20DEC26 1357/W2`); a leg change identifier (`ZRH/GVA`) names the legs a
change concerns. Equipment lines (`J 320 C12Y138`), leg lines (`ZRH0640 CDG0800/1`), segment and
data element lines, and SI text are understood.

A newer or local action code, a line or a flight line element not understood is kept raw on
the updates of its sub-message (`ASM/action`, `ASM/line`, `ASM/flight`) with the reason and
reported as a warning; the rest of the sub-message is applied. Only a sub-message whose flight
cannot be identified is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

from jetbridge.flights.feeds.errors import ParseError
from jetbridge.flights.feeds.limits import FeedLimits, FlightCount
from jetbridge.flights.feeds.schedule_dates import (
    DATE,
    DATE_TOKEN,
    PERIOD,
    Fail,
    Period,
    parse_date,
    parse_period,
)
from jetbridge.flights.feeds.telex import FeedUpdate, Telex, read_telexes, resolve_day, source_time
from jetbridge.flights.fids import zone_for

IDENTIFIERS = ("ASM", "SSM")
ACTIONS = {
    "NEW", "CNL", "RIN", "RPL", "ADM", "CON", "EQT", "FLT", "RRT", "TIM",
    "SKD", "REV", "RSD", "ACK", "NAC",
}  # fmt: skip
_TIMED = {"NEW", "RIN", "RPL", "RRT", "TIM"}
# Flight number changes, schedule dumps and acknowledgements change no canonical field.
_NOT_ACTIONED = {"FLT", "SKD", "REV", "RSD", "ACK", "NAC"}
_SEQUENCE = re.compile(r"^\d{2}[A-Z]{3}\d{5}[A-Z]\d{3}(?:/.*)?$")
_FLIGHT = re.compile(rf"^([A-Z0-9]{{2}}[A-Z]?)(\d{{1,4}}[A-Z]?)(?:/({DATE}))?((?:\s+\S+)*)$")
_STATIONS = re.compile(r"^[A-Z]{3}(?:/[A-Z]{3})+$")
_DEI = re.compile(r"^\d{1,3}/\S*$")
_SHIFT = r"(?:/(M?\d|[+-]\d|A))?"
# `LHR1030 JFK1330/1`; in an ASM also with the day of month, `CDG132330 OUD140110`.
_LEG = re.compile(
    rf"^([A-Z]{{3}})(\d{{6}}|\d{{4}}){_SHIFT}\s+([A-Z]{{3}})(\d{{6}}|\d{{4}}){_SHIFT}(?:\s|$)"
)
_LEG_LIKE = re.compile(r"^[A-Z]{3}\d{4}\S*\s+[A-Z]{3}\d{4}")  # a leg line, however malformed
_EQUIPMENT = re.compile(r"^([A-Z])\s+([A-Z0-9]{3})(?:\s|$)")
_SEGMENT = re.compile(r"^[A-Z]{6}\s+\d{1,3}/")


@dataclass
class _Flight:
    airline: str
    number: str
    line: int
    token: str
    dates: list[date] = field(default_factory=list)
    stations: list[str] = field(default_factory=list)


@dataclass
class _Group:
    """Flight lines and the equipment, periods and legs that follow them. A period applies to
    the flights listed before it: (period, how many of the group's flights)."""

    flights: list[_Flight] = field(default_factory=list)
    aircraft: str | None = None
    legs: list[tuple[int, re.Match[str]]] = field(default_factory=list)
    periods: list[tuple[Period, int]] = field(default_factory=list)

    def date_counts(self) -> list[int]:
        """How many dates each flight has, its own and its periods', without listing them."""
        covering = [0] * (len(self.flights) + 1)
        for period, applies_to in self.periods:
            covering[applies_to] += period.count()
        counts = [0] * len(self.flights)
        running = 0
        for index in reversed(range(len(self.flights))):
            running += covering[index + 1]
            counts[index] = len(self.flights[index].dates) + running
        return counts


@dataclass
class _Context:
    telex: Telex
    when: datetime
    local: bool
    limits: FeedLimits
    identifier: str = "ASM"

    def fail(self, number: int) -> Fail:
        return lambda message, token: self.telex.error(message, number, token)


@dataclass
class _SubMessage:
    context: _Context
    actions: list[str]
    groups: list[_Group]
    kept: dict[str, tuple[str, str]] = field(default_factory=dict)  # path -> (raw, reason)


def _keep(kept: dict[str, tuple[str, str]], path: str, raw: str, number: int, why: str) -> None:
    if path in kept:
        path = f"{path}@line{number}"
    kept[path] = (raw[:200], f"line {number}: {why}")


def parse_asm(
    text: str | bytes,
    *,
    received_at: datetime,
    file: str | None = None,
    limits: FeedLimits | None = None,
) -> list[FeedUpdate]:
    """Every flight leg (or flight, when no legs are given) each message changes; a message
    that would change more than `limits` allow is refused before any update is built."""
    limits = limits or FeedLimits()
    telexes = read_telexes(text, file, IDENTIFIERS)
    if not telexes:
        raise ParseError("empty message", file=file)
    subs = [sub for telex in telexes for sub in _message(telex, received_at, limits)]
    count = FlightCount(limits, file)
    for sub in subs:
        for group in sub.groups:
            _count(group, count)
    count.check()
    return [update for sub in subs for update in _expand(sub)]


def _count(group: _Group, count: FlightCount) -> None:
    for flight, dates in zip(group.flights, group.date_counts(), strict=True):
        legs = len(group.legs) or max(1, len(flight.stations) - 1)
        count.add(dates * legs, location=f"line {flight.line}", token=flight.token)


def _expand(sub: _SubMessage) -> list[FeedUpdate]:
    updates = [u for group in sub.groups for u in _updates(sub.context, group, sub.actions)]
    for update in updates:
        for path, (raw, why) in sub.kept.items():
            update.unknown[path] = raw
            update.reasons[path] = why
        if "CNL" in sub.actions:
            update.fields["status"] = "cancelled"
        elif {"NEW", "RIN"} & set(sub.actions):
            update.fields.setdefault("status", "scheduled")
    return updates


def _message(telex: Telex, received_at: datetime, limits: FeedLimits) -> list[_SubMessage]:
    lines = telex.text_lines()
    number, first = lines[0]
    if first.split()[0] not in IDENTIFIERS:
        raise telex.error("expected the ASM message identifier", number, first[:8])
    rest = lines[1:]
    local = False
    if rest and rest[0][1].split()[0] in {"UTC", "LT"}:
        local = rest[0][1].startswith("LT")
        rest = rest[1:]
    if rest and _SEQUENCE.match(rest[0][1]):
        rest = rest[1:]
    context = _Context(telex, source_time(telex, received_at), local, limits, first.split()[0])
    parts: list[tuple[int, list[tuple[int, str]]]] = [(number, [])]
    for item in rest:
        if item[1] == "//":  # sub-message separator
            parts.append((item[0], []))
        else:
            parts[-1][1].append(item)
    if len(parts) > 1 and not parts[-1][1]:
        parts.pop()  # a closing separator after the last sub-message
    subs = (_sub_message(context, sub, before) for before, sub in parts)
    return [sub for sub in subs if sub is not None]


def _sub_message(
    context: _Context, items: list[tuple[int, str]], before: int
) -> _SubMessage | None:
    telex = context.telex
    if not items:
        raise telex.error("missing the action line", before)
    number, action_line = items[0]
    words = action_line.split()
    identifier = context.identifier
    kept: dict[str, tuple[str, str]] = {}
    actions = []
    for action in words[0].split("/"):
        if action in ACTIONS:
            actions.append(action)
        elif re.fullmatch(r"[A-Z]{3}", action):  # a newer or local action: kept, reported
            _keep(kept, f"{identifier}/action", action, number, "action not in SSIM chapter 5")
        else:
            raise telex.error(f"action must be one of {', '.join(sorted(ACTIONS))}", number, action)
    if actions and set(actions) <= _NOT_ACTIONED:
        return None
    groups = _groups(context, items[1:], number, kept)
    return _SubMessage(context, actions, groups, kept)


def _groups(
    context: _Context,
    items: list[tuple[int, str]],
    action_line: int,
    kept: dict[str, tuple[str, str]],
) -> list[_Group]:
    """Flight lines, each run of them followed by the lines that describe those flights."""
    telex = context.telex
    groups: list[_Group] = []
    for number, line in items:
        if line.startswith("SI") and (len(line) == 2 or line[2] == " "):
            break  # supplementary information runs to the end of the sub-message
        if groups and _detail(context, groups[-1], number, line):
            continue
        found = None if _LEG_LIKE.match(line) else _FLIGHT.match(line)
        if not found:
            if not groups:
                raise telex.error("expected a flight line like BA123/24NOV26", number, line[:20])
            _keep(kept, f"{context.identifier}/line", line, number, "unrecognised ASM line")
            continue
        if not groups or groups[-1].legs or groups[-1].aircraft:
            groups.append(_Group())
        groups[-1].flights.append(_flight(context, number, found, kept))
    if not groups:
        raise telex.error("no flight line", action_line)
    for group in groups:
        for flight, dates in zip(group.flights, group.date_counts(), strict=True):
            if not dates:
                raise telex.error(
                    "a flight needs a date (BA123/24NOV26) or a period line",
                    flight.line,
                    flight.token,
                )
    return groups


def _detail(context: _Context, group: _Group, number: int, line: str) -> bool:
    """Take a leg, equipment, period, segment or data element line; False for anything else."""
    if line[:1].isdigit():
        period = PERIOD.match(line)
        if period:
            found = parse_period(
                period, context.when, context.fail(number), max_days=context.limits.max_period_days
            )
            group.periods.append((found, len(group.flights)))
        return bool(period or _DEI.match(line))
    leg = _LEG.match(line)
    if leg:
        group.legs.append((number, leg))
        return True
    equipment = _EQUIPMENT.match(line)
    if equipment:
        group.aircraft = equipment.group(2)
        return True
    return bool(_SEGMENT.match(line))


def _flight(
    context: _Context, number: int, match: re.Match[str], kept: dict[str, tuple[str, str]]
) -> _Flight:
    airline, flight_number, first_date, extra = match.groups()
    fail = context.fail(number)
    flight = _Flight(airline, flight_number, number, match.group(0)[:20])
    if first_date:
        flight.dates.append(parse_date(first_date, context.when, fail))
    for token in extra.split():
        if first_date and DATE_TOKEN.fullmatch(token):
            flight.dates.append(parse_date(token, context.when, fail))
        elif _STATIONS.match(token):
            flight.stations = token.split("/")
        elif not _DEI.match(token):
            _keep(
                kept,
                f"{context.identifier}/flight",
                token,
                number,
                "unrecognised flight line element",
            )
    return flight


def _updates(context: _Context, group: _Group, actions: list[str]) -> list[FeedUpdate]:
    out = []
    periods = [(period.dates(), applies_to) for period, applies_to in group.periods]
    for index, flight in enumerate(group.flights):
        dates = flight.dates + [d for days, n in periods if index < n for d in days]
        for day in dates:
            for number, departure, arrival, leg in _legs_of(group, flight):
                update = FeedUpdate(
                    flight.airline, flight.number, day, departure, arrival, "asm", context.when,
                    line=number,
                )  # fmt: skip
                if group.aircraft:
                    update.fields["aircraft_type"] = group.aircraft
                if leg is not None and _TIMED & set(actions):
                    _times(context, number, day, leg, update)
                out.append(update)
    return out


_Leg = tuple[int, str | None, str | None, re.Match[str] | None]


def _legs_of(group: _Group, flight: _Flight) -> list[_Leg]:
    """The leg lines; else the legs the change identifier names; else the whole flight."""
    if group.legs:
        return [(number, leg.group(1), leg.group(4), leg) for number, leg in group.legs]
    stations = flight.stations
    named: list[_Leg] = [
        (flight.line, departure, arrival, None) for departure, arrival in pairwise(stations)
    ]
    return named or [(flight.line, None, None, None)]


def _times(
    context: _Context, number: int, day: date, leg: re.Match[str], update: FeedUpdate
) -> None:
    departure, std, std_shift, arrival, sta, sta_shift = leg.groups()
    update.fields["times.off_block.scheduled"] = _moment(
        context, number, day, std, std_shift, departure
    )
    update.fields["times.on_block.scheduled"] = _moment(
        context, number, day, sta, sta_shift, arrival
    )


def _moment(
    context: _Context, number: int, day: date, hhmm: str, shift: str | None, airport: str
) -> datetime:
    if len(hhmm) == 6:  # DDHHMM: the date with that day nearest the flight's date
        noon = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        day = resolve_day(
            int(hhmm[:2]),
            noon,
            lambda: context.telex.error("day of month does not exist", number, hhmm),
        )
        if abs((day - noon.date()).days) > 2:
            raise context.telex.error(
                "leg date must be within two days of the flight's", number, hhmm
            )
        hhmm = hhmm[2:]
    hours, minutes = int(hhmm[:2]), int(hhmm[2:])
    if hours > 23 or minutes > 59:
        raise context.telex.error("time must be HHMM", number, hhmm)
    zone = zone_for(airport) if context.local else UTC
    moment = datetime(day.year, day.month, day.day, hours, minutes, tzinfo=zone)
    if shift:
        moment += timedelta(days=_days(shift))
    return moment if zone is UTC else moment.astimezone(UTC)


def _days(shift: str | None) -> int:
    """Date variation: `1` or `+1` the next day, `M1`, `-1` or `A` the day before."""
    if not shift:
        return 0
    if shift == "A":
        return -1
    return -int(shift[1:]) if shift.startswith("M") else int(shift)
