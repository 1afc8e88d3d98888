"""A participant who sends no media (muted, camera off) and whose network dies is noticed
within 5 s; one whose network is fine is never taken for dead.

Such a participant sends no RTP, so the silence rules cannot judge them; the SFU hears
their receiver reports and, when nothing arrives for 1 s, asks with an ICE consent check
(server/media/liveness.py). The participant is an aiortc client in a network namespace
(tests/reliability/harness.py); the fault is an nftables drop of its UDP while Socket.IO
(TCP) stays up. The server runs with the default `media_liveness_seconds` (3 s).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.reliability.harness import PUBLISHER, FaultRoom, fault_room, write_frames

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_frames(tmp_path_factory.mktemp("media") / "frames.pickle")


@pytest.fixture
async def receiving(tmp_path: Path, frames: Path) -> AsyncIterator[FaultRoom]:
    """The quiet participant receives the observer's audio and video."""
    async with fault_room(tmp_path, frames, quiet=True, partner=True) as room:
        yield room


@pytest.fixture
async def idle(tmp_path: Path, frames: Path) -> AsyncIterator[FaultRoom]:
    """The quiet participant, and nobody it receives media from."""
    async with fault_room(tmp_path, frames, quiet=True) as room:
        yield room


# Only STUN crosses the namespace (its magic cookie, 0x2112A442, is the 32 bits after the
# 4th byte of the UDP payload): no SRTP, no SRTCP, no DTLS, either way. An aiortc client
# sends RTCP about every second from every transceiver, even one that sends no RTP; this
# leaves ICE as the only sign of life, as for a browser that sends and receives nothing.
ONLY_STUN = "meta l4proto udp @th,96,32 != 0x2112a442 drop"


async def test_a_quiet_participant_whose_udp_dies_is_stepped_down_within_5_s_and_comes_back(
    receiving: FaultRoom,
) -> None:
    room = receiving
    blocked = room.apply("udp_blocked")
    down = await room.wait_mode(blocked, lambda m: m.mode == "text", timeout=8)
    assert (down.previous, down.reason) == ("video", "consent_expired"), down
    assert down.at - blocked < 5.0, f"noticed after {down.at - blocked:.1f} s"
    failed = await room.participant.wait_for(
        "media_failed", lambda line: line["t"] > blocked, timeout=5
    )
    assert failed["reason"] == "consent_expired"
    entries = [
        (e["kind"], e["detail"]) for e in await room.timeline() if e["identity"] == PUBLISHER
    ]
    assert ("media_failed", "consent_expired") in entries, entries
    assert ("media_mode", "consent_expired") in entries or any(
        kind == "media_mode" and "consent_expired" in detail for kind, detail in entries
    ), entries

    healed = room.heal()
    # The client's rebuild (backoff 1, 2, 4, 8 s) connects once UDP is back; a connection
    # heard from for `media_recover_seconds` brings back the mode it had.
    back = await room.wait_mode(healed, lambda m: m.mode == "video", timeout=30)
    assert back.reason == "media_recovered", back
    await room.participant.wait_for(
        "media", lambda line: line["t"] > healed and line["state"] == "connected", timeout=5
    )


async def test_a_quiet_healthy_participant_is_never_stepped_down(idle: FaultRoom) -> None:
    """8 s with nothing but ICE between the two ends: the SFU's consent checks keep the
    connection alive. aioice's own checks (every 4-6 s) alone would leave gaps longer than
    the 3 s threshold, and it would be rebuilt in a loop. Without the SFU's checks
    (`PROBE_SECONDS` out of reach) this participant was stepped down 3.5 s in: 8 s is more
    than twice that."""
    room = idle
    room.host.nft(ONLY_STUN)
    start = asyncio.get_running_loop().time()
    await asyncio.sleep(8)  # the property is that nothing happens for this long
    assert asyncio.get_running_loop().time() - start >= 8
    assert room.modes == [], [(m.mode, m.reason) for m in room.modes]
    assert room.participant.of("media_failed") == []
    assert room.participant.of("reconnect") == []
    assert (await room.stats())["media_mode"] == "video"
