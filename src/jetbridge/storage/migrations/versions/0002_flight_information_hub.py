"""Flight information hub: canonical flight state, ingestion errors, CDC positions.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cdc_positions",
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.Column("position", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("source"),
    )
    op.create_table(
        "flights",
        sa.Column("flight_key", sa.String(length=64), nullable=False),
        sa.Column("airline", sa.String(length=3), nullable=False),
        sa.Column("flight_number", sa.String(length=5), nullable=False),
        sa.Column("origin_date", sa.String(length=10), nullable=False),
        sa.Column("departure_airport", sa.String(length=3), nullable=False),
        sa.Column("arrival_airport", sa.String(length=3), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("flight_key"),
    )
    with op.batch_alter_table("flights", schema=None) as batch_op:
        batch_op.create_index(
            "ix_flights_arrival", ["arrival_airport", "origin_date"], unique=False
        )
        batch_op.create_index(
            "ix_flights_departure", ["departure_airport", "origin_date"], unique=False
        )
        batch_op.create_index(
            "ix_flights_number", ["airline", "flight_number", "origin_date"], unique=False
        )

    op.create_table(
        "ingest_errors",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("location", sa.String(length=512), server_default="", nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("excerpt", sa.Text(), server_default="", nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ingest_errors", schema=None) as batch_op:
        batch_op.create_index("ix_ingest_errors_source", ["source", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ingest_errors", schema=None) as batch_op:
        batch_op.drop_index("ix_ingest_errors_source")

    op.drop_table("ingest_errors")
    with op.batch_alter_table("flights", schema=None) as batch_op:
        batch_op.drop_index("ix_flights_number")
        batch_op.drop_index("ix_flights_departure")
        batch_op.drop_index("ix_flights_arrival")

    op.drop_table("flights")
    op.drop_table("cdc_positions")
