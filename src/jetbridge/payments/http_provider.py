"""A PaymentIntents-style HTTP provider client (the built-in test provider speaks it too)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from jetbridge.booking.money import Money
from jetbridge.ops import metrics
from jetbridge.ops.outbound import OutboundPolicy, OutboundRefused, sync_client
from jetbridge.ops.tracing import current_traceparent
from jetbridge.payments.provider import (
    PaymentDeclined,
    PaymentError,
    PaymentResult,
    PaymentUnavailable,
)


class HttpPaymentProvider:
    """Calls `POST /v1/payment_intents[/{id}/capture|cancel]` and `POST /v1/refunds`."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        timeout: float = 10.0,
        policy: OutboundPolicy | None = None,
    ) -> None:
        # `base_url` comes from the operator's configuration: its origin is allowed even when
        # internal (the built-in test provider runs on the platform itself).
        allowed = (policy or OutboundPolicy()).allowing_origin(base_url)
        self._client = sync_client(
            allowed,
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            headers={"Authorization": f"Bearer {api_key}"},
        )

    def close(self) -> None:
        self._client.close()

    def authorize(self, *, key: str, amount: Money, card: str, description: str) -> PaymentResult:
        body = {
            "amount": amount.amount,
            "currency": amount.currency.lower(),
            "payment_method": {"card": {"number": card}},
            "capture_method": "manual",
            "description": description,
        }
        return self._call("authorize", "/v1/payment_intents", body, key)

    def capture(self, *, key: str, payment_id: str) -> PaymentResult:
        return self._call("capture", f"/v1/payment_intents/{payment_id}/capture", {}, key)

    def void(self, *, key: str, payment_id: str) -> PaymentResult:
        return self._call("void", f"/v1/payment_intents/{payment_id}/cancel", {}, key)

    def refund(self, *, key: str, payment_id: str, amount: Money) -> PaymentResult:
        body = {"payment_intent": payment_id, "amount": amount.amount}
        return self._call("refund", "/v1/refunds", body, key)

    def _call(self, operation: str, path: str, body: dict[str, Any], key: str) -> PaymentResult:
        """One provider call, timed by operation and outcome (ok, or the error's kind)."""
        started = time.perf_counter()
        outcome = "ok"
        try:
            return self._send(path, body, key)
        except PaymentError as exc:
            outcome = type(exc).__name__.removeprefix("Payment").lower() or "error"
            raise
        finally:
            elapsed = time.perf_counter() - started
            metrics.PAYMENT_LATENCY.labels(operation, outcome).observe(elapsed)

    def _send(self, path: str, body: dict[str, Any], key: str) -> PaymentResult:
        try:
            headers = {"Idempotency-Key": key}
            traceparent = current_traceparent()
            if traceparent is not None:
                headers["traceparent"] = traceparent
            response = self._client.post(path, json=body, headers=headers)
        except OutboundRefused as exc:
            raise PaymentError(str(exc), code="refused") from None
        except httpx.TimeoutException:
            raise PaymentUnavailable(
                f"payment provider timed out on {path}", code="timeout"
            ) from None
        except httpx.HTTPError as exc:
            raise PaymentUnavailable(
                f"payment provider unreachable: {exc}", code="unreachable"
            ) from None
        payload = _json(response)
        if response.status_code >= 500 or response.status_code == 429:
            raise PaymentUnavailable(_message(payload, response), code="provider_error")
        if response.status_code == 402:
            raise PaymentDeclined(_message(payload, response), code=_code(payload, "card_declined"))
        if response.status_code >= 400:
            raise PaymentError(_message(payload, response), code=_code(payload, "invalid_request"))
        return PaymentResult(
            payment_id=str(payload.get("payment_intent") or payload["id"]),
            status=_status(str(payload["status"])),
            amount=Money(int(payload["amount"]), str(payload["currency"]).upper()),
        )


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _message(payload: dict[str, Any], response: httpx.Response) -> str:
    error = payload.get("error") or {}
    return str(error.get("message") or f"HTTP {response.status_code}")


def _code(payload: dict[str, Any], default: str) -> str:
    return str((payload.get("error") or {}).get("code") or default)


def _status(provider_status: str) -> str:
    return {
        "requires_capture": "authorized",
        "succeeded": "captured",
        "canceled": "voided",
        "refunded": "refunded",
    }.get(provider_status, provider_status)
