"""Idempotency keys of bookings scoped to their caller and bound to a fingerprint of the request.

Bookings stored earlier were all made without an identity: they get the caller `anonymous` and
no fingerprint, so repeating their key is refused rather than answered with their booking.
The downgrade restores one key per booking across callers and fails if two callers share one.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

EARLIER_CALLER = "anonymous"
KEY_UNIQUE = "uq_bookings_idempotency_key"
# SQLite reports the earlier unnamed constraint without a name; batch mode names it by this.
NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}
bookings = sa.table("bookings", sa.column("caller", sa.String))


def upgrade() -> None:
    key_unique = _unique_on("idempotency_key")
    with op.batch_alter_table("bookings", naming_convention=NAMING) as batch_op:
        batch_op.add_column(sa.Column("caller", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("request_fingerprint", sa.String(length=128), nullable=True))
    op.execute(bookings.update().values(caller=EARLIER_CALLER))
    with op.batch_alter_table("bookings", naming_convention=NAMING) as batch_op:
        batch_op.alter_column("caller", existing_type=sa.String(length=255), nullable=False)
        batch_op.drop_constraint(key_unique, type_="unique")
        batch_op.create_unique_constraint("uq_bookings_caller_key", ["caller", "idempotency_key"])


def downgrade() -> None:
    with op.batch_alter_table("bookings", naming_convention=NAMING) as batch_op:
        batch_op.drop_constraint("uq_bookings_caller_key", type_="unique")
        batch_op.create_unique_constraint(KEY_UNIQUE, ["idempotency_key"])
        batch_op.drop_column("request_fingerprint")
        batch_op.drop_column("caller")


def _unique_on(column: str) -> str:
    for constraint in sa.inspect(op.get_bind()).get_unique_constraints("bookings"):
        if constraint["column_names"] == [column]:
            return constraint["name"] or KEY_UNIQUE
    raise RuntimeError(f"bookings has no unique constraint on {column}")
