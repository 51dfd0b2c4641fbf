"""Idempotency keys of bookings: the caller's own, bound to the request, one booking under races."""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from jetbridge.app import Platform, build_platform, create_app
from jetbridge.booking.catalog import demo_schedule, import_schedule
from jetbridge.booking.service import BookingRequest, Passenger
from jetbridge.config import Settings
from jetbridge.errors import Unprocessable
from jetbridge.ops.crypto import DataKey
from jetbridge.payments.test_provider import APPROVE, DECLINE, Ledger, create_test_provider
from jetbridge.storage.schema import bookings, events
from support.auth import bearer
from support.servers import serve_app

DAY = (datetime.now(UTC) + timedelta(days=40)).date()
FLIGHT = f"LX0100-{DAY.isoformat()}"
PASSPORT = "X9Q4417B2"


AGENT: dict[str, str] = {}
OPERATOR: dict[str, str] = {}


@dataclass
class Served:
    base: str
    platform: Platform
    ledger: Ledger


@pytest.fixture
def served(database_url: str) -> Iterator[Served]:
    ledger = Ledger(timeout_seconds=2)
    with serve_app(create_test_provider(ledger)) as provider:
        settings = Settings(
            database_url=database_url, payments_url=provider, delivery_poll_seconds=0.05
        )
        app = create_app(settings)
        with serve_app(app) as base:
            platform = app.state.platform
            with platform.backbone.transaction() as conn:
                import_schedule(conn, demo_schedule(start=DAY, days=1))
            # An airline's agent books for named customers; the operator follows the sagas.
            AGENT.clear()
            AGENT.update(bearer(app, roles=("agent",), tenant="LX"))
            OPERATOR.clear()
            OPERATOR.update(bearer(app))
            yield Served(base, platform, ledger)


def body(family: str = "Lovelace", card: str = APPROVE, **changes: Any) -> dict[str, Any]:
    passenger = {
        "given_name": "Ada", "family_name": family,
        "document": {"number": PASSPORT, "country": "GBR", "expires": "2031-05-01"},
    }  # fmt: skip
    request = {
        "flight_id": FLIGHT, "cabin": "economy", "customer_id": "idem-1",
        "passengers": [passenger], "payment": {"card": card},
    }  # fmt: skip
    return request | changes


def post(base: str, payload: dict[str, Any], key: str) -> httpx.Response:
    return httpx.post(
        f"{base}/api/bookings",
        json=payload,
        headers={**AGENT, "Idempotency-Key": key},
        timeout=30,
    )


def rows_with_key(platform: Platform, key: str) -> int:
    with platform.backbone.reading() as conn:
        query = select(func.count()).where(bookings.c.idempotency_key == key)
        return int(conn.execute(query).scalar_one())


def requested_events(platform: Platform, booking_id: str) -> int:
    with platform.backbone.reading() as conn:
        query = select(func.count()).where(
            events.c.type == "booking.requested", events.c.partition_key == booking_id
        )
        return int(conn.execute(query).scalar_one())


def settled(base: str, booking_id: str) -> dict[str, Any]:
    deadline = time.time() + 30
    while time.time() < deadline:
        booking = httpx.get(f"{base}/api/bookings/{booking_id}", headers=OPERATOR).json()
        execution = httpx.get(
            f"{base}/api/workflows/executions/booking-{booking_id}", headers=OPERATOR
        ).json()
        if booking["status"] in {"confirmed", "failed"} and execution["status"] != "RUNNING":
            return dict(booking)
        time.sleep(0.05)
    raise AssertionError("the booking did not settle")


def test_the_same_request_under_the_same_key_is_one_booking_and_one_charge(
    served: Served,
) -> None:
    first = post(served.base, body(card="4242 4242 4242 4242"), "idem-same-0001")
    assert first.status_code == 202, first.text
    again = post(served.base, body(card=APPROVE), "idem-same-0001")
    assert again.status_code == 200, again.text
    assert again.json()["booking_id"] == first.json()["booking_id"]
    assert again.json()["locator"] == first.json()["locator"]
    assert again.headers["Location"] == first.headers["Location"]
    assert settled(served.base, first.json()["booking_id"])["status"] == "confirmed"
    assert post(served.base, body(), "idem-same-0001").status_code == 200
    assert rows_with_key(served.platform, "idem-same-0001") == 1
    assert requested_events(served.platform, first.json()["booking_id"]) == 1
    assert len(served.ledger.intents) == 1


@pytest.mark.parametrize(
    "changed",
    [
        body(family="Byron"),
        body(card=DECLINE),
        body(customer_id="idem-2"),
        body(cabin="business"),
        body(passengers=[{"given_name": "Ada", "family_name": "Lovelace"}]),
    ],
    ids=["passenger", "card", "customer", "cabin", "document"],
)
def test_another_request_under_a_used_key_is_refused_and_shows_nothing_of_the_booking(
    served: Served, changed: dict[str, Any]
) -> None:
    first = post(served.base, body(), "idem-other-001").json()
    refused = post(served.base, changed, "idem-other-001")
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"] == "Unprocessable"
    assert refused.json()["message"].startswith("Idempotency-Key: ")
    for revealed in (first["booking_id"], first["locator"], "Lovelace", PASSPORT, "4242"):
        assert revealed not in refused.text
    assert rows_with_key(served.platform, "idem-other-001") == 1


def test_another_caller_with_the_same_key_gets_a_booking_of_its_own(served: Served) -> None:
    bookings_service = served.platform.bookings
    assert bookings_service is not None

    def request(family: str) -> BookingRequest:
        passengers = [Passenger(given_name="Ada", family_name=family)]
        return BookingRequest(
            flight_id=FLIGHT, cabin="economy", customer_id="idem-3", passengers=passengers
        )

    key = "shared-key-0001"
    alice, created = bookings_service.create(
        request=request("Lovelace"), card=APPROVE, caller="user:alice", idempotency_key=key
    )
    assert created
    bob, created = bookings_service.create(
        request=request("Byron"), card=APPROVE, caller="user:bob", idempotency_key=key
    )
    assert created and bob["booking_id"] != alice["booking_id"]
    assert [p["family_name"] for p in bob["passengers"]] == ["Byron"]
    mallory, created = bookings_service.create(
        request=request("Lovelace"), card=APPROVE, caller="user:mallory", idempotency_key=key
    )
    assert created and mallory["booking_id"] not in {alice["booking_id"], bob["booking_id"]}
    repeat, created = bookings_service.create(
        request=request("Lovelace"), card=APPROVE, caller="user:alice", idempotency_key=key
    )
    assert not created and repeat["booking_id"] == alice["booking_id"]
    with pytest.raises(Unprocessable):
        bookings_service.create(
            request=request("Byron"), card=APPROVE, caller="user:alice", idempotency_key=key
        )
    assert rows_with_key(served.platform, key) == 3


def race(base: str, payloads: list[dict[str, Any]], key: str) -> list[httpx.Response]:
    """Send every payload at once under one key, each from its own thread."""
    start = threading.Barrier(len(payloads))

    def send(payload: dict[str, Any]) -> httpx.Response:
        start.wait(timeout=10)
        return post(base, payload, key)

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(payloads)) as pool:
        return list(pool.map(send, payloads))


def test_simultaneous_identical_requests_under_one_key_make_one_booking(served: Served) -> None:
    answers = race(served.base, [body()] * 12, "idem-race-0001")
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] * 11 + [202], [a.text for a in answers]
    (booking_id,) = {answer.json()["booking_id"] for answer in answers}
    assert rows_with_key(served.platform, "idem-race-0001") == 1
    assert settled(served.base, booking_id)["status"] == "confirmed"
    assert requested_events(served.platform, booking_id) == 1
    assert len(served.ledger.intents) == 1


def test_simultaneous_different_requests_under_one_key_make_one_booking(served: Served) -> None:
    payloads = [body(family="Lovelace"), body(family="Byron")] * 5
    answers = race(served.base, payloads, "idem-race-0002")
    created = [a for a in answers if a.status_code == 202]
    assert len(created) == 1, [a.text for a in answers]
    winner = created[0].json()
    family = winner["passengers"][0]["family_name"]
    for payload, answer in zip(payloads, answers, strict=True):
        if payload["passengers"][0]["family_name"] == family:
            assert answer.status_code in {200, 202}
            assert answer.json()["booking_id"] == winner["booking_id"]
        else:
            assert answer.status_code == 422, answer.text
    assert rows_with_key(served.platform, "idem-race-0002") == 1


def test_the_stored_fingerprint_is_keyed_and_holds_no_personal_data(served: Served) -> None:
    post(served.base, body(), "idem-stored-001")
    with served.platform.backbone.reading() as conn:
        row = conn.execute(
            select(bookings.c.caller, bookings.c.request_fingerprint).where(
                bookings.c.idempotency_key == "idem-stored-001"
            )
        ).one()
    assert row.caller.startswith("key:")  # the agent's API key: keys are scoped to it
    assert row.request_fingerprint.startswith("mac:v1:test:")
    for secret in ("Lovelace", "Ada", PASSPORT, APPROVE, "idem-1"):
        assert secret not in row.request_fingerprint


@pytest.mark.parametrize(
    "key",
    [b"short", b"x" * 129, b"key with spaces", "cl\xe9-cl\xe9-cl\xe9".encode("latin-1"), b""],
)
def test_malformed_keys_are_refused_before_anything_is_stored(served: Served, key: bytes) -> None:
    response = httpx.post(
        f"{served.base}/api/bookings", json=body(), headers={"Idempotency-Key": key}
    )
    assert response.status_code in {400, 422}, response.text
    assert "Idempotency-Key" in response.json()["message"]
    with served.platform.backbone.reading() as conn:
        assert conn.execute(select(func.count()).select_from(bookings)).scalar_one() == 0


def test_a_repeat_is_recognised_while_the_key_that_fingerprinted_it_is_in_the_ring(
    database_url: str,
) -> None:
    old, new = DataKey.generate("k2025"), DataKey.generate("k2026")
    request = BookingRequest(
        flight_id=FLIGHT, cabin="economy", customer_id="idem-4",
        passengers=[Passenger(given_name="Ada", family_name="Lovelace")],
    )  # fmt: skip

    def book_with(*keys: DataKey) -> tuple[dict[str, Any], bool]:
        settings = Settings(
            database_url=database_url,
            run_workers=False,
            data_keys=",".join(key.entry() for key in keys),
        )
        platform = build_platform(settings)
        platform.prepare()
        try:
            with platform.backbone.transaction() as conn:
                import_schedule(conn, demo_schedule(start=DAY, days=1))
            assert platform.bookings is not None
            return platform.bookings.create(
                request=request, card=APPROVE, caller="user:ada", idempotency_key="rotate-0001"
            )
        finally:
            for close in platform.closers:
                close()
            platform.engine.dispose()

    first, created = book_with(old)
    assert created
    repeat, created = book_with(new, old)
    assert not created and repeat["booking_id"] == first["booking_id"]
    with pytest.raises(Unprocessable, match="Idempotency-Key"):
        book_with(new)


def test_unicode_names_repeat_as_the_same_request(served: Served) -> None:
    name = "\u0141ukasiewicz-\u202e\U0001f6eb"
    first = post(served.base, body(family=name), "idem-unicode-01")
    assert first.status_code == 202, first.text
    again = post(served.base, body(family=name), "idem-unicode-01")
    assert (again.status_code, again.json()["booking_id"]) == (200, first.json()["booking_id"])
    raw = httpx.post(
        f"{served.base}/api/bookings",
        content=json.dumps(body()).replace("Lovelace", "\\ud800").encode(),
        headers={"Idempotency-Key": "idem-unicode-02", "Content-Type": "application/json"},
    )
    assert raw.status_code == 400 and "lone surrogate" in raw.text, raw.text
    assert rows_with_key(served.platform, "idem-unicode-02") == 0
