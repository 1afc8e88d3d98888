"""Chat across a restart and across nodes: real server processes, real Redis, real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.participants import SocketParticipant, issue_token
from tests.support.process import ServerProcess
from tests.support.services import fresh_postgres_database, require_redis


async def connect(
    server: ServerProcess, room: str, identity: str, role: str = "mentee"
) -> SocketParticipant:
    token = await asyncio.to_thread(issue_token, server.url, room, identity, None, role)
    return await SocketParticipant(server.url, token).connect()


async def test_acknowledged_message_survives_a_crash(tmp_path: Path) -> None:
    server = ServerProcess(data_dir=tmp_path / "data").start()
    ada = await connect(server, "pair-1", "ada")
    await ada.join()
    acks = [await ada.chat(f"before the crash {i}", f"c{i}") for i in range(3)]
    assert all("id" in ack for ack in acks)
    server.kill()  # SIGKILL right after the acks: no clean shutdown, no flush
    await ada.close()
    server.start()
    try:
        again = await connect(server, "pair-1", "ada")
        joined = await again.join()
        assert [m["id"] for m in joined["history"]] == [a["id"] for a in acks]
        assert (await again.chat("before the crash 2", "c2")) == acks[2]  # still deduplicated
        await again.close()
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.postgres
async def test_two_nodes_share_chat_and_presence(
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
        ada = await connect(node_a, "pair-x", "ada", "mentor")
        await ada.join()
        bo = await connect(node_b, "pair-x", "bo")
        joined = await bo.join()
        assert [p["identity"] for p in joined["participants"]] == ["ada", "bo"]
        assert (await ada.wait_for("participant_joined", {"identity": "bo"}))["role"] == "mentee"

        sent = await ada.chat("hello from node A", "a1")
        received = await bo.wait_for("chat", {"client_id": "a1"})
        assert received["id"] == sent["id"] and received["from"]["identity"] == "ada"
        await bo.chat("hello from node B", "b1")
        assert (await ada.wait_for("chat", {"client_id": "b1"}))["text"] == "hello from node B"

        await bo.call("presence", {"presence": "away"})
        await ada.wait_for("presence", {"identity": "bo", "presence": "away"})
        await bo.call("leave")
        await ada.wait_for("participant_left", {"identity": "bo"})

        carol = await connect(node_b, "pair-x", "carol")
        joined = await carol.join()
        assert [p["identity"] for p in joined["participants"]] == ["ada", "carol"]
        assert [m["client_id"] for m in joined["history"]] == ["a1", "b1"]
        for person in (ada, bo, carol):
            await person.close()
        await asyncio.to_thread(node_a.stop)
        await asyncio.to_thread(node_b.stop)
