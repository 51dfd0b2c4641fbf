"""Idempotency keys of booking requests: scoped to the caller, bound to the request they named.

A key names at most one booking per caller. The booking keeps a keyed digest (fingerprint) of
the request that made it, so a repeat of that request is recognised and a different request
under the same key is refused instead of being answered with someone else's booking.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import TYPE_CHECKING, Any

from jetbridge.errors import InvalidRequest, Unprocessable
from jetbridge.ops.crypto import Keyring

if TYPE_CHECKING:
    from jetbridge.booking.service import BookingRequest

HEADER = "Idempotency-Key"
PURPOSE = "booking-request"
KEY = re.compile(r"^[A-Za-z0-9_.:-]{8,128}$")
CALLER_LENGTH = 255


def check_key(key: str) -> None:
    if not KEY.fullmatch(key):
        raise InvalidRequest(f"{HEADER}: 8 to 128 letters, digits, '.', ':', '_' or '-'")


def check_caller(caller: str) -> None:
    if not 0 < len(caller) <= CALLER_LENGTH:
        raise InvalidRequest(f"caller: an identity of 1 to {CALLER_LENGTH} characters")


def request_document(*, caller: str, key: str, request: BookingRequest, card: str) -> bytes:
    """The canonical JSON of everything that defines a booking request, bound to its caller
    and key; the card enters as its SHA-256 only."""
    document: dict[str, Any] = {
        "caller": caller,
        "idempotency_key": key,
        "flight_id": request.flight_id,
        "cabin": request.cabin,
        "customer_id": request.customer_id,
        # A passenger without a chosen seat reads as before seats could be chosen, so requests
        # recorded then are still recognised when repeated.
        "passengers": [
            p.model_dump(mode="json", exclude=None if p.seat else {"seat"})
            for p in request.passengers
        ],
        "card": hashlib.sha256(card.encode()).hexdigest(),
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def fingerprint(keyring: Keyring, document: bytes) -> str:
    """The keyed digest stored with a booking: it reveals nothing of the request without the
    platform's data keys (names and card numbers are too few to hide behind a bare hash)."""
    return keyring.digest(document, purpose=PURPOSE)


def check_repeat(keyring: Keyring, stored: str | None, document: bytes) -> None:
    """Accept a repeat of the request that made a booking; refuse anything else under its key."""
    if stored is None or not keyring.digest_matches(stored, document, purpose=PURPOSE):
        raise Unprocessable(
            f"{HEADER}: this key was already used for a different booking request; "
            "repeat that request exactly, or send a new key for a new booking"
        )
