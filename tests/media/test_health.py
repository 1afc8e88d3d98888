"""The ladder monitor (server/media/ladder_monitor.py) moves participants down the ladder
and back, from real RTP. The rules alone, with a made-up clock: tests/unit/test_ladder_rules.py."""

from __future__ import annotations

import pytest
from aiortc import RTCPeerConnection

from tests.media.conftest import Join
from tests.media.support import client_configuration
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow


async def test_silent_publisher_steps_down_and_recovers(join: Join) -> None:
    ada = await join("ada")
    bo = await join("bo", publish=False, decode=False)
    await eventually(lambda: len(bo.received) == 2 and all(r.frames > 10 for r in bo.received))

    ada.tracks["video"].silent = True  # the camera froze; audio still flows
    changed = await bo.socket.wait_for("media_mode", {"identity": "ada", "mode": "audio"})
    assert changed["reason"] == "no_video_rtp" and changed["previous"] == "video"

    ada.tracks["audio"].silent = True  # now nothing arrives at all
    changed = await bo.socket.wait_for("media_mode", {"identity": "ada", "mode": "text"})
    assert changed["reason"] == "no_audio_rtp"
    told = await ada.socket.wait_for("media_mode", {"identity": "ada", "mode": "text"})
    assert told["reason"] == "no_audio_rtp"  # ada's own client hears why, as bo did

    ada.tracks["video"].silent = ada.tracks["audio"].silent = False
    back = await bo.socket.wait_for("media_mode", {"identity": "ada", "mode": "video"})
    assert back["reason"] == "media_recovered" and back["previous"] == "text"


async def test_peer_that_never_completes_ice_is_moved_to_text(join: Join) -> None:
    ada = await join("ada")
    bo = await join("bo", publish=False, decode=False)
    await eventually(lambda: len(bo.received) == 2)
    # carol offers, then vanishes before any connectivity check can succeed.
    carol = await join("carol", connect=False)
    ghost = RTCPeerConnection(client_configuration())
    ghost.addTransceiver("audio", direction="sendonly")
    await ghost.setLocalDescription(await ghost.createOffer())
    offer = ghost.localDescription.sdp
    await ghost.close()
    ack = await carol.socket.call("media_offer", {"sdp": offer, "type": "offer"})
    assert ack["type"] == "answer"
    moved = await bo.socket.wait_for("media_mode", {"identity": "carol", "mode": "text"})
    assert moved["reason"] in ("ice_timeout", "ice_failed")
    failed = await carol.socket.wait_for("media_failed")
    assert failed["reason"] == moved["reason"]
    # The room carries on: media between the others still flows, chat still works.
    from_ada = bo.received[:2]
    before = [r.frames for r in from_ada]
    await eventually(lambda: all(r.frames > b + 10 for r, b in zip(from_ada, before, strict=True)))
    assert "id" in await carol.socket.chat("can you hear me?", "c1")
    assert (await ada.socket.wait_for("chat", {"client_id": "c1"}))["text"] == "can you hear me?"
