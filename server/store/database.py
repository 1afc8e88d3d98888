"""The database handle: one async engine, SQLite by default, PostgreSQL by URL."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine


class Database:
    def __init__(self, url: str):
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite and parsed.database and parsed.database != ":memory:":
            _private_sqlite_files(Path(parsed.database))
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
        # The connection `write_returning` keeps open, its driver's own connection, and one
        # statement on it at a time (on SQLite, in turn with the other writers).
        self._autocommit: AsyncConnection | None = None
        self._driver: Any = None
        self._autocommit_lock = self._write_lock or asyncio.Lock()

    def connect(self) -> AsyncConnection:
        return self.engine.connect()

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction, committed on exit.

        SQLite has one writer at a time, and a second writer waits in its busy handler,
        which sleeps with growing back-off (measured: over a second for 1% of chat messages
        under load). So this process queues its write transactions itself. Do not open a
        second `begin()`, or call `write_returning`, inside one: the lock is not re-entrant.
        """
        if self._write_lock is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._write_lock, self.engine.begin() as conn:
            yield conn

    async def write_returning(self, sql: str, parameters: Sequence[Any]) -> list[Any]:
        """Run one statement that writes and returns rows; it is committed when this returns.

        `sql` is compiled for this database (`statement.compile(dialect=engine.dialect)`) and
        takes `parameters` by position, as plain strings and numbers: nothing converts them.
        It goes straight to the driver, on a connection kept open in autocommit mode: one
        trip to SQLite's thread or to PostgreSQL. For the hottest write, a batch of chat
        messages, `begin()` and `execute()` added a pool checkout, BEGIN and COMMIT (on
        SQLite five trips to its thread) and SQLAlchemy's execution, which in a busy room
        cost more than the write itself (measured: 40% more chat throughput without them).
        A statement that fails closes the connection, in case it broke; the next opens another.
        """
        async with self._autocommit_lock:
            if self._driver is not None and not self.is_sqlite and self._driver.is_closed():
                # PostgreSQL restarted, or ended it while idle: a new one, as the pool's
                # pre-ping would give.
                await self._drop_autocommit()
            try:
                if self._driver is None:
                    self._autocommit = await self.engine.connect()
                    await self._autocommit.execution_options(isolation_level="AUTOCOMMIT")
                    self._driver = (await self._autocommit.get_raw_connection()).driver_connection
                if self.is_sqlite:  # aiosqlite
                    return list(await self._driver.execute_fetchall(sql, parameters))
                return list(await self._driver.fetch(sql, *parameters))  # asyncpg
            except BaseException:
                await self._drop_autocommit()
                raise

    async def _drop_autocommit(self) -> None:
        conn, self._autocommit, self._driver = self._autocommit, None, None
        if conn is not None:
            await conn.invalidate()
            await conn.close()

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        async with self._autocommit_lock:
            await self._drop_autocommit()
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    # WAL keeps readers going while a chat message is written; foreign keys are off by default.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _private_sqlite_files(path: Path) -> None:
    """The SQLite file, its WAL and shared-memory files are readable by this user only
    (0600), and a folder made for them is too (0700): chat and feedback are in them.
    SQLite gives a new WAL or -shm file the database file's permissions."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if file.exists():
            file.chmod(0o600)
