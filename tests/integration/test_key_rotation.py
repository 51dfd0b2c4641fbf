"""Data key rotation: every booking's personal data resealed under the active key, in batches,
idempotent and resumable; values under a dropped key reported; the `jetbridge keys` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from jetbridge.app import Platform, build_platform
from jetbridge.booking import service
from jetbridge.booking.catalog import demo_schedule, import_schedule
from jetbridge.booking.personal_data import PersonalData, Rotation, reseal_all
from jetbridge.booking.service import BookingRequest, Passenger, TravelDocument
from jetbridge.config import Settings
from jetbridge.ops.crypto import DataKey, parse_keyring
from jetbridge.payments.test_provider import APPROVE
from jetbridge.storage.schema import bookings

DAY = (datetime.now(UTC) + timedelta(days=50)).date()
K2025, K2026, K2027 = (DataKey.generate(name) for name in ("k2025", "k2026", "k2027"))
BOOKINGS = 5


def platform_with(url: str, *keys: DataKey) -> Platform:
    settings = Settings(
        database_url=url, run_workers=False, data_keys=",".join(key.entry() for key in keys)
    )
    platform = build_platform(settings)
    platform.prepare()
    return platform


def traveller(n: int) -> Passenger:
    document = TravelDocument(number=f"P{n:07d}", country="GBR", expires="2031-01-01")
    return Passenger(given_name="Ada", family_name=f"Lovelace{n}", document=document)


def booked_under_k2025(url: str) -> list[str]:
    platform = platform_with(url, K2025)
    with platform.backbone.transaction() as conn:
        import_schedule(conn, demo_schedule(start=DAY, days=1))
    assert platform.bookings is not None
    ids = []
    for n in range(BOOKINGS):
        request = BookingRequest(
            flight_id=f"LX0100-{DAY.isoformat()}", cabin="economy", customer_id=f"rot-{n}",
            passengers=[traveller(n)],
        )  # fmt: skip
        booking, _ = platform.bookings.create(
            request=request, card=APPROVE, caller="rotation", idempotency_key=f"rotation-{n:04d}"
        )
        ids.append(booking["booking_id"])
    platform.engine.dispose()
    return ids


def sealed_values(platform: Platform) -> list[str]:
    with platform.backbone.reading() as conn:
        rows = conn.execute(select(bookings.c.passengers, bookings.c.payment_card)).all()
    return [value for row in rows for value in row if value is not None]


def test_rotation_reseals_everything_and_the_old_key_can_then_go(database_url: str) -> None:
    ids = booked_under_k2025(database_url)
    both = platform_with(database_url, K2026, K2025)
    batches: list[int] = []
    report = reseal_all(
        both.engine,
        PersonalData(both.keyring),
        batch_size=2,
        progress=lambda r: batches.append(r.rows),
    )
    assert report.as_json() == {
        "active_key": "k2026",
        "rows": BOOKINGS,
        "resealed": 2 * BOOKINGS,  # passengers and card
        "current": 0,
        "unreadable": [],
    }
    assert batches == [2, 4, 5]
    assert all(value.startswith("enc:v1:k2026:") for value in sealed_values(both))
    again = reseal_all(both.engine, PersonalData(both.keyring))
    assert (again.resealed, again.current) == (0, 2 * BOOKINGS)
    both.engine.dispose()

    new_only = platform_with(database_url, K2026)
    assert new_only.bookings is not None
    for n, booking_id in enumerate(ids):
        booking = new_only.bookings.get(booking_id=booking_id)
        assert booking["passengers"] == [traveller(n).model_dump()]
        with new_only.backbone.reading() as conn:
            card = service.payment_card(
                conn, booking_id=booking_id, personal=new_only.bookings.personal
            )
        assert card == APPROVE.replace(" ", "")
    new_only.engine.dispose()


def test_an_interrupted_rotation_is_finished_by_running_it_again(sqlite_url: str) -> None:
    booked_under_k2025(sqlite_url)
    platform = platform_with(sqlite_url, K2026, K2025)

    def stop_after_first_batch(_: Rotation) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reseal_all(
            platform.engine,
            PersonalData(platform.keyring),
            batch_size=2,
            progress=stop_after_first_batch,
        )
    report = reseal_all(platform.engine, PersonalData(platform.keyring), batch_size=2)
    assert (report.rows, report.resealed, report.current) == (BOOKINGS, 2 * BOOKINGS - 4, 4)
    platform.engine.dispose()


def test_values_under_a_key_no_longer_in_the_ring_are_reported_and_left_alone(
    sqlite_url: str,
) -> None:
    ids = booked_under_k2025(sqlite_url)
    platform = platform_with(sqlite_url, K2026)
    before = sealed_values(platform)
    report = reseal_all(platform.engine, PersonalData(platform.keyring))
    assert report.resealed == 0 and len(report.unreadable) == 2 * BOOKINGS
    assert all("(key k2025): no such key" in entry for entry in report.unreadable)
    assert {entry.split("of row ")[1].split(" ")[0] for entry in report.unreadable} == set(ids)
    assert not any("Lovelace" in entry for entry in report.unreadable)
    assert sealed_values(platform) == before
    platform.engine.dispose()


def jetbridge(*args: str, **env: str | None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **{k: v for k, v in env.items() if v is not None}}
    for name in (k for k, v in env.items() if v is None):
        environment.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "jetbridge.cli", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )


def test_the_keys_rotate_command_reports_counts_and_fails_on_unknown_keys(
    sqlite_url: str,
) -> None:
    booked_under_k2025(sqlite_url)
    both = f"{K2026.entry()},{K2025.entry()}"
    first = jetbridge(
        "keys", "rotate", "--batch-size", "2",
        JETBRIDGE_DATABASE_URL=sqlite_url, JETBRIDGE_DATA_KEYS=both,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {
        "active_key": "k2026", "rows": BOOKINGS, "resealed": 2 * BOOKINGS, "current": 0,
        "unreadable": [],
    }  # fmt: skip
    # Not a terminal: plain progress lines, the last one with the counts.
    assert first.stderr.startswith("rotating data keys: started\n")
    assert "rotating data keys: done: 5/5 bookings, 10 values resealed, 0 already under k2026" in (
        first.stderr
    )
    second = jetbridge(
        "keys", "rotate", JETBRIDGE_DATABASE_URL=sqlite_url, JETBRIDGE_DATA_KEYS=both
    )
    assert second.returncode == 0 and json.loads(second.stdout)["resealed"] == 0
    lost = jetbridge(
        "keys", "rotate", JETBRIDGE_DATABASE_URL=sqlite_url, JETBRIDGE_DATA_KEYS=K2027.entry()
    )
    assert lost.returncode == 1
    assert len(json.loads(lost.stdout)["unreadable"]) == 2 * BOOKINGS
    assert "10 values open with no key in JETBRIDGE_DATA_KEYS" in lost.stderr


def test_keys_new_prints_an_entry_for_the_keyring() -> None:
    made = jetbridge("keys", "new", "--id", "k2028")
    assert made.returncode == 0
    assert parse_keyring(made.stdout.strip()).key_ids == ["k2028"]
    assert jetbridge("keys", "new", "--id", "no spaces").returncode == 2


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ("k2026:bm90LWEta2V5!", "entry 1 (k2026): the key is not valid base64"),
        ("k2026:bm90LWEta2V5", "entry 1: key k2026 is 9 bytes; AES-256 needs 32"),
        (f"{K2026.entry()},{K2026.entry()}", "entry 2: key id 'k2026' appears twice"),
    ],
)
def test_bad_data_keys_stop_the_start_with_a_clear_error(
    sqlite_url: str, keys: str, message: str
) -> None:
    failed = jetbridge("db", "upgrade", JETBRIDGE_DATABASE_URL=sqlite_url, JETBRIDGE_DATA_KEYS=keys)
    assert failed.returncode == 2
    assert "JETBRIDGE_DATA_KEYS" in failed.stderr and message in failed.stderr
    assert "bm90LWEta2V5" not in failed.stderr and K2026.entry() not in failed.stderr


def test_postgresql_without_data_keys_stops_the_start() -> None:
    failed = jetbridge(
        "db", "upgrade",
        JETBRIDGE_DATABASE_URL="postgresql://nobody@127.0.0.1:9/none", JETBRIDGE_DATA_KEYS=None,
    )  # fmt: skip
    assert failed.returncode == 2
    assert "JETBRIDGE_DATA_KEYS must be set" in failed.stderr
