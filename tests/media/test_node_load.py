"""A node's load, as the cluster places rooms by it, counts the streams its SFU forwards.

Issue #18: `Cluster` was built without the SFU's count, so a node forwarding video looked
as idle as one with none. A real server with the SFU and the real Redis; two aiortc
participants publishing audio and video to each other.
"""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import pytest

from server.cluster.nodes import NodeLoad
from tests.conftest import ADMIN
from tests.media.conftest import MEDIA_SETTINGS, Join
from tests.support.services import require_redis
from tests.support.waiting import eventually

pytestmark = pytest.mark.redis


@pytest.fixture
def media_settings() -> dict[str, Any]:
    return {
        **MEDIA_SETTINGS,
        "redis_url": require_redis(),
        "cluster": f"t{uuid.uuid4().hex[:8]}",
        "heartbeat_seconds": 0.2,
    }


async def _nodes(base_url: str) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(base_url + "/api/v1/nodes", headers=ADMIN) as resp,
    ):
        assert resp.status == 200
        return list((await resp.json())["nodes"])


async def test_a_node_reports_the_streams_it_forwards_in_its_heartbeat(
    join: Join, base_url: str
) -> None:
    (idle,) = await _nodes(base_url)
    assert idle["streams"] == 0
    ada = await join("ada", role="mentor")
    bo = await join("bo")
    for person in (ada, bo):
        await eventually(lambda p=person: len(p.received) == 2, timeout=20)
    # Each forwards its audio and video to the other: four streams, in the next heartbeat.

    async def counted() -> dict[str, Any] | None:
        node = (await _nodes(base_url))[0]
        return node if node["streams"] >= 4 else None

    node = await eventually(
        counted, timeout=10, interval=0.1, what="the heartbeat counting streams"
    )
    assert node["participants"] == 2 and node["rooms"] == 1
    # ... and placement weighs them: 20 forwarded streams count as one more room.
    load = NodeLoad(**{**node, "ts": 0.0, "cpu_percent": 0.0})
    assert load.media_load == pytest.approx(node["streams"] / 20)


def test_media_load_weighs_streams_and_cpu_above_half_a_core() -> None:
    def load(streams: int, cpu: float) -> float:
        return NodeLoad("n", "http://n", 0, 0, streams, cpu, 0.0).media_load

    assert load(0, 0) == load(0, 50) == 0
    assert load(20, 0) == 1 and load(0, 75) == 1 and load(40, 100) == 4
