"""Two offers of one participant racing (a tab retrying, or a second tab): the latest
wins, in this process and on a media worker.

The stale offer is held inside the SFU, answered but not yet swapped in, until the SFU
has answered the newer one: the stale one then finishes last, as it does when its ICE
gathering happens to take longer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiortc import RTCPeerConnection

from server.app import create_app
from server.config import Settings
from server.media.api import MEDIA
from server.media.peer import Peer
from server.media.service import LocalMedia
from server.media.sfu import Sfu
from server.media.workers.pool import WorkerPool
from server.media.workers.worker import Worker
from tests.media.conftest import MEDIA_SETTINGS, Join
from tests.media.support import Encoded, EncodedTrack, client_configuration
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow

RACER = "ana"  # the participant whose offers race
HELD = "test_offer_held"  # told to the racer once their first offer is held
EXTENSION = "tests.media.test_offer_race:install"  # the hold, in a media worker


def hold_first_offer(sfu: Sfu, patch: Callable[[Any, str, Any], None]) -> None:
    """Hold the racer's first offer, once its peer has the answer, until the SFU has
    answered their next offer; the racer is told (`HELD`) when the hold starts."""
    first: list[str] = []
    answered = asyncio.Event()
    connect, accept_offer = sfu.connect, Peer.accept_offer

    async def connect_noting(
        room: str, identity: str, offer_sdp: str, *args: Any, **kwargs: Any
    ) -> str:
        if identity == RACER and not first:
            first.append(offer_sdp)
        try:
            return await connect(room, identity, offer_sdp, *args, **kwargs)
        finally:
            if identity == RACER and offer_sdp not in first:
                answered.set()

    async def accept_offer_holding(peer: Peer, sdp: str) -> str:
        answer = await accept_offer(peer, sdp)
        if peer.identity == RACER and sdp in first:
            assert sfu.notify is not None
            await sfu.notify(peer.room, peer.identity, HELD, {})
            await asyncio.wait_for(answered.wait(), 30)
        return answer

    patch(sfu, "connect", connect_noting)
    patch(Peer, "accept_offer", accept_offer_holding)


def install(worker: Worker) -> None:
    """The hold in a media worker process (a `WorkerPool` extension)."""
    hold_first_offer(worker.sfu, setattr)


@pytest.fixture(params=[0, 1], ids=["in_process", "worker"])
def media_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    return {**MEDIA_SETTINGS, "media_workers": request.param}


@pytest.fixture
async def server(
    aiohttp_server: Any,
    make_settings: Callable[..., Settings],
    media_settings: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    app = create_app(make_settings(**media_settings))
    media = app[MEDIA]
    if isinstance(media, WorkerPool):
        media.extensions.append(EXTENSION)
    else:
        assert isinstance(media, LocalMedia)
        hold_first_offer(media.sfu, monkeypatch.setattr)
    served = await aiohttp_server(app)
    if isinstance(media, WorkerPool):  # a start under load: 2-9 s
        await eventually(lambda: len(media.alive_workers()) == media.count, 60, what="workers")
    return served


async def test_the_latest_offer_wins(
    join: Join, video_frames: list[Encoded], audio_frames: list[Encoded]
) -> None:
    ben = await join("ben", publish=False)
    ana = await join(RACER, connect=False)  # ana.pc: the newer connection
    stale = RTCPeerConnection(client_configuration())
    try:
        stale.addTransceiver(EncodedTrack("audio", audio_frames, 50), direction="sendonly")
        stale.addTransceiver(EncodedTrack("video", video_frames, 15), direction="sendonly")
        await stale.setLocalDescription(await stale.createOffer())
        offer = {"sdp": stale.localDescription.sdp, "type": "offer"}
        stale_ack = asyncio.create_task(ana.socket.call("media_offer", offer, timeout=40))
        await ana.socket.wait_for(HELD, timeout=20)

        await ana.connect()  # the newer offer, answered while the stale one is held

        error = (await stale_ack).get("error")
        assert error is not None and error["code"] == "offer_superseded", await stale_ack
        await ana.wait_connected()
        await eventually(
            lambda: sum(r.frames for r in ben.of_kind("video")) >= 10,
            20,
            what="ana's video at ben",
        )
        assert ana.pc.connectionState == "connected"  # not closed by the stale offer
    finally:
        await stale.close()
