"""Receiving RTP without aiortc's per-packet queue hop and coroutines (internal 17).

aiortc hands every datagram from aioice's `StunProtocol.datagram_received` to
`Connection.data_received`, which puts it on an `asyncio.Queue`; the DTLS transport's
task wakes for it (`_recv_next`), unprotects it, and awaits `_handle_rtp_data` →
`RTCRtpReceiver._handle_rtp_packet`. For the SFU that hop and the three coroutines per
packet cost more than the receive work itself (cProfile of the SFU receiving a 720p
publisher: the queue, the task wake-up and the coroutine frames were ~40% of the
receive path). `receive_directly` replaces `Connection.data_received` per connection
(an instance attribute) with `DirectReceive`, which handles an SRTP packet (not RTCP)
at once, on the loop, in plain calls:

- the datagram's checks and counts as `RTCDtlsTransport._recv_next` does them
  (`__rx_bytes`, `__rx_packets`, the SRTP range of the first byte, `is_rtcp`),
  `_rx_srtp.unprotect` and `_handle_rtp_data`'s parse
  (`RtpPacket.parse(data, _rtp_header_extensions_map)`) as one C call
  (media/_rtp_receive.c: libsrtp's `srtp_unprotect` on the session's srtp_t, aiortc's
  parse rules, the same `RtpPacket`; in Python they were about half of this path's
  time), and routing (`_rtp_router.route_rtp`, ours when `route_by_mid` replaced it);
- then `_handle_rtp_packet`'s work for a tapped receiver (`ReceivePath.handle`, from
  its private state: `_enabled`, `__remote_bitrate_estimator`, `__rtcp_ssrc`,
  `__active_ssrc`, `__codecs`, `__remote_streams`, `__rtx_ssrc`, `__nack_generator`,
  `__jitter_buffer`, `__timestamp_mapper`, `__decoder_thread`), handing each whole
  frame to the tap's sink instead of the decoder queue; a VP8 payload's descriptor is
  stripped in C (`_rtp_receive.vp8_payload`: what aiortc's `depayload` returns for VP8,
  without building a `VpxPayloadDescriptor`). RTCP it sends (NACK, PLI, REMB) goes out
  in the background, as aiortc's would have after an await.

A packet with a transport-wide sequence number (the publisher negotiated transport-cc:
negotiation.py) is recorded with its arrival time (the kernel's: arrival.py, as is the
arrival time aiortc's REMB estimator reads), before routing, whatever receiver it
is for (RTX and padding-only probes too), and a `FeedbackSender` sends the transport's
transport-cc feedback (transport_feedback.py) about every 100 ms, from the packet path
when one is due (a timer only when packets stop), with a tapped receiver's
`__rtcp_ssrc` as the sender, while the DTLS transport stays connected. It goes out in
the same call (`send_rtcp_now`: what aiortc's `RTCRtpReceiver._send_rtcp` does under its
four coroutines and the Task it needs, all of it synchronous: SRTCP protect, the
nominated pair's `sendto`, the transport's counters). Such a publisher's receivers have no `__remote_bitrate_estimator` (its
browser estimates its uplink itself), so `ReceivePath.handle` runs none.

A simulcast layer's packets go further in C once the layer is routed
(simulcast_receive.py routes a tapped receiver's VP8 layer after its first packet):
`FastLayers.receive` (media/_rtp_receive.c) stands in for the unprotect-and-parse call and
takes such a packet the whole way (the transport-cc record and, when due, the feedback,
the receiver's statistics, the VP8 payload, the layer's NACK tracking and frame
assembly), with no `RtpPacket` made; Python is called only for a frame, a NACK or a PLI
(`ReceivePath.deliver` hands the frame on as `handle` does). A tapped audio receiver's
streams are routed too (receive.py, from each SSRC's first packet): each packet is a
frame (`AudioPassThrough`'s rule and the audio level read in C). `route_fast` routes
both. Every other packet comes back as the `RtpPacket` for the path above.

aioice's `StunProtocol.datagram_received` tries every datagram as a STUN message first
(`stun.parse_message`, which raises ValueError for RTP: a Python exception per packet)
and hands it on only then. A datagram whose first byte is 128..191 is RTP or RTCP, never
STUN (RFC 7983's demultiplexing: a STUN message starts with two zero bits), so once the
connection has SRTP, `RtpDemux` (in C: media/_rtp_receive.c) stands in for each of its
protocols' `datagram_received`: the rest take aioice's path, and such a datagram is
taken the way `DirectReceive.__call__` takes it, in C (its checks, the transport's
counters, the arrival stamp, `FastLayers.receive`), Python called only for what is left:
`DirectReceive.event` (a routed layer's frame, NACK or PLI), `after_unprotect` (a packet
for the path above), or `DirectReceive` itself (what it does not take as SRTP now: SRTCP,
the transport not connected, a new SRTP session, which it then gives the entries).

Everything else (DTLS, SRTCP, an SRTP packet before the transport is connected, a
packet for a receiver that is not tapped, every packet of a transport whose
`_handle_rtp_data` was replaced on the instance) takes aiortc's own path, unchanged.

`problems()` lists what of these is missing or changed (run by `check()` in
__init__.py).
"""

from __future__ import annotations

import asyncio
import asyncio.selector_events
import dataclasses
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

import aioice.ice
import aiortc.rtp
import pylibsrtp
from aiortc import RTCRtpReceiver
from aiortc import clock as _clock
from aiortc.codecs import depayload, is_rtx
from aiortc.codecs.vpx import VpxPayloadDescriptor, vp8_depayload
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcicetransport import RTCIceTransport
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import (
    RTCP_PSFB_APP,
    HeaderExtensions,
    HeaderExtensionsMap,
    RtcpPsfbPacket,
    RtpPacket,
    is_rtcp,
    pack_remb_fci,
    unwrap_rtx,
)
from pylibsrtp import _binding

from server.media import _rtp_receive
from server.media._rtp_receive import ArrivalClock, LayerBuffer
from server.media.aiortc_internals.arrival import arrival_clock
from server.media.aiortc_internals.base import (
    ESTIMATOR_ATTR,
    NACK_ATTR,
    RTCP_SSRC_ATTR,
    FrameSink,
    handle_rtp_source,
    needs,
    sending,
    srtp_address,
    takes,
    unconnected,
)
from server.media.aiortc_internals.per_packet import FlatStreamStatistics
from server.media.transport_feedback import INTERVAL, TransportFeedback

log = logging.getLogger("pairwise.media.receive")

PATH_ATTR = "_pairwise_receive_path"  # a tapped RTCRtpReceiver's ReceivePath
NTP_EPOCH_MS = 2_208_988_800_000  # aiortc's clock.current_ms counts from 1900

_CONNECTED = DtlsState.CONNECTED
# libsrtp's srtp_unprotect, as pylibsrtp's own build of libsrtp has it (its address, for C)
SRTP_UNPROTECT = int(
    _binding.ffi.cast("uintptr_t", _binding.ffi.addressof(_binding.lib, "srtp_unprotect"))
)
# by MIME type: (RTX, VP8: its packets depayloaded in C by vp8_payload)
_KINDS: dict[str, tuple[bool, bool]] = {}
SOURCE_CLOCK_MS = 100  # how stale a synchronization source's time may be
_IDS = "_HeaderExtensionsMap__ids"  # a HeaderExtensionsMap's ids, by kind of extension
_rtp_receive.classes(RtpPacket, HeaderExtensions)


def _kind(codec: Any) -> tuple[bool, bool]:
    """Whether a codec is RTX and whether it is VP8, as aiortc's `is_rtx` and `depayload`
    tell them; kept by MIME type (the per-packet lookup is `_KINDS.get`)."""
    kind = _KINDS[codec.mimeType] = (is_rtx(codec), codec.name == "VP8")
    return kind


class ReceivePath:
    """What `RTCRtpReceiver._handle_rtp_packet` does for one tapped receiver, as one
    synchronous call per packet. `before(packet)` (simulcast: learn the RIDs) runs
    first."""

    def __init__(self, receiver: RTCRtpReceiver, sink: FrameSink) -> None:
        self.receiver = receiver
        self.sink = sink
        self.before: Callable[[Any], None] | None = None
        # aiortc stamps each packet's SSRC with `clock.current_datetime()` for
        # `getSynchronizationSources` (sources heard in the last 10 s): here that datetime
        # is taken again only when the arrival time has moved `SOURCE_CLOCK_MS` (either
        # way, should the wall clock step back), not for each packet (~5 % of the SFU's
        # receive time, py-spy).
        self._source_ms = -SOURCE_CLOCK_MS
        self._source_time = _clock.current_datetime()

    def handle(self, packet: Any, arrival_time_ms: int) -> None:
        r: Any = self.receiver
        if not r._enabled:
            return
        if self.before is not None:
            self.before(packet)
        estimator = r._RTCRtpReceiver__remote_bitrate_estimator
        if estimator is not None and packet.extensions.abs_send_time is not None:
            remb = estimator.add(
                abs_send_time=packet.extensions.abs_send_time,
                arrival_time_ms=arrival_time_ms,
                payload_size=len(packet.payload) + packet.padding_size,
                ssrc=packet.ssrc,
            )
            rtcp_ssrc = r._RTCRtpReceiver__rtcp_ssrc
            if rtcp_ssrc is not None and remb is not None:
                feedback = RtcpPsfbPacket(
                    fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(*remb)
                )
                sending.spawn(r._send_rtcp(feedback))
        if not -SOURCE_CLOCK_MS < arrival_time_ms - self._source_ms < SOURCE_CLOCK_MS:
            self._source_ms, self._source_time = arrival_time_ms, _clock.current_datetime()
        r._RTCRtpReceiver__active_ssrc[packet.ssrc] = self._source_time
        codecs = r._RTCRtpReceiver__codecs
        codec = codecs.get(packet.payload_type)
        if codec is None:
            return
        streams = r._RTCRtpReceiver__remote_streams
        stats = streams.get(packet.ssrc)
        if stats is None:
            stats = streams[packet.ssrc] = FlatStreamStatistics(codec.clockRate)
        stats.add(packet)
        kind = _KINDS.get(codec.mimeType) or _kind(codec)
        if kind[0]:  # RTX
            original_ssrc = r._RTCRtpReceiver__rtx_ssrc.get(packet.ssrc)
            apt = codec.parameters.get("apt")
            if (
                original_ssrc is None
                or len(packet.payload) < 2
                or not isinstance(apt, int)
                or apt not in codecs
            ):
                return
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)
            codec = codecs[apt]
            kind = _KINDS.get(codec.mimeType) or _kind(codec)
        nack = r._RTCRtpReceiver__nack_generator
        if nack is not None and nack.add(packet):
            sending.spawn(r._send_rtcp_nack(packet.ssrc, sorted(nack.missing)))
        try:
            if not packet.payload:
                packet._data = b""
            elif kind[1]:  # VP8
                packet._data = _rtp_receive.vp8_payload(packet.payload)
            else:
                packet._data = depayload(codec, packet.payload)
        except ValueError:
            return
        pli, frame = r._RTCRtpReceiver__jitter_buffer.add(packet)
        if pli:
            sending.spawn(r._send_rtcp_pli(packet.ssrc))
        if frame is not None and r._RTCRtpReceiver__decoder_thread:
            frame.timestamp = r._RTCRtpReceiver__timestamp_mapper.map(frame.timestamp)
            self.sink(codec, frame)

    def deliver(self, ssrc: int, payload_type: int, frame: JitterFrame) -> None:
        """A frame of `ssrc` from the C path (a routed simulcast layer's, or a routed
        audio stream's packet): what `handle` does with a frame, and the synchronization
        source's time it sets per packet."""
        r: Any = self.receiver
        codec = r._RTCRtpReceiver__codecs.get(payload_type)
        if codec is None or not r._RTCRtpReceiver__decoder_thread:
            return
        now_ms = time.time_ns() // 1_000_000 + NTP_EPOCH_MS
        if not -SOURCE_CLOCK_MS < now_ms - self._source_ms < SOURCE_CLOCK_MS:
            self._source_ms, self._source_time = now_ms, _clock.current_datetime()
        r._RTCRtpReceiver__active_ssrc[ssrc] = self._source_time
        frame.timestamp = r._RTCRtpReceiver__timestamp_mapper.map(frame.timestamp)
        self.sink(codec, frame)


class FeedbackSender:
    """A transport's transport-cc feedback, about every `INTERVAL` while its DTLS
    transport is connected, through the first tapped receiver (its RTCP sender SSRC).

    It goes out from the packet path: the first packet recorded at or after `due_ns`
    (`INTERVAL` after the last feedback) has `DirectReceive` call `send`, in the wake-up
    that read that packet. A timer of its own woke the process ten more times a second
    (py-spy of the SFU receiving one publisher: 8 % of its time). A timer stays as the
    backstop: it sends what is left once packets stop (`LATE` after the feedback was
    due); finding nothing, it stops, and the next packet sends its feedback at once.
    Due times are on the arrival stamps' clock (wall-clock ns); should that clock step
    back, the backstop's send resets them."""

    INTERVAL_NS = int(INTERVAL * 1e9)
    LATE = INTERVAL / 2  # seconds past due before the backstop sends

    def __init__(self, dtls: RTCDtlsTransport, receivers: list[RTCRtpReceiver]) -> None:
        self.log = TransportFeedback()
        self.sent = 0  # feedback packets sent
        self.by_timer = 0  # of them, sent by the backstop timer
        self._dtls = dtls
        self._receivers = receivers
        self.due_ns = time.time_ns() + self.INTERVAL_NS  # the next feedback, from a packet
        loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = loop.call_later(INTERVAL + self.LATE, self._late)

    def _late(self) -> None:
        self._timer = None
        self.send(time.time_ns(), timer=True)

    def send(self, now_ns: int, timer: bool = False) -> None:
        """Send the feedback for what was recorded since the last (the packet path calls
        this once `due_ns` has come)."""
        dtls: Any = self._dtls
        if dtls._state is not _CONNECTED or not self._receivers:
            self.stop()  # closed or failed: it receives nothing more
            self.due_ns = 1 << 62
            return
        receiver: Any = self._receivers[0]
        sent = 0
        for data in self.log.feedbacks(getattr(receiver, RTCP_SSRC_ATTR, None) or 0):
            sent += send_rtcp_now(dtls, data)
        self.sent += sent
        if timer:
            self.by_timer += sent
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if timer and not sent:  # no packets: idle until one comes, which then sends at once
            self.due_ns = 0
            return
        self.due_ns = now_ns + self.INTERVAL_NS
        self._timer = asyncio.get_running_loop().call_later(INTERVAL + self.LATE, self._late)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def send_rtcp_now(dtls: Any, data: bytes) -> bool:
    """Send an RTCP packet's bytes on a DTLS transport now, as `RTCRtpReceiver._send_rtcp`
    does through `RTCDtlsTransport._send_rtp`, `RTCIceTransport._send` and aioice's
    `Connection.send`, `sendto` and `StunProtocol.send_data`: protected as SRTCP, written
    to the nominated pair's datagram transport, counted in the transport's bytes and
    packets. False (nothing sent) where aiortc raises the ConnectionError `_send_rtcp`
    drops: the transport not connected, or no pair nominated."""
    pair = dtls.transport._connection._nominated.get(1)
    if dtls._state is not _CONNECTED or pair is None:
        return False
    data = dtls._tx_srtp.protect_rtcp(data)
    pair.protocol.transport.sendto(data, pair.remote_addr)
    dtls._RTCDtlsTransport__tx_bytes += len(data)
    dtls._RTCDtlsTransport__tx_packets += 1
    return True


class DirectReceive:
    """Stands in for one aioice `Connection.data_received`: SRTP packets are handled at
    once (see the module's docstring), every other datagram goes to `fallback`."""

    def __init__(
        self,
        dtls: RTCDtlsTransport,
        fallback: Callable[[bytes, int], None],
        arrival: ArrivalClock,
        connection: Any,
    ) -> None:
        self._dtls = dtls
        self._fallback = fallback
        self._connection = connection
        self.demuxed = 0  # the connection's protocols RtpDemux stands in for
        self._demux_done = False
        self.arrival = arrival
        self.handled = 0  # SRTP packets handled here
        self.receivers: list[RTCRtpReceiver] = []  # the tapped ones, in tapping order
        self.feedback: FeedbackSender | None = None  # from the first transport-cc packet
        self._srtp: pylibsrtp.Session | None = None  # the session whose srtp_t is _session
        self._session = 0
        # simulcast layers taken from the datagram to the frame in C (simulcast_receive.py
        # routes them once their receiver is tapped and the layer's first packet came)
        self.fast = _rtp_receive.FastLayers()
        self.entries: list[_rtp_receive.RtpDemux] = []  # what _demux put in the protocols

    def __call__(self, data: bytes, component: int) -> None:
        dtls: Any = self._dtls
        srtp = dtls._rx_srtp
        if (
            srtp is None
            or "_handle_rtp_data" in dtls.__dict__  # replaced (a test dropping packets)
            or dtls._state is not _CONNECTED
            or not 127 < data[0] < 192
            or len(data) < 2
            or 192 <= data[1] <= 208  # SRTCP (aiortc's is_rtcp)
        ):
            self._fallback(data, component)
            return
        dtls._RTCDtlsTransport__rx_bytes += len(data)
        dtls._RTCDtlsTransport__rx_packets += 1
        self.handled += 1
        if not self._demux_done:  # the first SRTP packet: gathering is long over
            self._demux()
        arrival_ns = self.arrival.now_ns(component)
        if srtp is not self._srtp:
            self._srtp = srtp
            self._session = srtp_address(srtp)
            for entry in self.entries:
                entry.srtp(srtp, self._session, SRTP_UNPROTECT)
        packet = self.fast.receive(
            self._session,
            SRTP_UNPROTECT,
            data,
            getattr(dtls._rtp_header_extensions_map, _IDS),
            arrival_ns,
        )
        if packet is None:
            return  # done in C, or not unprotected or not parsed (aiortc drops these too)
        if type(packet) is tuple:
            self.event(packet, arrival_ns)
        else:
            self.after_unprotect(packet, arrival_ns)

    def event(self, event: tuple[Any, ...], arrival_ns: int) -> None:
        """A routed layer's frame, NACK or PLI from the C path: `event[0](*event[1:])`."""
        try:
            event[0](*event[1:])
        except Exception:  # one bad packet must not stop the connection's media
            log.exception("receiving an RTP packet failed")

    def after_unprotect(self, packet: Any, arrival_ns: int) -> None:
        """The rest of the path for an unprotected packet the C path did not take."""
        dtls: Any = self._dtls
        seq = packet.extensions.transport_sequence_number
        if seq is not None:
            feedback = self.feedback
            if feedback is None:
                feedback = self.feedback = FeedbackSender(dtls, self.receivers)
                self.fast.feedback(feedback, feedback.log)
            feedback.log.record(seq, arrival_ns // 1000, packet.ssrc)
            if arrival_ns >= feedback.due_ns:
                feedback.send(arrival_ns)
        receiver = dtls._rtp_router.route_rtp(packet)
        if receiver is None:
            return
        arrival_time_ms = arrival_ns // 1_000_000 + NTP_EPOCH_MS
        path: ReceivePath | None = getattr(receiver, PATH_ATTR, None)
        if path is None:  # not tapped: aiortc's own handling, in order
            sending.spawn(receiver._handle_rtp_packet(packet, arrival_time_ms=arrival_time_ms))
            return
        try:
            path.handle(packet, arrival_time_ms)
        except Exception:  # one bad packet must not stop the connection's media
            log.exception("receiving an RTP packet failed")

    def _demux(self) -> None:
        self._demux_done = True
        for protocol in self._connection._protocols:
            if isinstance(protocol, aioice.ice.StunProtocol) and "datagram_received" not in (
                vars(protocol)
            ):
                entry = _rtp_receive.RtpDemux(
                    protocol.datagram_received,
                    self,
                    protocol.local_candidate.component,
                    self._dtls,
                    _CONNECTED,
                    self.fast,
                    self.arrival,
                )
                if self._srtp is not None:
                    entry.srtp(self._srtp, self._session, SRTP_UNPROTECT)
                setattr(protocol, "datagram_received", entry)  # noqa: B010
                self.entries.append(entry)
                self.demuxed += 1


def receive_directly(receiver: RTCRtpReceiver, sink: FrameSink) -> ReceivePath:
    """Handle `receiver`'s RTP packets directly (each whole frame to `sink`) from now
    on; its connection's other datagrams keep aiortc's path. Call when tapping it."""
    path = ReceivePath(receiver, sink)
    setattr(receiver, PATH_ATTR, path)
    dtls = receiver.transport
    connection = dtls.transport._connection
    current = connection.data_received
    if not isinstance(current, DirectReceive):
        current = DirectReceive(dtls, current, arrival_clock(connection), connection)
        connection.data_received = current  # type: ignore[method-assign]
    current.receivers.append(receiver)
    return path


def path_of(receiver: RTCRtpReceiver) -> ReceivePath | None:
    """A tapped receiver's ReceivePath."""
    return getattr(receiver, PATH_ATTR, None)


def direct_of(receiver: RTCRtpReceiver) -> DirectReceive | None:
    """The DirectReceive a tapped receiver's connection hands its datagrams to."""
    current = receiver.transport.transport._connection.data_received
    return current if isinstance(current, DirectReceive) else None


class BufferStatistics(StreamStatistics):
    """aiortc's statistics of one stream's packets (receiver reports, getStats), counted
    by its `LayerBuffer` in C (the fast path counts there); `add` (a packet that took
    the Python path) counts there too."""

    def __init__(self, buffer: LayerBuffer, clockrate: int, expected: int, received: int) -> None:
        # not StreamStatistics.__init__: its counters are the buffer's
        self._buffer = buffer
        self._clockrate = clockrate
        self._expected_prior = expected  # what fraction_lost last reported
        self._received_prior = received

    base_seq = property(lambda self: self._buffer.base_seq)
    max_seq = property(lambda self: self._buffer.stats_max_seq)
    cycles = property(lambda self: self._buffer.cycles)
    packets_received = property(lambda self: self._buffer.packets_received)
    _jitter_q4 = property(lambda self: self._buffer.jitter_q4)
    _last_arrival = property(lambda self: self._buffer.last_arrival)
    _last_timestamp = property(lambda self: self._buffer.last_timestamp)

    def add(self, packet: Any) -> None:
        arrival = int(time.time() * self._clockrate)
        self._buffer.count(packet.sequence_number, packet.timestamp, arrival)


def route_fast(
    receiver: Any, ssrc: int, payload_type: int, buffer: LayerBuffer, on_event: Any
) -> bool:
    """Take the packets of `ssrc` from the datagram to the frame in C (`FastLayers`) from
    now on, where that does what `ReceivePath.handle` would: on a connection whose
    datagrams come to a DirectReceive, for a receiver with no bitrate estimator, no NACK
    generator and no `before` of its own; a VP8 simulcast layer (`tap_simulcast`: its
    NACKs and frames in `buffer`) or an audio stream (`tap_encoded_frames`: each packet
    a frame, `buffer` keeping the newest). Its statistics move into `buffer`. False: it
    stays on the Python path."""
    direct = direct_of(receiver)
    path = path_of(receiver)
    codec = receiver._RTCRtpReceiver__codecs.get(payload_type)
    audio = codec is not None and codec.mimeType.lower().startswith("audio/")
    if (
        direct is None
        or path is None
        or (audio and path.before is not None)
        or codec is None
        or (codec.name != "VP8" and not audio)
        or is_rtx(codec)
        or getattr(receiver, ESTIMATOR_ATTR) is not None
        or getattr(receiver, NACK_ATTR) is not None
    ):
        return False
    streams = receiver._RTCRtpReceiver__remote_streams
    old = streams.get(ssrc)
    priors = (0, 0)
    if old is not None:
        buffer.take_statistics(
            old.base_seq,
            old.max_seq,
            old.cycles,
            old.packets_received,
            old._jitter_q4,
            old._last_arrival,
            old._last_timestamp,
        )
        priors = (old._expected_prior, old._received_prior)
    table = receiver.transport._rtp_router.ssrc_table
    if not direct.fast.route(
        ssrc, payload_type, buffer, on_event, receiver, table, codec.clockRate, audio
    ):
        return False
    streams[ssrc] = BufferStatistics(buffer, codec.clockRate, *priors)
    return True


def problems() -> list[str]:
    found = needs(
        handle_rtp_source(),
        "RTCRtpReceiver._handle_rtp_packet",
        "if not self._enabled:",
        "if self.__remote_bitrate_estimator is not None:",
        "if packet.extensions.abs_send_time is not None:",
        "payload_size=len(packet.payload) + packet.padding_size",
        "if self.__rtcp_ssrc is not None and remb is not None:",
        "fci=pack_remb_fci(*remb)",
        "self.__active_ssrc[packet.ssrc] = clock.current_datetime()",
        "codec = self.__codecs.get(packet.payload_type)",
        "self.__remote_streams[packet.ssrc] = StreamStatistics(codec.clockRate)",
        "self.__remote_streams[packet.ssrc].add(packet)",
        "if is_rtx(codec):",
        "original_ssrc = self.__rtx_ssrc.get(packet.ssrc)",
        'apt = codec.parameters.get("apt")',
        "packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)",
        "if self.__nack_generator is not None and self.__nack_generator.add(packet)",
        "packet.ssrc, sorted(self.__nack_generator.missing)",
        "packet._data = depayload(codec, packet.payload)",
        "pli_flag, encoded_frame = self.__jitter_buffer.add(packet)",
        "await self._send_rtcp_pli(packet.ssrc)",
        "if encoded_frame is not None and self.__decoder_thread:",
        "encoded_frame.timestamp = self.__timestamp_mapper.map(",
    )
    found += needs(
        inspect.getsource(RTCDtlsTransport._recv_next),
        "RTCDtlsTransport._recv_next",
        "data = await self.transport._recv()",
        "self.__rx_bytes += len(data)",
        "self.__rx_packets += 1",
        "elif first_byte > 127 and first_byte < 192 and self._rx_srtp:",
        "arrival_time_ms = clock.current_ms()",
        "if is_rtcp(data):",
        "data = self._rx_srtp.unprotect(data)",
        "await self._handle_rtp_data(data, arrival_time_ms=arrival_time_ms)",
        "except pylibsrtp.Error",
    )
    found += needs(
        inspect.getsource(RTCDtlsTransport._handle_rtp_data),
        "RTCDtlsTransport._handle_rtp_data",
        "packet = RtpPacket.parse(data, self._rtp_header_extensions_map)",
        "receiver = self._rtp_router.route_rtp(packet)",
        "except ValueError",
    )
    found += needs(
        inspect.getsource(aioice.ice.StunProtocol.datagram_received),
        "aioice's StunProtocol.datagram_received",
        "self.receiver.data_received(data, self.local_candidate.component)",
    )
    found += needs(
        inspect.getsource(aioice.ice.Connection),
        "aioice's Connection",
        "self._protocols: list[StunProtocol] = []",
        "self._protocols += host_protocols",
    )
    found += needs(
        inspect.getsource(asyncio.selector_events._SelectorDatagramTransport._read_ready),  # type: ignore[attr-defined]
        "asyncio's datagram transport",
        "self._protocol.datagram_received(data, addr)",
    )
    found += needs(
        inspect.getsource(aioice.ice.Connection.data_received),
        "aioice's Connection.data_received",
        "self._queue.put_nowait((data, component))",
    )
    if not takes(RTCRtpReceiver, "_send_rtcp", "packet"):
        found.append("RTCRtpReceiver._send_rtcp(packet) is gone or changed")
    if "await self.transport._send_rtp(bytes(packet))" not in inspect.getsource(
        RTCRtpReceiver._send_rtcp
    ) or "if is_rtcp(data):" not in inspect.getsource(RTCDtlsTransport._send_rtp):
        found.append("RTCRtpReceiver._send_rtcp no longer sends bytes(packet) as SRTCP")
    found += needs(  # what send_rtcp_now does in one call
        inspect.getsource(RTCDtlsTransport._send_rtp),
        "RTCDtlsTransport._send_rtp",
        "if self._state != State.CONNECTED:",
        "data = self._tx_srtp.protect_rtcp(data)",
        "await self.transport._send(data)",
        "self.__tx_bytes += len(data)",
        "self.__tx_packets += 1",
    )
    if "self._send = self._connection.send" not in inspect.getsource(RTCIceTransport.__init__):
        found.append("RTCIceTransport no longer sends through its aioice Connection")
    found += needs(
        inspect.getsource(aioice.ice.Connection.send)
        + inspect.getsource(aioice.ice.Connection.sendto)
        + inspect.getsource(aioice.ice.StunProtocol.send_data),
        "aioice's Connection.send",
        "await self.sendto(data, 1)",
        "active_pair = self._nominated.get(component)",
        "await active_pair.protocol.send_data(data, active_pair.remote_addr)",
        "self.transport.sendto(data, addr)",
    )
    if "values.transport_sequence_number = unpack(" not in inspect.getsource(
        aiortc.rtp.HeaderExtensionsMap.get
    ):
        found.append("RtpPacket.extensions.transport_sequence_number is no longer parsed")
    found += _parse_problems()
    if "self._recv = self._connection.recv" not in inspect.getsource(RTCIceTransport.__init__):
        found.append("RTCIceTransport no longer receives from its aioice Connection")
    if "delta = current_datetime() - NTP_EPOCH" not in inspect.getsource(_clock.current_ms):
        found.append("aiortc's clock.current_ms no longer counts milliseconds from 1900")
    if "msg[1] >= 192 and msg[1] <= 208" not in inspect.getsource(is_rtcp):
        found.append("aiortc's is_rtcp no longer tells SRTCP by the second byte 192..208")
    with unconnected() as pc:
        receiver: Any = pc.addTransceiver("video").receiver
        for attr in (
            "_enabled",
            "_RTCRtpReceiver__remote_bitrate_estimator",
            "_RTCRtpReceiver__rtcp_ssrc",
            "_RTCRtpReceiver__active_ssrc",
            "_RTCRtpReceiver__codecs",
            "_RTCRtpReceiver__remote_streams",
            "_RTCRtpReceiver__rtx_ssrc",
            "_RTCRtpReceiver__nack_generator",
            "_RTCRtpReceiver__jitter_buffer",
            "_RTCRtpReceiver__timestamp_mapper",
            "_RTCRtpReceiver__decoder_thread",
        ):
            if not hasattr(receiver, attr):
                found.append(f"RTCRtpReceiver instances have no {attr}")
        dtls: Any = receiver.transport
        for attr in (
            "_rx_srtp",
            "_state",
            "_rtp_header_extensions_map",
            "_rtp_router",
            "_RTCDtlsTransport__rx_bytes",
            "_RTCDtlsTransport__rx_packets",
            "_RTCDtlsTransport__tx_bytes",
            "_RTCDtlsTransport__tx_packets",
            "_tx_srtp",
        ):
            if not hasattr(dtls, attr):
                found.append(f"RTCDtlsTransport instances have no {attr}")
        connection = getattr(dtls.transport, "_connection", None)
        if not callable(getattr(connection, "data_received", None)):
            found.append("aioice Connection instances have no data_received")
    return found


# What media/_rtp_receive.c sets on the RtpPacket and HeaderExtensions it makes without
# their __init__: every attribute __init__ sets (it sets no others).
PACKET_ATTRS = {
    "version", "marker", "payload_type", "sequence_number", "timestamp", "ssrc", "csrc",
    "extensions", "payload", "padding_size",
}  # fmt: skip
EXTENSION_KINDS = (
    "mid", "repaired_rtp_stream_id", "rtp_stream_id", "abs_send_time",
    "transmission_offset", "audio_level", "transport_sequence_number",
)  # fmt: skip


def _parse_problems() -> list[str]:
    """What the C receive path takes from aiortc and pylibsrtp (see _rtp_receive.c)."""
    found = []
    if set(vars(RtpPacket())) != PACKET_ATTRS:
        found.append("RtpPacket.__init__ no longer sets exactly the attributes C sets")
    fields = {f.name: f.default for f in dataclasses.fields(HeaderExtensions)}
    if set(fields) != set(EXTENSION_KINDS) or any(
        getattr(HeaderExtensions, name, 0) is not None for name in fields
    ):
        found.append("HeaderExtensions' fields are no longer the seven kinds, None by default")
    get = inspect.getsource(HeaderExtensionsMap.get)
    # C takes the first kind whose id matches, in aiortc's order of branches
    branches = [get.find(f"x_id == self.__ids.{kind}:") for kind in EXTENSION_KINDS]
    if (
        not isinstance(getattr(HeaderExtensionsMap(), _IDS, None), HeaderExtensions)
        or -1 in branches
        or branches != sorted(branches)
    ):
        found.append("HeaderExtensionsMap no longer reads each kind's id from __ids in turn")
    if (
        'if codec.name == "VP8":\n        return vp8_depayload(payload)'
        not in inspect.getsource(depayload)
        or "return data" not in inspect.getsource(vp8_depayload)
        or "return obj, data[pos:]" not in inspect.getsource(VpxPayloadDescriptor.parse)
    ):
        found.append("aiortc's VP8 depayload is no longer the bytes after the descriptor")
    unprotect = _binding.ffi.typeof(_binding.lib.srtp_unprotect).cname
    if unprotect != "srtp_err_status_t(*)(struct srtp_ctx_t_ *, void *, int *)":
        found.append("libsrtp's srtp_unprotect(srtp_t, void *, int *) is gone or changed")
    return found
