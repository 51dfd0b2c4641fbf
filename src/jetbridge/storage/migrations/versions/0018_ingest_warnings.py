"""The ingest log tells refused messages (`error`) from accepted ones with parts not understood
(`warning`).

Revision ID: 0018
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ingest_errors", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("level", sa.String(length=16), server_default="error", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("ingest_errors", schema=None) as batch_op:
        batch_op.drop_column("level")
