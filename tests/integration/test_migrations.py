"""Alembic migrations create exactly the schema the code declares, on every backend, and seal
the personal data of bookings stored before it was encrypted."""

from __future__ import annotations

import json

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from jetbridge.booking.personal_data import PersonalData
from jetbridge.booking.service import get_booking
from jetbridge.ops.crypto import DataKey, Keyring
from jetbridge.storage.db import create_database_engine
from jetbridge.storage.migrate import downgrade, upgrade
from jetbridge.storage.schema import metadata


def test_migrations_match_the_declared_schema(database_url: str) -> None:
    engine = create_database_engine(database_url)
    upgrade(engine)
    upgrade(engine)  # idempotent on every start
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert differences == []


def test_sqlite_runs_in_wal_mode(sqlite_url: str) -> None:
    engine = create_database_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


CLEAR_PASSENGERS = [
    {
        "given_name": "Ada",
        "family_name": "Lovelace",
        "document": {
            "kind": "passport",
            "number": "X7734120",
            "country": "GBR",
            "expires": "2031-05-01",
        },
    },
    {"given_name": "Grace", "family_name": "Hopper", "document": None},
]


def bookings_before_sealing(engine: Engine, count: int) -> None:
    """Bookings as revision 0005 stored them: passengers as clear JSON."""
    upgrade(engine, "0005")
    with engine.begin() as conn:
        for n in range(count):
            conn.execute(
                text(
                    "INSERT INTO bookings (booking_id, locator, status, flight_id, cabin, "
                    "customer_id, amount, currency, idempotency_key, passengers, created_at, "
                    "updated_at) VALUES (:id, :locator, 'confirmed', 'LX0100-2026-12-01', "
                    "'economy', 'c1', 25000, 'CHF', :key, :passengers, 1.0, 1.0)"
                ),
                {
                    "id": f"booking-{n:04d}",
                    "locator": f"ABC{n:03d}",
                    "key": f"key-{n:08d}",
                    "passengers": json.dumps(CLEAR_PASSENGERS[: 1 + n % 2]),
                },
            )


def test_the_upgrade_seals_clear_passengers_and_the_downgrade_opens_them(
    database_url: str,
) -> None:
    engine = create_database_engine(database_url)
    keyring = Keyring([DataKey.generate("k2026")])
    bookings_before_sealing(engine, 3)
    upgrade(engine, keyring=keyring)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT booking_id, passengers, passenger_count, payment_card FROM bookings "
                "ORDER BY booking_id"
            )
        ).all()
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    assert differences == []
    assert [row.passenger_count for row in rows] == [1, 2, 1]
    assert all(row.passengers.startswith("enc:v1:k2026:") for row in rows)
    assert all(row.payment_card is None for row in rows)
    assert not any(name in repr(rows) for name in ("Lovelace", "Hopper", "X7734120"))
    personal = PersonalData(keyring)
    with engine.connect() as conn:
        booking = get_booking(conn, booking_id="booking-0001", personal=personal)
    assert booking["passengers"] == CLEAR_PASSENGERS
    downgrade(engine, "0005", keyring=keyring)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT passengers FROM bookings ORDER BY booking_id")).scalars()
        assert [json.loads(value) for value in stored] == [
            CLEAR_PASSENGERS[:1],
            CLEAR_PASSENGERS,
            CLEAR_PASSENGERS[:1],
        ]
    engine.dispose()


def test_sealing_existing_bookings_without_keys_stops_with_a_clear_error(sqlite_url: str) -> None:
    engine = create_database_engine(sqlite_url)
    bookings_before_sealing(engine, 1)
    with pytest.raises(RuntimeError, match="run the migration with the data keys"):
        upgrade(engine)
    with engine.connect() as conn:
        assert "Lovelace" in conn.execute(text("SELECT passengers FROM bookings")).scalar_one()
    engine.dispose()


def test_earlier_bookings_keep_their_keys_under_the_anonymous_caller(database_url: str) -> None:
    engine = create_database_engine(database_url)
    keyring = Keyring([DataKey.generate("k2026")])
    bookings_before_sealing(engine, 2)
    upgrade(engine, "0007", keyring=keyring)
    upgrade(engine, keyring=keyring)
    insert = text(
        "INSERT INTO bookings (booking_id, locator, status, flight_id, cabin, customer_id, "
        "amount, currency, caller, idempotency_key, passengers, passenger_count, created_at, "
        "updated_at) VALUES (:id, :locator, 'confirmed', 'LX0100-2026-12-01', 'economy', 'c1', "
        "25000, 'CHF', :caller, 'key-00000000', 'enc:v1:x', 1, 1.0, 1.0)"
    )
    with engine.begin() as conn:
        rows = conn.execute(
            text("SELECT caller, idempotency_key, request_fingerprint FROM bookings")
        ).all()
        conn.execute(insert, {"id": "mine", "locator": "MNP234", "caller": "user:ada"})
    assert sorted(rows) == [
        ("anonymous", "key-00000000", None),
        ("anonymous", "key-00000001", None),
    ]
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert, {"id": "again", "locator": "MNP235", "caller": "user:ada"})
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM bookings WHERE booking_id = 'mine'"))
    downgrade(engine, "0007", keyring=keyring)
    upgrade(engine, keyring=keyring)
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert differences == []
