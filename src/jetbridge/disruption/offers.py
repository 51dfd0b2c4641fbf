"""Re-accommodation offers: the best other flights with seats, held for the passenger.

Direct flights first, then connections of two legs via a hub (ranked in `itineraries`: same
cabin first, the booking's own airline before its partners, the earliest arrival). Each offer's
seats, on every leg, are held under one id naming the booking and the offer, so holding again
after a crash finds the same seats and accepting one releases the others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, or_, select, update

from jetbridge.booking import inventory, segments
from jetbridge.disruption import itineraries
from jetbridge.storage.schema import disruptions, scheduled_flights, seats

SEARCH_WINDOW = timedelta(hours=48)


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


def connecting_legs(
    conn: Connection,
    *,
    origin: str,
    destination: str,
    earliest: datetime,
    airlines: Sequence[str],
    exclude: set[str],
) -> tuple[list[Any], list[Any]]:
    """First legs leaving `origin` for any other airport, and second legs from those airports
    to `destination`, of `airlines` in the search window."""
    start = earliest.timestamp()
    end = start + SEARCH_WINDOW.total_seconds()
    first = conn.execute(
        select(scheduled_flights).where(
            scheduled_flights.c.origin == origin,
            scheduled_flights.c.destination != destination,
            scheduled_flights.c.airline.in_(list(airlines)),
            scheduled_flights.c.departs_at >= start,
            scheduled_flights.c.departs_at <= end,
        )
    ).all()
    hubs = sorted({row.destination for row in first if row.flight_id not in exclude})
    if not hubs:
        return [], []
    second = conn.execute(
        select(scheduled_flights).where(
            scheduled_flights.c.origin.in_(hubs),
            scheduled_flights.c.destination == destination,
            scheduled_flights.c.airline.in_(list(airlines)),
            scheduled_flights.c.departs_at >= start,
            scheduled_flights.c.departs_at <= end + SEARCH_WINDOW.total_seconds(),
        )
    ).all()
    keep = [row for row in first if row.flight_id not in exclude]
    return keep, [row for row in second if row.flight_id not in exclude]


@dataclass
class Search:
    """Alternatives for one stretch of a journey and time (direct flights and two-leg
    connections) with their free seats, shared by the bookings of one transaction: seats held
    for one booking are taken off before the next is served."""

    rows: list[Any]
    pairs: list[tuple[Any, Any]]
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
        connection_time: Callable[[str], timedelta],
    ) -> Search:
        where: dict[str, Any] = {
            "origin": origin,
            "destination": destination,
            "earliest": earliest,
            "airlines": airlines,
            "exclude": exclude,
        }
        rows = candidates(conn, **where)
        first, second = connecting_legs(conn, **where)
        pairs = itineraries.pair_legs(first, second, connection_time=connection_time)
        flights = {row.flight_id for row in rows} | {r.flight_id for p in pairs for r in p}
        free = {
            flight_id: inventory.availability(conn, flight_id=flight_id, now=now)
            for flight_id in sorted(flights)
        }
        return cls(rows, pairs, free)


def hold_offers(
    conn: Connection,
    *,
    booking: dict[str, Any],
    search: Search,
    replaces: list[int],
    limit: int,
    ttl: float,
    now: float,
    held: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Hold seats on the best alternatives (again: the seats already held under the offers,
    `held` when the caller looked them up already with `held_offers_of`): direct flights
    first, then connections. `replaces` are the positions of the booking's segments an offer
    takes the place of."""
    if held is None:
        held = _held_offers(conn, booking["booking_id"], replaces)
    if held:
        return held
    count = booking["passenger_count"]
    offers: list[dict[str, Any]] = []
    for choice in _ranked(booking, search, replaces, limit, search.free):
        if len(offers) == limit:
            break
        key = hold_id(booking["booking_id"], len(offers))
        if hold_journey(conn, choice, count=count, hold=key, ttl=ttl, now=now, free=search.free):
            offers.append(_describe(choice, held_seats(conn, key), len(offers), replaces))
    return offers


def _ranked(
    booking: dict[str, Any],
    search: Search,
    replaces: list[int],
    limit: int,
    free: dict[str, dict[str, int]],
) -> list[itineraries.Choice]:
    """The booking's alternatives, best first, against the seats `free`: direct flights,
    then connections, none on a flight of the replaced segments."""
    booked = set(replaced_flights(booking, replaces))
    rank: dict[str, Any] = {
        "cabin": booking["cabin"],
        "airline": booking["flight_id"][:2],
        "count": booking["passenger_count"],
        "free": free,
        "limit": limit,
    }
    direct = [row for row in search.rows if row.flight_id not in booked]
    pairs = [p for p in search.pairs if not {p[0].flight_id, p[1].flight_id} & booked]
    return itineraries.rank_direct(direct, **rank) + itineraries.rank_connections(pairs, **rank)


def hold_offers_many(
    conn: Connection,
    *,
    bookings: Sequence[dict[str, Any]],
    search: Search,
    replaces: dict[str, list[int]],
    limit: int,
    ttl: float,
    now: float,
    held: dict[str, list[dict[str, Any]]],
) -> dict[str, list[dict[str, Any]]]:
    """`hold_offers` for several bookings sharing one search, in a few statements: the same
    offers and the same seats as holding them one booking after the other (ranked in turn
    against the seats left, the front rows first), chosen with one query per flight and cabin
    (every leg of a connection counted) and held with one statement run for every seat, so a
    connection's legs are held together or not at all. Should a flight have fewer seats than
    counted (a buyer took some meanwhile), they are held one booking after the other."""
    free = {flight_id: dict(cabins) for flight_id, cabins in search.free.items()}
    plans: dict[str, list[itineraries.Choice]] = {}
    wanted: dict[tuple[str, str], int] = {}
    for booking in bookings:
        booking_id = booking["booking_id"]
        if held.get(booking_id):
            continue
        count = booking["passenger_count"]
        plan: list[itineraries.Choice] = []
        for choice in _ranked(booking, search, replaces[booking_id], limit, free):
            if len(plan) == limit:
                break
            if any(free.get(row.flight_id, {}).get(cabin, 0) < count for row, cabin in choice):
                continue  # an earlier offer took them
            for row, cabin in choice:
                free[row.flight_id][cabin] -= count
                wanted[row.flight_id, cabin] = wanted.get((row.flight_id, cabin), 0) + count
            plan.append(choice)
        plans[booking_id] = plan
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
                replaces=replaces[booking["booking_id"]],
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
        for choice in plans[booking_id]:
            key = hold_id(booking_id, len(offers))
            chosen: dict[str, list[str]] = {}
            for row, cabin in choice:
                seats_left = found[row.flight_id, cabin]
                chosen[row.flight_id], found[row.flight_id, cabin] = (
                    seats_left[:count],
                    seats_left[count:],
                )
                holds += [
                    {"h_flight": row.flight_id, "h_seat": seat, "h_id": key}
                    for seat in chosen[row.flight_id]
                ]
            offers.append(_describe(choice, chosen, len(offers), replaces[booking_id]))
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


def held_offers_of(
    conn: Connection, replaces: dict[str, list[int]]
) -> dict[str, list[dict[str, Any]]]:
    """The offers already held for each of the bookings (`replaces` by booking): which
    bookings have any found in one query (none for most), those described one by one."""
    if not replaces:
        return {}
    holding = set(
        conn.execute(
            select(seats.c.hold_id)
            .where(or_(*(_offer_holds(b) for b in replaces)), seats.c.status == "held")
            .distinct()
        ).scalars()
    )
    owners = {key.removeprefix("offer:").rpartition(":")[0] for key in holding}
    return {
        booking_id: _held_offers(conn, booking_id, positions) if booking_id in owners else []
        for booking_id, positions in replaces.items()
    }


def replaced_flights(booking: dict[str, Any], replaces: list[int]) -> list[str]:
    legs = booking.get("segments") or [{"flight_id": booking["flight_id"]}]
    return [legs[n]["flight_id"] for n in replaces if n < len(legs)]


def hold_journey(
    conn: Connection,
    choice: list[tuple[Any, str]],
    *,
    count: int,
    hold: str,
    ttl: float,
    now: float,
    free: dict[str, dict[str, int]],
) -> bool:
    """Hold `count` seats on every leg of the choice under one hold id: all legs or none."""
    for row, cabin in choice:
        if free.get(row.flight_id, {}).get(cabin, 0) < count:
            return False  # an earlier offer took them
    try:
        with conn.begin_nested():
            for row, cabin in choice:
                inventory.hold_seats(
                    conn,
                    flight_id=row.flight_id,
                    cabin=cabin,
                    count=count,
                    hold_id=hold,
                    ttl=ttl,
                    now=now,
                )
    except inventory.SoldOut:
        for row, _ in choice:  # taken meanwhile by a buyer: count again
            free[row.flight_id] = inventory.availability(conn, flight_id=row.flight_id, now=now)
        return False
    for row, cabin in choice:
        free[row.flight_id][cabin] -= count
    return True


def held_seats(conn: Connection, hold: str) -> dict[str, list[str]]:
    return segments.seats_by_flight(conn, seats.c.hold_id == hold, seats.c.status == "held")


def _held_offers(conn: Connection, booking_id: str, replaces: list[int]) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(seats.c.hold_id, seats.c.flight_id, seats.c.cabin)
        .where(_offer_holds(booking_id), seats.c.status == "held")
        .distinct()
    ).all()
    grouped: dict[str, dict[str, str]] = {}
    for row in rows:
        grouped.setdefault(row.hold_id, {})[row.flight_id] = row.cabin
    offers = []
    for key in sorted(grouped, key=lambda k: int(k.rsplit(":", 1)[1])):
        flights = conn.execute(
            select(scheduled_flights)
            .where(scheduled_flights.c.flight_id.in_(list(grouped[key])))
            .order_by(scheduled_flights.c.departs_at)
        ).all()
        choice = [(flight, grouped[key][flight.flight_id]) for flight in flights]
        index = int(key.rsplit(":", 1)[1])
        offers.append(_describe(choice, held_seats(conn, key), index, replaces))
    return offers


def _leg(row: Any, cabin: str, chosen: list[str]) -> dict[str, Any]:
    return {
        "flight_id": row.flight_id,
        "flight": f"{row.airline}{row.flight_number}",
        "origin": row.origin,
        "destination": row.destination,
        "departure": datetime.fromtimestamp(row.departs_at, UTC).isoformat(),
        "arrival": datetime.fromtimestamp(row.arrives_at, UTC).isoformat(),
        "cabin": cabin,
        "seats": chosen,
    }


def _describe(
    choice: list[tuple[Any, str]], held: dict[str, list[str]], index: int, replaces: list[int]
) -> dict[str, Any]:
    """An offer: the first leg's fields at the top (a direct flight's whole description), the
    journey's end and arrival, every leg, and the hub of a connection (`via`)."""
    legs = [_leg(row, cabin, held.get(row.flight_id, [])) for row, cabin in choice]
    return legs[0] | {
        "offer": index,
        "flight": "/".join(leg["flight"] for leg in legs),
        "destination": legs[-1]["destination"],
        "arrival": legs[-1]["arrival"],
        "via": legs[0]["destination"] if len(legs) > 1 else None,
        "legs": legs,
        "replaces": replaces,
    }


def release_offers(conn: Connection, *, booking_id: str, keep: int | None = None) -> int:
    """Free the seats held for a booking's offers (all but offer `keep`)."""
    query = update(seats).where(_offer_holds(booking_id), seats.c.status == "held")
    if keep is not None:
        query = query.where(seats.c.hold_id != hold_id(booking_id, keep))
    result = conn.execute(query.values(status="free", hold_id=None, hold_expires_at=None))
    return int(result.rowcount)
