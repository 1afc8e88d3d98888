"""SRTP by SDES: an `RTP/SAVP` offer with `a=crypto` gets SRTP back, never plain RTP.

sipp 3.6 has no SRTP, so the caller here is a Python UAC over real UDP sockets with
its own libsrtp session (pylibsrtp) on the media socket."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from collections.abc import AsyncIterator

import numpy as np
import pylibsrtp
import pytest

from server.media.phone import sip
from server.media.phone.rtp import RtpPacket
from tests.sip.conftest import Phone, UdpPeer, eventually
from tests.sip.media import g711_packets
from tests.sip.uac import final_response, request

pytestmark = [pytest.mark.slow, pytest.mark.sip]

SUITE = "AES_CM_128_HMAC_SHA1_80"
PROFILE = pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80


def savp_offer(media_port: int, *crypto: str) -> bytes:
    lines = [
        "v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
        f"m=audio {media_port} RTP/SAVP 0", "a=rtpmap:0 PCMU/8000", "a=ptime:20",
        *(f"a=crypto:{line}" for line in crypto),
    ]  # fmt: skip
    return ("\r\n".join(lines) + "\r\n").encode()


def session(key: bytes, ssrc_type: int) -> pylibsrtp.Session:
    return pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=ssrc_type, srtp_profile=PROFILE))


@pytest.fixture
async def media() -> AsyncIterator[UdpPeer]:
    _, peer = await asyncio.get_running_loop().create_datagram_endpoint(
        UdpPeer, local_addr=("127.0.0.1", 0), family=socket.AF_INET
    )
    yield peer
    peer.close()


async def test_an_srtp_offer_is_answered_with_srtp_both_ways(
    phone: Phone, udp_peer: UdpPeer, media: UdpPeer
) -> None:
    ours = os.urandom(30)
    inline = base64.b64encode(ours).decode()
    offer = savp_offer(media.port, f"1 AES_CM_128_HMAC_SHA1_32 inline:{inline}",
                       f"2 {SUITE} inline:{inline}|2^20")  # fmt: skip
    udp_peer.send(request("INVITE", "srtp", body=offer), phone.gateway.port)
    ok = await final_response(udp_peer)
    assert ok.status == 200
    answer = ok.body.decode()
    assert "RTP/SAVP 0" in answer and "RTP/AVP" not in answer
    [crypto] = [line for line in answer.splitlines() if line.startswith("a=crypto:")]
    tag, suite, key = crypto[len("a=crypto:") :].split()
    assert (tag, suite) == ("2", SUITE)  # the line we can use, by its tag
    theirs = base64.b64decode(key.removeprefix("inline:"))
    udp_peer.send(
        request("ACK", "srtp", to_tag=sip.header_param(ok.get("To"), "tag") or ""),
        phone.gateway.port,
    )
    call = await eventually(lambda: phone.gateway.calls.get("srtp"))
    port = call.local_rtp_port

    plain = g711_packets("PCMU", np.zeros(1600, dtype=np.int16), 0, ssrc=5, ptime_ms=20)
    media.send(plain[0], port)  # unencrypted: refused, and it latches nothing
    tx = session(ours, pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    for packet in plain[1:]:
        media.send(tx.protect(packet), port)
    await eventually(lambda: call.stats.audio_frames_received == len(plain) - 1)
    assert call.stats.packets_invalid == 1

    rx = session(theirs, pylibsrtp.Policy.SSRC_ANY_INBOUND)
    data = await media.next()
    assert data[12:] != RtpPacket.parse(rx.unprotect(data)).payload  # encrypted on the wire
    assert RtpPacket.parse(rx.unprotect(await media.next())).ssrc == call.endpoint.ssrc


@pytest.mark.parametrize(
    "crypto",
    [
        (),  # SAVP without keys
        ("1 AES_CM_128_HMAC_SHA1_32 inline:" + base64.b64encode(bytes(30)).decode(),),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.b64encode(bytes(30)).decode() + "|2^20|1:4",),
    ],
)
async def test_an_srtp_offer_we_cannot_key_gets_488_not_plain_rtp(
    phone: Phone, udp_peer: UdpPeer, crypto: tuple[str, ...]
) -> None:
    udp_peer.send(request("INVITE", "nokey", body=savp_offer(40000, *crypto)), phone.gateway.port)
    refused = await final_response(udp_peer)

    assert refused.status == 488
    assert "crypto" in refused.get("Warning")
    assert phone.metric("pairwise_phone_call_attempts_total", result="no_security") == 1
