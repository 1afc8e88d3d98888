from sqlalchemy import inspect

from server.store import Database
from server.store.migrate import current_revision, head_revision, migrate


async def test_migrations_apply_from_empty(database_url: str) -> None:
    database = Database(database_url)
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
