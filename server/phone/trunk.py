"""The trunk the gateway registers at and calls out through, and the way to reach it.

Over UDP the trunk is just an address. Over TCP or TLS (`PAIRWISE_SIP_TRUNK_TRANSPORT`)
the gateway opens one connection and keeps it: REGISTER, its refreshes and every
dial-out INVITE travel on it, and the calls the trunk sends to our registration
arrive on it as well (most trunks send them on the registering connection, since the
gateway may sit behind NAT), where they are ordinary dial-in calls (stream.py feeds
them to the same user agent server as a listener's connections). A connection that
closes is opened again on the next request, and its `closed` event tells whoever waits
on it: a REGISTER in flight fails at once (its answer can no longer come; not after the
32 s Timer F), and a registration made on it registers again at once (the trunk's
binding went with the connection). A CRLF CRLF
keep-alive (RFC 5626 §3.5.1) goes out every `KEEPALIVE_SECONDS`, so a NAT or a trunk
that drops quiet connections keeps this one between refreshes (five minutes apart with
the default Expires).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

from server.phone.stream import HANDSHAKE_SECONDS, KEEPALIVE_PING, SipStreamConnection

if TYPE_CHECKING:
    from server.phone.uas import UserAgentServer

log = logging.getLogger("pairwise.phone")

TRANSPORTS = ("UDP", "TCP", "TLS")
CONNECT_SECONDS = 10.0
KEEPALIVE_SECONDS = 30.0  # NATs commonly forget a quiet TCP mapping after a few minutes


@dataclass(frozen=True)
class Trunk:
    uri: str  # sip:host[:port]
    username: str | None = None
    password: str | None = None
    transport: str = "UDP"  # UDP | TCP | TLS
    tls_ca: str | None = None  # PEM bundle to verify the trunk's certificate; system's when None
    srtp: str = "off"  # dial-out media: off | optional (offered, plain accepted) | required
    certificate: tuple[str, str] | None = None  # (chain, key) PEM shown when the trunk asks

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            raise ValueError(f"trunk transport must be one of {', '.join(TRANSPORTS)}")
        if self.srtp not in ("off", "optional", "required"):
            raise ValueError("trunk SRTP must be off, optional or required")

    @property
    def hostport(self) -> str:
        return self.uri.split(":", 1)[1].split(";", 1)[0].lstrip("/")

    @property
    def address(self) -> tuple[str, int]:
        host, _, port = self.hostport.partition(":")
        return host, int(port or (5061 if self.transport == "TLS" else 5060))


def client_context(ca: str | None, certificate: tuple[str, str] | None = None) -> ssl.SSLContext:
    """A client context for SIP over TLS to the trunk: its certificate verified (against
    `ca`, else the system's roots) and its name checked, TLS 1.2 or later; our
    `certificate` (chain, key) is shown when the trunk asks for one (mutual TLS)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if certificate is not None:
        context.load_cert_chain(*certificate)
    return context


class TrunkLink:
    """Where the trunk's requests go: its resolved address and, over TCP/TLS, one
    connection shared by registration and dial-out."""

    def __init__(self, uas: UserAgentServer, trunk: Trunk) -> None:
        self.uas = uas
        self.trunk = trunk
        self._closed = asyncio.Event()  # the current connection's; never set over UDP
        self._peer: tuple[str, int] | None = None
        self._connection: SipStreamConnection | None = None
        self._lock = asyncio.Lock()
        self._context = (
            client_context(trunk.tls_ca, trunk.certificate) if trunk.transport == "TLS" else None
        )
        self.keepalive_seconds = KEEPALIVE_SECONDS
        self._keepalive: asyncio.Task[None] | None = None

    @property
    def reliable(self) -> bool:
        """TCP or TLS: requests are not retransmitted (RFC 3261 §17.1.1.2)."""
        return self.trunk.transport != "UDP"

    async def peer(self) -> tuple[str, int]:
        """The trunk's address to send to, with its connection open when it needs one."""
        async with self._lock:
            if self._peer is None:
                host, port = self.trunk.address
                loop = asyncio.get_running_loop()
                infos = await loop.getaddrinfo(host, port, type=2)  # SOCK_DGRAM: IPv4 or 6
                self._peer = (str(infos[0][4][0]), port)
            if self.trunk.transport != "UDP" and not self._open():
                await self._connect(self._peer)
            return self._peer

    @property
    def closed(self) -> asyncio.Event:
        """Set when the connection that requests go on now closes (over UDP, never): the
        answers to what was sent on it will not come."""
        return self._closed

    def _open(self) -> bool:
        connection = self._connection
        return connection is not None and connection.open

    async def _connect(self, peer: tuple[str, int]) -> None:
        trunk = self.trunk
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(CONNECT_SECONDS):
            _, connection = await loop.create_connection(
                lambda: SipStreamConnection(self.uas, trunk.transport, 0.0, outbound=True),
                peer[0],
                peer[1],
                ssl=self._context,
                server_hostname=trunk.address[0] if self._context is not None else None,
                ssl_handshake_timeout=HANDSHAKE_SECONDS if self._context is not None else None,
            )
        connection.on_lost = self._connection_lost
        self._connection = connection
        self._closed = asyncio.Event()
        self._stop_keepalive()
        self._keepalive = asyncio.create_task(self._ping(connection), name="phone-trunk-ping")
        log.info(
            "connected to the trunk",
            extra={"transport": trunk.transport, "trunk": trunk.hostport},
        )

    async def _ping(self, connection: SipStreamConnection) -> None:
        while connection.open:
            await asyncio.sleep(self.keepalive_seconds)
            connection.write(KEEPALIVE_PING)

    def _stop_keepalive(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None

    def _connection_lost(self, connection: SipStreamConnection) -> None:
        if connection is self._connection:
            self._stop_keepalive()
            self._connection = None
            self._closed.set()
            log.warning(
                "the trunk connection closed",
                extra={"transport": self.trunk.transport, "trunk": self.trunk.hostport},
            )

    def close(self) -> None:
        self._stop_keepalive()
        if self._connection is not None:
            self._connection.close()
            self._connection = None
