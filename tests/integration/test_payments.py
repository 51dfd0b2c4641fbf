"""The HTTP payment provider client against the built-in test provider, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from jetbridge.booking.money import Money
from jetbridge.payments.http_provider import HttpPaymentProvider
from jetbridge.payments.provider import PaymentDeclined, PaymentError, PaymentUnavailable
from jetbridge.payments.test_provider import (
    APPROVE,
    DECLINE,
    INSUFFICIENT_FUNDS,
    PROVIDER_ERROR,
    TIMEOUT,
    Ledger,
    create_test_provider,
)
from support.servers import serve_app


@pytest.fixture(scope="module")
def provider_url() -> Iterator[tuple[str, Ledger]]:
    ledger = Ledger(timeout_seconds=2.0)
    with serve_app(create_test_provider(ledger)) as url:
        yield url, ledger


@pytest.fixture
def provider(provider_url: tuple[str, Ledger]) -> Iterator[HttpPaymentProvider]:
    client = HttpPaymentProvider(base_url=provider_url[0], api_key="test", timeout=0.5)
    yield client
    client.close()


def test_authorize_capture_refund(
    provider: HttpPaymentProvider, provider_url: tuple[str, Ledger]
) -> None:
    auth = provider.authorize(
        key="k1", amount=Money(25_000, "EUR"), card=APPROVE, description="PNR ABC234"
    )
    assert auth.status == "authorized"
    assert auth.amount == Money(25_000, "EUR")
    captured = provider.capture(key="k1-capture", payment_id=auth.payment_id)
    assert captured.status == "captured"
    refund = provider.refund(
        key="k1-refund", payment_id=auth.payment_id, amount=Money(10_000, "EUR")
    )
    assert refund.status == "refunded"
    assert refund.payment_id == auth.payment_id
    assert provider_url[1].intents[auth.payment_id]["amount_refunded"] == 10_000


def test_every_call_is_idempotent_by_key(
    provider: HttpPaymentProvider, provider_url: tuple[str, Ledger]
) -> None:
    first = provider.authorize(key="same", amount=Money(100, "EUR"), card=APPROVE, description="x")
    again = provider.authorize(key="same", amount=Money(100, "EUR"), card=APPROVE, description="x")
    assert again.payment_id == first.payment_id
    provider.capture(key="cap-same", payment_id=first.payment_id)
    assert provider.capture(key="cap-same", payment_id=first.payment_id).status == "captured"
    assert provider_url[1].captured_total(first.payment_id) == 100


def test_void_releases_an_authorisation(provider: HttpPaymentProvider) -> None:
    auth = provider.authorize(key="v1", amount=Money(500, "CHF"), card=APPROVE, description="x")
    assert provider.void(key="v1-void", payment_id=auth.payment_id).status == "voided"
    with pytest.raises(PaymentError, match="canceled"):
        provider.capture(key="v1-capture", payment_id=auth.payment_id)


@pytest.mark.parametrize(
    ("card", "code"), [(DECLINE, "card_declined"), (INSUFFICIENT_FUNDS, "insufficient_funds")]
)
def test_declines_are_not_retryable(provider: HttpPaymentProvider, card: str, code: str) -> None:
    with pytest.raises(PaymentDeclined) as caught:
        provider.authorize(key=f"d-{card}", amount=Money(100, "EUR"), card=card, description="x")
    assert caught.value.code == code
    assert not caught.value.retryable


def test_provider_errors_and_timeouts_are_retryable(provider: HttpPaymentProvider) -> None:
    with pytest.raises(PaymentUnavailable) as error:
        provider.authorize(key="e1", amount=Money(100, "EUR"), card=PROVIDER_ERROR, description="x")
    assert error.value.retryable
    with pytest.raises(PaymentUnavailable, match="timed out"):
        provider.authorize(key="t1", amount=Money(100, "EUR"), card=TIMEOUT, description="x")


def test_over_refund_is_refused(provider: HttpPaymentProvider) -> None:
    auth = provider.authorize(key="r1", amount=Money(100, "EUR"), card=APPROVE, description="x")
    provider.capture(key="r1-c", payment_id=auth.payment_id)
    with pytest.raises(PaymentError, match="exceeds"):
        provider.refund(key="r1-r", payment_id=auth.payment_id, amount=Money(101, "EUR"))


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (
            {"amount": 100, "currency": "eur", "payment_method": {"card": {"number": APPROVE}}},
            {},
            400,
        ),
        ({"amount": -1, "currency": "eur"}, {"Idempotency-Key": "h1"}, 400),
        ({"amount": "100", "currency": "eur"}, {"Idempotency-Key": "h2"}, 400),
    ],
)
def test_hostile_requests_to_the_test_provider(
    provider_url: tuple[str, Ledger], body: dict[str, object], headers: dict[str, str], status: int
) -> None:
    response = httpx.post(f"{provider_url[0]}/v1/payment_intents", json=body, headers=headers)
    assert response.status_code == status
    assert response.json()["error"]["message"]
