"""Distributed Map runs: the Map Run table, and the Map Run a child execution belongs to.

Revision ID: 0022
Revises: 0021
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workflow_executions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("map_run", sa.String(length=36), nullable=True))
        batch_op.create_index("ix_executions_map_run", ["map_run"])
    op.create_table(
        "workflow_map_runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("execution", sa.String(length=80), nullable=False),
        sa.Column("state", sa.String(length=80), nullable=False),
        sa.Column("tenant", sa.String(length=16), nullable=True),
        sa.Column("machine", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("execution_type", sa.String(length=16), nullable=False),
        sa.Column("max_concurrency", sa.Integer(), nullable=False),
        sa.Column("tolerated_count", sa.Integer(), nullable=True),
        sa.Column("tolerated_percentage", sa.Float(), nullable=True),
        sa.Column("processor", sa.Text(), nullable=False),
        sa.Column("inputs", sa.Text(), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("counts", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("cause", sa.Text(), nullable=True),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("stopped_at", sa.Float(), nullable=True),
        sa.Column("redrive_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("redriven_at", sa.Float(), nullable=True),
        sa.Column("parent_redrive", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_map_runs_execution", "workflow_map_runs", ["execution"])


def downgrade() -> None:
    op.drop_index("ix_map_runs_execution", table_name="workflow_map_runs")
    op.drop_table("workflow_map_runs")
    with op.batch_alter_table("workflow_executions", schema=None) as batch_op:
        batch_op.drop_index("ix_executions_map_run")
        batch_op.drop_column("map_run")
