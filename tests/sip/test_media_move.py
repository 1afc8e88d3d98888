"""A re-INVITE that moves the caller's media to a new port: the gateway answers, then
latches to exactly the new address and port (from nowhere else), and the call goes on."""

from __future__ import annotations

import numpy as np
import pytest

from server.phone import sip
from server.phone.rtp import RtpPacket
from tests.sip.conftest import Phone, UdpPeer, eventually, open_peer
from tests.sip.media import g711_packets
from tests.sip.uac import final_response, request

pytestmark = [pytest.mark.slow, pytest.mark.sip]


def sdp(port: int) -> bytes:
    return (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\n"
    ).encode()


async def test_a_reinvite_moving_the_media_re_latches_to_exactly_the_new_port(
    phone: Phone, udp_peer: UdpPeer
) -> None:
    moved, elsewhere = await open_peer("127.0.0.1"), await open_peer("127.0.0.1")
    try:
        udp_peer.send(request("INVITE", "move", body=sdp(udp_peer.port)), phone.gateway.port)
        tag = sip.header_param((await final_response(udp_peer)).get("To"), "tag") or ""
        udp_peer.send(request("ACK", "move", to_tag=tag), phone.gateway.port)
        live = await phone.confirmed_call()
        before = g711_packets("PCMU", np.zeros(800, dtype=np.int16), 0, ssrc=7)
        for packet in before:
            udp_peer.send(packet, live.local_rtp_port)
        await udp_peer.next()  # latched: the gateway answers the caller's first port

        reinvite = request("INVITE", "move", to_tag=tag, cseq=2, body=sdp(moved.port))
        udp_peer.send(reinvite, phone.gateway.port)
        ok = await final_response(udp_peer)
        udp_peer.send(request("ACK", "move", to_tag=tag, cseq=2), phone.gateway.port)
        # The phone's new stream: a new SSRC, its sequence numbers starting over.
        after = g711_packets("PCMU", np.zeros(2400, dtype=np.int16), 0, ssrc=8)
        elsewhere.send(after[0], live.local_rtp_port)  # the same host, another port
        await eventually(lambda: live.stats.packets_foreign == 1)
        for packet in after:
            moved.send(packet, live.local_rtp_port)
        first = RtpPacket.parse(await moved.next())
        await eventually(lambda: live.stats.audio_frames_received == len(before) + len(after))
    finally:
        moved.close()
        elsewhere.close()

    assert ok.status == 200
    assert f"m=audio {live.local_rtp_port} RTP/AVP 0" in ok.body.decode()
    assert "a=sendrecv" in ok.body.decode()
    assert first.ssrc == live.endpoint.ssrc
    assert live.endpoint.remote == ("127.0.0.1", moved.port)
    assert (live.answer.remote_address, live.answer.remote_port) == ("127.0.0.1", moved.port)
    assert elsewhere.received.empty()
