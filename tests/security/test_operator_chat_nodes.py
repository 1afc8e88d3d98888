"""Item 4 across nodes: switching `operators_read_chat` off cuts an observer connected to
another node than the sender, and live chat that reaches one there is audited."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from tests.conftest import ADMIN
from tests.support.participants import SocketParticipant, issue_token, set_operators_read_chat
from tests.support.process import ServerProcess
from tests.support.services import fresh_postgres_database, require_redis


async def connect(server: ServerProcess, room: str, identity: str, role: str) -> SocketParticipant:
    token = await asyncio.to_thread(issue_token, server.url, room, identity, None, role)
    person = await SocketParticipant(server.url, token).connect()
    await person.join(media_mode="text")
    return person


async def admin(server: ServerProcess, method: str, path: str, body: Any = None) -> Any:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, server.url + path, headers=ADMIN, json=body) as resp,
    ):
        assert resp.status in (200, 201), await resp.text()
        return await resp.json()


@pytest.mark.redis
@pytest.mark.postgres
async def test_switching_off_cuts_an_observer_on_another_node(
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
        pair = await admin(node_a, "POST", "/api/v1/pairs", {"members": members, "room": "r-ab"})
        await asyncio.to_thread(set_operators_read_chat, node_a.url, True)
        watcher = await connect(node_b, "r-ab", "watcher", "observer")
        ada = await connect(node_a, "r-ab", "ada", "mentor")
        bo = await connect(node_b, "r-ab", "bo", "mentee")
        try:
            await ada.chat("readable", "a-1")
            await watcher.wait_for("chat", {"client_id": "a-1"})
            reads = (await admin(node_a, "GET", "/api/v1/program/transcript-reads"))["reads"]
            assert [(r["actor"], r["pair_id"]) for r in reads if r["purpose"] == "room_live"] == [
                ("observer:watcher", pair["id"])
            ]

            await asyncio.to_thread(set_operators_read_chat, node_b.url, False)
            await ada.chat("private again", "a-2")
            await bo.wait_for("chat", {"client_id": "a-2"})
            await watcher.call("presence", {"presence": "online"})  # a round trip on node B
            assert [m["client_id"] for m in watcher.events["chat"]] == ["a-1"]
        finally:
            for person in (watcher, ada, bo):
                await person.close()
