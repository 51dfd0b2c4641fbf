"""Alembic environment: the engine comes from `config.attributes`, never from a file."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from jetbridge.storage.schema import metadata

engine = context.config.attributes.get("engine")
if not isinstance(engine, Engine):
    raise RuntimeError("run migrations through jetbridge.storage.migrate.upgrade(engine)")

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=engine.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
