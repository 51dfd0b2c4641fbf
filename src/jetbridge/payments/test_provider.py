"""The built-in test payment provider: a real HTTP service with documented test cards.

| Card number        | Result                                     |
|--------------------|--------------------------------------------|
| 4242 4242 4242 4242 | approved                                   |
| 4000 0000 0000 0002 | declined (card_declined)                   |
| 4000 0000 0000 9995 | declined (insufficient_funds)              |
| 4000 0000 0000 0119 | provider error (HTTP 500), nothing charged  |
| 4000 0000 0000 0259 | no answer within the client's timeout      |

Every POST is idempotent by its `Idempotency-Key` header: a repeated key returns the first answer.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from typing import Any

from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse

APPROVE = "4242424242424242"
DECLINE = "4000000000000002"
INSUFFICIENT_FUNDS = "4000000000009995"
PROVIDER_ERROR = "4000000000000119"
TIMEOUT = "4000000000000259"


class Ledger:
    """The provider's own state: intents, refunds and answers per idempotency key."""

    def __init__(self, *, timeout_seconds: float = 30.0) -> None:
        self.intents: dict[str, dict[str, Any]] = {}
        self.answers: dict[str, tuple[int, dict[str, Any]]] = {}
        self.calls: list[tuple[str, str]] = []
        self.timeout_seconds = timeout_seconds
        self._ids = itertools.count(1)
        self.lock = threading.Lock()
        self._key_locks: dict[str, asyncio.Lock] = {}

    def key_lock(self, key: str) -> asyncio.Lock:
        with self.lock:
            return self._key_locks.setdefault(key, asyncio.Lock())

    def next_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):08d}"

    def captured_total(self, intent_id: str) -> int:
        return int(self.intents[intent_id].get("amount_captured", 0))


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"code": code, "message": message}}


def create_test_provider(ledger: Ledger | None = None) -> FastAPI:
    ledger = ledger or Ledger()
    app = FastAPI(title="jetbridge test payment provider")
    app.state.ledger = ledger

    async def idempotent(key: str | None, path: str, work: Any) -> JSONResponse:
        if not key:
            status, body = _error(
                400, "missing_idempotency_key", "Idempotency-Key header is required"
            )
            return JSONResponse(body, status_code=status)
        answer_key = f"{path}|{key}"
        async with ledger.key_lock(answer_key):
            ledger.calls.append((path, key))
            if answer_key not in ledger.answers:
                status, body = await work()
                if status < 500:
                    ledger.answers[answer_key] = (status, body)
                return JSONResponse(body, status_code=status)
            status, body = ledger.answers[answer_key]
            return JSONResponse(body, status_code=status)

    @app.post("/v1/payment_intents")
    async def create_intent(
        request: Request, idempotency_key: str | None = Header(None)
    ) -> JSONResponse:
        body = await request.json()

        async def work() -> tuple[int, dict[str, Any]]:
            card = str(body.get("payment_method", {}).get("card", {}).get("number", "")).replace(
                " ", ""
            )
            amount, currency = body.get("amount"), body.get("currency")
            if not isinstance(amount, int) or amount <= 0 or not isinstance(currency, str):
                return _error(
                    400, "invalid_request", "amount must be a positive integer, currency a code"
                )
            if card == TIMEOUT:
                await asyncio.sleep(ledger.timeout_seconds)
            if card == PROVIDER_ERROR:
                return _error(500, "processing_error", "the provider failed to process the payment")
            if card in {DECLINE, INSUFFICIENT_FUNDS}:
                code = "card_declined" if card == DECLINE else "insufficient_funds"
                return _error(402, code, f"the card was declined ({code})")
            if card != APPROVE:
                return _error(402, "card_declined", "unknown test card")
            intent_id = ledger.next_id("pi")
            intent: dict[str, Any] = {"id": intent_id, "amount": amount, "currency": currency}
            intent |= {"status": "requires_capture", "amount_captured": 0, "amount_refunded": 0}
            ledger.intents[intent_id] = intent
            return 200, dict(intent)

        return await idempotent(idempotency_key, "/v1/payment_intents", work)

    @app.post("/v1/payment_intents/{intent_id}/{action}")
    async def change_intent(
        intent_id: str, action: str, idempotency_key: str | None = Header(None)
    ) -> JSONResponse:
        async def work() -> tuple[int, dict[str, Any]]:
            intent = ledger.intents.get(intent_id)
            if intent is None or action not in {"capture", "cancel"}:
                return _error(
                    404, "resource_missing", f"no such payment intent action {intent_id}/{action}"
                )
            if intent["status"] != "requires_capture":
                return _error(
                    400, "payment_intent_unexpected_state", f"intent is {intent['status']}"
                )
            if action == "capture":
                intent |= {"status": "succeeded", "amount_captured": intent["amount"]}
            else:
                intent["status"] = "canceled"
            return 200, dict(intent)

        return await idempotent(idempotency_key, f"/v1/payment_intents/{intent_id}/{action}", work)

    @app.post("/v1/refunds")
    async def refund(request: Request, idempotency_key: str | None = Header(None)) -> JSONResponse:
        body = await request.json()

        async def work() -> tuple[int, dict[str, Any]]:
            intent = ledger.intents.get(str(body.get("payment_intent")))
            amount = body.get("amount")
            if intent is None or intent["status"] != "succeeded":
                return _error(
                    400, "charge_not_refundable", "only captured payments can be refunded"
                )
            if (
                not isinstance(amount, int)
                or not 0 < amount <= intent["amount_captured"] - intent["amount_refunded"]
            ):
                return _error(400, "amount_too_large", "refund exceeds the captured amount")
            intent["amount_refunded"] += amount
            refund_id = ledger.next_id("re")
            answer = {"id": refund_id, "payment_intent": intent["id"], "amount": amount}
            return 200, answer | {"currency": intent["currency"], "status": "refunded"}

        return await idempotent(idempotency_key, "/v1/refunds", work)

    return app
