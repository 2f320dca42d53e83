"""The Alembic migrations of the newswatch schema, run from code (no alembic.ini).

`upgrade_to_head(engine)` brings a database to the latest revision. It is cheap when
there is nothing to do (one SELECT), and safe when several processes start at once:
on PostgreSQL they queue on an advisory lock, on SQLite on the write lock that
BEGIN IMMEDIATE takes; the second one then finds the schema current.

For developers, after changing `storage/models.py`:

    uv run python -m storage.migrations revision "what changed"

autogenerates a new revision in `storage/migrations/versions/` against a scratch
SQLite database at head; review it (SQLite needs batch operations) before committing.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

HERE = Path(__file__).resolve().parent
MIGRATION_LOCK_ID = 0x6E657773  # any constant shared by every newswatch process


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at this directory, optionally bound to `connection`."""
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("version_path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade_to_head(engine: Engine) -> None:
    """Apply every pending migration; a no-op when the schema is current."""
    head = head_revision()
    with engine.connect() as conn:
        # Fast path without any lock: the usual case once the database exists.
        current = current_revision(conn)
        conn.rollback()
    if current == head and engine.dialect.name == "postgresql":
        return
    # On SQLite this begin is BEGIN IMMEDIATE: it both serialises concurrent
    # migrators and proves the file is writable before the first poll needs it.
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        if current_revision(conn) != head:
            command.upgrade(alembic_config(conn), "head")


def schema_diff(engine: Engine) -> list[Any]:
    """Differences between the migrated schema and the models (empty when in sync)."""
    from storage.models import Base

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, Base.metadata))


def autogenerate_revision(message: str) -> None:
    """Write a new revision for the differences between the models and head."""
    from storage.db import open_database

    with tempfile.TemporaryDirectory() as tmp:
        db = open_database(f"sqlite:///{tmp}/scratch.db")
        try:
            with db.engine.begin() as conn:
                command.revision(alembic_config(conn), message=message, autogenerate=True)
        finally:
            db.dispose()
