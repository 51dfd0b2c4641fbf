"""The signed link a passenger answers an offer with: it names the booking and the disrupted
flight, expires, and is signed with a key derived from the data keys (every process shares
it). A forged or altered link fails the signature; a used one fails because the booking's
choice was made already."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from jetbridge.errors import Forbidden, InvalidRequest

PREFIX = "v1"
MAX_LINK_CHARS = 2048


class LinkExpired(Forbidden):
    """The link's time to choose has passed (HTTP 403)."""


@dataclass(frozen=True, slots=True)
class Choice:
    """What a valid link carries."""

    booking_id: str
    flight_key: str
    expires_at: int


class LinkSigner:
    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def sign(self, choice: Choice) -> str:
        body = json.dumps(
            {
                "b": choice.booking_id,
                "f": choice.flight_key,
                "e": choice.expires_at,
            },
            separators=(",", ":"),
        ).encode()
        payload = base64.urlsafe_b64encode(body).decode().rstrip("=")
        return f"{PREFIX}.{payload}.{self._digest(payload)}"

    def verify(self, link: str, *, now: float) -> Choice:
        """The link's choice; InvalidRequest if malformed, Forbidden if forged or expired."""
        if not isinstance(link, str) or len(link) > MAX_LINK_CHARS:
            raise InvalidRequest(f"link: must be text of at most {MAX_LINK_CHARS} characters")
        parts = link.split(".")
        if len(parts) != 3 or parts[0] != PREFIX:
            raise InvalidRequest("link: expected 'v1.<payload>.<signature>' as sent by email")
        _, payload, signature = parts
        if not hmac.compare_digest(self._digest(payload).encode(), signature.encode()):
            raise Forbidden("link: the signature does not match; use the link as it was sent")
        body = _decode(payload)
        choice = Choice(
            booking_id=_text(body, "b"),
            flight_key=_text(body, "f"),
            expires_at=_number(body, "e"),
        )
        if now >= choice.expires_at:
            raise LinkExpired("link: the time to choose has passed; the first offer was kept")
        return choice

    def _digest(self, payload: str) -> str:
        return hmac.new(self.secret, payload.encode(), hashlib.sha256).hexdigest()


def _decode(payload: str) -> dict[str, Any]:
    try:
        body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError):
        raise InvalidRequest("link: the payload is not valid") from None
    if not isinstance(body, dict):
        raise InvalidRequest("link: the payload is not valid")
    return body


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value or len(value) > 512:
        raise InvalidRequest("link: the payload is not valid")
    return value


def _number(body: dict[str, Any], key: str) -> int:
    value = body.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidRequest("link: the payload is not valid")
    return value
