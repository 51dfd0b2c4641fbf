"""Task tokens of callback tasks (answers, heartbeats, deadlines); parked executions.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workflow_executions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("parked", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(
            sa.Column("woken", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.create_table(
        "workflow_task_tokens",
        sa.Column("token", sa.String(length=256), nullable=False),
        sa.Column("execution", sa.String(length=80), nullable=False),
        sa.Column("state", sa.String(length=256), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("cause", sa.Text(), nullable=True),
        sa.Column("issued_at", sa.Float(), nullable=False),
        sa.Column("beat_at", sa.Float(), nullable=False),
        sa.Column("timeout_at", sa.Float(), nullable=False),
        sa.Column("heartbeat_seconds", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("token"),
    )
    with op.batch_alter_table("workflow_task_tokens", schema=None) as batch_op:
        batch_op.create_index("ix_task_tokens_execution", ["execution", "status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("workflow_task_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_task_tokens_execution")
    op.drop_table("workflow_task_tokens")
    with op.batch_alter_table("workflow_executions", schema=None) as batch_op:
        batch_op.drop_column("woken")
        batch_op.drop_column("parked")
