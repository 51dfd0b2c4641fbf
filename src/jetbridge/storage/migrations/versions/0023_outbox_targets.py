"""The outbox's targets: which rule targets each relayed event is delivered to through JetStream.

Revision ID: 0023
Revises: 0022
"""

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jetstream_outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("targets", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jetstream_outbox", schema=None) as batch_op:
        batch_op.drop_column("targets")
