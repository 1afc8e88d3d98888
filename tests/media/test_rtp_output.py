"""The SFU sends forwarded frames as RTP itself (server/media/rtp_output.py).

Real aiortc participants through the real server: the subscriber's packets come from
`RtpOutput` (not aiortc's sender loop), its RTCP sender reports carry the counts,
a packet lost on the way to the subscriber is sent again when it NACKs, and a
subscriber whose socket cannot take more loses frames and resumes at a keyframe.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiortc.rtp import RtpPacket, is_rtcp

from server.media import aiortc_internals as internals
from server.media.aiortc_internals.transport import MAX_SOCKET_BACKLOG
from server.media.forwarding import ForwardedTrack
from tests.media.conftest import Join
from tests.media.support import MediaClient
from tests.support.parts import ServerParts
from tests.support.waiting import eventually

ROOM = "pair-1"


def forwarded(server: Any, identity: str) -> dict[str, ForwardedTrack]:
    """The SFU's tracks for `identity`, by kind."""
    peer = ServerParts(server.app).sfu.peer(ROOM, identity)
    return {o.track.kind: o.track for o in peer.outgoing.values()}


async def stats_of(person: MediaClient, kind: str) -> list[Any]:
    report = await person.pc.getStats()
    return [s for s in report.values() if s.type == kind]


async def test_forwarded_frames_are_sent_by_the_sfu_and_reported(join: Join, server: Any) -> None:
    await join("ada")
    bo = await join("bo", publish=False, decode=False)
    await eventually(lambda: len(bo.received) == 2 and all(r.frames > 20 for r in bo.received))
    tracks = forwarded(server, "bo")
    assert set(tracks) == {"audio", "video"}
    for track in tracks.values():
        assert track.output is not None and track.transcoder is None
        assert track.output.packets >= track.frames_out > 20

    # The subscriber's RTCP view of the SFU's senders: sender reports with real counts.
    async def reported() -> list[Any] | None:
        remote = await stats_of(bo, "remote-outbound-rtp")
        return remote if len(remote) == 2 and all(s.packetsSent > 0 for s in remote) else None

    remote = await eventually(reported, timeout=6, what="sender reports with packet counts")
    sent = {t.output.packets for t in tracks.values() if t.output is not None}
    assert all(0 < s.packetsSent <= max(sent) for s in remote)


async def test_a_packet_lost_on_the_way_to_a_subscriber_is_sent_again(
    join: Join, server: Any
) -> None:
    await join("ada")
    bo = await join("bo", publish=False, decode=False)
    await eventually(lambda: any(r.kind == "video" and r.frames > 10 for r in bo.received))
    video = forwarded(server, "bo")["video"]
    assert video.output is not None
    video_ssrc = internals.RtpLink(
        next(o.transceiver.sender for o in _outgoing(server, "bo") if o.track is video)
    ).ssrc
    transport = bo.pc.getTransceivers()[0].receiver.transport
    handle = transport._handle_rtp_data
    dropped: list[int] = []

    async def lossy(data: bytes, arrival_time_ms: int) -> None:
        if not dropped and not is_rtcp(data):
            packet = RtpPacket.parse(data)
            if packet.ssrc == video_ssrc:
                dropped.append(packet.sequence_number)
                return
        await handle(data, arrival_time_ms)

    transport._handle_rtp_data = lossy
    received = bo.of_kind("video")[0]
    await eventually(lambda: bool(dropped), timeout=5)
    before = received.frames
    # aiortc's jitter buffer would wait for 512 newer packets (~30 s here) without it.
    await eventually(lambda: received.frames >= before + 30, timeout=8)
    assert video.output.retransmitted >= 1
    registry = ServerParts(server.app).registry
    counted = registry.get_sample_value("pairwise_sfu_retransmitted_packets_total")
    assert counted is not None and counted >= video.output.retransmitted


async def test_a_subscriber_whose_socket_is_full_loses_frames_then_resumes_at_a_keyframe(
    join: Join, server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ada = await join("ada")
    bo = await join("bo", publish=False, decode=False)
    await eventually(lambda: any(r.kind == "video" and r.frames > 10 for r in bo.received))
    video = forwarded(server, "bo")["video"]
    dropped_at = video.dropped
    # every send finds the loop holding more than the limit for bo's socket (a real full
    # socket: tests/unit/test_rtp_send.py)
    protocol = _socket_protocol(server, "bo")
    udp = protocol.transport
    monkeypatch.setattr(protocol, "transport", Backlogged(udp))
    await eventually(lambda: video.dropped > dropped_at, what="a frame lost to the stall")
    stalled_at, dropped_at = video.frames_out, video.dropped
    # The keyframe the stall asks for is lost too, and nothing goes out while ada sends
    # half a second of video meanwhile (her frames measure the wait).
    published = ada.tracks["video"].sent
    sent_at = len(published)
    await eventually(lambda: video.dropped > dropped_at and len(published) >= sent_at + 8)
    assert video.frames_out == stalled_at, "frames were sent while the socket was full"
    # For each frame sent after the stall through `offer`: was it a keyframe? A track
    # waiting for a keyframe is not steady, so every frame goes through `offer` until one
    # is sent; the steady ones after it go in the publication's `fan_out`.
    sent: list[bool] = []
    offer = video.offer

    def spy(packet: Any, keyframe: bool, packetized: Any) -> bool:
        before = video.frames_out
        result = offer(packet, keyframe, packetized)
        if video.frames_out > before:
            sent.append(keyframe)
        return result

    monkeypatch.setattr(video, "offer", spy)
    received = bo.of_kind("video")[0]
    frames_before = received.frames
    monkeypatch.setattr(protocol, "transport", udp)
    await eventually(lambda: bool(sent) and received.frames > frames_before + 5, timeout=8)
    assert sent[0], "the first frame sent after the stall is not a keyframe"
    assert video.steady, "sending again, the track did not go back to the fan-out"


class Backlogged:
    """A datagram transport holding more than the SFU lets queue for one socket: the real
    one (uvloop's methods cannot be replaced on the instance) behind a backlog."""

    def __init__(self, udp: Any) -> None:
        self._udp = udp

    def get_write_buffer_size(self) -> int:
        return MAX_SOCKET_BACKLOG + 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self._udp, name)


def _socket_protocol(server: Any, identity: str) -> Any:
    """The aioice protocol whose transport the SFU sends `identity`'s media on."""
    pc = ServerParts(server.app).sfu.peer(ROOM, identity).pc
    connection = pc.getTransceivers()[0].sender.transport.transport._connection
    return connection._nominated[1].protocol


def _outgoing(server: Any, identity: str) -> list[Any]:
    return list(ServerParts(server.app).sfu.peer(ROOM, identity).outgoing.values())
