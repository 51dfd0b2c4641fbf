"""HMAC-SHA256 signatures on outgoing HTTP deliveries, and their verification by receivers.

Header: `X-Jetbridge-Signature: t=<unix seconds>,v1=<hex hmac of "<t>.<body>">`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time

SIGNATURE_HEADER = "X-Jetbridge-Signature"


class InvalidSignature(ValueError):
    """The signature header is missing, malformed, stale or does not match the body."""


def sign(secret: str, body: bytes, *, timestamp: int | None = None) -> str:
    stamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


def verify(secret: str, header: str | None, body: bytes, *, tolerance_seconds: int = 300) -> None:
    """Raise `InvalidSignature` unless `header` signs `body` with `secret` recently enough."""
    if not header:
        raise InvalidSignature(f"{SIGNATURE_HEADER} header is missing")
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    if "t" not in parts or "v1" not in parts or not re.fullmatch(r"[0-9]{1,12}", parts["t"]):
        raise InvalidSignature(f"{SIGNATURE_HEADER} must look like t=<seconds>,v1=<hex>")
    stamp = int(parts["t"])
    if abs(time.time() - stamp) > tolerance_seconds:
        raise InvalidSignature("signature timestamp is outside the tolerance window")
    expected = sign(secret, body, timestamp=stamp).split("v1=", 1)[1]
    if not hmac.compare_digest(expected, parts["v1"]):
        raise InvalidSignature("signature does not match the body")
