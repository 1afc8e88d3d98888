"""SIP over TCP and TLS (RFC 3261 §18.3): messages framed by Content-Length on a stream.

A trunk that encrypts its signalling (and so the SDES keys in its SDP) uses TLS; some
use plain TCP for large messages. Each connection feeds the same user agent server as
UDP: its messages are dispatched with the connection's peer address, and answers to
that address go back on the connection.

What a stranger can make a connection cost is bounded: headers at most
`MAX_HEADER_BYTES`, a body at most `MAX_BODY_BYTES` (a phone call's SDP is under 1 KiB),
a framing error closes the connection (a stream cannot be resynchronised), at most
`MAX_CONNECTIONS_PER_SOURCE` connections per address, the allow-list checked when the
connection opens, a TLS handshake within `HANDSHAKE_SECONDS`, and a connection idle for
the idle timeout with no call on it is closed.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from typing import Protocol, cast

from server.phone.metrics import PhoneMetrics

log = logging.getLogger("pairwise.phone.stream")

MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 32 * 1024
MAX_CONNECTIONS_PER_SOURCE = 32
HANDSHAKE_SECONDS = 10.0
KEEPALIVE_PING = b"\r\n\r\n"  # RFC 5626 §3.5.1: answered with one CRLF
KEEPALIVE_PONG = b"\r\n"


class StreamOwner(Protocol):
    """What a connection needs from the user agent server (uas.py) it feeds."""

    metrics: PhoneMetrics

    def allowed(self, host: str) -> bool: ...

    def stream_count(self, host: str) -> int: ...

    def attach_stream(self, stream: SipStreamConnection) -> None: ...

    def detach_stream(self, stream: SipStreamConnection) -> None: ...

    def message_received(
        self, data: bytes, addr: tuple[str, int], stream: SipStreamConnection | None = None
    ) -> None: ...

    def has_call_from(self, peer: tuple[str, int]) -> bool: ...


class FramingError(ValueError):
    """The stream is not SIP framed by Content-Length (or breaks a size limit)."""


class StreamFramer:
    """Cuts a byte stream into SIP messages by their Content-Length."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.pings = 0  # keep-alive pings seen (each wants a pong)

    def feed(self, data: bytes) -> list[bytes]:
        """The complete messages `data` finishes (`FramingError` when it cannot be SIP)."""
        self._buffer += data
        messages: list[bytes] = []
        while True:
            while self._buffer.startswith(b"\r\n"):
                if self._buffer.startswith(KEEPALIVE_PING):
                    self.pings += 1
                    del self._buffer[:4]
                else:
                    del self._buffer[:2]
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEADER_BYTES:
                    raise FramingError("headers longer than the limit")
                return messages
            if end > MAX_HEADER_BYTES:
                raise FramingError("headers longer than the limit")
            length = content_length(bytes(self._buffer[:end]))
            total = end + 4 + length
            if len(self._buffer) < total:
                return messages
            messages.append(bytes(self._buffer[:total]))
            del self._buffer[:total]


def content_length(head: bytes) -> int:
    """The Content-Length of a message's headers (0 when absent, as for a bodiless ACK)."""
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() in (b"content-length", b"l"):
            text = value.strip()
            if not text.isdigit():
                raise FramingError("malformed Content-Length")
            length = int(text)
            if length > MAX_BODY_BYTES:
                raise FramingError("body longer than the limit")
            return length
    return 0


class SipStreamConnection(asyncio.Protocol):
    """One TCP or TLS connection from a trunk or PBX, or (`outbound`) the gateway's own
    to its trunk (trunk.py): that one is exempt from the allow-list and per-source
    count, which guard what strangers open, and from the idle timeout, since the
    registration lives on it between refreshes."""

    def __init__(
        self, uas: StreamOwner, name: str, idle_seconds: float, *, outbound: bool = False
    ) -> None:
        self.uas = uas
        self.name = name  # TCP | TLS (what Via and Contact say)
        self.idle_seconds = idle_seconds
        self.outbound = outbound
        self.on_lost: Callable[[SipStreamConnection], None] | None = None
        self.framer = StreamFramer()
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("", 0)
        self.local_port = 0
        self._last_activity = time.monotonic()
        self._idle_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        host, port = transport.get_extra_info("peername")[:2]
        self.peer = (str(host), int(port))
        self.local_port = int(transport.get_extra_info("sockname")[1])
        if self.outbound:
            self.uas.attach_stream(self)
            return
        if not self.uas.allowed(self.peer[0]):
            log.info("refused a SIP connection from a source not allowed", extra={"source": host})
            transport.close()
            return
        if self.uas.stream_count(self.peer[0]) >= MAX_CONNECTIONS_PER_SOURCE:
            log.warning("too many SIP connections from one source", extra={"source": host})
            transport.close()
            return
        self.uas.attach_stream(self)
        self._arm_idle()

    def data_received(self, data: bytes) -> None:
        self._last_activity = time.monotonic()
        pings = self.framer.pings
        try:
            messages = self.framer.feed(data)
        except FramingError as exc:
            self.uas.metrics.sip_dropped.inc()
            log.info(
                "closed a SIP connection that broke framing",
                extra={"source": self.peer[0], "reason": str(exc), "transport": self.name},
            )
            self.close()
            return
        if self.framer.pings > pings:
            self.write(KEEPALIVE_PONG * (self.framer.pings - pings))
        for message in messages:
            self.uas.message_received(message, self.peer, self)

    @property
    def open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def write(self, data: bytes) -> bool:
        if not self.open:
            return False
        assert self.transport is not None
        self.transport.write(data)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self.uas.detach_stream(self)
        if self.on_lost is not None:
            self.on_lost(self)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _arm_idle(self) -> None:
        self._idle_timer = asyncio.get_running_loop().call_later(
            self.idle_seconds, self._check_idle
        )

    def _check_idle(self) -> None:
        """Close a connection quiet for the idle timeout, unless a call still uses it (the
        BYE of a long call travels on it, and trunks keep such connections quiet)."""
        quiet = time.monotonic() - self._last_activity
        if quiet >= self.idle_seconds and not self.uas.has_call_from(self.peer):
            log.info("closed an idle SIP connection", extra={"source": self.peer[0]})
            self.close()
            return
        self._arm_idle()


def tls_context(cert: str, key: str, client_ca: str | None = None) -> ssl.SSLContext:
    """A server context for SIP over TLS (TLS 1.2 or later). With `client_ca`, mutual TLS:
    a client without a certificate signed by it fails the handshake."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context
