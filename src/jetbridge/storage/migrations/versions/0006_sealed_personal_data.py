"""Bookings' personal data sealed at rest: passengers encrypted in place, their count in clear,
and a sealed column for the payment card (which no longer travels in the saga's input).

Revision ID: 0006
Revises: 0005
"""

import json
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa
from alembic import context, op

from jetbridge.booking.personal_data import PASSENGERS, PersonalData
from jetbridge.ops.crypto import Keyring, is_sealed

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BATCH = 500
bookings = sa.table(
    "bookings",
    sa.column("booking_id", sa.String),
    sa.column("passengers", sa.Text),
    sa.column("passenger_count", sa.Integer),
)


def upgrade() -> None:
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("passenger_count", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("payment_card", sa.Text(), nullable=True))
    _each_booking(_seal)
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.alter_column("passenger_count", existing_type=sa.Integer(), nullable=False)


def downgrade() -> None:
    _each_booking(_unseal)
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.drop_column("payment_card")
        batch_op.drop_column("passenger_count")


def _seal(personal: PersonalData, booking_id: str, stored: str) -> dict[str, Any]:
    if is_sealed(stored):  # sealed by an earlier, interrupted run
        count = len(personal.open(booking_id, PASSENGERS, stored))
        return {"passenger_count": count}
    passengers = json.loads(stored)
    return {
        "passengers": personal.seal(booking_id, PASSENGERS, passengers),
        "passenger_count": len(passengers),
    }


def _unseal(personal: PersonalData, booking_id: str, stored: str) -> dict[str, Any]:
    if not is_sealed(stored):
        return {}
    return {"passengers": json.dumps(personal.open(booking_id, PASSENGERS, stored))}


def _each_booking(change: Callable[[PersonalData, str, str], dict[str, Any]]) -> None:
    personal: PersonalData | None = None
    conn = op.get_bind()
    for booking_id, stored in _rows(conn):
        if personal is None:
            keyring = context.config.attributes.get("keyring")
            if not isinstance(keyring, Keyring):
                raise RuntimeError(
                    "bookings hold personal data to seal or open: run the migration with the "
                    "data keys (`jetbridge db upgrade` reads them from the settings)"
                )
            personal = PersonalData(keyring)
        values = change(personal, booking_id, stored)
        if values:
            conn.execute(
                bookings.update().where(bookings.c.booking_id == booking_id).values(**values)
            )


def _rows(conn: sa.Connection) -> Iterator[tuple[str, str]]:
    after = ""
    while True:
        rows = conn.execute(
            sa.select(bookings.c.booking_id, bookings.c.passengers)
            .where(bookings.c.booking_id > after)
            .order_by(bookings.c.booking_id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        yield from ((row.booking_id, row.passengers) for row in rows)
        after = rows[-1].booking_id
