"""The SFU in worker processes (`media_workers` = 2): rooms pinned to workers, media
flowing through them, and a killed worker's rooms rebuilt on its replacement."""

from __future__ import annotations

import os
import re
import signal
from typing import Any

import aiohttp
import pytest

from server.media.workers.pool import WorkerPool
from tests.conftest import ADMIN
from tests.media.conftest import MEDIA_SETTINGS, Join
from tests.media.support import MediaClient
from tests.support.parts import ServerParts
from tests.support.waiting import eventually


@pytest.fixture
def media_settings() -> dict[str, Any]:
    return {**MEDIA_SETTINGS, "media_workers": 2}


def frames(person: MediaClient) -> int:
    return sum(r.frames for r in person.of_kind("video"))


async def flowing(*people: MediaClient, more: int = 10) -> None:
    """Until every one of `people` has decoded `more` video frames beyond what it had."""
    start = {id(p): frames(p) for p in people}
    await eventually(
        lambda: all(frames(p) >= start[id(p)] + more for p in people), 20, what="video frames"
    )


def metric(text: str, sample: str) -> float:
    found = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


async def two_rooms(join: Join) -> list[MediaClient]:
    people = [
        await join(who, room=room)
        for who, room in (("ada", "pair-1"), ("bo", "pair-1"), ("cy", "pair-2"), ("di", "pair-2"))
    ]
    await flowing(*people)
    return people


async def test_rooms_run_on_their_own_workers(join: Join, server: Any, base_url: str) -> None:
    pool = ServerParts(server.app).media
    assert isinstance(pool, WorkerPool)
    ada, bo, cy, di = await two_rooms(join)
    first, second = pool.worker_of("pair-1"), pool.worker_of("pair-2")
    assert first is not None and second is not None
    assert first.pid != second.pid and os.getpid() not in (first.pid, second.pid)
    for worker in (first, second):
        os.kill(worker.pid, 0)  # the process exists

    # Both participants of a room are on its worker: its stats show both connected.
    url = f"{base_url}/api/v1/rooms/pair-1/stats"
    async with aiohttp.ClientSession() as http, http.get(url, headers=ADMIN) as resp:
        stats = await resp.json()
    seen = {p["identity"]: p for p in stats["participants"]}
    assert {seen[w]["connection_state"] for w in ("ada", "bo")} == {"connected"}
    assert all(seen[w]["forwarded_streams"] == 2 for w in ("ada", "bo"))

    controls = await ada.socket.call("media_control", {"audio": False})
    assert controls["audio"] is False
    assert (await bo.socket.wait_for("media_state", {"identity": "ada"}))["audio"] is False
    view = {"views": [{"identity": "ada", "width": 320, "height": 180}]}
    assert (await bo.socket.call("media_view", view))["matched"] == 1

    async def scraped() -> str:
        async with aiohttp.ClientSession() as http, http.get(f"{base_url}/metrics") as resp:
            return await resp.text()

    async def counted() -> bool:
        text = await scraped()
        return (
            metric(text, "pairwise_sfu_peers") == 4
            and metric(text, 'pairwise_sfu_forwarded_frames_total{kind="video"}') > 0
        )

    await eventually(counted, what="the workers' metrics on main's /metrics")

    # Closing media and coming back: the room keeps its worker while the other is in it.
    assert (await di.socket.call("media_close"))["closed"] is True
    await di.reconnect("test")
    back = {"mode": "video", "reason": "test", "choice": True}
    assert "error" not in await di.socket.call("media_mode", back)
    await flowing(cy, di)
    assert pool.worker_of("pair-2") is second


async def test_a_killed_workers_rooms_come_back_on_a_new_one(join: Join, server: Any) -> None:
    pool = ServerParts(server.app).media
    assert isinstance(pool, WorkerPool)
    ada, bo, cy, di = await two_rooms(join)
    victim, other = pool.worker_of("pair-1"), pool.worker_of("pair-2")
    assert victim is not None and other is not None

    os.kill(victim.pid, signal.SIGKILL)
    for person in (ada, bo):
        failed = await person.socket.wait_for("media_failed")
        assert failed["reason"] == "worker_lost"
    # The other room's media and everyone's chat go on.
    await flowing(cy, di)
    assert "error" not in await ada.socket.chat("still here", "c-1")
    assert (await bo.socket.wait_for("chat", {"client_id": "c-1"}))["text"] == "still here"

    await eventually(lambda: (w := pool.workers[victim.index]) is not None and w.alive)
    for person in (ada, bo):
        await person.reconnect("worker_lost")
    await flowing(ada, bo)
    moved = pool.worker_of("pair-1")
    assert moved is not None and moved.pid != victim.pid
    assert pool.worker_of("pair-2") is other
