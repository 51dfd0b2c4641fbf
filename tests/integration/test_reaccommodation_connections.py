"""Re-accommodation onto connections: a cancelled flight with no direct alternative is offered
two-leg journeys via a hub (the hub's minimum connection time respected, the airline's own
flights before its partners', earliest arrival first); accepting one through the signed link
holds seats on both legs, reissues each ticket with a coupon per leg and keeps loyalty as it
was. A late first leg then makes the booking's own connection a missed one."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from test_disruption import (
    DAY,
    World,
    book,
    link_in,
    mail_to,
    running,
    seats_left,
    text_of,
    ticket_numbers,
    wait_for,
)

from jetbridge.booking import inventory
from jetbridge.booking.catalog import ScheduleEntry, import_schedule
from jetbridge.booking.manifest import bookings_on_flight
from jetbridge.disruption.offers import held_seats, hold_journey
from jetbridge.storage.db import create_database_engine
from jetbridge.storage.migrate import upgrade
from jetbridge.storage.schema import scheduled_flights, seats

# (airline, number, route, departs HH:MM, arrives HH:MM) on DAY, in UTC.
NETWORK = [
    ("LX", "900", "GVA-BCN", "09:00", "10:40"),  # the booked flight, cancelled below
    ("LX", "910", "GVA-MUC", "09:30", "10:30"),
    ("LX", "920", "MUC-BCN", "11:00", "13:00"),  # 30 minutes after LX910: under MUC's minimum
    ("LX", "922", "MUC-BCN", "12:00", "14:00"),
    ("LX", "912", "GVA-MUC", "11:00", "12:00"),
    ("LX", "924", "MUC-BCN", "15:00", "17:00"),
    ("LH", "930", "GVA-MUC", "09:15", "10:15"),  # a partner's connection arriving first
    ("LH", "932", "MUC-BCN", "11:30", "13:30"),
]


def flight_id(designator: str) -> str:
    return f"{designator[:2]}{int(designator[2:]):04d}-{DAY.isoformat()}"


def at(clock: str) -> datetime:
    hour, minute = clock.split(":")
    return datetime(DAY.year, DAY.month, DAY.day, int(hour), int(minute), tzinfo=UTC)


def publish_network(world: World) -> None:
    entries = [
        ScheduleEntry(
            airline=airline,
            flight_number=number,
            origin=route[:3],
            destination=route[4:],
            departure=at(departs),
            arrival=at(arrives),
            aircraft_type="A320",
            currency="CHF",
            fares={"economy": 12_000},
        )
        for airline, number, route, departs, arrives in NETWORK
    ]
    with world.platform.backbone.transaction() as conn:
        import_schedule(conn, entries)


def hub(world: World, designator: str, route: str, **fields: Any) -> None:
    world.hub(f"{int(designator[2:]):04d}", route, **fields)


def sold_to(world: World, booking_id: str) -> dict[str, list[str]]:
    with world.platform.backbone.reading() as conn:
        rows = conn.execute(
            select(seats.c.flight_id, seats.c.seat)
            .where(seats.c.booking_id == booking_id, seats.c.status == "sold")
            .order_by(seats.c.flight_id, seats.c.seat)
        )
        found: dict[str, list[str]] = {}
        for row in rows:
            found.setdefault(row.flight_id, []).append(row.seat)
        return found


def offers_of(world: World, address: str, subject: str) -> tuple[str, list[dict[str, Any]]]:
    def mails() -> list[Any]:
        return [m for m in mail_to(world, address) if subject in m["Subject"]]

    (mail,) = wait_for(f"the email about {subject!r}", mails)
    assert "We are holding seats for you on" in text_of(mail), text_of(mail)
    link = link_in(mail)
    answer = world.client.get("/api/disruptions/choice", params={"link": link})
    assert answer.status_code == 200, answer.text
    return link, answer.json()["offers"]


def segments_of(world: World, booking_id: str) -> list[str]:
    booking = world.client.get(f"/api/bookings/{booking_id}").json()
    return [segment["flight_id"] for segment in booking["segments"]]


def test_a_connection_is_offered_held_on_both_legs_and_ticketed_per_leg(database_url: str) -> None:
    with running(database_url, disruption_partners="LX=LH") as world:
        client = world.client
        publish_network(world)
        everything = [flight_id(a + n) for a, n, *_ in NETWORK]
        initial = {f: seats_left(world, f) for f in everything}
        booking_id = book(
            world, "lin@example.com", passengers=2, customer="cust-c1", flight=flight_id("LX900")
        )
        old_tickets = ticket_numbers(world, booking_id)
        points = client.get("/api/customers/cust-c1/loyalty").json()["points"]
        assert segments_of(world, booking_id) == [flight_id("LX900")]

        hub(world, "LX900", "GVA-BCN", **{"times.off_block.scheduled": at("09:00").isoformat()})
        hub(world, "LX900", "GVA-BCN", status="cancelled")
        link, offers = offers_of(world, "lin@example.com", "LX900 GVA-BCN is cancelled")

        # No direct flight: connections via MUC, own airline first, earliest arrival first;
        # LX910 then LX920 (30 minutes at MUC, under its 60) is never offered.
        assert [(o["flight"], o["via"], o["arrival"][11:16]) for o in offers] == [
            ("LX910/LX922", "MUC", "14:00"),
            ("LX912/LX924", "MUC", "17:00"),
            ("LH930/LH932", "MUC", "13:30"),
        ]
        assert all(
            flight_id("LX920") not in [leg["flight_id"] for leg in o["legs"]] for o in offers
        )
        page = client.get("/disruption/choose", params={"link": link})
        assert (
            page.status_code == 200
            and "LX910/LX922" in page.text
            and "GVA-BCN via MUC" in page.text
        )
        first = offers[0]
        assert [(leg["origin"], leg["destination"], leg["cabin"]) for leg in first["legs"]] == [
            ("GVA", "MUC", "economy"), ("MUC", "BCN", "economy"),
        ]  # fmt: skip
        assert all(len(leg["seats"]) == 2 for o in offers for leg in o["legs"])
        for designator in ("LX910", "LX922", "LX912", "LX924", "LH930", "LH932"):
            assert seats_left(world, flight_id(designator)) == initial[flight_id(designator)] - 2

        answered = client.post(
            "/api/disruptions/choice", json={"link": link, "action": "accept", "offer": 0}
        )
        assert answered.status_code == 200, answered.text
        wait_for(
            "the rebooking onto the connection",
            lambda: segments_of(world, booking_id) == [flight_id("LX910"), flight_id("LX922")],
        )
        booking = client.get(f"/api/bookings/{booking_id}").json()
        assert booking["status"] == "confirmed" and booking["flight_id"] == flight_id("LX910")
        assert [s["flight"]["origin"] + s["flight"]["destination"] for s in booking["segments"]] == [
            "GVAMUC", "MUCBCN",
        ]  # fmt: skip
        assert all(s["flight_status"]["flight_key"] for s in booking["segments"])

        # Seats: sold on both legs, back on the cancelled flight, other offers released.
        sold = sold_to(world, booking_id)
        assert sorted(sold) == [flight_id("LX910"), flight_id("LX922")]
        assert all(len(numbers) == 2 for numbers in sold.values())
        for designator in ("LX912", "LX924", "LH930", "LH932", "LX920"):
            assert seats_left(world, flight_id(designator)) == initial[flight_id(designator)]
        assert seats_left(world, flight_id("LX900")) == initial[flight_id("LX900")]

        # Tickets reissued: new numbers, one coupon per leg with that leg's seat; the old
        # numbers kept as exchanged.
        tickets = booking["tickets"]
        assert not {t["ticket_number"] for t in tickets} & set(old_tickets)
        for ticket in tickets:
            coupons = ticket["coupons"]
            assert [(c["coupon"], c["flight_id"]) for c in coupons] == [
                (1, flight_id("LX910")), (2, flight_id("LX922")),
            ]  # fmt: skip
            assert all(c["seat"] in sold[c["flight_id"]] for c in coupons)
        assert sorted(e["ticket_number"] for e in booking["exchanged_tickets"]) == sorted(
            old_tickets
        )
        assert {e["status"] for e in booking["exchanged_tickets"]} == {"exchanged"}

        loyalty = client.get("/api/customers/cust-c1/loyalty").json()
        assert loyalty["points"] == points
        assert [h["kind"] for h in loyalty["history"]] == ["award"]

        # The booking is on both legs' manifests, with each leg's seat.
        with world.platform.backbone.reading() as conn:
            for designator in ("LX910", "LX922"):
                key = conn.execute(
                    select(scheduled_flights.c.flight_key).where(
                        scheduled_flights.c.flight_id == flight_id(designator)
                    )
                ).scalar_one()
                (on,) = bookings_on_flight(conn, key)
                assert on.booking_id == booking_id
                assert sorted(p.seat or "" for p in on.passengers) == sold[flight_id(designator)]

        # GraphQL answers the same journey.
        query = """query($id: String!) { booking(bookingId: $id) {
            flightId segments { position flightId cabin flight { origin destination } }
            tickets { ticketNumber coupons { coupon flightId seat } } } }"""
        answer = client.post("/graphql", json={"query": query, "variables": {"id": booking_id}})
        assert "errors" not in answer.json(), answer.text
        shown = answer.json()["data"]["booking"]
        assert [(s["position"], s["flightId"]) for s in shown["segments"]] == [
            (0, flight_id("LX910")), (1, flight_id("LX922")),
        ]  # fmt: skip
        assert [len(t["coupons"]) for t in shown["tickets"]] == [2, 2]

        # The first leg now leaves 90 minutes late: it lands at 12:00, when LX922 leaves.
        hub(world, "LX910", "GVA-MUC", **{"times.off_block.scheduled": at("09:30").isoformat()})
        hub(
            world, "LX910", "GVA-MUC",
            **{"times.off_block.estimated": (at("09:30") + timedelta(minutes=90)).isoformat()},
        )  # fmt: skip
        link, offers = offers_of(world, "lin@example.com", "too late for your connection")
        # Only the stretch from MUC is replaced, no sooner than 60 minutes after landing.
        assert [(o["flight"], o["origin"], o["destination"]) for o in offers][:1] == [
            ("LX924", "MUC", "BCN")
        ]
        assert all(o["departure"][11:16] >= "13:00" for o in offers)
        answered = client.post(
            "/api/disruptions/choice", json={"link": link, "action": "accept", "offer": 0}
        )
        assert answered.status_code == 200, answered.text
        wait_for(
            "the onward leg to be rebooked",
            lambda: segments_of(world, booking_id) == [flight_id("LX910"), flight_id("LX924")],
        )
        sold = sold_to(world, booking_id)
        assert sorted(sold) == [flight_id("LX910"), flight_id("LX924")]
        assert seats_left(world, flight_id("LX922")) == initial[flight_id("LX922")]
        booking = client.get(f"/api/bookings/{booking_id}").json()
        for ticket in booking["tickets"]:
            assert [c["flight_id"] for c in ticket["coupons"]] == [
                flight_id("LX910"), flight_id("LX924"),
            ]  # fmt: skip
        assert len(booking["exchanged_tickets"]) == 4
        assert client.get("/api/customers/cust-c1/loyalty").json()["points"] == points

        # A cancelled second leg reaches the booking too (nothing later flies MUC-BCN).
        hub(world, "LX924", "MUC-BCN", **{"times.off_block.scheduled": at("15:00").isoformat()})
        hub(world, "LX924", "MUC-BCN", status="cancelled")

        def cancelled_leg() -> list[Any]:
            return [
                m
                for m in mail_to(world, "lin@example.com")
                if "LX924 MUC-BCN is cancelled" in m["Subject"] and "refund" in text_of(m)
            ]

        (mail,) = wait_for("the second leg's cancellation", cancelled_leg)
        assert "No other flight has seats" in text_of(mail)
        cases = client.get(f"/api/bookings/{booking_id}/disruptions").json()["disruptions"]
        assert any(c["flight_key"].startswith(flight_id("LX924")) for c in cases)


def test_a_connection_is_held_on_both_legs_or_neither(database_url: str) -> None:
    """The second leg was sold out after the search counted it: the first leg's seats held a
    moment before are given back with it."""
    engine = create_database_engine(database_url)
    try:
        upgrade(engine)
        first, second = flight_id("LX910"), flight_id("LX922")
        with engine.begin() as conn:
            import_schedule(
                conn,
                [
                    ScheduleEntry(
                        airline="LX",
                        flight_number=number,
                        origin=route[:3],
                        destination=route[4:],
                        departure=at(departs),
                        arrival=at(arrives),
                        aircraft_type="A320",
                        currency="CHF",
                        fares={"economy": 12_000},
                    )
                    for _, number, route, departs, arrives in NETWORK
                    if number in {"910", "922"}
                ],
            )
            now = time.time()
            left = inventory.availability(conn, flight_id=second, now=now)["economy"]
            inventory.hold_seats(
                conn, flight_id=second, cabin="economy", count=left - 1, hold_id="buyer",
                ttl=600, now=now,
            )  # fmt: skip
            rows = {
                row.flight_id: row
                for row in conn.execute(
                    select(scheduled_flights).where(
                        scheduled_flights.c.flight_id.in_([first, second])
                    )
                )
            }
            free = {first: {"economy": 100}, second: {"economy": 100}}  # counted before
            choice = [(rows[first], "economy"), (rows[second], "economy")]
            held = hold_journey(
                conn, choice, count=2, hold="offer:b-1:0", ttl=600, now=now, free=free
            )
            assert held is False
            assert held_seats(conn, "offer:b-1:0") == {}
            assert free[second]["economy"] == 1  # counted again
            taken = conn.execute(
                select(func.count()).where(seats.c.hold_id == "offer:b-1:0")
            ).scalar_one()
            assert taken == 0
    finally:
        engine.dispose()


def test_the_migration_makes_each_booking_one_segment_and_each_ticket_one_coupon(
    database_url: str,
) -> None:
    from sqlalchemy import text

    from jetbridge.storage.migrate import downgrade

    engine = create_database_engine(database_url)
    try:
        upgrade(engine, "0020")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO bookings (booking_id, locator, status, flight_id, cabin, "
                    "customer_id, amount, currency, caller, idempotency_key, passengers, "
                    "passenger_count, created_at, updated_at) VALUES ('b-1', 'ABC123', "
                    "'confirmed', 'LX0100-2026-12-01', 'business', 'c-1', 20000, 'CHF', "
                    "'tests', 'k-1', 'sealed', 1, 1.0, 1.0)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO tickets (ticket_number, booking_id, passenger_index, seat, "
                    "issued_at) VALUES ('7240000000001', 'b-1', 0, '2A', 1.0)"
                )
            )
        upgrade(engine)
        with engine.connect() as conn:
            segment = conn.execute(
                text("SELECT booking_id, position, flight_id, cabin FROM booking_segments")
            ).one()
            coupon = conn.execute(
                text(
                    "SELECT ticket_number, coupon, booking_id, flight_id, seat FROM ticket_coupons"
                )
            ).one()
        assert tuple(segment) == ("b-1", 0, "LX0100-2026-12-01", "business")
        assert tuple(coupon) == ("7240000000001", 1, "b-1", "LX0100-2026-12-01", "2A")
        downgrade(engine, "0020")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT locator FROM bookings")).scalar_one() == "ABC123"
    finally:
        engine.dispose()
