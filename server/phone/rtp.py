"""RTP (RFC 3550) packets, per-call counters, and the UDP socket a call's media uses.

No jitter buffer: a phone leg's packets are decoded as they arrive, late ones
(older sequence numbers) are dropped and counted. Loss is counted from the
extended sequence numbers, as RTCP receiver reports would.
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from server.phone.srtp import SrtpContext, SrtpError
from server.phone.udp import UdpEndpoint

log = logging.getLogger("pairwise.phone.rtp")

HEADER = struct.Struct("!BBHII")


class RtpError(ValueError):
    """Not an RTP packet."""


@dataclass(frozen=True)
class RtpPacket:
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False

    def serialise(self) -> bytes:
        return (
            HEADER.pack(
                0x80,
                (0x80 if self.marker else 0) | self.payload_type,
                self.sequence & 0xFFFF,
                self.timestamp & 0xFFFFFFFF,
                self.ssrc,
            )
            + self.payload
        )

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        if len(data) < HEADER.size:
            raise RtpError("shorter than an RTP header")
        first, second, sequence, timestamp, ssrc = HEADER.unpack_from(data)
        if first >> 6 != 2:
            raise RtpError("not RTP version 2")
        offset = HEADER.size + 4 * (first & 0x0F)
        if first & 0x10:  # header extension
            if len(data) < offset + 4:
                raise RtpError("truncated extension")
            offset += 4 + 4 * struct.unpack_from("!H", data, offset + 2)[0]
        end = len(data)
        if first & 0x20 and end > offset:  # padding
            end -= data[-1]
        if end < offset:
            raise RtpError("truncated packet")
        return cls(second & 0x7F, sequence, timestamp, ssrc, data[offset:end], bool(second & 0x80))


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 §4: RTCP packet types 192-223 (SR 200, RR 201 ...) where RTP has its
    marker bit and payload type; no RTP payload type we use falls there."""
    return len(data) >= 8 and data[0] >> 6 == 2 and 192 <= data[1] <= 223


@dataclass
class RtpStats:
    """One call's media counters (what the tests and metrics read)."""

    packets_received: int = 0
    audio_frames_received: int = 0
    dtmf_packets_received: int = 0
    packets_lost: int = 0
    packets_late: int = 0
    packets_invalid: int = 0
    packets_echoed: int = 0  # our own SSRC coming back: a peer echoing our audio
    packets_foreign: int = 0  # from an address that is not the caller's: dropped
    packets_withheld: int = 0  # not sent: no RTP from the caller yet (nothing latched)
    rtcp_received: int = 0  # RTCP (SRTCP when encrypted) multiplexed on the RTP port
    rtcp_invalid: int = 0  # RTCP that did not authenticate or parse: dropped
    packets_sent: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0
    first_sent_at: float | None = None  # time.monotonic() of our first packet (setup time)


class SequenceTracker:
    """Extended sequence numbers of one source: counts loss and drops late packets."""

    def __init__(self) -> None:
        self.highest: int | None = None  # extended (with wrap count)

    def accept(self, sequence: int, stats: RtpStats) -> bool:
        """Whether a packet is new (in order or after a gap); gaps count as loss."""
        if self.highest is None:
            self.highest = sequence
            return True
        current = self.highest & 0xFFFF
        delta = (sequence - current) & 0xFFFF
        if delta == 0 or delta >= 0x8000:  # duplicate or older than what we have
            stats.packets_late += 1
            return False
        stats.packets_lost += delta - 1
        self.highest += delta
        return True


class RtpEndpoint(UdpEndpoint):
    """One call's media socket, with symmetric RTP latched safely.

    Symmetric RTP answers to wherever the caller's media actually comes from (NAT,
    SBCs), not to the SDP address. Done naively that lets anyone take the call over
    (one packet from a third address before the caller's first redirects the audio)
    and makes the gateway a reflector (it streamed to the SDP address, whoever that
    was, before anything arrived). So the rule is:

    - nothing is sent before the latch;
    - the latch is the first valid RTP packet whose source host is one the call
      signalled: the SDP connection address or the SIP source address (`signalled`;
      any port, since NAT rewrites ports);
    - once latched, packets from any other address are dropped and counted, and the
      latch moves only when the dialog's own re-INVITE moved the media (`move`): to
      exactly the newly signalled address and port, on its first valid packet from
      there; until then the old latch stays.
    """

    def __init__(
        self,
        on_packet: Callable[[RtpPacket], None],
        stats: RtpStats,
        signalled: frozenset[str] = frozenset(),
        srtp: SrtpContext | None = None,
    ) -> None:
        self._on_packet = on_packet
        self.stats = stats
        self.signalled = signalled
        self.srtp = srtp
        self.remote: tuple[str, int] | None = None
        self.moving_to: tuple[str, int] | None = None  # a re-INVITE's new media address
        self.ssrc = random.getrandbits(32)

    @property
    def latched(self) -> bool:
        return self.remote is not None

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        source = (addr[0], addr[1])
        if (
            self.remote is None
            and source[0] not in self.signalled
            or (self.remote is not None and source not in (self.remote, self.moving_to))
        ):
            self.stats.packets_foreign += 1
            return
        if is_rtcp(data):
            self._rtcp(data)
            return
        try:
            if self.srtp is not None:
                data = self.srtp.unprotect(data)  # unauthenticated packets stop here
            packet = RtpPacket.parse(data)
        except (RtpError, SrtpError):
            self.stats.packets_invalid += 1
            return
        if packet.ssrc == self.ssrc:
            self.stats.packets_echoed += 1
            return
        self.stats.packets_received += 1
        self.stats.bytes_received += len(data)
        if self.remote is None or source == self.moving_to:
            self.remote, self.moving_to = source, None
        self._on_packet(packet)

    def _rtcp(self, data: bytes) -> None:
        """RTCP on the RTP port (rtcp-mux, RFC 5761): authenticated (SRTCP) and counted;
        it never latches and never reaches the RTP path, whose sequence and SSRC
        tracking it would upset (an SR's sender SSRC sits where RTP has its timestamp)."""
        if self.srtp is not None:
            try:
                self.srtp.unprotect_rtcp(data)
            except SrtpError:
                self.stats.rtcp_invalid += 1
                return
        self.stats.rtcp_received += 1

    def move(self, address: str, port: int) -> None:
        """The caller's re-INVITE (checked against the dialog and the allow-list) moved
        its media: latch to exactly `address`:`port` on its first valid packet."""
        self.signalled = self.signalled | {address}
        self.moving_to = (address, port)

    def send(self, packet: RtpPacket) -> None:
        if self.remote is None:
            self.stats.packets_withheld += 1
            return
        data = packet.serialise()
        if self.srtp is not None:
            data = self.srtp.protect(data)
        if self.sendto(data, self.remote):
            if self.stats.first_sent_at is None:
                self.stats.first_sent_at = time.monotonic()
            self.stats.packets_sent += 1
            self.stats.bytes_sent += len(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def open_endpoint(
    host: str,
    ports: range,
    on_packet: Callable[[RtpPacket], None],
    stats: RtpStats,
    signalled: frozenset[str] = frozenset(),
    srtp: SrtpContext | None = None,
) -> RtpEndpoint:
    """Bind the first free even port of `ports` (RTP convention; RTCP is not used)."""
    loop = asyncio.get_running_loop()
    start = random.randrange(0, max(1, len(ports)))
    candidates = [p for p in (*ports[start:], *ports[:start]) if p % 2 == 0]
    for port in candidates:
        try:
            _, protocol = await loop.create_datagram_endpoint(
                lambda: RtpEndpoint(on_packet, stats, signalled, srtp), local_addr=(host, port)
            )
        except OSError:
            continue
        return protocol
    raise OSError(f"no free RTP port in {ports.start}-{ports.stop - 1}")
