"""The SFU in worker processes (`media_workers` = 2): rooms pinned to workers, media
flowing through them, a killed worker's rooms rebuilt on its replacement with everyone
back on the rung they had, a server that answers before its workers are ready, and a
worker that keeps dying restarted ever more slowly."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from server.config import Settings
from server.media.api import MEDIA
from server.media.workers.pool import WorkerPool, restart_delay
from tests.conftest import ADMIN
from tests.media.conftest import MEDIA_SETTINGS, Join
from tests.media.support import MediaClient
from tests.support.parts import ServerParts
from tests.support.waiting import eventually


@pytest.fixture
def media_settings() -> dict[str, Any]:
    return {**MEDIA_SETTINGS, "media_workers": 2}


@pytest.fixture
def held() -> bool:
    """Whether the workers' start waits for the test (`start_gate`); parametrized."""
    return False


@pytest.fixture
def start_gate(held: bool) -> asyncio.Event:
    gate = asyncio.Event()
    if not held:
        gate.set()
    return gate


@pytest.fixture
def failing_starts() -> int:
    """How many starts of worker 0 fail (a worker that crashes as it starts); parametrized."""
    return 0


@pytest.fixture
async def server(
    aiohttp_server: Any,
    make_settings: Callable[..., Settings],
    media_settings: dict[str, Any],
    start_gate: asyncio.Event,
    failing_starts: int,
) -> Any:
    from server.app import create_app

    app = create_app(make_settings(**media_settings))
    pool = app[MEDIA]
    assert isinstance(pool, WorkerPool)
    failures = [failing_starts]

    async def before_start(index: int) -> None:  # the hook the pool awaits before a start
        await start_gate.wait()
        if index == 0 and failures[0] > 0:
            failures[0] -= 1
            raise RuntimeError("worker 0 crashed as it started")

    pool.before_start = before_start
    served = await aiohttp_server(app)
    if start_gate.is_set() and not failing_starts:  # a start under load: 2-9 s
        await eventually(lambda: len(pool.alive_workers()) == pool.count, 60, what="workers")
    return served


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


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, await resp.text()


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
        assert "/uvloop/" in loaded(worker.pid)  # on the default event loop

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


def loaded(pid: int) -> str:
    """The files mapped into process `pid` (its shared libraries among them)."""
    return Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.parametrize(
    "media_settings", [{**MEDIA_SETTINGS, "media_workers": 2, "event_loop": "asyncio"}]
)
async def test_workers_run_on_asyncios_loop_when_the_settings_say_so(
    join: Join, server: Any
) -> None:
    pool = ServerParts(server.app).media
    assert isinstance(pool, WorkerPool)
    ada = await join("ada")
    bo = await join("bo")
    await flowing(ada, bo)
    worker = pool.worker_of("pair-1")
    assert worker is not None
    assert "/uvloop/" not in loaded(worker.pid)


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


async def test_everyone_comes_back_to_the_rung_they_had_on_the_new_worker(
    join: Join, server: Any
) -> None:
    """bo was on video: the new worker's ladder brings him back to video. ada was held on
    audio by the ladder (her camera froze): the restart brings her back to audio, not
    above it, and from there the ladder goes on as it would have (her camera works again,
    so up to video after `media_recover_seconds`)."""
    pool = ServerParts(server.app).media
    assert isinstance(pool, WorkerPool)
    ada, bo = await join("ada"), await join("bo")
    await flowing(ada, bo)
    ada.tracks["video"].silent = True
    await bo.socket.wait_for("media_mode", {"identity": "ada", "reason": "no_video_rtp"})
    victim = pool.worker_of("pair-1")
    assert victim is not None

    os.kill(victim.pid, signal.SIGKILL)
    for person, other, name in ((ada, bo, "ada"), (bo, ada, "bo")):
        assert (await person.socket.wait_for("media_failed"))["reason"] == "worker_lost"
        lost = {"identity": name, "mode": "text", "reason": "worker_lost"}
        await other.socket.wait_for("media_mode", lost)
    ada.tracks["video"].silent = False  # her camera is back by the time she reconnects
    for person in (ada, bo):
        await person.reconnect("worker_lost")

    def climbed(identity: str, previous: str) -> Callable[[dict[str, Any]], bool]:
        return lambda e: e["identity"] == identity and e["previous"] == previous

    bo_back = await ada.socket.wait_for("media_mode", climbed("bo", "text"), timeout=20)
    assert (bo_back["mode"], bo_back["reason"]) == ("video", "media_recovered")
    ada_back = await bo.socket.wait_for("media_mode", climbed("ada", "text"), timeout=20)
    assert (ada_back["mode"], ada_back["reason"]) == ("audio", "media_recovered")
    up = {"identity": "ada", "previous": "audio", "mode": "video"}  # after her restore
    assert (await bo.socket.wait_for("media_mode", up, timeout=20))["reason"] == "media_recovered"
    moved = pool.worker_of("pair-1")
    assert moved is not None and moved.pid != victim.pid


@pytest.mark.parametrize("held", [True])
async def test_the_server_answers_before_its_workers_are_ready(
    join: Join, server: Any, base_url: str, start_gate: asyncio.Event
) -> None:
    """Start does not wait for the workers: health, metrics and chat answer at once, and a
    media offer made before any worker is ready is answered once one is."""
    pool = ServerParts(server.app).media
    assert isinstance(pool, WorkerPool)
    assert pool.alive_workers() == []
    status, body = await get(f"{base_url}/healthz")
    assert status == 200 and '"ok"' in body
    status, text = await get(f"{base_url}/metrics")
    assert status == 200 and metric(text, "pairwise_media_workers_ready") == 0
    ada = await join("ada", connect=False)
    bo = await join("bo", connect=False)
    assert "error" not in await ada.socket.chat("before media", "c-1")
    assert (await bo.socket.wait_for("chat", {"client_id": "c-1"}))["text"] == "before media"

    offered = asyncio.create_task(ada.connect())
    await asyncio.sleep(0)  # the offer is on its way; no worker can answer it yet
    assert not offered.done() and pool.alive_workers() == []
    start_gate.set()
    ack = await offered
    assert ack["type"] == "answer"
    await bo.connect()
    await flowing(ada, bo)
    status, text = await get(f"{base_url}/metrics")
    assert metric(text, "pairwise_media_workers_ready") >= 1


def test_restarts_back_off_while_a_worker_keeps_dying() -> None:
    assert restart_delay(0) == 0  # after a worker that ran a while: at once
    delays = [restart_delay(n) for n in range(1, 12)]
    assert delays == sorted(delays) and delays[0] > 0 and delays[-1] == delays[-2]


@pytest.mark.parametrize("failing_starts", [1000])
async def test_a_crash_looping_worker_is_reported_and_the_other_carries_the_rooms(
    join: Join, server: Any, base_url: str
) -> None:
    pool = ServerParts(server.app).media
    assert isinstance(pool, WorkerPool)

    async def looping() -> bool:
        status, text = await get(f"{base_url}/metrics")
        return metric(text, "pairwise_media_workers_crash_looping") == 1

    await eventually(looping, 20, what="worker 0 reported as crash looping")
    status, body = await get(f"{base_url}/healthz")
    assert status == 200 and '"crash_looping":[0]' in body.replace(" ", "")
    assert pool.failures[0] >= 3 and pool.crash_looping() == [0]
    ada, bo = await join("ada"), await join("bo")
    await flowing(ada, bo)
    worker = pool.worker_of("pair-1")
    assert worker is not None and worker.index == 1
