"""Re-accommodation offers: the best other flights with seats, held for the passenger.

Same cabin first, then the other cabins; the booking's own airline before its partners; then
the earliest arrival. Each offer's seats are held under an id naming the booking and the offer,
so holding again after a crash finds the same seats and accepting one releases the others.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, or_, select, update

from jetbridge.booking import inventory
from jetbridge.storage.schema import disruptions, scheduled_flights, seats

SEARCH_WINDOW = timedelta(hours=48)
CABIN_ORDER = ("first", "business", "premium", "economy")


def hold_id(booking_id: str, index: int) -> str:
    return f"offer:{booking_id}:{index}"


def _offer_holds(booking_id: str) -> Any:
    """Seats held under any of the booking's offers: a range on the indexed hold id (a LIKE
    would not use the index on SQLite)."""
    prefix = f"offer:{booking_id}:"
    return and_(seats.c.hold_id >= prefix, seats.c.hold_id < prefix[:-1] + ";")


def cancelled_flight_ids(conn: Connection) -> set[str]:
    """Catalogue ids of flights the hub reports cancelled."""
    keys = conn.execute(
        select(disruptions.c.flight_key).where(disruptions.c.kind == "cancellation")
    ).scalars()
    # A hub key is `<catalogue id>-<origin>-<destination>[-R<repeat>]`; the catalogue id is
    # the airline and number, then the date's three parts.
    return {"-".join(key.split("-")[:4]) for key in keys}


def candidates(
    conn: Connection,
    *,
    origin: str,
    destination: str,
    earliest: datetime,
    airlines: Sequence[str],
    exclude: set[str],
) -> list[Any]:
    """Flights of `airlines` on the route leaving in the search window after `earliest`."""
    start = earliest.timestamp()
    rows = conn.execute(
        select(scheduled_flights)
        .where(
            scheduled_flights.c.origin == origin,
            scheduled_flights.c.destination == destination,
            scheduled_flights.c.airline.in_(list(airlines)),
            scheduled_flights.c.departs_at >= start,
            scheduled_flights.c.departs_at <= start + SEARCH_WINDOW.total_seconds(),
        )
        .order_by(scheduled_flights.c.arrives_at)
    ).all()
    return [row for row in rows if row.flight_id not in exclude]


def rank(
    rows: Sequence[Any],
    *,
    cabin: str,
    airline: str,
    count: int,
    free: dict[str, dict[str, int]],
    limit: int,
) -> list[tuple[Any, str]]:
    """The best (flight, cabin) pairs with `count` free seats: same cabin, own airline, early."""
    choices = []
    for row in rows:
        for other in json.loads(row.fares):
            if free.get(row.flight_id, {}).get(other, 0) < count:
                continue
            cabin_rank = 0 if other == cabin else 1 + _distance(cabin, other)
            choices.append(((cabin_rank, row.airline != airline, row.arrives_at), row, other))
    choices.sort(key=lambda choice: choice[0])
    return [(row, other) for _, row, other in choices[:limit]]


def _distance(wanted: str, other: str) -> int:
    order = list(CABIN_ORDER)
    if wanted not in order or other not in order:
        return len(order)
    return abs(order.index(wanted) - order.index(other))


@dataclass
class Search:
    """Alternatives for one route and time, with their free seats, shared by the bookings of
    one transaction: seats held for one booking are taken off before the next is served."""

    rows: list[Any]
    free: dict[str, dict[str, int]]

    @classmethod
    def load(
        cls,
        conn: Connection,
        *,
        origin: str,
        destination: str,
        earliest: datetime,
        airlines: Sequence[str],
        exclude: set[str],
        now: float,
    ) -> Search:
        rows = candidates(
            conn,
            origin=origin,
            destination=destination,
            earliest=earliest,
            airlines=airlines,
            exclude=exclude,
        )
        free = {
            row.flight_id: inventory.availability(conn, flight_id=row.flight_id, now=now)
            for row in rows
        }
        return cls(rows, free)


def hold_offers(
    conn: Connection,
    *,
    booking: dict[str, Any],
    search: Search,
    limit: int,
    ttl: float,
    now: float,
    held: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Hold seats on the best alternatives (again: the seats already held under the offers,
    `held` when the caller looked them up already with `held_offers_of`)."""
    if held is None:
        held = _held_offers(conn, booking["booking_id"])
    if held:
        return held
    count = booking["passenger_count"]
    rows = [row for row in search.rows if row.flight_id != booking["flight_id"]]
    offers: list[dict[str, Any]] = []
    ranked = rank(
        rows,
        cabin=booking["cabin"],
        airline=booking["flight_id"][:2],
        count=count,
        free=search.free,
        limit=limit,
    )
    for row, cabin in ranked:
        try:
            chosen = inventory.hold_seats(
                conn,
                flight_id=row.flight_id,
                cabin=cabin,
                count=count,
                hold_id=hold_id(booking["booking_id"], len(offers)),
                ttl=ttl,
                now=now,
            )
        except inventory.SoldOut:
            search.free[row.flight_id][cabin] = 0  # taken meanwhile by a buyer
            continue
        search.free[row.flight_id][cabin] -= count
        offers.append(_describe(row, cabin, chosen, len(offers)))
    return offers


def hold_offers_many(
    conn: Connection,
    *,
    bookings: Sequence[dict[str, Any]],
    search: Search,
    limit: int,
    ttl: float,
    now: float,
    held: dict[str, list[dict[str, Any]]],
) -> dict[str, list[dict[str, Any]]]:
    """`hold_offers` for several bookings sharing one search, in a few statements: the same
    offers and the same seats as holding them one booking after the other (ranked in turn
    against the seats left, the front rows first), chosen with one query per flight and cabin
    and held with one statement run for every seat. Should a flight have fewer seats than
    counted (a buyer took some meanwhile), they are held one booking after the other."""
    free = {flight_id: dict(cabins) for flight_id, cabins in search.free.items()}
    plans: dict[str, list[tuple[Any, str]]] = {}
    wanted: dict[tuple[str, str], int] = {}
    for booking in bookings:
        if held.get(booking["booking_id"]):
            continue
        count = booking["passenger_count"]
        ranked = rank(
            [row for row in search.rows if row.flight_id != booking["flight_id"]],
            cabin=booking["cabin"],
            airline=booking["flight_id"][:2],
            count=count,
            free=free,
            limit=limit,
        )
        for row, cabin in ranked:
            free[row.flight_id][cabin] -= count
            wanted[row.flight_id, cabin] = wanted.get((row.flight_id, cabin), 0) + count
        plans[booking["booking_id"]] = ranked
    found = {
        (flight_id, cabin): inventory.free_seats(
            conn, flight_id=flight_id, cabin=cabin, count=count, now=now
        )
        for (flight_id, cabin), count in wanted.items()
    }
    if any(len(found[key]) < count for key, count in wanted.items()):
        return {
            booking["booking_id"]: hold_offers(
                conn,
                booking=booking,
                search=search,
                limit=limit,
                ttl=ttl,
                now=now,
                held=held.get(booking["booking_id"], []),
            )
            for booking in bookings
        }
    search.free = free
    result: dict[str, list[dict[str, Any]]] = {}
    holds: list[dict[str, Any]] = []
    for booking in bookings:
        booking_id, count = booking["booking_id"], booking["passenger_count"]
        if booking_id not in plans:
            result[booking_id] = held[booking_id]
            continue
        offers: list[dict[str, Any]] = []
        for row, cabin in plans[booking_id]:
            chosen, found[row.flight_id, cabin] = (
                found[row.flight_id, cabin][:count],
                found[row.flight_id, cabin][count:],
            )
            key = hold_id(booking_id, len(offers))
            holds += [{"h_flight": row.flight_id, "h_seat": seat, "h_id": key} for seat in chosen]
            offers.append(_describe(row, cabin, chosen, len(offers)))
        result[booking_id] = offers
    if holds:
        conn.execute(
            update(seats)
            .where(seats.c.flight_id == bindparam("h_flight"), seats.c.seat == bindparam("h_seat"))
            .values(
                status="held",
                hold_id=bindparam("h_id"),
                hold_expires_at=now + ttl,
                booking_id=None,
            ),
            holds,
        )
    return result


def held_offers_of(conn: Connection, booking_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """The offers already held for each of the bookings (none for most), in one query."""
    if not booking_ids:
        return {}
    rows = conn.execute(
        select(seats.c.hold_id, seats.c.flight_id, seats.c.cabin, seats.c.seat)
        .where(or_(*(_offer_holds(b) for b in booking_ids)), seats.c.status == "held")
        .order_by(seats.c.hold_id, seats.c.seat)
    ).all()
    by_booking: dict[str, list[Any]] = {}
    for row in rows:
        booking_id = row.hold_id.removeprefix("offer:").rpartition(":")[0]
        by_booking.setdefault(booking_id, []).append(row)
    return {b: _described(conn, by_booking.get(b, [])) for b in booking_ids}


def _held_offers(conn: Connection, booking_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(seats.c.hold_id, seats.c.flight_id, seats.c.cabin, seats.c.seat)
        .where(_offer_holds(booking_id), seats.c.status == "held")
        .order_by(seats.c.hold_id, seats.c.seat)
    ).all()
    return _described(conn, rows)


def _described(conn: Connection, rows: Sequence[Any]) -> list[dict[str, Any]]:
    """Held seats' rows of one booking as its offers, in offer order."""
    grouped: dict[str, list[Any]] = {}
    for row in rows:
        grouped.setdefault(row.hold_id, []).append(row)
    offers = []
    for key in sorted(grouped, key=lambda k: int(k.rsplit(":", 1)[1])):
        first = grouped[key][0]
        flight = conn.execute(
            select(scheduled_flights).where(scheduled_flights.c.flight_id == first.flight_id)
        ).one()
        index = int(key.rsplit(":", 1)[1])
        offers.append(_describe(flight, first.cabin, [r.seat for r in grouped[key]], index))
    return offers


def _describe(row: Any, cabin: str, chosen: list[str], index: int) -> dict[str, Any]:
    return {
        "offer": index,
        "flight_id": row.flight_id,
        "flight": f"{row.airline}{row.flight_number}",
        "origin": row.origin,
        "destination": row.destination,
        "departure": datetime.fromtimestamp(row.departs_at, UTC).isoformat(),
        "arrival": datetime.fromtimestamp(row.arrives_at, UTC).isoformat(),
        "cabin": cabin,
        "seats": chosen,
    }


def release_offers(conn: Connection, *, booking_id: str, keep: int | None = None) -> int:
    """Free the seats held for a booking's offers (all but offer `keep`)."""
    query = update(seats).where(_offer_holds(booking_id), seats.c.status == "held")
    if keep is not None:
        query = query.where(seats.c.hold_id != hold_id(booking_id, keep))
    result = conn.execute(query.values(status="free", hold_id=None, hold_expires_at=None))
    return int(result.rowcount)
