"""Event backbone: buses, rules, targets, the event log, deliveries, DLQ, archives, replays.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "archive_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("archive", sa.String(length=48), nullable=False),
        sa.Column("event_time", sa.Float(), nullable=False),
        sa.Column("archived_at", sa.Float(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("archive_events", schema=None) as batch_op:
        batch_op.create_index("ix_archive_events_time", ["archive", "event_time"], unique=False)

    op.create_table(
        "archives",
        sa.Column("name", sa.String(length=48), nullable=False),
        sa.Column("bus", sa.String(length=256), nullable=False),
        sa.Column("pattern", sa.Text(), nullable=True),
        sa.Column("retention_days", sa.Integer(), server_default="0", nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "buses",
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("rules_version", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "dead_letters",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_seq", sa.BigInteger(), nullable=False),
        sa.Column("bus", sa.String(length=256), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("failed_at", sa.Float(), nullable=False),
        sa.Column("redriven_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.create_index("ix_dead_letters_target", ["bus", "rule", "target_id"], unique=False)

    op.create_table(
        "deliveries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_seq", sa.BigInteger(), nullable=False),
        sa.Column("bus", sa.String(length=256), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=False),
        sa.Column("lane", sa.String(length=600), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_deliveries_due", ["next_attempt_at", "id"], unique=False)
        batch_op.create_index("ix_deliveries_lane", ["lane", "id"], unique=False)

    op.create_table(
        "events",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("bus", sa.String(length=256), nullable=False),
        sa.Column("event_id", sa.String(length=256), nullable=False),
        sa.Column("source", sa.String(length=256), nullable=False),
        sa.Column("type", sa.String(length=256), nullable=False),
        sa.Column("tenant", sa.String(length=128), nullable=False),
        sa.Column("partition_key", sa.String(length=256), nullable=True),
        sa.Column("event_time", sa.Float(), nullable=False),
        sa.Column("ingested_at", sa.Float(), nullable=False),
        sa.Column("replay_name", sa.String(length=64), server_default="", nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("bus", "source", "event_id", "replay_name", name="uq_events_identity"),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_bus_seq", ["bus", "seq"], unique=False)
        batch_op.create_index("ix_events_ingested", ["ingested_at"], unique=False)

    op.create_table(
        "processed_events",
        sa.Column("consumer", sa.String(length=128), nullable=False),
        sa.Column("event_id", sa.String(length=256), nullable=False),
        sa.Column("processed_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
    )
    op.create_table(
        "replays",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("archive", sa.String(length=48), nullable=False),
        sa.Column("destination_bus", sa.String(length=256), nullable=False),
        sa.Column("rules", sa.Text(), nullable=True),
        sa.Column("start_time", sa.Float(), nullable=False),
        sa.Column("end_time", sa.Float(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("state_reason", sa.Text(), server_default="", nullable=False),
        sa.Column("cursor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("events_replayed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "rules",
        sa.Column("bus", sa.String(length=256), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("pattern", sa.Text(), nullable=True),
        sa.Column("schedule", sa.String(length=256), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("schedule_last_fired", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("bus", "name"),
    )
    op.create_table(
        "targets",
        sa.Column("bus", sa.String(length=256), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("input", sa.Text(), nullable=True),
        sa.Column("max_retry_attempts", sa.Integer(), nullable=False),
        sa.Column("max_event_age_seconds", sa.Integer(), nullable=False),
        sa.Column("dead_letter", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("bus", "rule", "target_id"),
    )


def downgrade() -> None:
    op.drop_table("targets")
    op.drop_table("rules")
    op.drop_table("replays")
    op.drop_table("processed_events")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_ingested")
        batch_op.drop_index("ix_events_bus_seq")

    op.drop_table("events")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_lane")
        batch_op.drop_index("ix_deliveries_due")

    op.drop_table("deliveries")
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.drop_index("ix_dead_letters_target")

    op.drop_table("dead_letters")
    op.drop_table("buses")
    op.drop_table("archives")
    with op.batch_alter_table("archive_events", schema=None) as batch_op:
        batch_op.drop_index("ix_archive_events_time")

    op.drop_table("archive_events")
