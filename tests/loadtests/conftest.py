"""Servers the load tool's tests share, so the suite starts as few as it can.

Each run of the tool has rooms of its own (named by its run id), so runs against one server
never meet; a test that shares a server compares cumulative counters (chat messages) before
and after its run. Before each test the shared servers are idle again: nobody from an earlier
run is still connected, and only the shared nodes are alive. A test that stops a server, or
needs other settings, starts its own (`server_process`, or `LoadCluster.add_node`).
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.loadtests.test_loadtool import server_metrics
from tests.support.process import ADMIN_KEY, ServerProcess
from tests.support.services import fresh_postgres_database, require_redis
from tests.support.waiting import eventually

START_TIMEOUT_S = 120.0  # nodes start together, and a busy 2-core machine slows each


def _idle(server: ServerProcess) -> bool:
    return server_metrics(server.url).get("participants", 0) == 0


@pytest.fixture(scope="package")
def _default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(data_dir=tmp_path_factory.mktemp("loadtool-server"))
    server.start(START_TIMEOUT_S)
    yield server
    server.stop()


@pytest.fixture
def default_server(_default_server: ServerProcess) -> ServerProcess:
    """One server with the default settings, shared by the package's tests; idle."""
    asyncio.run(eventually(lambda: _idle(_default_server), timeout=30))
    return _default_server


@dataclass
class LoadCluster:
    """Nodes sharing Redis and a fresh PostgreSQL database (one cluster name)."""

    env: dict[str, str]
    directory: Path
    nodes: list[ServerProcess] = field(default_factory=list)

    def add_node(self) -> ServerProcess:
        """Start one more node of this cluster; the caller stops it."""
        node = ServerProcess(data_dir=self.directory / uuid.uuid4().hex[:8], env=self.env)
        return node.start(START_TIMEOUT_S)

    def live(self) -> dict[str, Any]:
        """The live nodes (`GET /api/v1/nodes`) by URL."""
        request = urllib.request.Request(
            self.nodes[0].url + "/api/v1/nodes", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )
        with urllib.request.urlopen(request, timeout=5) as resp:
            return {n["url"]: n for n in json.loads(resp.read())["nodes"]}

    def idle(self) -> bool:
        """Nobody connected to a shared node, and no other node alive (one a test started
        and killed is listed until its heartbeat expires)."""
        shared = {n.url for n in self.nodes}
        return all(_idle(n) for n in self.nodes) and set(self.live()) == shared


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def _load_cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LoadCluster]:
    async with fresh_postgres_database() as database:
        cluster = LoadCluster(
            env={
                "PAIRWISE_REDIS_URL": require_redis(),
                "PAIRWISE_DATABASE_URL": database,
                "PAIRWISE_CLUSTER": f"t{uuid.uuid4().hex[:8]}",
                "PAIRWISE_HEARTBEAT_SECONDS": "0.5",
                "PAIRWISE_NODE_TTL_SECONDS": "2",
            },
            directory=tmp_path_factory.mktemp("loadtool-cluster"),
        )
        # Started together: they migrate the new database one at a time (an advisory lock).
        started = await asyncio.gather(
            *(asyncio.to_thread(cluster.add_node) for _ in range(2)), return_exceptions=True
        )
        cluster.nodes = [n for n in started if isinstance(n, ServerProcess)]
        try:
            for failure in started:
                if isinstance(failure, BaseException):
                    raise failure
            yield cluster
        finally:
            for node in cluster.nodes:
                node.stop()


@pytest.fixture
def load_cluster(_load_cluster: LoadCluster) -> LoadCluster:
    """Two nodes of one cluster, shared by a module's tests; idle."""
    asyncio.run(eventually(_load_cluster.idle, timeout=30))
    return _load_cluster
