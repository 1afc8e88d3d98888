"""Two Chromium pages through a server whose SFU runs in worker processes
(PAIRWISE_MEDIA_WORKERS=2): they see each other, the room's worker is killed, and both
videos come back by themselves (`media_failed` `worker_lost` → `media_reconnect`)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable

import psutil
import pytest
from playwright.async_api import expect

from tests.e2e.conftest import OpenPage, RoomPage
from tests.e2e.test_media import INBOUND
from tests.support.process import ServerProcess
from tests.support.waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.browser]

WORKER = "server.media.workers.worker"


@pytest.fixture
async def served(server_process: Callable[..., ServerProcess]) -> ServerProcess:
    return await asyncio.to_thread(server_process, PAIRWISE_MEDIA_WORKERS="2")


@pytest.fixture
def base_url(served: ServerProcess) -> str:
    return served.url


def workers(server: ServerProcess) -> list[psutil.Process]:
    assert server.proc is not None
    children = psutil.Process(server.proc.pid).children()
    return [p for p in children if WORKER in " ".join(p.cmdline())]


def with_media(server: ServerProcess) -> list[psutil.Process]:
    """The workers holding PeerConnections (their ICE sockets are UDP)."""
    return [p for p in workers(server) if p.net_connections(kind="udp")]


async def decoding(person: RoomPage) -> bool:
    """Whether the page decodes new video frames over the next second."""
    before = await person.evaluate(INBOUND)
    await asyncio.sleep(1)
    after = await person.evaluate(INBOUND)
    return bool(after["frames"] > before["frames"])


MARK_CONNECTION = "() => { window.pairwiseDebug.room.media.pc.beforeKill = true; }"
REBUILT = "() => Boolean(window.pairwiseDebug.room.media.pc && !window.pairwiseDebug.room.media.pc.beforeKill)"


async def test_videos_come_back_after_the_rooms_worker_is_killed(
    open_page: OpenPage, served: ServerProcess
) -> None:
    assert len(workers(served)) == 2
    ada = await open_page("ada", role="mentor", diag=("debug-handle",))
    bo = await open_page("bo", diag=("debug-handle",))
    for person in (ada, bo):
        await eventually(lambda p=person: decoding(p), 20, interval=0, what="video decoded")
        await person.evaluate(MARK_CONNECTION)
    [room_worker] = with_media(served)

    os.kill(room_worker.pid, signal.SIGKILL)
    await eventually(
        lambda: (
            len(workers(served)) == 2 and room_worker.pid not in {w.pid for w in workers(served)}
        ),
        what="a replacement worker",
    )
    for person in (ada, bo):  # on a new connection, which the page made by itself
        await eventually(lambda p=person: p.evaluate(REBUILT), 30, what="a new connection")
        await eventually(lambda p=person: decoding(p), 30, interval=0, what="video back")
    assert len(with_media(served)) == 1  # the room is on the replacement alone
    for person, other in ((ada, "bo"), (bo, "ada")):  # stepped down, and back up
        await expect(person.badge(other)).to_have_text("Video", timeout=30_000)
    assert "media worker lost" in served.log()
