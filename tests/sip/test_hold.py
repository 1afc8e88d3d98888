"""Hold with a real SIP peer: re-INVITEs with a=sendonly, a=inactive, then a=sendrecv."""

from __future__ import annotations

import numpy as np
import pytest

from server.phone.rtp import RtpPacket
from tests.sip.conftest import PhoneFactory, UdpPeer, eventually
from tests.sip.media import g711_packets

pytestmark = [pytest.mark.slow, pytest.mark.sip]


async def test_a_held_call_is_answered_in_kind_outlives_the_media_timeout_and_resumes(
    make_phone: PhoneFactory, udp_peer: UdpPeer
) -> None:
    phone = await make_phone(media_timeout_seconds=1.0)
    pin = await phone.pins.ensure_room_pin("mentoring-hold")
    silence = g711_packets("PCMA", np.zeros(2400, dtype=np.int16), 8, ssrc=7)
    # Each pause (-d) is longer than the media timeout, and the caller sends nothing.
    call = phone.start_sipp(
        "hold.xml", pin, hold_ms=1500, args=("-set", "rtpport", str(udp_peer.port))
    )
    live = await phone.confirmed_call()
    udp_peer.send(silence[0], live.local_rtp_port)  # the caller's phone starts sending
    await udp_peer.next()

    await eventually(lambda: live.answer.direction == "recvonly")  # held (sipp checked it)
    await eventually(lambda: live.answer.direction == "inactive")
    await eventually(lambda: live.answer.direction == "sendrecv")  # resumed
    assert phone.gateway.calls.get(live.call_id) is live  # not dropped while held
    while not udp_peer.received.empty():
        udp_peer.received.get_nowait()
    for packet in silence[1:]:
        udp_peer.send(packet, live.local_rtp_port)
    resumed = RtpPacket.parse(await udp_peer.next())  # the room's audio flows again
    assert resumed.ssrc == live.endpoint.ssrc
    await eventually(lambda: live.stats.audio_frames_received == len(silence))
    await phone.gateway.hang_up(live.call_id)
    result = await call

    assert result.returncode == 0, result.errors  # every answer had the right direction
    assert live.end_reason == "removed"
