"""A booking's personal data, sealed at rest: its passengers (names, travel documents) and, until
the booking settles, the payment card. Each value is bound to its booking and field.

Nothing else holds these values: events carry counts, the saga carries the booking id only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from jetbridge.ops.crypto import Binding, DecryptionFailed, Keyring
from jetbridge.storage.schema import bookings

PASSENGERS = "passengers"
PAYMENT_CARD = "payment_card"
SEALED_FIELDS = (PASSENGERS, PAYMENT_CARD)


class PersonalData:
    """Seals and opens the personal fields of bookings with the platform's keyring."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._decoy: str | None = None

    def seal(self, booking_id: str, field: str, value: Any) -> str:
        return self.keyring.seal(json.dumps(value).encode(), binding=_binding(booking_id, field))

    def open(self, booking_id: str, field: str, sealed: str) -> Any:
        return json.loads(self.keyring.open(sealed, binding=_binding(booking_id, field)))

    def open_decoy(self) -> None:
        """Open a sealed value of no booking: a lookup that found nothing takes as long as one
        that decrypted a booking's passengers, so timing does not tell which locators exist."""
        if self._decoy is None:
            self._decoy = self.seal("-", PASSENGERS, [{"given_name": "-", "family_name": "-"}])
        self.open("-", PASSENGERS, self._decoy)

    def reseal(self, booking_id: str, field: str, sealed: str) -> str:
        """The same value sealed again under the active key (with a fresh data key)."""
        binding = _binding(booking_id, field)
        return self.keyring.seal(self.keyring.open(sealed, binding=binding), binding=binding)


def _binding(booking_id: str, field: str) -> Binding:
    return Binding(table="bookings", row=booking_id, field=field)


@dataclass(slots=True)
class Rotation:
    """What a rotation did: values resealed under the active key, values already under it, and
    values no key in the ring opens (named by booking and field, never by content)."""

    active_key: str
    rows: int = 0
    resealed: int = 0
    current: int = 0
    unreadable: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "active_key": self.active_key,
            "rows": self.rows,
            "resealed": self.resealed,
            "current": self.current,
            "unreadable": self.unreadable,
        }


def reseal_all(
    engine: Engine,
    personal: PersonalData,
    *,
    batch_size: int = 500,
    progress: Callable[[Rotation], None] | None = None,
) -> Rotation:
    """Reseal every booking's personal data under the active key, one transaction per batch.

    Idempotent and resumable: values already under the active key are left alone, so a run that
    stopped half-way is finished by running it again.
    """
    report = Rotation(active_key=personal.keyring.active)
    after = ""
    while True:
        with engine.begin() as conn:
            rows = conn.execute(
                select(bookings.c.booking_id, bookings.c.passengers, bookings.c.payment_card)
                .where(bookings.c.booking_id > after)
                .order_by(bookings.c.booking_id)
                .limit(batch_size)
            ).all()
            for row in rows:
                _reseal_row(conn, personal, row._mapping, report)
        if not rows:
            return report
        after = rows[-1].booking_id
        report.rows += len(rows)
        if progress is not None:
            progress(report)


def _reseal_row(conn: Connection, personal: PersonalData, row: Any, report: Rotation) -> None:
    for name in SEALED_FIELDS:
        sealed = row[name]
        if sealed is None:
            continue
        if personal.keyring.is_current(sealed):
            report.current += 1
            continue
        try:
            resealed = personal.reseal(row["booking_id"], name, sealed)
        except DecryptionFailed as exc:
            report.unreadable.append(str(exc))
            continue
        column = bookings.c[name]
        changed = conn.execute(
            update(bookings)
            .where(bookings.c.booking_id == row["booking_id"], column == sealed)
            .values({name: resealed})
        )
        report.resealed += changed.rowcount
