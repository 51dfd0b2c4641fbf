"""Sellable flights name the hub's flight leg they are; codeshare numbers map to that leg.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def _key(airline: str, number: str, day: str, origin: str, destination: str) -> str:
    """The hub's flight key as revision 0013 defines it (copied: migrations are history)."""
    digits = number.rstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    suffix = number[len(digits) :]
    return f"{airline}{int(digits):04d}{suffix}-{day}-{origin}-{destination}"


def upgrade() -> None:
    with op.batch_alter_table("scheduled_flights", schema=None) as batch_op:
        batch_op.add_column(sa.Column("flight_key", sa.String(length=64), nullable=True))
    flights = sa.table(
        "scheduled_flights",
        sa.column("flight_id", sa.String),
        sa.column("airline", sa.String),
        sa.column("flight_number", sa.String),
        sa.column("origin", sa.String),
        sa.column("destination", sa.String),
        sa.column("departure_date", sa.String),
        sa.column("flight_key", sa.String),
    )
    conn = op.get_bind()
    rows = conn.execute(sa.select(flights)).all()
    for row in rows:
        key = _key(row.airline, row.flight_number, row.departure_date, row.origin, row.destination)
        conn.execute(
            flights.update().where(flights.c.flight_id == row.flight_id).values(flight_key=key)
        )
    with op.batch_alter_table("scheduled_flights", schema=None) as batch_op:
        batch_op.alter_column("flight_key", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_index("ix_scheduled_flight_key", ["flight_key"], unique=True)
    op.create_table(
        "codeshare_flights",
        sa.Column("marketing_id", sa.String(length=32), nullable=False),
        sa.Column("airline", sa.String(length=3), nullable=False),
        sa.Column("flight_number", sa.String(length=5), nullable=False),
        sa.Column("flight_id", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("marketing_id"),
    )
    with op.batch_alter_table("codeshare_flights", schema=None) as batch_op:
        batch_op.create_index("ix_codeshare_operating", ["flight_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("codeshare_flights", schema=None) as batch_op:
        batch_op.drop_index("ix_codeshare_operating")
    op.drop_table("codeshare_flights")
    with op.batch_alter_table("scheduled_flights", schema=None) as batch_op:
        batch_op.drop_index("ix_scheduled_flight_key")
        batch_op.drop_column("flight_key")
