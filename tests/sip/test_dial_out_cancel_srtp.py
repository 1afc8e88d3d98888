"""Dial-out against a Python trunk: a "call me" cancelled while it rings (the member or
an operator) sends a CANCEL the trunk can match, ACKs the 487 and frees the RTP port;
and SRTP (SDES) offered to a trunk configured for it, the answer's key used both ways,
a plain answer refused when SRTP is required."""

from __future__ import annotations

import base64
import os
import re
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import pylibsrtp
import pytest
from aiohttp import web

from server.api.http import error_middleware
from server.api.keys import SETTINGS
from server.config import load_settings
from server.phone import api, sip
from server.phone.rtp import RtpPacket
from server.phone.srtp import crypto_line
from server.rooms.model import MediaMode
from tests.conftest import ADMIN
from tests.sip.conftest import Phone, PhoneFactory, UdpPeer, eventually, open_peer
from tests.sip.media import g711_packets
from tests.sip.trunk import Trunk, media_port, sdp, self_signed, server_context
from tests.support.process import ADMIN_KEY

pytestmark = [pytest.mark.slow, pytest.mark.sip]

PROFILE = pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80
ROOM, WHO = "room-out", "maya"


async def dialling(
    make_phone: PhoneFactory, directory: Path | None = None, **settings: str
) -> tuple[Phone, Trunk]:
    """A "call me" ringing the trunk, over TLS when `directory` is given (its certificate
    is made there), else UDP."""
    if directory is None:
        trunk = await Trunk("UDP").start()
    else:
        cert, key = self_signed(directory, "trunk")
        trunk = await Trunk("TLS").start(server_context(cert, key))
        settings = {**settings, "trunk_transport": "TLS", "trunk_tls_ca": cert}
    phone = await make_phone(
        trunk_uri=f"sip:127.0.0.1:{trunk.port}", dialout_prefixes=("+4930",), **settings
    )
    await phone.gateway.call_me(ROOM, WHO, "Maya", "mentee", "+4930123456")
    return phone, trunk


def session(key: bytes, ssrc_type: int) -> pylibsrtp.Session:
    return pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=ssrc_type, srtp_profile=PROFILE))


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def cancels(phone: Phone) -> float:
    return phone.metric("pairwise_phone_call_attempts_total", result="dial_out_cancelled")


@pytest.mark.parametrize("who", ["member", "operator", "member_before_ringing"])
async def test_cancelled_while_ringing_sends_cancel_acks_487_and_frees_the_port(
    make_phone: PhoneFactory, who: str
) -> None:
    phone, trunk = await dialling(make_phone)
    try:
        invite = await trunk.request("INVITE")
        rtp_port = media_port(invite.body)
        assert port_in_use(rtp_port) and phone.gateway.ringing(ROOM, WHO)
        if who != "member_before_ringing":
            trunk.reply(invite, 100, to_tag=None)
            trunk.reply(invite, 180)
        if who == "operator":
            assert await phone.gateway.remove(ROOM, WHO)  # not in the room yet, but called
        else:
            assert phone.gateway.cancel_call_me(ROOM, WHO)
        if who == "member_before_ringing":
            # RFC 3261 §9.1: no CANCEL before a provisional answer; it comes after one.
            await eventually(lambda: not port_in_use(rtp_port))
            while not trunk.requests.empty():  # at most the INVITE resent, no CANCEL yet
                assert trunk.requests.get_nowait().method == "INVITE"
            trunk.reply(invite, 180)

        cancel = await trunk.request("CANCEL")
        assert cancel.branch == invite.branch and cancel.cseq == (1, "CANCEL")
        assert (cancel.uri, cancel.get("To"), cancel.get("From"), cancel.call_id) == (
            invite.uri, invite.get("To"), invite.get("From"), invite.call_id,
        )  # fmt: skip
        trunk.reply(cancel, 200)
        trunk.reply(invite, 487)
        ack = await trunk.request("ACK")
        assert ack.branch == invite.branch and ack.cseq == (1, "ACK")

        await eventually(lambda: cancels(phone) == 1)
        assert not phone.gateway.ringing(ROOM, WHO) and phone.gateway.calls == {}
        assert not port_in_use(rtp_port)
        assert phone.registry.get(ROOM) is None
        assert phone.metric("pairwise_phone_call_attempts_total", result="dial_out_failed") == 0
        assert not phone.gateway.cancel_call_me(ROOM, WHO)  # nothing rings any more
    finally:
        trunk.close()


async def test_a_ringing_call_me_is_listed_for_operators_then_as_connected(
    make_phone: PhoneFactory, udp_peer: UdpPeer, aiohttp_client: Any
) -> None:
    phone, trunk = await dialling(make_phone)
    app = web.Application(middlewares=[error_middleware])
    app[SETTINGS] = load_settings(admin_key=ADMIN_KEY)
    app[api.PHONE] = phone.gateway
    api.routes.install(app)
    client = await aiohttp_client(app)

    async def listed() -> list[dict[str, Any]]:
        answer = await client.get("/api/v1/phone/calls", headers=ADMIN)
        assert answer.status == 200
        return list((await answer.json())["calls"])

    try:
        invite = await trunk.request("INVITE")
        trunk.reply(invite, 180)
        [ringing] = await listed()
        assert {k: ringing[k] for k in ("state", "room", "identity", "caller", "name")} == {
            "state": "ringing", "room": ROOM, "identity": WHO, "caller": "…456", "name": "Maya",
        }  # fmt: skip
        assert abs(ringing["since"] - time.time()) < 10 and ringing["transport"] == "UDP"
        await answer(trunk, invite, sdp(udp_peer.port))
        await eventually(lambda: phone.registry.participant(ROOM, WHO))
        [connected] = await listed()
        assert (connected["state"], connected["identity"]) == ("connected", WHO)
    finally:
        trunk.close()


async def test_an_answer_that_overtakes_the_cancel_is_acked_and_hung_up(
    make_phone: PhoneFactory,
) -> None:
    phone, trunk = await dialling(make_phone)
    try:
        invite = await trunk.request("INVITE")
        trunk.reply(invite, 180)
        phone.gateway.cancel_call_me(ROOM, WHO)
        cancel = await trunk.request("CANCEL")
        trunk.reply(cancel, 200)
        contact = [("Contact", f"<sip:trunk@127.0.0.1:{trunk.port}>")]
        trunk.reply(invite, 200, headers=contact, body=sdp(40010))  # picked up just then
        ack = await trunk.request("ACK")
        assert ack.cseq == (1, "ACK") and ack.branch != invite.branch  # a 2xx's ACK
        bye = await trunk.request("BYE")
        assert sip.header_param(bye.get("To"), "tag") == "trunk" and bye.call_id == invite.call_id
        trunk.reply(bye, 200)
        await eventually(lambda: cancels(phone) == 1)
        assert phone.gateway.calls == {} and phone.registry.get(ROOM) is None
    finally:
        trunk.close()


def offered_key(body: bytes) -> tuple[str, bytes]:
    """The profile of our offer and the key in its one a=crypto line."""
    text = body.decode()
    profile = re.search(r"^m=audio \d+ (\S+) ", text, re.M)
    crypto = re.search(r"^a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:([A-Za-z0-9+/=]+)", text, re.M)
    assert profile and crypto, text
    return profile.group(1), base64.b64decode(crypto.group(1))


async def answer(trunk: Trunk, invite: sip.SipMessage, body: bytes) -> None:
    contact = [("Contact", f"<sip:trunk@127.0.0.1:{trunk.port}>")]
    trunk.reply(invite, 200, headers=contact, body=body)
    assert (await trunk.request("ACK")).cseq == (1, "ACK")


@pytest.mark.parametrize("transport", ["UDP", "TLS"])
async def test_srtp_required_is_offered_and_the_answers_key_used_both_ways(
    make_phone: PhoneFactory, tmp_path: Path, transport: str
) -> None:
    media = await open_peer("127.0.0.1")
    directory = tmp_path if transport == "TLS" else None
    phone, trunk = await dialling(make_phone, directory, trunk_srtp="required")
    try:
        invite = await trunk.request("INVITE")
        assert invite.get("Via").startswith(f"SIP/2.0/{transport} ")  # keys under TLS
        profile, gateway_key = offered_key(invite.body)
        assert profile == "RTP/SAVP"
        trunk_key = os.urandom(30)
        await answer(trunk, invite, sdp(media.port, "RTP/SAVP", crypto_line(1, trunk_key)))
        call = await eventually(lambda: next(iter(phone.gateway.calls.values()), None))
        assert call.answer.srtp is not None

        plain = g711_packets("PCMU", np.zeros(1600, dtype=np.int16), 0, ssrc=7, ptime_ms=20)
        media.send(plain[0], call.local_rtp_port)  # not encrypted: dropped
        tx = session(trunk_key, pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
        for packet in plain[1:]:
            media.send(tx.protect(packet), call.local_rtp_port)
        await eventually(lambda: call.stats.audio_frames_received == len(plain) - 1)
        assert call.stats.packets_invalid == 1

        rx = session(gateway_key, pylibsrtp.Policy.SSRC_ANY_INBOUND)
        back = RtpPacket.parse(rx.unprotect(await media.next()))  # our offered key protects it
        assert back.ssrc == call.endpoint.ssrc
        participant = await eventually(lambda: phone.registry.participant(ROOM, WHO))
        assert participant.media_mode == MediaMode.PHONE
    finally:
        trunk.close()
        media.close()


@pytest.mark.parametrize("mode", ["required", "optional"])
async def test_a_plain_answer_is_refused_when_srtp_is_required_and_taken_when_optional(
    make_phone: PhoneFactory, udp_peer: UdpPeer, mode: str
) -> None:
    phone, trunk = await dialling(make_phone, trunk_srtp=mode)
    try:
        invite = await trunk.request("INVITE")
        profile, _ = offered_key(invite.body)
        assert profile == ("RTP/SAVP" if mode == "required" else "RTP/AVP")
        await answer(trunk, invite, sdp(udp_peer.port))  # RTP/AVP, no a=crypto
        if mode == "required":
            bye = await trunk.request("BYE")  # never a silent plain-RTP call
            trunk.reply(bye, 200)
            await eventually(
                lambda: phone.metric("pairwise_phone_call_attempts_total", result="dial_out_failed")
            )
            assert phone.gateway.calls == {} and phone.registry.get(ROOM) is None
            assert not port_in_use(media_port(invite.body))
        else:
            participant = await eventually(lambda: phone.registry.participant(ROOM, WHO))
            assert participant.media_mode == MediaMode.PHONE
            [call] = phone.gateway.calls.values()
            assert call.answer.srtp is None and call.endpoint.srtp is None
    finally:
        trunk.close()


async def test_a_resent_answer_is_acked_again_and_only_from_the_trunk(
    make_phone: PhoneFactory, udp_peer: UdpPeer
) -> None:
    """Our ACK can be lost; the trunk then resends its 200 (and ends the call without an
    ACK). Each resent 200 gets the ACK again; one from another address gets nothing."""
    phone, trunk = await dialling(make_phone)
    try:
        invite = await trunk.request("INVITE")
        contact = [("Contact", f"<sip:trunk@127.0.0.1:{trunk.port}>")]
        trunk.reply(invite, 200, headers=contact, body=sdp(udp_peer.port))
        first = await trunk.request("ACK")
        await eventually(lambda: phone.registry.participant(ROOM, WHO))
        for _ in range(2):  # as if both ACKs were lost
            trunk.reply(invite, 200, headers=contact, body=sdp(udp_peer.port))
            again = await trunk.request("ACK")
            assert again.serialise() == first.serialise()
        dropped = phone.metric("pairwise_phone_sip_dropped_total")
        forged = sip.response(invite, 200, to_tag="trunk", headers=contact, body=sdp(40020))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
            other.bind(("127.0.0.1", 0))
            other.sendto(forged.serialise(), ("127.0.0.1", phone.gateway.port))
        await eventually(lambda: phone.metric("pairwise_phone_sip_dropped_total") == dropped + 1)
        assert trunk.requests.empty(), "a 200 from elsewhere is not ACKed"
        assert phone.registry.participant(ROOM, WHO) is not None
    finally:
        trunk.close()


async def test_a_ringing_call_whose_trunk_connection_drops_fails_at_once(
    make_phone: PhoneFactory,
) -> None:
    """Over TCP the INVITE's answers can only come on its connection: once that closes,
    the call has failed (it waited for the 60 s ring limit and the CANCEL's 32 s)."""
    trunk = await Trunk("TCP").start()
    phone = await make_phone(
        trunk_uri=f"sip:127.0.0.1:{trunk.port}",
        dialout_prefixes=("+4930",),
        trunk_transport="TCP",
    )
    try:
        await phone.gateway.call_me(ROOM, WHO, "Maya", "mentee", "+4930123456")
        invite = await trunk.request("INVITE")
        trunk.reply(invite, 180)
        rtp = media_port(invite.body)
        assert phone.gateway.ringing(ROOM, WHO)
        trunk.drop_connection()
        failed = "pairwise_phone_call_attempts_total"
        await eventually(lambda: phone.metric(failed, result="dial_out_failed") == 1, timeout=5)
        assert not phone.gateway.ringing(ROOM, WHO) and not port_in_use(rtp)
        assert phone.registry.get(ROOM) is None
    finally:
        trunk.close()
