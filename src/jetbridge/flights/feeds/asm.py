"""SSIM chapter 5 ad hoc schedule messages (ASM): NEW, CNL, RIN, TIM, EQT, RPL, in UTC or LT."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from jetbridge.flights.feeds.errors import ParseError
from jetbridge.flights.feeds.telex import FeedUpdate, Lines, source_time
from jetbridge.flights.fids import zone_for

ACTIONS = {"NEW", "CNL", "RIN", "TIM", "EQT", "RPL"}
_FLIGHT = re.compile(r"^([A-Z0-9]{2}[A-Z]?)(\d{1,4}[A-Z]?)/((?:\d{2}[A-Z]{3}\d{2}\s?)+)$")
_LEG = re.compile(r"^([A-Z]{3})(\d{4})(?:/([+-]?\d))?\s+([A-Z]{3})(\d{4})(?:/([+-]?\d))?")
_EQUIPMENT = re.compile(r"^([A-Z])\s+([A-Z0-9]{3,4})\b")
_MONTHS = {
    name: n
    for n, name in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], 1
    )
}


def parse_asm(text: str, *, received_at: datetime, file: str | None = None) -> list[FeedUpdate]:
    lines = Lines.read(text, file)
    items = list(lines.items)
    if not items or items[0][1].split()[0] != "ASM":
        number, token = (items[0][0], items[0][1][:8]) if items else (1, "")
        raise lines.error("expected the ASM message identifier", number, token)
    items = items[1:]
    local = False
    if items and items[0][1] in {"UTC", "LT"}:
        local = items[0][1] == "LT"
        items = items[1:]
    if not items:
        raise ParseError("missing the action line", file=file)
    number, action_line = items[0]
    action = action_line.split()[0]
    if action not in ACTIONS:
        raise lines.error(f"action must be one of {', '.join(sorted(ACTIONS))}", number, action)
    when = source_time(lines, received_at)
    updates: list[FeedUpdate] = []
    flights: list[tuple[str, str, list[date], int]] = []
    aircraft: str | None = None
    for number, line in items[1:]:
        flight = _FLIGHT.match(line)
        if flight:
            airline, flight_number, dates = flight.groups()
            flights.append(
                (airline, flight_number, [_date(d, number, lines) for d in dates.split()], number)
            )
            continue
        if not flights:
            raise lines.error("expected a flight line like BA123/24NOV26", number, line[:20])
        equipment = _EQUIPMENT.match(line)
        leg = _LEG.match(line)
        if leg:
            legs = _legs(flights[-1], leg, action, local, when, number, lines)
            for update in legs:
                if aircraft:
                    update.fields["aircraft_type"] = aircraft
            updates += legs
        elif equipment:
            aircraft = equipment.group(2)
        elif not line.startswith("SI"):
            raise lines.error("unrecognised ASM line", number, line[:20])
    if not updates:
        if not flights:
            raise ParseError("no flight line", file=file)
        updates = _bare(flights[-1], when, aircraft=aircraft)
    for update in updates:
        if action == "CNL":
            update.fields["status"] = "cancelled"
        elif action in {"RIN", "NEW"}:
            update.fields.setdefault("status", "scheduled")
    return updates


def _date(token: str, number: int, lines: Lines) -> date:
    try:
        return date(2000 + int(token[5:7]), _MONTHS[token[2:5]], int(token[:2]))
    except (KeyError, ValueError):
        raise lines.error("date must look like 24NOV26", number, token) from None


def _bare(
    flight: tuple[str, str, list[date], int], when: datetime, aircraft: str | None = None
) -> list[FeedUpdate]:
    airline, number, dates, line = flight
    fields = {"aircraft_type": aircraft} if aircraft else {}
    return [
        FeedUpdate(airline, number, day, None, None, "asm", when, dict(fields), line)
        for day in dates
    ]


def _legs(
    flight: tuple[str, str, list[date], int],
    leg: re.Match[str],
    action: str,
    local: bool,
    when: datetime,
    number: int,
    lines: Lines,
) -> list[FeedUpdate]:
    airline, flight_number, dates, _ = flight
    departure, std, std_shift, arrival, sta, sta_shift = leg.groups()
    out = []
    for day in dates:
        update = FeedUpdate(
            airline, flight_number, day, departure, arrival, "asm", when, line=number
        )
        if action in {"NEW", "TIM", "RPL", "RIN"}:
            update.fields["times.off_block.scheduled"] = _moment(
                day, std, std_shift, departure, local, number, lines
            )
            update.fields["times.on_block.scheduled"] = _moment(
                day, sta, sta_shift, arrival, local, number, lines
            )
        out.append(update)
    return out


def _moment(
    day: date, hhmm: str, shift: str | None, airport: str, local: bool, number: int, lines: Lines
) -> datetime:
    hours, minutes = int(hhmm[:2]), int(hhmm[2:])
    if hours > 23 or minutes > 59:
        raise lines.error("time must be HHMM", number, hhmm)
    moment = datetime(day.year, day.month, day.day, hours, minutes) + timedelta(
        days=int(shift or 0)
    )
    zone = zone_for(airport) if local else UTC
    return moment.replace(tzinfo=zone).astimezone(UTC)
