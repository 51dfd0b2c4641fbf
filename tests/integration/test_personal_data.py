"""Passengers' personal data: sealed at rest, shown to the booking's owner, kept out of events,
workflow inputs and histories and logs; row swaps fail; keys rotate."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text, update
from sqlalchemy.engine import make_url

from jetbridge.app import build_platform, create_app
from jetbridge.booking.catalog import demo_schedule, import_schedule
from jetbridge.booking.service import BookingRequest, Passenger
from jetbridge.booking.tasks import StepFailed
from jetbridge.config import Settings
from jetbridge.errors import NotFound
from jetbridge.ops.crypto import DecryptionFailed
from jetbridge.payments.test_provider import APPROVE, create_test_provider
from jetbridge.storage.db import normalise_url
from jetbridge.storage.schema import bookings, metadata
from support.auth import as_operator
from support.servers import serve_app

DAY = (datetime.now(UTC) + timedelta(days=30)).date()
FLIGHT = f"LX0100-{DAY.isoformat()}"
GIVEN, FAMILY, PASSPORT, ID_CARD = "Augusta", "Lovelace", "X9Q4417B2", "C7720931"
CARD_DIGITS = APPROVE.replace(" ", "")
TRAVELLERS = [
    {
        "given_name": GIVEN,
        "family_name": FAMILY,
        "document": {
            "kind": "passport",
            "number": PASSPORT,
            "country": "GBR",
            "expires": "2031-05-01",
        },
    },
    {
        "given_name": "Grace",
        "family_name": "Hopper",
        "document": {
            "kind": "id_card",
            "number": ID_CARD,
            "country": "USA",
            "expires": "2030-01-31",
        },
    },
]
# As the API shows them: a traveller who chose no seat has `seat: null`.
SHOWN = [{**traveller, "seat": None} for traveller in TRAVELLERS]
SECRETS = [GIVEN, FAMILY, "Hopper", PASSPORT, ID_CARD, CARD_DIGITS]


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    with serve_app(create_test_provider()) as provider:
        settings = Settings(
            database_url=database_url, payments_url=provider, delivery_poll_seconds=0.05
        )
        app = create_app(settings)
        with TestClient(app) as test_client:
            as_operator(test_client)
            with app.state.platform.backbone.transaction() as conn:
                import_schedule(conn, demo_schedule(start=DAY, days=1))
            yield test_client


def book_and_settle(client: TestClient, key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Book two travellers with documents; wait for the booking and its saga to end."""
    body = {
        "flight_id": FLIGHT, "cabin": "economy", "customer_id": "pd-1",
        "passengers": TRAVELLERS, "payment": {"card": APPROVE},
    }  # fmt: skip
    created = client.post("/api/bookings", json=body, headers={"Idempotency-Key": key})
    assert created.status_code == 202, created.text
    booking_id = created.json()["booking_id"]
    assert created.json()["passengers"] == SHOWN
    deadline = time.time() + 30
    while time.time() < deadline:
        booking = client.get(f"/api/bookings/{booking_id}").json()
        execution = client.get(f"/api/workflows/executions/booking-{booking_id}").json()
        if booking["status"] == "confirmed" and execution["status"] != "RUNNING":
            return dict(booking), dict(execution)
        time.sleep(0.05)
    raise AssertionError("the booking did not settle")


def everything_stored(url: str) -> str:
    """Every row of every table, read with plain SQL."""
    engine = create_engine(normalise_url(url))
    with engine.connect() as conn:
        dump = [
            repr(conn.execute(text(f'SELECT * FROM "{table}"')).all()) for table in metadata.tables
        ]
    engine.dispose()
    return "\n".join(dump)


def test_personal_data_is_sealed_at_rest_and_shown_to_the_owner_only(
    client: TestClient, database_url: str
) -> None:
    booking, execution = book_and_settle(client, "pd-sealed-0001")
    assert booking["passengers"] == SHOWN
    assert booking["passenger_count"] == 2
    mine = client.get("/api/customers/pd-1/bookings").json()
    assert [b["passengers"] for b in mine] == [SHOWN]
    assert execution["input"] == {"booking_id": booking["booking_id"]}
    history = json.dumps(
        client.get(f"/api/workflows/executions/booking-{booking['booking_id']}/history").json()
    )
    events = json.dumps(client.get("/api/buses/default/events", params={"limit": 1000}).json())
    assert "booking.requested" in events and "ReserveSeat" in history
    stored = everything_stored(database_url)
    assert booking["locator"] in stored and "enc:v1:test:" in stored
    for secret in SECRETS:
        assert secret not in stored, secret
        assert (
            secret not in history and secret not in events and secret not in json.dumps(execution)
        )
    if make_url(database_url).get_backend_name() == "sqlite":
        files = Path(make_url(database_url).database or "").parent.glob("jetbridge.db*")
        raw = b"".join(path.read_bytes() for path in files)
        assert b"enc:v1:test:" in raw
        for secret in SECRETS:
            assert secret.encode() not in raw, secret


def test_the_card_leaves_the_booking_row_once_the_booking_is_confirmed(
    client: TestClient, database_url: str
) -> None:
    booking, _ = book_and_settle(client, "pd-card-00001")
    engine = create_engine(normalise_url(database_url))
    with engine.connect() as conn:
        card = conn.execute(
            text("SELECT payment_card FROM bookings WHERE booking_id = :id"),
            {"id": booking["booking_id"]},
        ).scalar_one()
    engine.dispose()
    assert card is None


def test_logs_during_a_booking_hold_no_name_document_or_card(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)  # statements and parameters
    try:
        with serve_app(create_test_provider()) as provider:
            app = create_app(Settings(database_url=database_url, payments_url=provider))
            with TestClient(app) as client:
                as_operator(client)
                with app.state.platform.backbone.transaction() as conn:
                    import_schedule(conn, demo_schedule(start=DAY, days=1))
                booking, _ = book_and_settle(client, "pd-logs-00001")
                client.get("/api/customers/pd-1/bookings")
    finally:
        logging.getLogger("sqlalchemy.engine").setLevel(logging.NOTSET)
    logged = caplog.text + "\n".join(repr(record.args) for record in caplog.records)
    assert "INSERT INTO bookings" in logged and booking["booking_id"] in logged
    assert "enc:v1:test:" in logged  # parameters are logged: a clear name would show
    for secret in SECRETS:
        assert secret not in logged, secret


def test_passengers_are_found_by_record_locator_and_family_name(client: TestClient) -> None:
    booking, _ = book_and_settle(client, "pd-lookup-0001")
    bookings = client.app.state.platform.bookings  # type: ignore[attr-defined]
    found = bookings.find(locator=booking["locator"].lower(), family_name="HOPPER")
    assert found["booking_id"] == booking["booking_id"]
    assert [p["family_name"] for p in found["passengers"]] == [FAMILY, "Hopper"]
    numbers = [p["document"]["number"] for p in found["passengers"]]
    assert numbers == ["******7B2", "*****931"]
    assert "customer_id" not in found
    with pytest.raises(NotFound):
        bookings.find(locator=booking["locator"], family_name="Babbage")


def test_sealed_passengers_copied_to_another_booking_do_not_open(
    client: TestClient, database_url: str
) -> None:
    first, _ = book_and_settle(client, "pd-swap-00001")
    second, _ = book_and_settle(client, "pd-swap-00002")
    engine = create_engine(normalise_url(database_url))
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE bookings SET passengers = "
                "(SELECT passengers FROM bookings WHERE booking_id = :source) "
                "WHERE booking_id = :target"
            ),
            {"source": first["booking_id"], "target": second["booking_id"]},
        )
    engine.dispose()
    bookings = client.app.state.platform.bookings  # type: ignore[attr-defined]
    assert bookings.get(booking_id=first["booking_id"])["passengers"] == SHOWN
    with pytest.raises(DecryptionFailed) as failure:
        bookings.get(booking_id=second["booking_id"])
    message = str(failure.value)
    assert "bookings.passengers" in message and second["booking_id"] in message
    assert "(key test)" in message
    assert not any(secret in message for secret in SECRETS)


def test_a_saga_started_with_the_card_in_its_input_still_pays(sqlite_url: str) -> None:
    """Executions started before the card moved into the booking row carry it in their input."""
    with serve_app(create_test_provider()) as provider:
        settings = Settings(database_url=sqlite_url, payments_url=provider, run_workers=False)
        platform = build_platform(settings)
        platform.prepare()
        with platform.backbone.transaction() as conn:
            import_schedule(conn, demo_schedule(start=DAY, days=1))
        assert platform.bookings is not None
        request = BookingRequest(
            flight_id=FLIGHT, cabin="economy", customer_id="old-1",
            passengers=[Passenger(given_name="Ada", family_name="Lovelace")],
        )  # fmt: skip
        booking, _ = platform.bookings.create(
            request=request, card=APPROVE, caller="pd", idempotency_key="pd-legacy-0001"
        )
        with platform.backbone.transaction() as conn:
            conn.execute(update(bookings).values(payment_card=None))
        tasks = platform.bookings.tasks
        with pytest.raises(StepFailed, match="holds no payment card"):
            tasks.process_payment({"booking_id": booking["booking_id"]})
        legacy = {"booking_id": booking["booking_id"], "payment": {"card": CARD_DIGITS}}
        assert tasks.process_payment(legacy)["payment_id"]
        for close in platform.closers:
            close()
        platform.engine.dispose()
