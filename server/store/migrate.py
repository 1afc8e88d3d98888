"""Apply Alembic migrations to the database a Database points at."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from server.store.database import Database

MIGRATIONS = Path(__file__).parent / "migrations"
# Nodes of a cluster started together all migrate at start: on PostgreSQL the first
# takes this transaction-level advisory lock and the others wait for its commit, then
# find the schema at head (without it, two nodes on a new database both created
# `alembic_version` and one exited). A cluster needs PostgreSQL; SQLite is one node's.
MIGRATION_LOCK = 0x7061697277697365  # "pairwise"


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


async def migrate(database: Database, revision: str = "head") -> None:
    """Upgrade the schema to `revision` (the latest by default)."""

    def upgrade(connection: Connection) -> None:
        command.upgrade(_config(connection), revision)

    async with database.begin() as conn:
        if not database.is_sqlite:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        await conn.run_sync(upgrade)


async def current_revision(database: Database) -> str | None:
    async with database.connect() as conn:
        return await conn.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()
