"""A booking's personal data, sealed at rest: its passengers (names, travel documents) and, until
the booking settles, the payment card. Each value is bound to its booking and field.

Nothing else holds these values: events carry counts, the saga carries the booking id only.
"""

from __future__ import annotations

import json
from typing import Any

from jetbridge.ops.crypto import Binding, Keyring

PASSENGERS = "passengers"
PAYMENT_CARD = "payment_card"


class PersonalData:
    """Seals and opens the personal fields of bookings with the platform's keyring."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    def seal(self, booking_id: str, field: str, value: Any) -> str:
        return self.keyring.seal(json.dumps(value).encode(), binding=_binding(booking_id, field))

    def open(self, booking_id: str, field: str, sealed: str) -> Any:
        return json.loads(self.keyring.open(sealed, binding=_binding(booking_id, field)))


def _binding(booking_id: str, field: str) -> Binding:
    return Binding(table="bookings", row=booking_id, field=field)
