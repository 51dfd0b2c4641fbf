"""The outbox's targets: which rule targets each relayed event is delivered to through JetStream.

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
    with op.batch_alter_table("jetstream_outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("targets", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jetstream_outbox", schema=None) as batch_op:
        batch_op.drop_column("targets")
