"""Sending RTP without aiortc's sender, and watching the transport (internals 9, 10, 14).

9. The send side, so the SFU can send a forwarded frame's RTP packets itself instead of
   through `RTCRtpSender._run_rtp` (whose per-packet Python is most of an SFU's cost):
   `RTCRtpSender._ssrc` / `._rtx_ssrc`; its report counters `__packet_count`,
   `__octet_count`, `__rtp_timestamp`, `__ntp_timestamp` (its RTCP sender reports and
   `getStats()` read them); `._retransmit(seq)` (what a NACK calls; rebound per sender);
   `RTCDtlsTransport._state`, `._tx_srtp` (a pylibsrtp `Session`: its `_srtp[0]`, the
   srtp_t the C send path protects with, media/_rtp_send.c, through libsrtp 2's
   `srtp_protect` in pylibsrtp's own build: `Wire`), `__tx_bytes`,
   `__tx_packets`; `RTCIceTransport._connection` (an aioice `Connection`) and its
   `_nominated[1]` (a `CandidatePair`: `protocol.transport`, `remote_addr`), which is
   exactly where aioice's own `StunProtocol.send_data` sends (TURN-relayed pairs included:
   their `transport` is aioice's `TurnTransport`). For the C send path, the socket
   behind a host pair's transport (`get_extra_info("socket")`, asyncio's and uvloop's
   alike; none for a `TurnTransport`, which frames what it sends), written directly
   (its descriptor) only while the transport queues nothing.
10. `aiortc.codecs.get_encoder(codec).pack(av.Packet)`: the VP8/H264 packetizers (Opus
   needs none: one frame is one packet).
14. Liveness (liveness.py): `RTCDtlsTransport.__rx_packets` (every datagram the transport
   received: SRTP, SRTCP, DTLS) and, to ask the far end directly, aioice's
   `Connection.build_request(pair, nominate=False)`, `.remote_password` and
   `StunProtocol.request(..., integrity_key=, retransmissions=)` on `_nominated`'s pairs:
   exactly what aioice's own `query_consent` sends (RFC 7675), only more often.

`problems()` lists what of these is missing or changed (run by `check()` in
__init__.py).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import aioice.ice
import aioice.stun
import aioice.turn
import av
import pylibsrtp
from aiortc import RTCPeerConnection, RTCRtpSender
from aiortc.codecs import get_encoder
from aiortc.codecs.base import Encoder
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from pylibsrtp import _binding

from server.media import _rtp_send, forward_only
from server.media.aiortc_internals.base import (
    RX_PACKETS_ATTR,
    needs,
    srtp_address,
    takes,
    unconnected,
)

MAX_SOCKET_BACKLOG = 256 * 1024  # bytes asyncio may hold for a UDP socket it cannot write
# libsrtp's srtp_protect, as pylibsrtp's own build of libsrtp has it (its address, for C)
SRTP_PROTECT = int(
    _binding.ffi.cast("uintptr_t", _binding.ffi.addressof(_binding.lib, "srtp_protect"))
)


def make_wire(
    session: pylibsrtp.Session,
    sock: Any,
    remote: Any,
    sendto: Callable[[bytes, Any], None],
) -> _rtp_send.Wire:
    """Where one subscriber's RTP goes, for the C send path (server/media/_rtp_send.c):
    the SRTP session, the socket to write directly (None: everything through asyncio's
    `sendto`, as for a peer whose address is not numeric), the peer's address as the
    kernel takes it. The socket's descriptor is read before each send, never kept."""
    srtp = srtp_address(session)
    addr = b""
    if sock is not None:
        try:
            addr = _rtp_send.sockaddr(remote[0], remote[1], sock.family)
        except ValueError:  # not a numeric address: asyncio resolves it
            sock = None
    return _rtp_send.Wire(session, srtp, SRTP_PROTECT, sock, addr, sendto, remote)


class RtpLink:
    """Sends finished RTP packets for one negotiated `RTCRtpSender` on its transport:
    SRTP-protected, straight to the nominated ICE pair's socket (what aiortc does per
    packet, without its per-packet coroutines)."""

    def __init__(self, sender: RTCRtpSender) -> None:
        self._sender = sender
        self._dtls: RTCDtlsTransport = sender.transport
        self.ssrc: int = sender._ssrc
        self.rtx_ssrc: int = sender._rtx_ssrc
        # The last wire made: each of its sends checks, in C, that it is still current
        # (`_rtp_send.Wire.watch`) and does nothing if not; `wire()` then makes another.
        self.last_wire: _rtp_send.Wire | None = None

    def wire(self) -> _rtp_send.Wire | None:
        """Where to send this sender's RTP now (valid until the next await); None while
        the transport cannot send (not connected yet, closed, or the socket's backlog is
        over `MAX_SOCKET_BACKLOG`: a stalled peer). Written to the socket directly while
        asyncio queues nothing for it (a host pair's socket); otherwise through asyncio
        (TURN-relayed, or packets already wait: keeping the order)."""
        wire = self.last_wire
        if wire is not None and wire.current():
            return wire
        dtls = self._dtls
        if dtls._state is not DtlsState.CONNECTED:
            return None
        connection = dtls.transport._connection
        pair = connection._nominated.get(1)
        if pair is None:
            return None
        udp = pair.protocol.transport
        backlog = getattr(udp, "get_write_buffer_size", None)
        if backlog is not None and backlog() > MAX_SOCKET_BACKLOG:
            return None
        wire = make_wire(dtls._tx_srtp, direct_socket(udp), pair.remote_addr, udp.sendto)
        # (aioice's TURN transport has no backlog to read: nothing queues in it)
        limit = MAX_SOCKET_BACKLOG if backlog is not None else None
        wire.watch(dtls, DtlsState.CONNECTED, connection, pair, udp, limit)
        wire.count_to(self._sender, dtls)
        self.last_wire = wire  # current: its check is what was just checked above
        return wire

    @property
    def connected(self) -> bool:
        return self._dtls._state is DtlsState.CONNECTED

    def on_retransmit_request(self, callback: Callable[[int], Awaitable[None]]) -> None:
        """Call `callback(seq)` for each sequence number the remote peer NACKs."""
        self._sender._retransmit = callback  # type: ignore[method-assign,assignment]


def direct_socket(udp: Any) -> Any:
    """The socket the C send path may write to directly for `udp`, a nominated pair's
    transport: the loop's datagram transport's own (asyncio's or uvloop's), or None for
    aioice's `TurnTransport`, which wraps what it sends for the TURN server."""
    if isinstance(udp, aioice.turn.TurnTransport):
        return None
    return udp.get_extra_info("socket")


Packetizer = Callable[[av.Packet], list[bytes]]


def packetizer(codec: RTCRtpCodecParameters) -> Packetizer:
    """Splits an encoded frame (an `av.Packet`) into RTP payloads, as aiortc's sender
    would; one per publication (VP8's picture id runs on across frames)."""
    if codec.mimeType.lower().startswith("audio/") or forward_only.covers(codec):
        return lambda packet: [bytes(packet)]  # forward-only: never used (as_payloads)
    encoder = get_encoder(codec)
    return lambda packet: encoder.pack(packet)[0]


def packets_received(pc: RTCPeerConnection) -> int:
    """Datagrams the connection's DTLS transports have received so far: SRTP (media),
    SRTCP (reports, feedback) and DTLS alike."""
    transports = {id(t.receiver.transport): t.receiver.transport for t in pc.getTransceivers()}
    return sum(
        getattr(dtls, RX_PACKETS_ATTR, 0) for dtls in transports.values() if dtls is not None
    )


async def check_consent(pc: RTCPeerConnection) -> bool:
    """One ICE consent check (a STUN binding request, RFC 7675) on each nominated pair,
    retransmitted once; True if the far end answered any. Unanswered is no answer, not
    an error: the caller judges silence by time."""
    connections = {
        id(c): c
        for t in pc.getTransceivers()
        if t.receiver.transport is not None
        and (c := getattr(t.receiver.transport.transport, "_connection", None)) is not None
    }
    for connection in connections.values():
        if connection.remote_password is None:
            continue
        for pair in list(connection._nominated.values()):
            request = connection.build_request(pair, nominate=False)
            try:
                await pair.protocol.request(
                    request,
                    pair.remote_addr,
                    integrity_key=connection.remote_password.encode("utf8"),
                    retransmissions=1,
                )
            except (aioice.stun.TransactionError, ConnectionError, OSError, AttributeError):
                continue
            return True
    return False


def _srtp_problems() -> list[str]:
    """What the C send path takes from pylibsrtp: `Session._srtp[0]` (the srtp_t) and
    libsrtp 2's `srtp_protect(srtp_t, void *packet, int *length)`, protecting in place."""
    process = inspect.getsource(pylibsrtp.Session._Session__process)  # type: ignore[attr-defined]
    init = inspect.getsource(pylibsrtp.Session.__init__)
    protect = _binding.ffi.typeof(_binding.lib.srtp_protect).cname
    if (
        'srtp = ffi.new("srtp_t *")' not in init
        or "self._srtp = ffi.gc(srtp" not in init
        or "_srtp_assert(func(self._srtp[0], self._cdata, len_p))" not in process
        or protect != "srtp_err_status_t(*)(struct srtp_ctx_t_ *, void *, int *)"
        or _binding.lib.srtp_err_status_ok != 0
    ):
        return ["pylibsrtp no longer keeps its srtp_t in _srtp[0] or protects with libsrtp 2"]
    return []


def problems() -> list[str]:
    found = []
    if not takes(RTCRtpSender, "_retransmit", "sequence_number"):
        found.append("RTCRtpSender._retransmit(sequence_number) is gone or changed")
    elif "await self._retransmit(seq)" not in inspect.getsource(RTCRtpSender._handle_rtcp_packet):
        found.append("RTCRtpSender no longer calls _retransmit on NACK")
    run_rtp = inspect.getsource(RTCRtpSender._run_rtp)
    for counter in ("__ntp_timestamp", "__rtp_timestamp", "__octet_count", "__packet_count"):
        if f"self.{counter}" not in run_rtp:
            found.append(f"RTCRtpSender no longer keeps {counter} while sending")
    found += needs(
        inspect.getsource(RTCDtlsTransport._send_rtp),
        "RTCDtlsTransport._send_rtp",
        "self._tx_srtp.protect(data)",
        "self.transport._send(data)",
        "self.__tx_bytes",
    )
    found += _srtp_problems()
    if not hasattr(DtlsState, "CONNECTED"):
        found.append("RTCDtlsTransport's State has no CONNECTED")
    connection_send = inspect.getsource(aioice.ice.Connection.sendto)
    stun_send = inspect.getsource(aioice.ice.StunProtocol.send_data)
    if (
        "self._nominated.get(component)" not in connection_send
        or "active_pair.protocol.send_data(data, active_pair.remote_addr)" not in connection_send
        or "self.transport.sendto(data, addr)" not in stun_send
    ):
        found.append("aioice no longer sends on _nominated[component].protocol.transport")
    consent = inspect.getsource(aioice.ice.Connection.query_consent)
    if (
        "self.build_request(pair, nominate=False)" not in consent
        or 'integrity_key=self.remote_password.encode("utf8")' not in consent
        or not takes(
            aioice.ice.StunProtocol,
            "request",
            "request",
            "addr",
            "integrity_key",
            "retransmissions",
        )
    ):
        found.append("aioice's consent check is no longer build_request + protocol.request")
    if list(inspect.signature(Encoder.pack).parameters) != ["self", "packet"]:
        found.append("aiortc's Encoder.pack(packet) changed")
    with unconnected() as pc:
        sender = pc.addTransceiver("audio").sender
        for attr in ("_ssrc", "_rtx_ssrc", "_RTCRtpSender__packet_count"):
            if not isinstance(getattr(sender, attr, None), int):
                found.append(f"RTCRtpSender instances have no {attr}")
        dtls = sender.transport
        if not isinstance(getattr(dtls, "_RTCDtlsTransport__tx_bytes", None), int):
            found.append("RTCDtlsTransport instances have no __tx_bytes")
        if not isinstance(getattr(dtls, RX_PACKETS_ATTR, None), int):
            found.append("RTCDtlsTransport instances have no __rx_packets")
        if not isinstance(getattr(dtls.transport, "_connection", None), aioice.ice.Connection):
            found.append("RTCIceTransport instances have no aioice _connection")
        elif not isinstance(getattr(dtls.transport._connection, "_nominated", None), dict):
            found.append("aioice Connection instances have no _nominated dict")
    return found
