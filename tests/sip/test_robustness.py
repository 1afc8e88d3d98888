"""What a gateway on the internet gets besides calls: garbage, floods, strangers."""

from __future__ import annotations

import asyncio

import pytest

from server.phone import sip
from tests.sip.conftest import Phone, PhoneFactory, UdpPeer, eventually
from tests.sip.uac import SDP, final_response, request

pytestmark = [pytest.mark.slow, pytest.mark.sip]

GARBAGE = [
    b"",
    b"\x00" * 10,
    b"\xff\xfe\xfd" * 300,
    b"INVITE",
    b"INVITE sip:1@x SIP/2.0\r\n",  # no end of headers
    b"INVITE sip:1@x SIP/2.0\r\nVia: x\r\n\r\n",  # missing From, To, Call-ID, CSeq
    b"SIP/2.0 200 OK\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    request("INVITE", "trunc", body=SDP)[:-30],  # truncated body
    request("INVITE", "short", body=SDP, content_length=len(SDP) + 50),
    request("INVITE", "badlen", body=SDP).replace(b"Content-Length: ", b"Content-Length: x"),
    request("INVITE", "badcseq").replace(b"CSeq: 1 INVITE", b"CSeq: one"),
    request("INVITE", "header").replace(b"Max-Forwards: 70", b"Max Forwards 70"),
    request("INVITE", "utf").replace(b"Call-ID: utf", b"Call-ID: \xc3\x28"),
    bytes(range(256)) * 4,
]


async def test_garbage_and_truncated_sip_leave_calls_alone(phone: Phone, udp_peer: UdpPeer) -> None:
    pin = await phone.pins.ensure_room_pin("mentoring-9")
    call = phone.start_sipp(
        "call_external_media.xml", pin, hold_ms=1500, args=("-set", "rtpport", str(udp_peer.port))
    )
    live = await phone.confirmed_call()
    before = dict(phone.gateway.calls)

    for datagram in GARBAGE:
        udp_peer.send(datagram, phone.gateway.port)
    udp_peer.send(b"\x80\x00garbage", live.local_rtp_port)  # not RTP either
    # Broken SDP is answered, not dropped; an unknown dialog gets 481.
    udp_peer.send(
        request("INVITE", "brokensdp", body=b"v=0\r\nm=audio x RTP/AVP 0\r\n"), phone.gateway.port
    )
    assert (await final_response(udp_peer)).status == 400
    udp_peer.send(request("BYE", "nobody", to_tag="x"), phone.gateway.port)
    assert (await final_response(udp_peer)).status == 481
    # A key press by INFO that names no key is refused; an INFO outside any call too.
    relay = "application/dtmf-relay"
    udp_peer.send(
        request("INFO", live.call_id, body=b"Signal=Z\r\n", content_type=relay,
                to_tag=live.dialog.local_tag, from_tag=live.dialog.remote_tag),
        phone.gateway.port,
    )  # fmt: skip
    assert (await final_response(udp_peer)).status == 400
    udp_peer.send(request("INFO", "nobody", body=b"Signal=1", content_type=relay, to_tag="x"),
                  phone.gateway.port)  # fmt: skip
    assert (await final_response(udp_peer)).status == 481
    await eventually(lambda: live.room)  # the PIN check reads the database meanwhile
    assert live.pin_entry.attempts == 1  # the Request-URI PIN alone
    udp_peer.send(request("REGISTER", "reg"), phone.gateway.port)
    reply = await final_response(udp_peer)
    assert reply.status == 405 and "INVITE" in reply.get("Allow")

    assert phone.gateway.calls == before
    assert phone.metric("pairwise_phone_sip_dropped_total") >= len(GARBAGE) - 1
    result = await call
    assert result.returncode == 0, result.errors  # the call went on and ended normally
    assert phone.gateway.ended_calls[-1].stats.packets_invalid >= 1


async def test_error_finals_are_retransmitted_until_ack(phone: Phone, udp_peer: UdpPeer) -> None:
    g729 = SDP.replace(b"RTP/AVP 0", b"RTP/AVP 18")
    udp_peer.send(request("INVITE", "noack", body=g729), phone.gateway.port)
    first = await final_response(udp_peer)
    again = await final_response(udp_peer)  # no ACK yet: it comes again
    assert first.status == again.status == 488

    udp_peer.send(
        request("ACK", "noack", to_tag=sip.header_param(first.get("To"), "tag") or ""),
        phone.gateway.port,
    )
    await asyncio.sleep(0.1)
    while not udp_peer.received.empty():
        udp_peer.received.get_nowait()
    with pytest.raises(TimeoutError):
        await udp_peer.next(timeout=1.5)  # past the next retransmission (1 s after)


async def test_invites_beyond_the_per_source_rate_get_503(
    make_phone: PhoneFactory, udp_peer: UdpPeer
) -> None:
    phone = await make_phone(invite_rate=0.01, invite_burst=2)
    g729 = SDP.replace(b"RTP/AVP 0", b"RTP/AVP 18")

    statuses = []
    for index in range(3):
        udp_peer.send(request("INVITE", f"flood{index}", body=g729), phone.gateway.port)
        statuses.append((await final_response(udp_peer)).status)

    assert statuses == [488, 488, 503]
    assert phone.metric("pairwise_phone_call_attempts_total", result="rate_limited") == 1


async def test_sources_outside_the_allow_list_are_refused(
    make_phone: PhoneFactory, udp_peer: UdpPeer
) -> None:
    phone = await make_phone(allowed_ips=frozenset({"192.0.2.10"}))

    udp_peer.send(request("INVITE", "stranger", body=SDP), phone.gateway.port)
    assert (await final_response(udp_peer)).status == 403
    udp_peer.send(request("OPTIONS", "stranger-ping"), phone.gateway.port)
    assert (await final_response(udp_peer)).status == 403
    assert phone.gateway.calls == {}


async def test_one_address_cannot_hold_every_call_slot_with_calls_keying_nothing(
    make_phone: PhoneFactory, udp_peer: UdpPeer, stranger: UdpPeer
) -> None:
    phone = await make_phone(pending_calls_per_source=3)
    for n in range(3):
        udp_peer.send(request("INVITE", f"idle-{n}", body=SDP), phone.gateway.port)
        assert (await final_response(udp_peer)).status == 200
    udp_peer.send(request("INVITE", "idle-3", body=SDP), phone.gateway.port)
    refused = await final_response(udp_peer)

    assert refused.status == 503 and refused.get("Retry-After") == "10"
    assert phone.metric("pairwise_phone_call_attempts_total", result="pending_per_source") == 1
    stranger.send(request("INVITE", "other", body=SDP), phone.gateway.port)
    assert (await final_response(stranger)).status == 200  # another address still calls
