"""SIP over TCP (sipp `-t t1`) and TLS (a Python UAC with `ssl`: Debian's sipp 3.6 is
built without TLS), against a certificate made here; and the stream's limits."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from server.phone import sip
from server.phone.stream import MAX_HEADER_BYTES, StreamFramer
from tests.sip.conftest import PhoneFactory, UdpPeer, eventually, run_sipp
from tests.sip.trunk import self_signed
from tests.sip.uac import SDP, request

pytestmark = [pytest.mark.slow, pytest.mark.sip]


class StreamUac:
    """A SIP client on one TCP or TLS connection: write requests, read framed messages."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.framer = StreamFramer()
        self.pending: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def message(self, timeout: float = 5.0) -> sip.SipMessage:
        while not self.pending:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not data:
                raise ConnectionError("closed by the gateway")
            self.pending += self.framer.feed(data)
        return sip.parse(self.pending.pop(0))

    async def final(self) -> sip.SipMessage:
        while True:
            message = await self.message()
            if message.status >= 200 or message.is_request:
                return message

    def close(self) -> None:
        self.writer.close()


def over(transport: str, data: bytes) -> bytes:
    return data.replace(b"SIP/2.0/UDP", b"SIP/2.0/" + transport.encode())


async def test_a_call_over_tcp_with_sipp_joins_and_is_hung_up_on_its_connection(
    make_phone: PhoneFactory, udp_peer: UdpPeer
) -> None:
    phone = await make_phone(tcp_bind="127.0.0.1:0")
    pin = await phone.pins.ensure_room_pin("mentoring-tcp")
    call = asyncio.create_task(
        run_sipp(
            phone.sipp_path, phone.gateway.stream_port("TCP"), "call_wait_for_bye.xml", pin,
            phone.workdir, args=("-t", "t1", "-set", "rtpport", str(udp_peer.port)),
        )
    )  # fmt: skip
    room = await eventually(lambda: phone.registry.get("mentoring-tcp"))
    [identity] = list(room.participants)
    live = next(iter(phone.gateway.calls.values()))
    assert "transport=tcp" in live.final_response.decode()  # Contact says how to reach us

    assert await phone.gateway.remove("mentoring-tcp", identity)  # the BYE goes on TCP

    result = await call
    assert result.returncode == 0, result.errors


async def test_a_call_over_tls_joins_the_room_and_hangs_up(
    make_phone: PhoneFactory, tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path)
    phone = await make_phone(tls_bind="127.0.0.1:0", tls_cert=cert, tls_key=key)
    pin = await phone.pins.ensure_room_pin("mentoring-tls")
    client = ssl.create_default_context(cafile=cert)
    uac = StreamUac(
        *await asyncio.open_connection("127.0.0.1", phone.gateway.stream_port("TLS"), ssl=client)
    )
    try:
        uac.send(over("TLS", request("INVITE", "tls-1", body=SDP, extra=f"X-Room-Pin: {pin}\r\n")))
        ok = await uac.final()
        assert ok.status == 200 and "transport=tls" in ok.get("Contact")
        tag = sip.header_param(ok.get("To"), "tag") or ""
        uac.send(over("TLS", request("ACK", "tls-1", to_tag=tag)))
        await eventually(lambda: phone.registry.get("mentoring-tls"))
        uac.send(over("TLS", request("BYE", "tls-1", to_tag=tag, cseq=2)))
        bye_ok = await uac.final()
        assert (bye_ok.status, bye_ok.cseq) == (200, (2, "BYE"))
        await eventually(lambda: phone.gateway.calls == {})
    finally:
        uac.close()
    plain = StreamUac(*await asyncio.open_connection("127.0.0.1", phone.gateway.stream_port("TLS")))
    plain.send(request("OPTIONS", "plain"))  # not TLS: the handshake fails, nothing answered
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError, TimeoutError)):
        await plain.message(timeout=3)
    plain.close()


async def test_stream_limits_close_the_connection_and_idle_ones_go(
    make_phone: PhoneFactory,
) -> None:
    phone = await make_phone(tcp_bind="127.0.0.1:0", stream_idle_seconds=0.3)
    port = phone.gateway.stream_port("TCP")

    pinger = StreamUac(*await asyncio.open_connection("127.0.0.1", port))
    pinger.send(b"\r\n\r\n")
    assert await asyncio.wait_for(pinger.reader.readexactly(2), 5) == b"\r\n"  # pong
    pinger.send(request("OPTIONS", "ping"))
    assert (await pinger.final()).status == 200
    with pytest.raises(ConnectionError):
        await pinger.message(timeout=5)  # quiet, no call: closed after the idle timeout

    flood = StreamUac(*await asyncio.open_connection("127.0.0.1", port))
    flood.send(b"OPTIONS sip:x SIP/2.0\r\nX: " + b"a" * (MAX_HEADER_BYTES + 10))
    with pytest.raises(ConnectionError):
        await flood.message()
    assert phone.metric("pairwise_phone_sip_dropped_total") == 1


async def test_a_connection_from_a_source_not_allowed_is_closed_at_once(
    make_phone: PhoneFactory,
) -> None:
    phone = await make_phone(tcp_bind="127.0.0.1:0", allowed_ips=frozenset({"127.0.0.5"}))
    uac = StreamUac(*await asyncio.open_connection("127.0.0.1", phone.gateway.stream_port("TCP")))
    uac.send(request("OPTIONS", "stranger"))
    with pytest.raises(ConnectionError):
        await uac.message()
    assert phone.gateway.calls == {}


async def test_with_a_client_ca_only_clients_with_its_certificate_get_in(
    make_phone: PhoneFactory, tmp_path: Path
) -> None:
    """Mutual TLS on the listener (`PAIRWISE_SIP_TLS_CLIENT_CA`): a client without a
    certificate, or with one the CA did not sign, fails the handshake; the trunk's passes."""
    cert, key = self_signed(tmp_path)
    trunk, trunk_key = self_signed(tmp_path, "trunk")
    stranger, stranger_key = self_signed(tmp_path, "stranger")
    phone = await make_phone(
        tls_bind="127.0.0.1:0", tls_cert=cert, tls_key=key, tls_client_ca=trunk
    )
    port = phone.gateway.stream_port("TLS")

    async def options(shown: tuple[str, str] | None) -> sip.SipMessage:
        client = ssl.create_default_context(cafile=cert)
        if shown is not None:
            client.load_cert_chain(*shown)
        uac = StreamUac(*await asyncio.open_connection("127.0.0.1", port, ssl=client))
        try:
            uac.send(over("TLS", request("OPTIONS", f"mtls-{shown is None}")))
            return await uac.message(timeout=3)
        finally:
            uac.close()

    for shown in (None, (stranger, stranger_key)):
        with pytest.raises(
            (ConnectionError, asyncio.IncompleteReadError, TimeoutError, ssl.SSLError)
        ):
            await options(shown)
    answer = await options((trunk, trunk_key))
    assert answer.status == 200 and answer.cseq[1] == "OPTIONS"
