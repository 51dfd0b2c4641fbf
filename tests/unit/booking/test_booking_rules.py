"""Booking domain rules: money, identifiers, loyalty, refunds, seat maps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from jetbridge.booking.identifiers import is_record_locator, new_record_locator, ticket_number
from jetbridge.booking.loyalty import Tier, points_for, tier_for
from jetbridge.booking.money import CurrencyMismatch, Money
from jetbridge.booking.refunds import refund_for
from jetbridge.booking.seatmap import seat_map
from jetbridge.booking.service import BookingRequest


def test_money_is_integer_minor_units() -> None:
    assert (Money(1999, "CHF") + Money(1, "CHF")).amount == 2000
    assert Money(12345, "EUR").format() == "123.45 EUR"
    assert Money(500, "JPY").format() == "500 JPY"
    assert Money(1001, "EUR").percent(50) == Money(501, "EUR")
    with pytest.raises(CurrencyMismatch):
        Money(1, "EUR") + Money(1, "USD")
    with pytest.raises(TypeError):
        Money(1.5, "EUR")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ISO 4217"):
        Money(1, "euro")


def test_record_locators_are_six_unambiguous_characters() -> None:
    locators = {new_record_locator() for _ in range(2000)}
    assert len(locators) > 1990
    assert all(is_record_locator(locator) for locator in locators)
    assert not any(set(locator) & set("01OIL") for locator in locators)
    assert not is_record_locator("ABC1EF")


def test_ticket_numbers_have_thirteen_digits() -> None:
    assert ticket_number("724", 42) == "7240000000042"
    with pytest.raises(ValueError, match="accounting code"):
        ticket_number("72", 1)
    with pytest.raises(ValueError, match="10 digits"):
        ticket_number("724", 10**10)


@pytest.mark.parametrize(
    ("points", "tier"),
    [
        (0, Tier.BRONZE),
        (49_999, Tier.BRONZE),
        (50_000, Tier.SILVER),
        (99_999, Tier.SILVER),
        (100_000, Tier.GOLD),
    ],
)
def test_tiers(points: int, tier: Tier) -> None:
    assert tier_for(points) == tier


def test_points_scale_with_fare_cabin_and_tier() -> None:
    assert points_for(fare_minor=25_000, cabin="economy", tier=Tier.BRONZE) == 2_500
    assert points_for(fare_minor=25_000, cabin="business", tier=Tier.BRONZE) == 7_500
    assert points_for(fare_minor=25_000, cabin="economy", tier=Tier.GOLD) == 3_750


DEPARTURE = datetime(2026, 12, 20, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("booked", "cancelled", "refund"),
    [
        (DEPARTURE - timedelta(days=30), DEPARTURE - timedelta(days=30, hours=-2), 40_000),
        (DEPARTURE - timedelta(days=30), DEPARTURE - timedelta(days=10), 35_000),
        (DEPARTURE - timedelta(days=30), DEPARTURE - timedelta(hours=48), 20_000),
        (DEPARTURE - timedelta(days=30), DEPARTURE - timedelta(hours=5), 0),
        (DEPARTURE - timedelta(days=30), DEPARTURE + timedelta(hours=1), 0),
    ],
)
def test_refund_rules(booked: datetime, cancelled: datetime, refund: int) -> None:
    decision = refund_for(
        paid=Money(40_000, "EUR"), booked_at=booked, departure=DEPARTURE, cancelled_at=cancelled
    )
    assert decision.refund == Money(refund, "EUR")
    assert decision.rule


def test_seat_maps_per_aircraft() -> None:
    narrow = seat_map("A320")
    assert narrow["business"][:4] == ["1A", "1C", "1D", "1F"]
    assert len(narrow["economy"]) == 26 * 6
    assert set(seat_map("B77W")) == {"business", "premium", "economy"}
    assert seat_map("unknown") == narrow


def test_validation_errors_never_quote_passenger_data() -> None:
    with pytest.raises(ValidationError) as failure:
        BookingRequest(
            flight_id="LX0100-2026-12-01", cabin="economy", customer_id="c1",
            passengers=[{
                "given_name": "Ada<", "family_name": "Lovelace\x01",
                "document": {"number": "x7734120", "country": "GBR", "expires": "2031-05-01"},
            }],
        )  # fmt: skip
    message = str(failure.value)
    assert "passengers.0.given_name" in message and "passengers.0.document.number" in message
    assert not any(value in message for value in ("Ada", "Lovelace", "x7734120"))
