"""Deleted must mean gone from the files, not only from query results.

SQLite leaves a deleted or overwritten row's bytes in free pages and in the free space of
its page, and the write-ahead log keeps earlier copies of every page it wrote: an erased
chat message could be read back from `pairwise.db` or `pairwise.db-wal` with `strings`.
So every privacy write runs with `PRAGMA secure_delete=ON` (SQLite zeroes what it frees),
and afterwards the WAL is checkpointed into the file and truncated to nothing.

PostgreSQL keeps dead row versions until VACUUM reclaims them; they are invisible to every
connection (checked with a separate one), and autovacuum removes them from the files.
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncConnection

from server.store import Database

log = logging.getLogger("pairwise.privacy")


async def secure_delete(conn: AsyncConnection, database: Database) -> None:
    """Make this connection's deletes and overwrites zero the bytes they free."""
    if database.is_sqlite:
        await conn.exec_driver_sql("PRAGMA secure_delete=ON")


async def truncate_wal(database: Database) -> None:
    """Copy the WAL into the database file and empty it, so no old page copy survives."""
    if not database.is_sqlite:
        return
    async with database.connect() as conn:
        busy = (await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")).first()
    if busy is not None and busy[0]:
        log.warning("the WAL could not be truncated: a reader held it; it will be next time")
