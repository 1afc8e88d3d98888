"""Registration at the trunk over UDP, TCP and TLS (`PAIRWISE_SIP_TRUNK_TRANSPORT`), with
a Python registrar (Debian's sipp has no TLS) that checks the digest itself; then the
trunk sends a call to the registered Contact, on the same socket or connection, and
the caller keys the room PIN (SIP INFO) and is in the room: the ordinary dial-in path."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from server.phone import sip
from server.phone.register import RegistrationState
from server.rooms.model import MediaMode
from tests.sip.conftest import PhoneFactory, eventually
from tests.sip.trunk import Trunk, digest_is_valid, sdp, self_signed, server_context

pytestmark = [pytest.mark.slow, pytest.mark.sip]

USER, PASSWORD = "pairwise-user", "s3cret"


async def start_trunk(transport: str, directory: Path) -> tuple[Trunk, str | None]:
    """The trunk listening over `transport`, and for TLS the CA file that signs it."""
    if transport != "TLS":
        return await Trunk(transport).start(), None
    cert, key = self_signed(directory, "trunk")
    return await Trunk(transport).start(server_context(cert, key)), cert


async def register(trunk: Trunk) -> SipMessage:
    """Challenge the first REGISTER, check the digest of the second, grant 600 s."""
    first = await trunk.request("REGISTER")
    assert not first.get("Authorization")
    trunk.reply(
        first,
        401,
        headers=[("WWW-Authenticate", 'Digest realm="trunk", nonce="n1", qop="auth"')],
    )
    second = await trunk.request("REGISTER")
    assert digest_is_valid(second.get("Authorization"), "REGISTER", USER, PASSWORD)
    trunk.reply(second, 200, headers=[("Contact", f"{second.get('Contact')};expires=600")])
    return second


SipMessage = sip.SipMessage


@pytest.mark.parametrize("transport", ["UDP", "TCP", "TLS"])
async def test_registers_over_the_trunks_transport_and_its_calls_reach_the_room(
    make_phone: PhoneFactory, tmp_path: Path, transport: str
) -> None:
    trunk, ca = await start_trunk(transport, tmp_path)
    try:
        phone = await make_phone(
            trunk_uri=f"sip:127.0.0.1:{trunk.port}",
            trunk_username=USER,
            trunk_password=PASSWORD,
            trunk_transport=transport,
            trunk_tls_ca=ca,
            trunk_register=True,
        )
        registration = phone.gateway.registration
        assert registration is not None
        registered = await register(trunk)
        assert registered.get("Via").startswith(f"SIP/2.0/{transport} ")
        contact = registered.get("Contact")
        if transport != "UDP":  # the trunk may only reach us on this connection
            assert f";transport={transport.lower()}" in contact and trunk.connections == 1
        await eventually(lambda: registration.status.state == RegistrationState.REGISTERED)

        # The trunk's call to our registration: Request-URI is the Contact, as registrars do.
        pin = await phone.pins.ensure_room_pin("mentoring-reg")
        uri = contact.split("<", 1)[1].split(">", 1)[0]
        common = [
            ("From", "<sip:+4930555123@127.0.0.1>;tag=caller"),
            ("To", f"<{uri}>"),
            ("Call-ID", f"from-trunk-{transport}"),
        ]
        invite = SipMessage(
            method="INVITE",
            uri=uri,
            headers=[
                ("Via", trunk.via),
                *common,
                ("CSeq", "1 INVITE"),
                ("Contact", f"<sip:trunk@127.0.0.1:{trunk.port}>"),
                ("Content-Type", "application/sdp"),
            ],
            body=sdp(40002),
        )
        trunk.send(invite)
        ok = await trunk.final()
        assert ok.status == 200 and ok.cseq == (1, "INVITE")
        tag = sip.header_param(ok.get("To"), "tag")
        dialog = [common[0], ("To", f"<{uri}>;tag={tag}"), common[2]]

        def in_dialog(method: str, cseq: int, **kwargs: object) -> SipMessage:
            return SipMessage(
                method=method,
                uri=uri,
                headers=[("Via", trunk.via), *dialog, ("CSeq", f"{cseq} {method}")]
                + list(kwargs.get("headers", [])),  # type: ignore[call-overload]
                body=kwargs.get("body", b""),  # type: ignore[arg-type]
            )

        trunk.send(in_dialog("ACK", 1))
        for cseq, digit in enumerate(pin + "#", start=2):  # the PIN keyed, sent as INFO
            trunk.send(
                in_dialog(
                    "INFO",
                    cseq,
                    headers=[("Content-Type", "application/dtmf-relay")],
                    body=f"Signal={digit}\r\nDuration=160\r\n".encode(),
                )
            )
            assert (await trunk.final()).status == 200
        room = await eventually(lambda: phone.registry.get("mentoring-reg"))
        [caller] = room.participants.values()
        assert caller.media_mode == MediaMode.PHONE

        trunk.send(in_dialog("BYE", 20))
        assert (await trunk.final()).cseq == (20, "BYE")
        await eventually(lambda: phone.gateway.calls == {})
        assert room.participants == {}

        await phone.gateway.stop()  # unregisters on the same transport
        gone = await trunk.request("REGISTER")
        assert gone.get("Expires") == "0"
        assert digest_is_valid(gone.get("Authorization"), "REGISTER", USER, PASSWORD)
    finally:
        trunk.close()


async def test_over_tcp_the_connection_is_kept_alive_and_if_lost_registered_again_at_once(
    make_phone: PhoneFactory,
) -> None:
    """Lost while registered: registered again at once. Lost with a REGISTER waiting for
    its answer (which cannot come on a closed connection): that one fails at once, not
    after the 32 s Timer F, and the next comes after the backoff."""
    trunk = await Trunk("TCP").start()
    try:
        phone = await make_phone(
            trunk_uri=f"sip:127.0.0.1:{trunk.port}",
            trunk_username=USER,
            trunk_password=PASSWORD,
            trunk_transport="TCP",
            trunk_register=True,
            register_retry_seconds=0.2,
        )
        assert phone.gateway.trunk_link is not None
        phone.gateway.trunk_link.keepalive_seconds = 0.1  # 30 s in service
        registration = phone.gateway.registration
        assert registration is not None
        await register(trunk)
        await eventually(lambda: registration.status.registrations == 1)
        await eventually(lambda: trunk.pings >= 2)  # CRLF CRLF keeps the quiet connection
        trunk.drop_connection()  # the binding went with it; Expires (600 s) is far away
        await register(trunk)  # on a new connection, at once (not at the refresh in 300 s)
        assert trunk.connections == 2
        await eventually(lambda: registration.status.registrations == 2)
        assert registration.status.state == RegistrationState.REGISTERED

        trunk.drop_connection()  # a failure (the binding is gone), and a REGISTER at once
        await trunk.request("REGISTER")
        trunk.drop_connection()  # with that one unanswered: the second failure in a row
        await eventually(lambda: registration.status.failures == 2, timeout=5)
        assert "the trunk connection closed" in (registration.status.last_error or "")
        await register(trunk)  # after the backoff, on a fourth connection
        assert trunk.connections == 4
        await eventually(lambda: registration.status.registrations == 3)
    finally:
        trunk.close()


async def test_over_tls_a_trunk_certificate_not_signed_by_the_ca_is_refused(
    make_phone: PhoneFactory, tmp_path: Path
) -> None:
    trunk, _ = await start_trunk("TLS", tmp_path)
    other_ca, _ = self_signed(tmp_path, "other")
    try:
        phone = await make_phone(
            trunk_uri=f"sip:127.0.0.1:{trunk.port}",
            trunk_transport="TLS",
            trunk_tls_ca=other_ca,
            trunk_register=True,
        )
        registration = phone.gateway.registration
        assert registration is not None
        await eventually(lambda: registration.status.failures >= 1)
        assert registration.status.state == RegistrationState.FAILED
        assert "certificate verify failed" in (registration.status.last_error or "")
        assert trunk.requests.empty()  # nothing was said to an unverified trunk
    finally:
        trunk.close()


async def test_mutual_tls_the_gateway_shows_its_certificate_to_a_trunk_that_asks(
    make_phone: PhoneFactory, tmp_path: Path
) -> None:
    """A trunk that takes only clients it knows (mutual TLS): the gateway's certificate
    (`PAIRWISE_SIP_TLS_CERT`/`_KEY`) gets it registered; a gateway without one, or with
    a certificate the trunk does not trust, is refused in the handshake."""
    cert, key = self_signed(tmp_path, "trunk")
    ours, our_key = self_signed(tmp_path, "gateway")
    stranger, stranger_key = self_signed(tmp_path, "stranger")
    context = server_context(cert, key)
    context.load_verify_locations(ours)
    context.verify_mode = ssl.CERT_REQUIRED
    trunk = await Trunk("TLS").start(context)
    common = {
        "trunk_uri": f"sip:127.0.0.1:{trunk.port}",
        "trunk_username": USER,
        "trunk_password": PASSWORD,
        "trunk_transport": "TLS",
        "trunk_tls_ca": cert,
        "trunk_register": True,
    }
    try:
        for shown in ({}, {"tls_cert": stranger, "tls_key": stranger_key}):
            refused = await make_phone(**common, **shown)
            assert refused.gateway.registration is not None
            status = refused.gateway.registration.status
            await eventually(lambda status=status: status.failures >= 1)  # type: ignore[misc]
            assert status.state == RegistrationState.FAILED, status
            assert trunk.requests.empty()
        phone = await make_phone(**common, tls_cert=ours, tls_key=our_key)
        registered = await register(trunk)
        assert registered.get("Via").startswith("SIP/2.0/TLS ")
        assert phone.gateway.registration is not None
        status = phone.gateway.registration.status
        await eventually(lambda: status.state == RegistrationState.REGISTERED)
    finally:
        trunk.close()
