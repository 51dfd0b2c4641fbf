"""The ranges values from outside must fall in: ids and positions fit a signed 64-bit integer
(every database stores them so), and dates and times lie between 1900-01-01 and 9998-12-31 UTC,
so a day or a year can still be added to any of them without leaving what Python can represent.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from jetbridge.errors import InvalidRequest

MAX_ID = 2**63 - 1
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(9998, 12, 31)
_EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
_LATEST = datetime(9998, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


class OutOfRange(InvalidRequest):
    """A value outside the range the platform accepts; the message names it and the range."""


def checked_id(value: int, name: str) -> int:
    """`value` if it is an id or position from 0 to 2^63-1, else OutOfRange naming `name`."""
    if not 0 <= value <= MAX_ID:
        raise OutOfRange(f"{name}: {_short(value)} is not between 0 and {MAX_ID}")
    return value


def checked_day(value: date, name: str) -> date:
    if not FIRST_DAY <= value <= LAST_DAY:
        raise OutOfRange(f"{name}: {value.isoformat()} is not between {FIRST_DAY} and {LAST_DAY}")
    return value


def utc_moment(value: datetime, name: str) -> datetime:
    """An aware datetime in UTC, or OutOfRange when it lies outside 1900-01-01 to 9998-12-31
    UTC (including offsets that would carry it past year 1 or 9999)."""
    try:
        moment = value.astimezone(UTC)
    except OverflowError:
        moment = None
    if moment is None or not _EARLIEST <= moment <= _LATEST:
        raise OutOfRange(
            f"{name}: {value.isoformat()[:40]} is not between {_EARLIEST:%Y-%m-%d} and "
            f"{_LATEST:%Y-%m-%d} UTC"
        )
    return moment


def _short(value: int) -> str:
    return str(value) if value.bit_length() <= 128 else f"a {value.bit_length()}-bit integer"
