"""Real external services for tests: present, or skipped locally and failed in CI."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sqlite3
import tempfile
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import NoReturn

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_ADMIN_DSN = os.environ.get("PAIRWISE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("PAIRWISE_TEST_REDIS", "redis://127.0.0.1:6379/0")


def missing(what: str) -> NoReturn:
    """A needed service or program is absent: a failure in CI, a skip on a laptop."""
    message = f"{what} is not available"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: tests that need it must not skip)")
    pytest.skip(message)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_program(name: str, path: str | None = None) -> str:
    found = path if path and os.path.exists(path) else shutil.which(name)
    if not found:
        missing(f"program {name}")
    assert found is not None
    return found


def require_redis() -> str:
    if not port_open("127.0.0.1", 6379):
        missing("Redis on 127.0.0.1:6379")
    return REDIS_URL


@asynccontextmanager
async def fresh_postgres_database(migrated: bool = False) -> AsyncIterator[str]:
    """A new PostgreSQL database for one test, dropped afterwards: empty, or `migrated`
    (a copy of one database migrated to the head once per run)."""
    if not port_open("127.0.0.1", 5432):
        missing("PostgreSQL on 127.0.0.1:5432")
    if migrated:
        made = _take_spare(await _postgres_template())
    else:
        made = _postgres_work.submit(_create_postgres, None)
    name = await asyncio.wrap_future(made)
    try:
        yield _postgres_url(name)
    finally:
        _postgres_work.submit(_drop_postgres_now, name)


# CREATE DATABASE (~0.3 s from the template) and DROP DATABASE (~0.1 s) run on a thread of
# their own, one at a time: the copy the next test takes is made while this one runs, and
# a used database is dropped while the next one runs. Each test still gets a database that
# nothing used before it.
_postgres_work = ThreadPoolExecutor(1, thread_name_prefix="postgres-databases")
_spare: Future[str] | None = None


def _create_postgres(template: str | None) -> str:
    async def create() -> str:
        import asyncpg

        name = f"pw_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await admin.execute(
                f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
            )
        finally:
            await admin.close()
        return name

    return asyncio.run(create())


def _drop_postgres_now(name: str) -> None:
    asyncio.run(_drop_postgres(name))


def _take_spare(template: str) -> Future[str]:
    """The copy of `template` made ahead (or one being made now), and the next one ordered."""
    global _spare
    taken = _spare or _postgres_work.submit(_create_postgres, template)
    _spare = _postgres_work.submit(_create_postgres, template)
    return taken


# Schemas at the head, made once per run and copied for each test that wants one:
# migrating a new database takes ~1.5 s on PostgreSQL and ~0.2 s on SQLite, a copy
# ~0.5 s and ~1 ms, and a few hundred tests start from a migrated database.
# `test_migrations_apply_from_empty` and the multi-node tests still migrate new ones.
_templates: dict[str, str] = {}


def _postgres_url(name: str) -> str:
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


async def _drop_postgres(name: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _migrate(url: str) -> None:
    from server.store import Database
    from server.store.migrate import migrate

    database = Database(url)
    try:
        await migrate(database)
    finally:
        await database.close()


async def _postgres_template() -> str:
    if "postgres" not in _templates:
        import asyncpg

        name = f"pw_template_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        try:
            await _migrate(_postgres_url(name))
        except BaseException:
            await _drop_postgres(name)
            raise
        _templates["postgres"] = name
    return _templates["postgres"]


def sqlite_at_head(path: Path) -> None:
    """Put a SQLite database migrated to the head at `path`, unless a file is there,
    private as the server makes it (folder 0700, file 0600)."""
    if path.exists():
        return
    if "sqlite" not in _templates:
        folder = Path(tempfile.mkdtemp(prefix="pairwise-template-"))
        made = folder / "pairwise.db"
        # The caller may be inside a running event loop: migrate on a thread's own loop.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, _migrate(f"sqlite+aiosqlite:///{made}")).result()
        with sqlite3.connect(made) as conn:  # everything in the main file, no WAL to copy
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        _templates["sqlite"] = str(made)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.copyfile(_templates["sqlite"], path)
    path.chmod(0o600)


def remove_templates() -> None:
    """Drop the templates made in this run, and the spare copy (at the end of the session)."""
    global _spare
    spare, _spare = _spare, None
    if spare is not None and spare.exception() is None:
        _postgres_work.submit(_drop_postgres_now, spare.result())
    _postgres_work.submit(lambda: None).result()  # every drop ordered before this one done
    sqlite = _templates.pop("sqlite", None)
    if sqlite is not None:
        shutil.rmtree(Path(sqlite).parent, ignore_errors=True)
    postgres = _templates.pop("postgres", None)
    if postgres is not None:
        asyncio.run(_drop_postgres(postgres))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
