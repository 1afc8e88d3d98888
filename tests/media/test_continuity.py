"""The fallback ladder comes back up: a dead connection steps down with its reason and
media_failed, a media_reconnect brings the participant back to the mode they had; a
participant's own choice is reversible, holds their video meanwhile and is recorded as a
choice, never as a fallback.

Real server, real aiortc peers over loopback. The faults are real: the client closes its
RTCPeerConnection (DTLS close_notify), offers a wrong DTLS fingerprint (the handshake
fails), or offers from a connection that is already gone (ICE never completes).
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from aiortc import RTCPeerConnection

from server.pairs.model import Member
from server.rooms.model import MediaMode
from server.sessionlog.program_health import program_health
from tests.media.conftest import Join
from tests.media.support import MediaClient, client_configuration
from tests.support.parts import ServerParts
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow


def sfu_of(server: Any) -> Any:
    return ServerParts(server.app).sfu


def video_of(server: Any, identity: str, room: str = "pair-1") -> Any:
    return sfu_of(server).rooms[room].publications[(identity, "video")]


async def watched(join: Join, room: str = "pair-1") -> tuple[MediaClient, MediaClient]:
    """ada publishing, bo receiving her audio and video (in text mode: he sends nothing)."""
    ada = await join("ada", room=room)
    bo = await join("bo", room=room, publish=False, decode=False, media_mode="text")
    await frames_grow(bo, 10)
    return ada, bo


async def frames_grow(bo: MediaClient, by: int) -> None:
    """bo's latest video track from ada gets `by` more frames."""

    def video() -> int:
        tracks = bo.of_kind("video")
        return tracks[-1].frames if tracks else 0

    start = video()
    await eventually(lambda: video() >= start + by, timeout=20)


def wrong_fingerprint(sdp: str) -> str:
    """The offer as a man in the middle would rewrite it: a DTLS fingerprint that is not
    the client's, so the SFU's handshake fails after ICE has connected."""
    return re.sub(
        r"(a=fingerprint:sha-256 )([0-9A-F:]+)",
        lambda m: m.group(1) + ":".join(["AB"] * 32),
        sdp,
    )


async def close_connection(ada: MediaClient) -> tuple[str, ...]:
    await ada.pc.close()  # the page closes its RTCPeerConnection: DTLS close_notify
    return ("connection_closed",)


async def break_dtls(ada: MediaClient) -> tuple[str, ...]:
    ada.munge_first_offer = wrong_fingerprint
    try:
        await ada.reconnect("bad fingerprint")
    finally:
        ada.munge_first_offer = None
    return ("dtls_failed",)


async def vanish_before_ice(ada: MediaClient) -> tuple[str, ...]:
    ghost = RTCPeerConnection(client_configuration())
    ghost.addTransceiver("audio", direction="sendonly")
    ghost.addTransceiver("video", direction="sendonly")
    await ghost.setLocalDescription(await ghost.createOffer())
    offer = ghost.localDescription.sdp
    await ghost.close()  # nothing will ever answer the SFU's connectivity checks
    ack = await ada.socket.call("media_reconnect", {"sdp": offer, "type": "offer"})
    assert ack["type"] == "answer", ack
    # The checks go unanswered until the timeout, or fail sooner when aioice gives up.
    return ("ice_timeout", "ice_failed")


@pytest.mark.parametrize("fault", [close_connection, break_dtls, vanish_before_ice])
async def test_a_dead_connection_steps_down_and_a_reconnect_brings_video_back(
    join: Join, server: Any, fault: Any
) -> None:
    ada, bo = await watched(join)
    # Only what follows the fault: in a loaded run ada's first frames can come late enough
    # for a no_rtp step and its recovery while she joined, and those are recorded too.
    bo.socket.events["media_mode"].clear()
    ada.socket.events["media_failed"].clear()
    reasons = await fault(ada)

    # Down: the room sees the step with the reason; ada is told to rebuild.
    down = await bo.socket.wait_for("media_mode", {"identity": "ada", "mode": "text"})
    assert (down["previous"], down["choice"]) == ("video", False)
    assert down["reason"] in reasons, down
    reason = down["reason"]
    failed = await ada.socket.wait_for("media_failed")
    assert failed["reason"] == reason
    assert sfu_of(server).peer("pair-1", "ada") is None, "the dead connection was not closed"
    assert video_of(server, "ada").held, "a participant in text still has video forwarded"

    # Up: the client rebuilds (media_reconnect); clean media brings back the mode she had.
    await ada.reconnect(f"after {reason}")
    back = await bo.socket.wait_for("media_mode", {"identity": "ada", "mode": "video"}, timeout=20)
    assert back["reason"] == "media_recovered" and back["previous"] in ("text", "audio")
    assert not video_of(server, "ada").held
    await frames_grow(bo, 10)


async def test_choices_are_reversible_and_hold_video_meanwhile(join: Join, server: Any) -> None:
    ada, bo = await watched(join)
    for mode in ("audio", "text"):
        ack = await ada.socket.call(
            "media_mode", {"mode": mode, "reason": f"chose {mode}", "choice": True}
        )
        assert ack == {"mode": mode}
        seen = await bo.socket.wait_for("media_mode", {"identity": "ada", "mode": mode})
        assert (seen["choice"], seen["reason"]) == (True, f"chose {mode}")
        await eventually(lambda: video_of(server, "ada").held)  # the others see "paused"

        assert await ada.socket.call(
            "media_mode", {"mode": "video", "reason": "back", "choice": True}
        ) == {"mode": "video"}
        await bo.socket.wait_for("media_mode", {"identity": "ada", "mode": "video"})
        await eventually(lambda: not video_of(server, "ada").held)
        await frames_grow(bo, 10)  # the media path resumed on the same connection


async def test_a_reason_that_poses_as_a_choice_is_refused(join: Join, server: Any) -> None:
    ada = await join("ada", connect=False)
    registry = ServerParts(server.app).rooms
    for bad in (
        {"mode": "audio", "reason": "choice: sneaky"},  # would be stored as a choice
        {"mode": "audio", "choice": "yes"},
    ):
        ack = await ada.socket.call("media_mode", bad)
        assert ack["error"]["code"] == "invalid_payload", ack
        assert registry.participant("pair-1", "ada").media_mode == MediaMode.VIDEO


async def test_media_close_is_a_choice_to_text_and_media_comes_back(
    join: Join, server: Any
) -> None:
    ada, bo = await watched(join)
    assert await ada.socket.call("media_close", {}) == {"closed": True}
    seen = await bo.socket.wait_for("media_mode", {"identity": "ada", "mode": "text"})
    assert (seen["previous"], seen["reason"], seen["choice"]) == ("video", "media_close", True)
    await eventually(lambda: video_of(server, "ada").held)

    await ada.reconnect("camera back on")
    assert await ada.socket.call(
        "media_mode", {"mode": "video", "reason": "back", "choice": True}
    ) == {"mode": "video"}
    await frames_grow(bo, 10)


async def test_camera_off_never_steps_down_for_missing_video(join: Join, server: Any) -> None:
    """The monitor judged with a clock 2 s ahead (`check(now)`: past media_silence_seconds,
    1.5 s here, within media_liveness_seconds, 3 s, so the connection is not taken for
    dead): with the camera off no video is expected, so nothing steps down; with it on,
    the same silence does."""
    ada, bo = await watched(join)
    ladder = sfu_of(server).ladder
    registry = ServerParts(server.app).rooms
    assert await ada.socket.call("media_control", {"video": False}) == {
        "audio": True,
        "video": False,
        "receive_video": True,
        "screen": False,
    }
    ada.tracks["video"].silent = True
    ladder.check(time.monotonic() + 2)
    assert registry.participant("pair-1", "ada").media_mode == MediaMode.VIDEO

    await ada.socket.call("media_control", {"video": True})
    ladder.check(time.monotonic() + 2)
    assert registry.participant("pair-1", "ada").media_mode != MediaMode.VIDEO


async def test_the_log_tells_choices_from_failures(join: Join, server: Any) -> None:
    """Choices are stored as `choice: …` and left out of the fallback counts; a dead
    connection is a fallback with its reason and a `media_failed` timeline entry."""
    services = ServerParts(server.app)
    log = services.sessionlog
    pair = await log.pairs.create(
        [Member("ada", "Ada", "mentee"), Member("bo", "Bo", "mentor")], room="pair-log"
    )
    ada, bo = await watched(join, room="pair-log")
    await ada.socket.call("media_control", {"video": False})
    await ada.socket.call("media_control", {"video": True})
    await ada.socket.call("media_mode", {"mode": "audio", "reason": "audio only", "choice": True})
    await ada.socket.call("media_mode", {"mode": "video", "reason": "video again", "choice": True})
    await ada.pc.close()
    await ada.socket.wait_for("media_failed")
    await ada.reconnect("after connection_closed")
    await bo.socket.wait_for(
        "media_mode", {"identity": "ada", "mode": "video", "reason": "media_recovered"}, timeout=20
    )
    await services.bus.drain()

    [summary] = await log.sessions.of_pair(pair.id)
    detail = await log.sessions.detail(pair.id, summary.session.id)
    path = [(s.previous, s.mode, s.reason) for s in detail.media_path["ada"]]
    assert path == [
        (None, "video", "joined"),
        ("video", "audio", "choice: audio only"),
        ("audio", "video", "choice: video again"),
        ("video", "text", "connection_closed"),
        ("text", "video", "media_recovered"),
    ]
    timeline = [(t.kind, t.detail) for t in detail.timeline if t.identity == "ada"]
    assert ("media_failed", "connection_closed") in timeline
    assert ("media_control", "choice: audio on, video off") in timeline
    assert summary.fallback_steps == ("video→text",)
    health = await program_health(services.database)
    assert health.fallback_steps == {"video→text": 1}
    assert health.sessions_with_fallback == 1


async def test_a_dropped_partner_is_shown_reconnecting_for_the_grace_period(
    join: Join, server: Any
) -> None:
    """A connection that drops without `leave` tells the others how long to show
    "reconnecting" (the room's grace period); leaving on purpose does not."""
    ada = await join("ada", connect=False, publish=False)
    bo = await join("bo", connect=False, publish=False)
    carol = await join("carol", connect=False, publish=False)
    await bo.socket.drop()  # the network went: no `leave`, no goodbye
    dropped = await ada.socket.wait_for("participant_left", {"identity": "bo"})
    grace = ServerParts(server.app).settings.room_grace_seconds
    assert dropped == {"identity": "bo", "reason": "disconnected", "grace_seconds": grace}

    assert await carol.socket.call("leave") == {"ok": True}
    left = await ada.socket.wait_for("participant_left", {"identity": "carol"})
    assert left == {"identity": "carol", "reason": "left"}


async def test_a_dead_connection_is_logged_even_when_the_mode_stays(
    join: Join, server: Any
) -> None:
    """Someone already in text (here by choice, still connected) whose connection dies:
    no mode to step, but the client is told and the log says what happened."""
    services = ServerParts(server.app)
    log = services.sessionlog
    pair = await log.pairs.create(
        [Member("ada", "Ada", "mentee"), Member("bo", "Bo", "mentor")], room="pair-text"
    )
    ada, bo = await watched(join, room="pair-text")
    await ada.socket.call("media_mode", {"mode": "text", "reason": "just chat", "choice": True})
    await bo.socket.wait_for("media_mode", {"identity": "ada", "mode": "text"})
    await ada.pc.close()
    assert (await ada.socket.wait_for("media_failed"))["reason"] == "connection_closed"
    await services.bus.drain()

    [summary] = await log.sessions.of_pair(pair.id)
    detail = await log.sessions.detail(pair.id, summary.session.id)
    assert [(s.mode, s.reason) for s in detail.media_path["ada"]] == [
        ("video", "joined"),
        ("text", "choice: just chat"),
    ]
    timeline = [(t.kind, t.detail) for t in detail.timeline if t.identity == "ada"]
    assert ("media_failed", "connection_closed") in timeline
    assert summary.fallback_steps == ()
