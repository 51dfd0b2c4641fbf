"""Loyalty rules: points per confirmed booking and tiers by balance."""

from __future__ import annotations

from enum import StrEnum

SILVER_POINTS = 50_000
GOLD_POINTS = 100_000
_CABIN_MULTIPLIER = {"economy": 1, "premium": 2, "business": 3, "first": 4}


class Tier(StrEnum):
    BRONZE = "bronze"
    SILVER = "silver"
    GOLD = "gold"


def tier_for(points: int) -> Tier:
    if points >= GOLD_POINTS:
        return Tier.GOLD
    if points >= SILVER_POINTS:
        return Tier.SILVER
    return Tier.BRONZE


def points_for(*, fare_minor: int, cabin: str, tier: Tier) -> int:
    """Ten points per major currency unit of fare, times the cabin multiplier, plus tier bonus."""
    base = fare_minor // 100 * 10 * _CABIN_MULTIPLIER.get(cabin, 1)
    bonus = {Tier.BRONZE: 0, Tier.SILVER: 25, Tier.GOLD: 50}[tier]
    return base + base * bonus // 100
