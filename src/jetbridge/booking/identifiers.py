"""Booking identifiers: 6-character record locators (PNR) and 13-digit e-ticket numbers."""

from __future__ import annotations

import re
import secrets

# No 0/O, 1/I/L: locators are read out over the phone and typed from paper.
LOCATOR_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
LOCATOR = re.compile(f"^[{LOCATOR_ALPHABET}]{{6}}$")
TICKET = re.compile(r"^\d{13}$")
ACCOUNTING_CODE = re.compile(r"^\d{3}$")


def new_record_locator() -> str:
    return "".join(secrets.choice(LOCATOR_ALPHABET) for _ in range(6))


def is_record_locator(value: str) -> bool:
    return bool(LOCATOR.match(value))


def ticket_number(accounting_code: str, serial: int) -> str:
    """Airline accounting code (3 digits) + 10-digit document serial number."""
    if not ACCOUNTING_CODE.match(accounting_code):
        raise ValueError(f"airline accounting code {accounting_code!r} must be 3 digits")
    if not 0 <= serial < 10**10:
        raise ValueError(f"ticket serial {serial} does not fit in 10 digits")
    return f"{accounting_code}{serial:010d}"
