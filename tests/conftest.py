"""Fixtures shared by every suite."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import settings as hypothesis_settings

from server.app import create_app
from server.config import Settings, load_settings
from server.event_loop import loop_factory
from tests.support.process import ADMIN_KEY, SECRET_KEY, ServerProcess
from tests.support.services import fresh_postgres_database, remove_templates, sqlite_at_head

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}

# The SFU runs in the test process (`media_workers` = 0), where tests reach into it;
# tests/media/test_workers.py and the tests that pass PAIRWISE_MEDIA_WORKERS to a server
# process run it in worker processes. Set before any Settings is read, server processes
# started by the tests included.
os.environ.setdefault("PAIRWISE_MEDIA_WORKERS", "0")

# `python -m benchmarks fuzz` raises every hypothesis test's example count through this.
if os.environ.get("PAIRWISE_FUZZ_EXAMPLES"):
    hypothesis_settings.register_profile(
        "fuzz", max_examples=int(os.environ["PAIRWISE_FUZZ_EXAMPLES"]), deadline=None
    )
    hypothesis_settings.load_profile("fuzz")


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Async tests and fixtures run on the loop a server runs on by default."""
    default = Settings.model_fields["event_loop"].default
    return {default: loop_factory(default)}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that drives Chromium through the `launcher` fixture is marked `browser` (as
    the suites' own Chromium tests are), so `-m browser` selects every one of them."""
    for item in items:
        if "launcher" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "admin_key": ADMIN_KEY,
            "secret_key": SECRET_KEY,
        }
        base.update(overrides)
        settings = load_settings(**base)
        if settings.database_url is None:  # the default SQLite file, already migrated
            sqlite_at_head(settings.data_dir / "pairwise.db")
        return settings

    return make


@pytest.fixture(scope="session", autouse=True)
def _database_templates() -> Iterator[None]:
    yield
    remove_templates()


DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=DATABASES)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The same test on SQLite and on a fresh PostgreSQL database, already migrated to
    the head (a copy of a template: see `sqlite_at_head`)."""
    if request.param == "sqlite":
        sqlite_at_head(tmp_path / "pairwise.db")
        yield f"sqlite+aiosqlite:///{tmp_path / 'pairwise.db'}"
    else:
        async with fresh_postgres_database(migrated=True) as url:
            yield url


@pytest.fixture(params=DATABASES)
async def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """As `database_url`, but a database nothing has migrated yet."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'pairwise.db'}"
    else:
        async with fresh_postgres_database() as url:
            yield url


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def app(settings: Settings) -> web.Application:
    return create_app(settings)


@pytest.fixture
async def client(aiohttp_client: Any, app: web.Application) -> TestClient:
    return await aiohttp_client(app)


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start real server processes; all are stopped after the test."""
    started: list[ServerProcess] = []

    def start(**env: str) -> ServerProcess:
        proc = ServerProcess(data_dir=tmp_path / f"node{len(started)}", env=env).start()
        started.append(proc)
        return proc

    yield start
    # Together: each stop is a graceful shutdown of ~0.5 s, and tests of nodes start several.
    with ThreadPoolExecutor(max(1, len(started))) as pool:
        list(pool.map(ServerProcess.stop, started))
