"""Money: integer minor units and an ISO 4217 currency, never floats."""

from __future__ import annotations

import re
from dataclasses import dataclass

_CURRENCY = re.compile(r"^[A-Z]{3}$")
# Minor-unit exponents that differ from 2 (ISO 4217).
_EXPONENTS = {"JPY": 0, "KRW": 0, "ISK": 0, "CLP": 0, "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3}


class CurrencyMismatch(ValueError):
    """Arithmetic between amounts in different currencies."""


@dataclass(frozen=True, slots=True, order=True)
class Money:
    amount: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, int) or isinstance(self.amount, bool):
            raise TypeError(f"amount must be an integer number of minor units, got {self.amount!r}")
        if not _CURRENCY.match(self.currency):
            raise ValueError(f"currency {self.currency!r} is not an ISO 4217 code")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def times(self, factor: int) -> Money:
        return Money(self.amount * factor, self.currency)

    def percent(self, percent: int) -> Money:
        """`percent`% of this amount, rounded half up to the minor unit."""
        return Money((self.amount * percent + 50) // 100, self.currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"cannot combine {self.currency} and {other.currency}")

    def format(self) -> str:
        exponent = _EXPONENTS.get(self.currency, 2)
        if exponent == 0:
            return f"{self.amount} {self.currency}"
        sign = "-" if self.amount < 0 else ""
        whole, minor = divmod(abs(self.amount), 10**exponent)
        return f"{sign}{whole}.{minor:0{exponent}d} {self.currency}"

    def to_json(self) -> dict[str, int | str]:
        return {"amount": self.amount, "currency": self.currency}
