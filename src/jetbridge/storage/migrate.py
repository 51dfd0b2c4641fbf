"""Run Alembic migrations programmatically: `upgrade(engine)` brings a database to head."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from jetbridge.ops.crypto import Keyring

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(engine: Engine, keyring: Keyring | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    config.attributes["keyring"] = keyring
    return config


def upgrade(engine: Engine, revision: str = "head", *, keyring: Keyring | None = None) -> None:
    """Apply every migration up to `revision`; safe to run on every start.

    Migrations that seal existing personal data need the `keyring` when there are rows to seal.
    """
    command.upgrade(alembic_config(engine, keyring), revision)


def downgrade(engine: Engine, revision: str, *, keyring: Keyring | None = None) -> None:
    """Return the database to `revision` (opening sealed data needs the `keyring`)."""
    command.downgrade(alembic_config(engine, keyring), revision)
