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

from server.phone import sip
from server.phone.rtp import RtpPacket
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


async def srtp_call(
    phone: Phone, signalling: UdpPeer, media: UdpPeer, call_id: str, key: bytes
) -> tuple[str, bytes, int]:
    """An answered SRTP call offering rtcp-mux: (our To tag, the gateway's key, its RTP port)."""
    offer = savp_offer(media.port, f"1 {SUITE} inline:{base64.b64encode(key).decode()}")
    offer += b"a=rtcp-mux\r\n"
    signalling.send(request("INVITE", call_id, body=offer), phone.gateway.port)
    ok = await final_response(signalling)
    assert ok.status == 200 and "a=rtcp-mux" in ok.body.decode()
    tag = sip.header_param(ok.get("To"), "tag") or ""
    signalling.send(request("ACK", call_id, to_tag=tag), phone.gateway.port)
    [crypto] = [x for x in ok.body.decode().splitlines() if x.startswith("a=crypto:")]
    theirs = base64.b64decode(crypto.split()[-1].removeprefix("inline:"))
    call = await eventually(lambda: phone.gateway.calls.get(call_id))
    return tag, theirs, call.local_rtp_port


def reinvite(call_id: str, tag: str, offer: bytes, cseq: int = 2) -> bytes:
    return request("INVITE", call_id, body=offer, to_tag=tag, cseq=cseq)


async def test_a_reinvite_with_a_new_key_rekeys_what_arrives(
    phone: Phone, udp_peer: UdpPeer, media: UdpPeer
) -> None:
    old, new = os.urandom(30), os.urandom(30)
    tag, theirs, port = await srtp_call(phone, udp_peer, media, "rekey", old)
    call = phone.gateway.calls["rekey"]
    packets = g711_packets("PCMU", np.zeros(3200, dtype=np.int16), 0, ssrc=7, ptime_ms=20)
    media.send(session(old, pylibsrtp.Policy.SSRC_ANY_OUTBOUND).protect(packets[0]), port)
    await eventually(lambda: call.stats.audio_frames_received == 1)

    offer = savp_offer(media.port, f"3 {SUITE} inline:{base64.b64encode(new).decode()}")
    udp_peer.send(reinvite("rekey", tag, offer), phone.gateway.port)
    ok = await final_response(udp_peer)

    assert ok.status == 200 and "RTP/SAVP" in ok.body.decode()
    [crypto] = [x for x in ok.body.decode().splitlines() if x.startswith("a=crypto:")]
    assert crypto.startswith("a=crypto:3 ")  # the tag the caller chose now
    assert base64.b64decode(crypto.split()[-1].removeprefix("inline:")) == theirs  # ours kept
    stale = session(old, pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    stale.protect(packets[0])
    media.send(stale.protect(packets[1]), port)  # the old key: refused from now on
    await eventually(lambda: call.stats.packets_invalid == 1)
    fresh = session(new, pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    for packet in packets[2:5]:
        media.send(fresh.protect(packet), port)
    await eventually(lambda: call.stats.audio_frames_received == 4)


async def test_a_reinvite_may_not_downgrade_srtp_to_plain_rtp(
    phone: Phone, udp_peer: UdpPeer, media: UdpPeer
) -> None:
    key = os.urandom(30)
    tag, _, port = await srtp_call(phone, udp_peer, media, "downgrade", key)
    call = phone.gateway.calls["downgrade"]
    plain_offer = savp_offer(media.port).replace(b"RTP/SAVP", b"RTP/AVP")

    udp_peer.send(reinvite("downgrade", tag, plain_offer), phone.gateway.port)
    refused = await final_response(udp_peer)

    assert refused.status == 488 and "RTP/SAVP" in refused.get("Warning")
    packets = g711_packets("PCMU", np.zeros(1600, dtype=np.int16), 0, ssrc=8, ptime_ms=20)
    media.send(packets[0], port)  # plain RTP is still refused
    tx = session(key, pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    media.send(tx.protect(packets[1]), port)  # the call's keys still work
    await eventually(lambda: call.stats.audio_frames_received == 1)
    assert call.stats.packets_invalid == 1 and call.answer.srtp is not None


async def test_srtcp_multiplexed_on_the_rtp_port_is_authenticated_and_kept_apart(
    phone: Phone, udp_peer: UdpPeer, media: UdpPeer
) -> None:
    key = os.urandom(30)
    _, _, port = await srtp_call(phone, udp_peer, media, "srtcp", key)
    call = phone.gateway.calls["srtcp"]
    tx = session(key, pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    audio = g711_packets("PCMU", np.zeros(1600, dtype=np.int16), 0, ssrc=9, ptime_ms=20)
    receiver_report = bytes([0x80, 201, 0, 1]) + (9).to_bytes(4, "big")

    media.send(tx.protect(audio[0]), port)
    media.send(tx.protect_rtcp(receiver_report), port)
    media.send(receiver_report, port)  # unauthenticated RTCP: dropped
    media.send(tx.protect(audio[1]), port)
    await eventually(lambda: call.stats.audio_frames_received == 2)
    await eventually(lambda: call.stats.rtcp_received == 1)

    assert call.stats.rtcp_invalid == 1
    assert call.stats.packets_invalid == 0 and call.stats.packets_lost == 0


async def test_a_datagram_too_long_for_srtp_is_dropped_and_the_call_goes_on(
    phone: Phone, udp_peer: UdpPeer, media: UdpPeer
) -> None:
    """pylibsrtp refuses a packet over 1500 bytes with a ValueError (not its Error),
    which escaped the RTP socket's `datagram_received` uncounted (the event loop logged
    a traceback for each: a log flood for whoever sends them). From the caller's own
    address (or one spoofing it), as RTP and as RTCP: dropped and counted as invalid;
    the call's audio goes on."""
    key = os.urandom(30)
    _, _, port = await srtp_call(phone, udp_peer, media, "long", key)
    call = phone.gateway.calls["long"]
    tx = session(key, pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    audio = g711_packets("PCMU", np.zeros(1600, dtype=np.int16), 0, ssrc=9, ptime_ms=20)
    media.send(tx.protect(audio[0]), port)
    await eventually(lambda: call.stats.audio_frames_received == 1)
    media.send(bytes([0x80, 0]) + bytes(1600), port)  # RTP-shaped
    media.send(bytes([0x80, 200]) + bytes(1600), port)  # SRTCP-shaped
    media.send(tx.protect(audio[1]), port)
    await eventually(lambda: call.stats.audio_frames_received == 2)
    assert call.stats.packets_invalid == 1 and call.stats.rtcp_invalid == 1
