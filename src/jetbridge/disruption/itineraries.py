"""Which flights can replace a disrupted part of a journey (plain data, no I/O): direct flights,
and connections of two legs via a hub that leave the hub's minimum connection time between
them. Rows are anything with the catalogue's columns (`flight_id`, `airline`, `origin`,
`destination`, `departs_at`, `arrives_at`, `fares`).

Ranking: the booked cabin first (then the nearest other cabin), the booking's own airline
before its partners, then the earliest final arrival.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

CABIN_ORDER = ("first", "business", "premium", "economy")
# Connections considered per disruption, earliest arrival first, before seats are counted.
MAX_PAIRS = 40

Free = dict[str, dict[str, int]]
Choice = list[tuple[Any, str]]  # (flight row, cabin) per leg, in travel order


def cabin_distance(wanted: str, other: str) -> int:
    """0 for the booked cabin, else 1 + how many cabins apart (unknown cabins last)."""
    if other == wanted:
        return 0
    order = list(CABIN_ORDER)
    if wanted not in order or other not in order:
        return len(order) + 1
    return 1 + abs(order.index(wanted) - order.index(other))


def _cabins(row: Any, wanted: str, count: int, free: Free) -> list[str]:
    """The row's cabins with `count` free seats, nearest to the wanted cabin first."""
    found = [c for c in json.loads(row.fares) if free.get(row.flight_id, {}).get(c, 0) >= count]
    return sorted(found, key=lambda c: cabin_distance(wanted, c))


def rank_direct(
    rows: Sequence[Any], *, cabin: str, airline: str, count: int, free: Free, limit: int
) -> list[Choice]:
    """The best (flight, cabin) pairs with `count` free seats, every cabin of a flight."""
    choices = []
    for row in rows:
        for other in _cabins(row, cabin, count, free):
            key = (cabin_distance(cabin, other), row.airline != airline, row.arrives_at)
            choices.append((key, [(row, other)]))
    choices.sort(key=lambda choice: choice[0])
    return [legs for _, legs in choices[:limit]]


def pair_legs(
    first_legs: Sequence[Any],
    second_legs: Sequence[Any],
    *,
    connection_time: Callable[[str], timedelta],
) -> list[tuple[Any, Any]]:
    """Two-leg connections: the second leaves the hub the first lands at no sooner than the
    hub's minimum connection time after the landing. Earliest final arrival first."""
    pairs = []
    for first in first_legs:
        least = first.arrives_at + connection_time(first.destination).total_seconds()
        for second in second_legs:
            if second.origin == first.destination and second.departs_at >= least:
                pairs.append((first, second))
    pairs.sort(key=lambda pair: (pair[1].arrives_at, -pair[0].departs_at))
    return pairs[:MAX_PAIRS]


def rank_connections(
    pairs: Sequence[tuple[Any, Any]],
    *,
    cabin: str,
    airline: str,
    count: int,
    free: Free,
    limit: int,
) -> list[Choice]:
    """The best connections with `count` seats on both legs, each leg in its nearest cabin;
    a flight serves one offer only, so the offers are different journeys."""
    choices = []
    for first, second in pairs:
        one, two = _cabins(first, cabin, count, free), _cabins(second, cabin, count, free)
        if not one or not two:
            continue
        key = (
            max(cabin_distance(cabin, one[0]), cabin_distance(cabin, two[0])),
            first.airline != airline or second.airline != airline,
            second.arrives_at,
            -first.departs_at,
        )
        choices.append((key, [(first, one[0]), (second, two[0])]))
    choices.sort(key=lambda choice: choice[0])
    chosen: list[Choice] = []
    used: set[str] = set()
    for _, legs in choices:
        flights = {row.flight_id for row, _ in legs}
        if flights & used:
            continue
        used |= flights
        chosen.append(legs)
        if len(chosen) == limit:
            break
    return chosen
