"""Change capture: one fenced lease per source, holding the source position; the legacy keys
seen per source, so a delete that carries only a row's key still names its flight.

Revision ID: 0012
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "capture_leases",
        sa.Column("source", sa.String(128), primary_key=True),
        sa.Column("holder", sa.String(256), nullable=False, server_default=""),
        sa.Column("generation", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("lease_until", sa.Float(), nullable=False, server_default=sa.text("0")),
        sa.Column("position", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "capture_keys",
        sa.Column("source", sa.String(128), primary_key=True),
        sa.Column("row_key", sa.String(256), primary_key=True),
        sa.Column("flight_key", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("capture_keys")
    op.drop_table("capture_leases")
