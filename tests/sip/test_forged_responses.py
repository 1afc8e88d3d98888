"""Answering the gateway's own requests for someone else: a third party who learnt a
Call-ID (a sniffed INVITE, a trunk's predictable Call-IDs) forges the response to a
dial-out INVITE, a REGISTER or a BYE, from another address, from the trunk's host on
another port, or as a datagram carrying the address of a trunk reached over TCP. The
gateway takes responses only from where the request went, on the transport it went on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from server.phone import sip
from server.phone.register import RegistrationState
from tests.sip.conftest import Phone, PhoneFactory, UdpPeer, eventually, open_peer
from tests.sip.test_dial_out_cancel_srtp import ROOM, WHO, dialling
from tests.sip.trunk import Trunk, sdp
from tests.sip.uac import SDP, final_response, request

pytestmark = [pytest.mark.slow, pytest.mark.sip]


def dropped(phone: Phone) -> float:
    return phone.metric("pairwise_phone_sip_dropped_total")


@pytest.fixture(params=["another_host", "the_trunks_host"])
async def attacker(request: pytest.FixtureRequest) -> AsyncIterator[UdpPeer]:
    """A socket on 127.0.0.2, or on the trunk's own host (127.0.0.1) with another port."""
    peer = await open_peer("127.0.0.2" if request.param == "another_host" else "127.0.0.1")
    yield peer
    peer.close()


@pytest.mark.parametrize("forged", [200, 603])
async def test_a_forged_answer_to_a_dial_out_neither_connects_nor_fails_it(
    make_phone: PhoneFactory, attacker: UdpPeer, udp_peer: UdpPeer, forged: int
) -> None:
    phone, trunk = await dialling(make_phone)
    try:
        invite = await trunk.request("INVITE")
        trunk.reply(invite, 180)
        contact = [("Contact", f"<sip:x@127.0.0.1:{attacker.port}>")]
        body = sdp(attacker.port) if forged == 200 else b""
        attacker.send(
            sip.response(invite, forged, to_tag="attacker", headers=contact, body=body).serialise(),
            phone.gateway.port,
        )
        await eventually(lambda: dropped(phone) == 1)
        assert phone.gateway.ringing(ROOM, WHO) and phone.gateway.calls == {}

        trunk.reply(  # the member picks up
            invite,
            200,
            headers=[("Contact", f"<sip:trunk@127.0.0.1:{trunk.port}>")],
            body=sdp(udp_peer.port),
        )
        ack = await trunk.request("ACK")
        assert sip.header_param(ack.get("To"), "tag") == "trunk"
        call = await eventually(lambda: next(iter(phone.gateway.calls.values()), None))
        assert call.dialog.remote_tag == "trunk"
        assert call.answer.remote_port == udp_peer.port  # the trunk's media, not the forger's
        assert attacker.received.empty()  # no ACK, no media to the forger
    finally:
        trunk.close()


async def next_request(peer: UdpPeer, method: str) -> sip.SipMessage:
    """The next SIP request of `method` the peer gets (RTP on the socket is skipped)."""
    while True:
        try:
            message = sip.parse(await peer.next())
        except sip.SipParseError:
            continue
        if message.method == method:
            return message


async def test_a_forged_answer_to_our_bye_does_not_stop_it_being_resent(
    phone: Phone, udp_peer: UdpPeer, attacker: UdpPeer
) -> None:
    """Were it taken, a BYE lost on its way would never be resent: the far end's call,
    and a trunk's bill, would run on."""
    pin = await phone.pins.ensure_room_pin("mentoring-bye")
    port = phone.gateway.port
    udp_peer.send(request("INVITE", "bye-1", body=SDP, extra=f"X-Room-Pin: {pin}\r\n"), port)
    ok = await final_response(udp_peer)
    assert ok.status == 200
    udp_peer.send(request("ACK", "bye-1", to_tag=sip.header_param(ok.get("To"), "tag") or ""), port)
    call = await phone.confirmed_call()
    await eventually(lambda: call.room)

    await phone.gateway.hang_up(call.call_id)
    bye = await next_request(udp_peer, "BYE")  # say the caller never got this one
    attacker.send(sip.response(bye, 200).serialise(), port)
    await eventually(lambda: dropped(phone) == 1)
    again = await next_request(udp_peer, "BYE")  # resent all the same
    assert again.cseq == bye.cseq and again.call_id == "bye-1"


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
async def test_a_forged_answer_to_a_register_registers_nothing(
    make_phone: PhoneFactory, stranger: UdpPeer, transport: str
) -> None:
    """Over UDP the forger sends from another host; over TCP from the trunk's very
    address and port, as a datagram (the trunk's answer comes on its connection)."""
    trunk = await Trunk(transport).start()
    forger = stranger
    if transport == "TCP":  # the trunk listens on TCP only: its UDP port is free to take
        _, forger = await asyncio.get_running_loop().create_datagram_endpoint(
            UdpPeer, local_addr=("127.0.0.1", trunk.port)
        )
    try:
        phone = await make_phone(
            trunk_uri=f"sip:127.0.0.1:{trunk.port}",
            trunk_transport=transport,
            trunk_register=True,
        )
        registration = phone.gateway.registration
        assert registration is not None
        register = await trunk.request("REGISTER")
        granted = [("Contact", f"{register.get('Contact')};expires=600")]
        forger.send(sip.response(register, 200, headers=granted).serialise(), phone.gateway.port)
        await eventually(lambda: dropped(phone) == 1)
        assert registration.status.state == RegistrationState.REGISTERING

        trunk.reply(register, 403)  # what the registrar really says
        await eventually(lambda: registration.status.failures == 1)
        assert registration.status.registrations == 0
        assert registration.status.last_status == 403
        assert registration.status.state == RegistrationState.FAILED
    finally:
        forger.close()
        trunk.close()
