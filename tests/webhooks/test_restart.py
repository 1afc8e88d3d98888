"""A retry that falls due while the server is down is sent once, after it restarts: the
delivery is a job in the database, not a timer in a process."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from server.store import Database
from server.webhooks.signing import HEADER, verify
from tests.conftest import ADMIN
from tests.support.process import ServerProcess
from tests.webhooks.conftest import Receiver

RETRY_SECONDS = 3.0


@pytest.mark.slow
async def test_a_retry_due_while_the_server_is_down_is_sent_once_after_restart(
    tmp_path: Path, receiver: Receiver
) -> None:
    """Real server processes: the retry falls due after the first one stopped, and the
    second starts with its jobs' clock past that moment (`jobs_clock_ahead`), as if it had
    been down until then, instead of the test waiting for it."""
    env = {
        "PAIRWISE_WEBHOOK_ALLOW_PRIVATE": "true",  # the receiver is on loopback
        "PAIRWISE_WEBHOOK_RETRY_SECONDS": str(RETRY_SECONDS),
        "PAIRWISE_JOBS_POLL_SECONDS": "0.2",
    }
    server = ServerProcess(data_dir=tmp_path / "node", env=env)
    await asyncio.to_thread(server.start, 120)  # slow under load
    receiver.script["/hook"] = [500, 200]
    try:
        async with aiohttp.ClientSession(server.url) as http:
            body = {"url": receiver.url(), "events": ["pair.published"]}
            async with http.post("/api/v1/webhooks", headers=ADMIN, json=body) as r:
                assert r.status == 201, await r.text()
                hook = await r.json()
            members = [
                {"identity": "ada", "name": "Ada", "role": "mentor"},
                {"identity": "bo", "name": "Bo", "role": "mentee"},
            ]
            async with http.post(
                "/api/v1/pairs", headers=ADMIN, json={"members": members, "room": "r1"}
            ) as r:
                assert r.status == 201, await r.text()
            (first,) = await receiver.take(1)  # answered 500
            assert verify(hook["secret"], first.headers[HEADER], first.body, time.time())
    finally:
        await asyncio.to_thread(server.stop)
    [(status, attempts, due)] = await _jobs(tmp_path, "status, attempts, run_at")
    assert (status, attempts) == ("pending", 1)
    assert receiver.drained() == []
    # The retry fell due while the server was down.
    server.jobs_clock_ahead = max(0.0, due - time.time()) + 0.5
    await asyncio.to_thread(server.start, 120)
    try:
        (second,) = await receiver.take(1)
        assert second.json()["id"] == first.json()["id"]
        now = time.time() + server.jobs_clock_ahead  # the server's time, which signed it
        assert verify(hook["secret"], second.headers[HEADER], second.body, now)
        async with (
            aiohttp.ClientSession(server.url) as http,
            http.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=ADMIN) as r,
        ):
            [delivery] = (await r.json())["deliveries"]
        assert (delivery["status"], delivery["attempts"], delivery["status_code"]) == (
            "delivered",
            2,
            200,
        )
        # One job, tried twice.
        assert await _jobs(tmp_path, "status, attempts") == [("done", 2)]
        assert receiver.drained() == []
    finally:
        await asyncio.to_thread(server.stop)


async def _jobs(tmp_path: Path, columns: str) -> list[tuple[object, ...]]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'node' / 'pairwise.db'}")
    try:
        async with database.connect() as conn:
            result = await conn.exec_driver_sql(
                f"SELECT {columns} FROM jobs WHERE kind='webhook.deliver'"
            )
            return [tuple(row) for row in result.all()]
    finally:
        await database.close()
