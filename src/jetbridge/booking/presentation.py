"""How bookings read to people: times at the airports in their local time with the zone named,
and why a booking failed in plain words."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jetbridge.flights.fids import zone_for


def moment(timestamp: float, airport: str) -> dict[str, str]:
    """A time in UTC and at the airport: `{"utc", "local", "zone", "abbreviation"}`."""
    at = datetime.fromtimestamp(timestamp, UTC)
    zone = zone_for(airport)
    local = at.astimezone(zone)
    return {
        "utc": at.isoformat(),
        "local": local.isoformat(),
        "zone": str(zone.key),
        "abbreviation": local.strftime("%Z"),
    }


def with_local_times(offer: dict[str, Any]) -> dict[str, Any]:
    """An offer (or flight) with its departure and arrival also at the airports' local time."""
    departure = datetime.fromisoformat(offer["departure"]).timestamp()
    arrival = datetime.fromisoformat(offer["arrival"]).timestamp()
    return offer | {
        "departure_local": moment(departure, offer["origin"]),
        "arrival_local": moment(arrival, offer["destination"]),
    }


_DECLINES = {
    "insufficient_funds": "Your card was declined: the account does not have enough funds. "
    "Nothing was charged. Pay with another card.",
    "card_declined": "Your card was declined by the bank that issued it. Nothing was charged. "
    "Pay with another card, or ask your bank why.",
    "expired_card": "Your card was declined because it has expired. Nothing was charged.",
}


def failure_message(failure: str | None) -> str | None:
    """Why a booking did not go through, in words a traveller understands."""
    if not failure:
        return None
    for code, message in _DECLINES.items():
        if code in failure:
            return message
    if "declined" in failure:
        return "Your card was declined. Nothing was charged. Pay with another card."
    if "seat" in failure and ("left" in failure or "taken" in failure or "lost" in failure):
        return "The seats you wanted were sold before the payment finished. Nothing was charged."
    if "payment" in failure or "provider" in failure:
        return "The payment could not be completed. Nothing was charged; please try again."
    return f"The booking could not be completed: {failure}"
