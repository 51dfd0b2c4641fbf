"""The payment provider interface: authorize, capture, void, refund, each idempotent by key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from jetbridge.booking.money import Money


class PaymentError(Exception):
    """Base of payment failures; `retryable` says whether the same call may succeed later."""

    retryable = False

    def __init__(self, message: str, *, code: str = "payment_error") -> None:
        super().__init__(message)
        self.code = code


class PaymentDeclined(PaymentError):
    """The issuer refused: do not retry with the same card."""


class PaymentUnavailable(PaymentError):
    """The provider failed or timed out: retrying with the same idempotency key is safe."""

    retryable = True


@dataclass(frozen=True, slots=True)
class PaymentResult:
    payment_id: str
    status: str  # authorized | captured | voided | refunded
    amount: Money


class PaymentProvider(Protocol):
    def authorize(
        self, *, key: str, amount: Money, card: str, description: str
    ) -> PaymentResult: ...

    def capture(self, *, key: str, payment_id: str) -> PaymentResult: ...

    def void(self, *, key: str, payment_id: str) -> PaymentResult: ...

    def refund(self, *, key: str, payment_id: str, amount: Money) -> PaymentResult: ...
