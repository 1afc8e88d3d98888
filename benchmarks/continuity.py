"""Continuity with aiortc clients: how long a dead media connection takes to step the
participant down, and how long the way back up to video takes once the client rebuilds.

The same faults as tests/media/test_continuity.py (loopback, a real server process) and
tests/reliability/test_network_faults.py (UDP blocked past ICE consent expiry, in a
network namespace). Browser figures are the web client's (tests/e2e).
"""

from __future__ import annotations

import asyncio
import re
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiortc import RTCPeerConnection

from tests.media.support import MediaClient, client_configuration, encode_audio, encode_video
from tests.reliability.harness import FAST_MEDIA, fault_room, write_frames
from tests.support.participants import SocketParticipant, issue_token
from tests.support.process import ServerProcess

TITLE = "Continuity: dead media connections, down and back up (aiortc)"
ROOM = "pair-cont"


@dataclass
class Row:
    fault: str
    path: str
    down_s: float  # fault → the room's media_mode step down
    told_s: float  # fault → media_failed at the client
    up_s: float  # rebuild started (or UDP back) → the room's media_mode back to video


async def _close(ada: MediaClient) -> None:
    await ada.pc.close()


async def _dtls(ada: MediaClient) -> None:
    ada.munge_first_offer = lambda sdp: re.sub(
        r"(a=fingerprint:sha-256 )([0-9A-F:]+)", lambda m: m.group(1) + ":".join(["AB"] * 32), sdp
    )
    try:
        await ada.reconnect("bad fingerprint")
    finally:
        ada.munge_first_offer = None


async def _vanish(ada: MediaClient) -> None:
    ghost = RTCPeerConnection(client_configuration())
    ghost.addTransceiver("audio", direction="sendonly")
    ghost.addTransceiver("video", direction="sendonly")
    await ghost.setLocalDescription(await ghost.createOffer())
    offer = ghost.localDescription.sdp
    await ghost.close()
    await ada.socket.call("media_reconnect", {"sdp": offer, "type": "offer"})


LOOPBACK: list[tuple[str, Callable[[MediaClient], Awaitable[None]]]] = [
    ("client closed its RTCPeerConnection", _close),
    ("DTLS handshake failed (wrong fingerprint)", _dtls),
    ("ICE never completed (the offerer vanished)", _vanish),
]


async def _video_frames_grow(bo: MediaClient, by: int) -> None:
    def frames() -> int:
        tracks = bo.of_kind("video")
        return tracks[-1].frames if tracks else 0

    start = frames()
    await bo.wait_until(lambda: frames() >= start + by, timeout=30)


async def loopback(tmp: Path) -> list[Row]:
    server = ServerProcess(data_dir=tmp / "loopback", env=FAST_MEDIA)
    await asyncio.to_thread(server.start)
    video, audio = encode_video(90), encode_audio(100)
    rows = []
    try:
        for n, (label, fault) in enumerate(LOOPBACK):
            room = f"{ROOM}-{n}"
            tokens = [
                await asyncio.to_thread(issue_token, server.url, room, who) for who in ("ada", "bo")
            ]
            sockets = [await SocketParticipant(server.url, t).connect() for t in tokens]
            await sockets[0].join(media_mode="video")
            await sockets[1].join(media_mode="text")
            ada, bo = MediaClient(sockets[0]), MediaClient(sockets[1], decode=False)
            ada.publish(video, audio)
            bo.receive_only()
            await ada.connect()
            await bo.connect()
            await _video_frames_grow(bo, 10)
            started = time.time()
            await fault(ada)
            down = await bo.socket.wait_for(
                "media_mode", {"identity": "ada", "mode": "text"}, timeout=30
            )
            down_at = time.time()
            await ada.socket.wait_for("media_failed", timeout=30)
            told_at = time.time()
            rebuilt = time.time()
            await ada.reconnect(f"after {down['reason']}")
            await bo.socket.wait_for("media_mode", {"identity": "ada", "mode": "video"}, timeout=30)
            up_at = time.time()
            await _video_frames_grow(bo, 10)
            rows.append(
                Row(
                    label,
                    f"video→text ({down['reason']}), text→video (media_recovered)",
                    down_at - started,
                    told_at - started,
                    up_at - rebuilt,
                )
            )
            await ada.close()
            await bo.close()
    finally:
        await asyncio.to_thread(server.stop)
    return rows


async def udp_past_consent(tmp: Path) -> tuple[Row, float, float]:
    """(row, seconds until the server closed the connection, seconds UDP was blocked)."""
    frames = write_frames(tmp / "frames.pickle")
    async with fault_room(tmp / "udp", frames) as room:
        blocked = room.apply("udp_blocked")
        down = await room.wait_mode(blocked, lambda m: m.mode == "text", timeout=15)
        closed = await room.participant.wait_for(
            "media_failed", lambda line: line["reason"] == "connection_closed", timeout=60
        )
        await room.participant.wait_for(
            "media_failed",
            lambda line: line["t"] > closed["t"] and line["reason"] != "connection_closed",
            timeout=40,
        )
        healed = room.heal()
        back = await room.wait_mode(healed, lambda m: m.mode == "video", timeout=60)
        await room.chat_outcome()
        row = Row(
            "UDP blocked past ICE consent expiry (namespace, nftables)",
            f"video→text ({down.reason}); connection_closed at consent expiry; "
            "rebuilds with backoff; text→video (media_recovered)",
            down.at - blocked,
            closed["t"] - blocked,
            back.at - healed,
        )
        return row, closed["t"] - blocked, healed - blocked


async def run(quick: bool) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        rows = await loopback(Path(tmp))
        udp, consent, held = await udp_past_consent(Path(tmp))
    rows.append(udp)
    lines = [
        "aiortc clients against a real server process with the tests' media thresholds",
        "(2 s without frames steps down, 2 s of clean media steps back up, ICE timeout",
        "10 s). *Down*: fault → the room's `media_mode` step down; *told*: fault →",
        "`media_failed` at the client; *up*: the client's rebuild (`media_reconnect`) or,",
        f"for UDP, the moment UDP returned (blocked {held:.0f} s; the server closed the",
        f"connection {consent:.1f} s after the block) → the room's `media_mode` back to video.\n",
        "| fault | path | down | told | up |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.fault} | {r.path} | {r.down_s:.1f} s | {r.told_s:.1f} s | {r.up_s:.1f} s |"
        )
    return "\n".join(lines) + "\n"
