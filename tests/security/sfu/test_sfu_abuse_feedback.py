"""Attacks through a connection's feedback and header extensions: a NACK flood
(rtp_output.py's resend budget), a REMB that lies about its SSRCs (aiortc_internals'
rtcp.py, internal 19), and a simulcast publisher joining a room where someone already
publishes (the RID extensions taught to the transport: simulcast_receive.py)."""

from __future__ import annotations

from typing import Any

import pytest
from aiortc.rtp import RTCP_RTPFB_NACK, RtcpRtpfbPacket

from tests.media.conftest import Join
from tests.media.simulcast_publisher import SimulcastPublisher
from tests.media.support import Encoded, send_remb, without_abs_send_time
from tests.security.sfu.test_sfu_abuse import (
    ROOM,
    _mallorys_video,
    _room,
    _rtcp,
    _video_receiver,
    flood,
    send_raw_rtcp,
)
from tests.support.parts import ServerParts
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow


async def test_a_nack_flood_for_every_sequence_number_is_not_an_amplifier(
    join: Join, server: Any
) -> None:
    ada, bo, watch = await _room(join)
    mallory = await join("mallory", publish=False, decode=False, munge_answer=without_abs_send_time)
    await eventually(lambda: any(r.frames > 5 for r in mallory.of_kind("video")), timeout=20)
    receiver, ssrc = _video_receiver(mallory)
    # Every one of the 65,536 sequence numbers, most never sent: 16 packets of 256
    # entries, each entry naming 17 numbers (a PID and a full bitmask).
    nacks = [
        RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=ssrc, lost=[]) for _ in range(16)
    ]
    for n, packet in enumerate(nacks):
        packet.lost = [seq for seq in range(n * 4096, (n + 1) * 4096)]
    peer = ServerParts(server.app).sfu.peer(ROOM, "mallory")
    assert peer is not None
    outgoing = {o.track.kind: o.track for o in peer.outgoing.values()}
    output = outgoing["video"].output
    assert output is not None
    kept = sum(entry is not None for entry in output._history)
    retransmitted_at, packets_at = output.retransmitted, output.packets

    async def nack(i: int) -> None:
        await receiver._send_rtcp(nacks[i % len(nacks)])

    # every number NACKed 20 times in 0.4 s, then a REMB that says they were all read
    await watch.during(flood(320, 800, nack))
    marker = 1 << 22
    send_remb(mallory, marker)
    await eventually(
        lambda: any(v == marker for _, v in peer.remb.history), what="the NACKs to be handled"
    )
    retransmitted = output.retransmitted - retransmitted_at
    sent = output.packets - packets_at
    # A packet is sent again at most once per NACK round trip, not once per NACK: a
    # subscriber cannot make the SFU send it many times the stream.
    assert retransmitted <= kept + sent, (retransmitted, kept, sent)


async def test_a_remb_that_lies_about_its_ssrcs_does_not_end_the_connection(
    join: Join, server: Any
) -> None:
    ada, bo, watch = await _room(join)
    mallory = await join("mallory", decode=False)
    await eventually(lambda: any(r.frames > 5 for r in mallory.of_kind("video")), timeout=20)
    # "REMB", 255 SSRCs announced, a bit rate, and no SSRC at all
    lying = _rtcp(206, 15, 4, b"\x00\x00\x00\x00" + b"REMB" + bytes([255]) + b"\xff\xff\xff")
    await watch.during(send_raw_rtcp(mallory.pc, lying))
    got = sum(r.frames for r in mallory.of_kind("video"))
    await eventually(lambda: sum(r.frames for r in mallory.of_kind("video")) > got + 10)
    peer = ServerParts(server.app).sfu.peer(ROOM, "mallory")
    assert peer is not None and peer.state == "connected"


async def test_a_simulcast_publisher_joining_a_room_where_someone_publishes_is_forwarded(
    join: Join, layer_frames: list[list[Encoded]]
) -> None:
    ada, bo, watch = await _room(join)
    mallory = await join("mallory", connect=False, video=[])
    publisher = SimulcastPublisher(mallory, layer_frames)
    try:
        await publisher.connect()
        await watch.during(eventually(lambda: _mallorys_video(bo) > 10, timeout=20))
    finally:
        await publisher.close()
