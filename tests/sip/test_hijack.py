"""Taking over a call from a third address: RTP before or after the caller's, and SIP
requests that do not belong to the dialog. sipp cannot send from a third address or
with wrong dialog tags, so the attacker here is a Python socket on 127.0.0.2 (a second
loopback address) speaking real RTP and SIP over UDP."""

from __future__ import annotations

import numpy as np
import pytest

from server.phone import sip
from server.phone.call import CallState
from server.phone.rtp import RtpPacket
from tests.sip.conftest import Phone, PhoneFactory, UdpPeer, eventually
from tests.sip.media import g711_packets, tone
from tests.sip.uac import SDP, final_response, request

pytestmark = [pytest.mark.slow, pytest.mark.sip]


def attack(ssrc: int, count: int) -> list[bytes]:
    return g711_packets("PCMA", tone(400, count * 0.03), 8, ssrc=ssrc)[:count]


async def test_rtp_from_a_third_address_neither_latches_nor_receives_media(
    phone: Phone, udp_peer: UdpPeer, stranger: UdpPeer
) -> None:
    pin = await phone.pins.ensure_room_pin("mentoring-h")
    call = phone.start_sipp(
        "call_external_media.xml", pin, hold_ms=3000, args=("-set", "rtpport", str(udp_peer.port))
    )
    live = await phone.confirmed_call()

    for packet in attack(ssrc=666, count=5):  # before the caller's first packet
        stranger.send(packet, live.local_rtp_port)
    caller = g711_packets("PCMA", np.zeros(2400, dtype=np.int16), 8, ssrc=7)
    udp_peer.send(caller[0], live.local_rtp_port)  # queued behind the stranger's packets
    first = RtpPacket.parse(await udp_peer.next())

    assert live.endpoint.remote == ("127.0.0.1", udp_peer.port)  # the caller, not the stranger
    assert stranger.received.empty()
    # The first packet the gateway ever sent (marker bit) went to the caller, after
    # their packet: nothing was sent anywhere before.
    assert first.ssrc == live.endpoint.ssrc and first.marker
    assert live.stats.packets_foreign == 5
    for packet in attack(ssrc=667, count=5):  # and after it
        stranger.send(packet, live.local_rtp_port)
    for packet in caller[1:]:
        udp_peer.send(packet, live.local_rtp_port)
    await eventually(lambda: live.stats.packets_foreign == 10)
    await eventually(lambda: live.stats.audio_frames_received == len(caller))
    result = await call

    assert result.returncode == 0, result.errors
    assert live.endpoint.remote == ("127.0.0.1", udp_peer.port)
    assert live.stats.packets_received == len(caller)  # not one of the stranger's
    assert stranger.received.empty()


async def invite(peer: UdpPeer, phone: Phone, call_id: str) -> str:
    """Send an INVITE and return our To tag from the 200."""
    peer.send(request("INVITE", call_id, body=SDP), phone.gateway.port)
    ok = await final_response(peer)
    assert ok.status == 200
    return sip.header_param(ok.get("To"), "tag") or ""


async def answered_after(peer: UdpPeer, phone: Phone, datagram: bytes) -> None:
    """Send `datagram`, then an OPTIONS, and wait for the OPTIONS' answer: by then the
    gateway has handled the datagram (one socket, one loop, in order)."""
    peer.send(datagram, phone.gateway.port)
    peer.send(request("OPTIONS", "probe", cseq=len(datagram)), phone.gateway.port)
    while (await final_response(peer)).cseq[1] != "OPTIONS":
        pass


async def test_an_ack_must_match_the_whole_dialog(phone: Phone, udp_peer: UdpPeer) -> None:
    tag = await invite(udp_peer, phone, "ack-check")
    call = phone.gateway.calls["ack-check"]

    await answered_after(udp_peer, phone, request("ACK", "ack-check", to_tag=tag, from_tag="x"))
    await answered_after(udp_peer, phone, request("ACK", "ack-check", to_tag="x"))
    await answered_after(udp_peer, phone, request("ACK", "ack-check", to_tag=tag, cseq=7))
    assert call.state == CallState.ANSWERED  # none of those was its ACK

    udp_peer.send(request("ACK", "ack-check", to_tag=tag), phone.gateway.port)
    await eventually(lambda: call.state == CallState.CONFIRMED)


async def test_in_dialog_requests_are_checked_against_the_dialog_and_the_allow_list(
    make_phone: PhoneFactory, udp_peer: UdpPeer, stranger: UdpPeer
) -> None:
    phone = await make_phone(allowed_ips=frozenset({"127.0.0.1"}))
    pin = await phone.pins.ensure_room_pin("mentoring-i")
    call = phone.start_sipp(
        "call_external_media.xml", pin, hold_ms=3000, args=("-set", "rtpport", str(udp_peer.port))
    )
    live = await phone.confirmed_call()
    caller_tag = sip.header_param(live.invite.get("From"), "tag") or ""
    tags = {"to_tag": live.dialog.local_tag, "from_tag": caller_tag}
    info = {"body": b"Signal=1\r\n", "content_type": "application/dtmf-relay"}

    stranger.send(request("BYE", live.call_id, cseq=5, **tags), phone.gateway.port)
    assert (await final_response(stranger)).status == 403
    stranger.send(request("INFO", live.call_id, cseq=6, **tags, **info), phone.gateway.port)
    assert (await final_response(stranger)).status == 403
    stranger.send(request("INVITE", live.call_id, cseq=7, body=SDP, **tags), phone.gateway.port)
    assert (await final_response(stranger)).status == 403
    udp_peer.send(
        request("BYE", live.call_id, cseq=8, to_tag=live.dialog.local_tag, from_tag="forged"),
        phone.gateway.port,
    )
    assert (await final_response(udp_peer)).status == 481

    assert phone.gateway.calls.get(live.call_id) is live
    result = await call
    assert result.returncode == 0, result.errors
    assert live.end_reason == "caller_hung_up"  # the caller's own BYE, nobody else's


async def test_an_allow_list_network_matches_its_addresses(make_phone: PhoneFactory) -> None:
    loopback = await make_phone(allowed_ips=frozenset({"127.0.0.0/8"}))
    assert (await loopback.sipp("options.xml", "ping")).returncode == 0

    elsewhere = await make_phone(allowed_ips=frozenset({"10.0.0.0/8"}))
    refused = await elsewhere.sipp("options.xml", "ping")
    assert refused.returncode != 0 and "403" in refused.errors


async def responses_until_options(
    peer: UdpPeer, phone: Phone, datagram: bytes
) -> list[sip.SipMessage]:
    """Send `datagram` then an OPTIONS; every response that came back before the
    OPTIONS' answer (one socket, one loop: all the gateway sent for the datagram)."""
    peer.send(datagram, phone.gateway.port)
    peer.send(request("OPTIONS", "probe", cseq=len(datagram)), phone.gateway.port)
    seen = []
    while (message := sip.parse(await peer.next())).cseq[1] != "OPTIONS":
        seen.append(message)
    return seen


async def test_a_live_calls_call_id_gets_a_stranger_neither_its_tags_nor_its_hang_up(
    phone: Phone, udp_peer: UdpPeer, stranger: UdpPeer
) -> None:
    tag = await invite(udp_peer, phone, "known-id")
    udp_peer.send(request("ACK", "known-id", to_tag=tag), phone.gateway.port)
    live = await phone.confirmed_call()

    # The caller's own retransmission (same branch, tags, CSeq, address) is answered again.
    udp_peer.send(request("INVITE", "known-id", body=SDP), phone.gateway.port)
    again = await final_response(udp_peer)
    assert again.status == 200 and sip.header_param(again.get("To"), "tag") == tag

    # A stranger with the Call-ID: any From tag, or even the caller's whole transaction.
    for from_tag, status in (("zzz", 481), ("caller", 482)):
        seen = await responses_until_options(
            stranger, phone, request("INVITE", "known-id", body=SDP, from_tag=from_tag)
        )
        assert [m.status for m in seen] == [status]
        assert sip.header_param(seen[0].get("To"), "tag") != tag and not seen[0].body
    stranger.send(request("BYE", "known-id", cseq=2), phone.gateway.port)
    assert (await final_response(stranger)).status == 481
    assert phone.gateway.calls.get("known-id") is live


async def test_a_source_not_allowed_gets_only_403_for_a_live_calls_call_id(
    make_phone: PhoneFactory, udp_peer: UdpPeer, stranger: UdpPeer
) -> None:
    phone = await make_phone(allowed_ips=frozenset({"127.0.0.1"}))
    tag = await invite(udp_peer, phone, "listed-id")
    udp_peer.send(request("ACK", "listed-id", to_tag=tag), phone.gateway.port)
    await phone.confirmed_call()

    for datagram in (
        request("INVITE", "listed-id", body=SDP),  # the caller's very transaction
        request("INVITE", "unknown-id", body=SDP),  # a new call: not even 100 Trying
    ):
        seen = await responses_until_options(stranger, phone, datagram)
        assert [m.status for m in seen] == [403]
        assert sip.header_param(seen[0].get("To"), "tag") != tag and not seen[0].body
