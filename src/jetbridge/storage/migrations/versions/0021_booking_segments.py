"""Booking segments and ticket coupons: a booking holds one flight or several (a connection),
and each ticket has a coupon per segment. Existing bookings become one segment, their tickets
one coupon.

Revision ID: 0021
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "booking_segments",
        sa.Column("booking_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("flight_id", sa.String(length=32), nullable=False),
        sa.Column("cabin", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("booking_id", "position"),
    )
    op.create_index("ix_booking_segments_flight", "booking_segments", ["flight_id"])
    op.create_table(
        "ticket_coupons",
        sa.Column("ticket_number", sa.String(length=13), nullable=False),
        sa.Column("coupon", sa.Integer(), nullable=False),
        sa.Column("booking_id", sa.String(length=36), nullable=False),
        sa.Column("flight_id", sa.String(length=32), nullable=False),
        sa.Column("seat", sa.String(length=4), nullable=False),
        sa.PrimaryKeyConstraint("ticket_number", "coupon"),
    )
    op.create_index("ix_ticket_coupons_booking", "ticket_coupons", ["booking_id"])
    op.execute(
        "INSERT INTO booking_segments (booking_id, position, flight_id, cabin) "
        "SELECT booking_id, 0, flight_id, cabin FROM bookings"
    )
    op.execute(
        "INSERT INTO ticket_coupons (ticket_number, coupon, booking_id, flight_id, seat) "
        "SELECT t.ticket_number, 1, t.booking_id, b.flight_id, t.seat "
        "FROM tickets t JOIN bookings b ON b.booking_id = t.booking_id"
    )


def downgrade() -> None:
    op.drop_index("ix_ticket_coupons_booking", table_name="ticket_coupons")
    op.drop_table("ticket_coupons")
    op.drop_index("ix_booking_segments_flight", table_name="booking_segments")
    op.drop_table("booking_segments")
