"""Customer cancellation: how much of a paid fare comes back, by when the passenger cancels."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from jetbridge.booking.money import Money

CANCELLATION_FEE_MINOR = 5_000


@dataclass(frozen=True, slots=True)
class RefundDecision:
    refund: Money
    rule: str


def refund_for(
    *, paid: Money, booked_at: datetime, departure: datetime, cancelled_at: datetime
) -> RefundDecision:
    """Refund rules, most generous first; all times are aware UTC."""
    if cancelled_at >= departure:
        return RefundDecision(Money(0, paid.currency), "after departure: no refund")
    if cancelled_at - booked_at <= timedelta(hours=24) and departure - booked_at >= timedelta(
        days=7
    ):
        return RefundDecision(paid, "within 24 hours of booking: full refund")
    before = departure - cancelled_at
    if before >= timedelta(hours=72):
        fee = Money(min(CANCELLATION_FEE_MINOR, paid.amount), paid.currency)
        return RefundDecision(paid - fee, "72 hours or more before departure: refund less fee")
    if before >= timedelta(hours=24):
        return RefundDecision(paid.percent(50), "24 to 72 hours before departure: half refund")
    return RefundDecision(Money(0, paid.currency), "less than 24 hours before departure: no refund")
