"""The console's room view and actions on a two-node cluster: real server processes sharing
real Redis and PostgreSQL. Who is in a room is seen from either node; a removal made on one
node reaches the person on the other; ending a pair on one node closes the room on both."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.participants import SocketParticipant, issue_token
from tests.support.process import ADMIN_KEY, ServerProcess
from tests.support.services import fresh_postgres_database, require_redis
from tests.support.waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]


def call(node: ServerProcess, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        node.url.rstrip("/") + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def in_room(node: ServerProcess, room: str, expected: list[str]) -> None:
    """Wait until the console's room view on `node` lists exactly `expected`."""

    async def listed() -> dict[str, Any] | None:  # a REST view: there is no event to wait on
        _, now = await asyncio.to_thread(call, node, "GET", f"/api/v1/console/rooms/{room}")
        return now if sorted(p["identity"] for p in now["participants"]) == expected else None

    now = await eventually(listed, what=f"{room} listing {expected}")
    assert not now["partial"]


async def test_room_view_removal_and_ending_across_nodes(
    server_process: Callable[..., ServerProcess],
) -> None:
    redis_url = require_redis()
    async with fresh_postgres_database() as database_url:
        shared = {
            "PAIRWISE_REDIS_URL": redis_url,
            "PAIRWISE_DATABASE_URL": database_url,
            "PAIRWISE_CLUSTER": f"test-{uuid.uuid4().hex[:8]}",
        }
        node_a = await asyncio.to_thread(server_process, **shared)
        node_b = await asyncio.to_thread(server_process, **shared)
        members = [
            {"identity": "ada", "name": "Ada", "role": "mentor"},
            {"identity": "bo", "name": "Bo", "role": "mentee"},
        ]
        status, pair = await asyncio.to_thread(
            call, node_a, "POST", "/api/v1/pairs", {"members": members}
        )
        assert status == 201, pair
        room = pair["room"]
        ada_token = await asyncio.to_thread(issue_token, node_a.url, room, "ada", "Ada", "mentor")
        bo_token = await asyncio.to_thread(issue_token, node_b.url, room, "bo", "Bo", "mentee")
        ada = await SocketParticipant(node_a.url, ada_token).connect()
        bo = await SocketParticipant(node_b.url, bo_token).connect()
        try:
            await ada.join(media_mode="text")
            await bo.join(media_mode="text")
            await asyncio.wait_for(in_room(node_a, room, ["ada", "bo"]), 10)

            # Removed from node A's console, Bo is disconnected on node B.
            status, removed = await asyncio.to_thread(
                call, node_a, "DELETE", f"/api/v1/rooms/{room}/participants/bo"
            )
            assert status == 200, removed
            assert (await bo.wait_for("error", {"code": "removed"}))["code"] == "removed"
            await asyncio.wait_for(in_room(node_a, room, ["ada"]), 10)

            # Ended on node B, the room is closed on node A as well.
            status, ended = await asyncio.to_thread(
                call, node_b, "POST", f"/api/v1/console/pairs/{pair['id']}/end"
            )
            assert status == 200, ended
            ack = await ada.chat("still here?", "a1")
            assert ack["error"]["code"] == "room_closed", ack
            status, refused = await asyncio.to_thread(
                call, node_a, "POST", "/api/v1/tokens",
                {"room": room, "identity": "ada", "name": "Ada", "role": "mentor"},
            )  # fmt: skip
            assert (status, refused["error"]["code"]) == (403, "room_closed")
        finally:
            await ada.close()
            await bo.close()
            await asyncio.to_thread(node_a.stop)
            await asyncio.to_thread(node_b.stop)
