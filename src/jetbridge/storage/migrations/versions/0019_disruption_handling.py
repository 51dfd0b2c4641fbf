"""Disruption handling: disrupted flights, affected bookings' cases, notices, contacts, reissues.

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "disruptions",
        sa.Column("flight_key", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("airline", sa.String(length=3), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("execution", sa.String(length=80), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("flight_key", "kind"),
    )
    op.create_index("ix_disruptions_airline", "disruptions", ["airline", "updated_at"])
    op.create_table(
        "disruption_cases",
        sa.Column("flight_key", sa.String(length=64), nullable=False),
        sa.Column("booking_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("airline", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("offers", sa.Text(), nullable=True),
        sa.Column("new_flight_id", sa.String(length=32), nullable=True),
        sa.Column("choice", sa.Text(), nullable=True),
        sa.Column("task_token", sa.String(length=256), nullable=True),
        sa.Column("choose_by", sa.Float(), nullable=True),
        sa.Column("notified_at", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("flight_key", "booking_id"),
    )
    op.create_index("ix_disruption_cases_booking", "disruption_cases", ["booking_id"])
    op.create_table(
        "disruption_notices",
        sa.Column("notice_id", sa.String(length=200), nullable=False),
        sa.Column("booking_id", sa.String(length=36), nullable=False),
        sa.Column("flight_key", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("notice_id"),
    )
    op.create_index("ix_disruption_notices_booking", "disruption_notices", ["booking_id"])
    op.create_table(
        "booking_contacts",
        sa.Column("booking_id", sa.String(length=36), nullable=False),
        sa.Column("contacts", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("booking_id"),
    )
    op.create_table(
        "ticket_reissues",
        sa.Column("old_ticket", sa.String(length=13), nullable=False),
        sa.Column("new_ticket", sa.String(length=13), nullable=False),
        sa.Column("booking_id", sa.String(length=36), nullable=False),
        sa.Column("passenger_index", sa.Integer(), nullable=False),
        sa.Column("flight_id", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("old_ticket"),
    )


def downgrade() -> None:
    op.drop_table("ticket_reissues")
    op.drop_table("booking_contacts")
    op.drop_index("ix_disruption_notices_booking", table_name="disruption_notices")
    op.drop_table("disruption_notices")
    op.drop_index("ix_disruption_cases_booking", table_name="disruption_cases")
    op.drop_table("disruption_cases")
    op.drop_index("ix_disruptions_airline", table_name="disruptions")
    op.drop_table("disruptions")
