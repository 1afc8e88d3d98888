import asyncio

import pytest
from sqlalchemy import inspect

from server.store import Database
from server.store.migrate import current_revision, head_revision, migrate
from tests.support.services import fresh_postgres_database


async def test_migrations_apply_from_empty(empty_database_url: str) -> None:
    database = Database(empty_database_url)
    try:
        assert await current_revision(database) is None
        await migrate(database)
        assert await current_revision(database) == head_revision()
        async with database.connect() as conn:
            tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        assert {"chat_messages", "removals", "alembic_version"} <= set(tables)
        await migrate(database)  # applying again is a no-op
        assert await current_revision(database) == head_revision()
    finally:
        await database.close()


@pytest.mark.postgres
async def test_nodes_started_together_migrate_a_new_database_once() -> None:
    """Every node migrates at start; nodes of a cluster (PostgreSQL) started together on a
    new database used to race (both created `alembic_version`, one exited)."""
    async with fresh_postgres_database() as url:
        nodes = [Database(url) for _ in range(3)]
        try:
            await asyncio.gather(*(migrate(node) for node in nodes))
            assert {await current_revision(node) for node in nodes} == {head_revision()}
        finally:
            await asyncio.gather(*(node.close() for node in nodes))
