"""A SIP trunk for tests, in a few lines of Python: its registrar and its user agent on
UDP, TCP or TLS (Debian's sipp has no TLS), so a test can check what the gateway
sends it (REGISTER, INVITE, CANCEL, ACK, BYE) and answer as a real trunk would, and
send calls back to the gateway on the same socket or connection."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import ipaddress
import re
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from server.phone import sip
from server.phone.sip import SipMessage
from server.phone.stream import StreamFramer


def self_signed(directory: Path, name: str = "sip") -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key, as PEM files `name`.crt and `name`.key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pairwise-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


def digest_params(header: str) -> dict[str, str]:
    return {k: v.strip('"') for k, v in re.findall(r'(\w+)=("[^"]*"|[^,\s]+)', header)}


def digest_is_valid(header: str, method: str, username: str, password: str) -> bool:
    """RFC 2617 MD5 with qop=auth, computed here independently of the gateway's code."""
    p = digest_params(header)

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - the protocol's hash

    ha1 = md5(f"{username}:{p['realm']}:{password}")
    ha2 = md5(f"{method}:{p['uri']}")
    expected = md5(f"{ha1}:{p['nonce']}:{p['nc']}:{p['cnonce']}:{p['qop']}:{ha2}")
    return p.get("username") == username and p.get("response") == expected


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, trunk: Trunk) -> None:
        self.trunk = trunk

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.trunk.received(data, addr)


class Trunk:
    """Listens on 127.0.0.1 over `transport` (UDP | TCP | TLS). Requests and responses
    land in two queues; `send` goes back where the last message came from (the
    gateway's UDP socket, or its connection)."""

    def __init__(self, transport: str) -> None:
        self.transport = transport
        self.requests: asyncio.Queue[SipMessage] = asyncio.Queue()
        self.responses: asyncio.Queue[SipMessage] = asyncio.Queue()
        self.port = 0
        self.connections = 0  # TCP/TLS connections the gateway opened
        self.pings = 0  # CRLF CRLF keep-alives on them
        self._udp: asyncio.DatagramTransport | None = None
        self._server: asyncio.Server | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._addr: tuple[str, int] | None = None

    async def start(self, context: ssl.SSLContext | None = None) -> Trunk:
        loop = asyncio.get_running_loop()
        if self.transport == "UDP":
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(self), local_addr=("127.0.0.1", 0)
            )
            self._udp = udp
            self.port = int(udp.get_extra_info("sockname")[1])
        else:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=context)
            self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writer = writer
        framer = StreamFramer()
        while data := await reader.read(65536):
            before = framer.pings
            for message in framer.feed(data):
                self.received(message, writer.get_extra_info("peername"))
            self.pings += framer.pings - before

    def received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._addr = addr
        try:
            message = sip.parse(data)
        except sip.SipParseError:
            return
        (self.requests if message.is_request else self.responses).put_nowait(message)

    def send(self, message: SipMessage | bytes) -> None:
        data = message if isinstance(message, bytes) else message.serialise()
        if self._udp is not None:
            assert self._addr is not None
            self._udp.sendto(data, self._addr)
        else:
            assert self._writer is not None
            self._writer.write(data)

    def drop_connection(self) -> None:
        """Close the gateway's connection (a trunk restarting, a NAT timing out)."""
        assert self._writer is not None
        self._writer.close()

    async def request(self, method: str, timeout: float = 10.0) -> SipMessage:
        """The next request of `method` (others are skipped)."""
        while True:
            message = await asyncio.wait_for(self.requests.get(), timeout)
            if message.method == method:
                return message

    async def final(self, timeout: float = 10.0) -> SipMessage:
        """The next final response."""
        while True:
            message = await asyncio.wait_for(self.responses.get(), timeout)
            if message.status >= 200:
                return message

    def reply(
        self,
        request: SipMessage,
        status: int,
        *,
        to_tag: str | None = "trunk",
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> None:
        self.send(sip.response(request, status, to_tag=to_tag, headers=headers, body=body))

    @property
    def via(self) -> str:
        return f"SIP/2.0/{self.transport} 127.0.0.1:{self.port};branch={sip.new_branch()}"

    def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._writer is not None:
            self._writer.close()
        if self._server is not None:
            self._server.close()


def server_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def sdp(port: int, profile: str = "RTP/AVP", crypto: str = "") -> bytes:
    """A trunk's SDP (offer or answer): PCMU and telephone-event on 127.0.0.1:`port`."""
    lines = [
        "v=0", "o=trunk 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
        f"m=audio {port} {profile} 0 101", "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000", *([crypto] if crypto else []), "a=sendrecv",
    ]  # fmt: skip
    return ("\r\n".join(lines) + "\r\n").encode()


def media_port(body: bytes) -> int:
    """The m=audio port of an SDP body."""
    found = re.search(rb"^m=audio (\d+) ", body, re.M)
    assert found, body
    return int(found.group(1))
