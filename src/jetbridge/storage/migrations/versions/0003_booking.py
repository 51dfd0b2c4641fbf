"""Booking: flight schedule and seats, bookings, tickets, payments, loyalty, reconciliation.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bookings",
        sa.Column("booking_id", sa.String(length=36), nullable=False),
        sa.Column("locator", sa.String(length=6), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("flight_id", sa.String(length=32), nullable=False),
        sa.Column("cabin", sa.String(length=16), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("passengers", sa.Text(), nullable=False),
        sa.Column("payment_id", sa.String(length=64), nullable=True),
        sa.Column("failure", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("booking_id"),
        sa.UniqueConstraint("idempotency_key"),
        sa.UniqueConstraint("locator"),
    )
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.create_index("ix_bookings_customer", ["customer_id"], unique=False)

    op.create_table(
        "counters",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "loyalty_accounts",
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("tier", sa.String(length=8), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id"),
    )
    op.create_table(
        "loyalty_ledger",
        sa.Column("booking_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("booking_id", "kind"),
    )
    op.create_table(
        "payment_reconciliation",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("booking_id", sa.String(length=36), nullable=False),
        sa.Column("payment_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("resolved_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "payments",
        sa.Column("booking_id", sa.String(length=36), nullable=False),
        sa.Column("payment_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("refunded", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("booking_id"),
    )
    op.create_table(
        "scheduled_flights",
        sa.Column("flight_id", sa.String(length=32), nullable=False),
        sa.Column("airline", sa.String(length=3), nullable=False),
        sa.Column("flight_number", sa.String(length=5), nullable=False),
        sa.Column("origin", sa.String(length=3), nullable=False),
        sa.Column("destination", sa.String(length=3), nullable=False),
        sa.Column("departure_date", sa.String(length=10), nullable=False),
        sa.Column("departs_at", sa.Float(), nullable=False),
        sa.Column("arrives_at", sa.Float(), nullable=False),
        sa.Column("aircraft_type", sa.String(length=4), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("fares", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("flight_id"),
    )
    with op.batch_alter_table("scheduled_flights", schema=None) as batch_op:
        batch_op.create_index(
            "ix_scheduled_route", ["origin", "destination", "departure_date"], unique=False
        )

    op.create_table(
        "seats",
        sa.Column("flight_id", sa.String(length=32), nullable=False),
        sa.Column("seat", sa.String(length=4), nullable=False),
        sa.Column("cabin", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("hold_id", sa.String(length=64), nullable=True),
        sa.Column("hold_expires_at", sa.Float(), nullable=True),
        sa.Column("booking_id", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("flight_id", "seat"),
    )
    with op.batch_alter_table("seats", schema=None) as batch_op:
        batch_op.create_index("ix_seats_available", ["flight_id", "cabin", "status"], unique=False)
        batch_op.create_index("ix_seats_hold", ["hold_id"], unique=False)

    op.create_table(
        "tickets",
        sa.Column("ticket_number", sa.String(length=13), nullable=False),
        sa.Column("booking_id", sa.String(length=36), nullable=False),
        sa.Column("passenger_index", sa.Integer(), nullable=False),
        sa.Column("seat", sa.String(length=4), nullable=False),
        sa.Column("issued_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("ticket_number"),
        sa.UniqueConstraint("booking_id", "passenger_index", name="uq_ticket_passenger"),
    )


def downgrade() -> None:
    op.drop_table("tickets")
    with op.batch_alter_table("seats", schema=None) as batch_op:
        batch_op.drop_index("ix_seats_hold")
        batch_op.drop_index("ix_seats_available")

    op.drop_table("seats")
    with op.batch_alter_table("scheduled_flights", schema=None) as batch_op:
        batch_op.drop_index("ix_scheduled_route")

    op.drop_table("scheduled_flights")
    op.drop_table("payments")
    op.drop_table("payment_reconciliation")
    op.drop_table("loyalty_ledger")
    op.drop_table("loyalty_accounts")
    op.drop_table("counters")
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.drop_index("ix_bookings_customer")

    op.drop_table("bookings")
