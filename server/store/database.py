"""The database handle: one async engine, SQLite by default, PostgreSQL by URL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine


class Database:
    def __init__(self, url: str):
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite and parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # SQLite: no ROLLBACK when a connection goes back to the pool (one more thread hop per
        # transaction in aiosqlite; `begin()` always ends its transaction, and Python's
        # sqlite3 opens none for plain reads).
        self.engine: AsyncEngine = create_async_engine(
            url,
            pool_pre_ping=not self.is_sqlite,
            pool_reset_on_return=None if self.is_sqlite else "rollback",
        )
        self._write_lock: asyncio.Lock | None = None
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            self._write_lock = asyncio.Lock()

    def connect(self) -> AsyncConnection:
        return self.engine.connect()

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction, committed on exit.

        SQLite has one writer at a time, and a second writer waits in its busy handler,
        which sleeps with growing back-off (measured: over a second for 1% of chat messages
        under load). So this process queues its write transactions itself. Do not open a
        second `begin()` inside one: the lock is not re-entrant.
        """
        if self._write_lock is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._write_lock, self.engine.begin() as conn:
            yield conn

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    # WAL keeps readers going while a chat message is written; foreign keys are off by default.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
