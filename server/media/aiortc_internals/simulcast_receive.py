"""Receiving simulcast, and routing by MID (internals 11, 12).

11. `RTCDtlsTransport._rtp_router` (an `RtpRouter`: `ssrc_table`, `payload_type_table`,
   `mid_table`, `route_rtp(packet)`). aiortc routes an RTP packet by its SSRC, and one
   with an SSRC the SDP did not declare only when a single receiver has its payload
   type; its `mid_table` is filled but never read. A participant's camera and screen
   share are two video receivers with the same payload types, and a simulcast camera
   declares no SSRCs (its layers are named by RID): its packets were dropped.
   `route_by_mid` routes such a packet by its `sdes:mid` header extension (RFC 8843
   §9.2) first, then as aiortc does. Each SSRC it learns stays in `ssrc_table` and
   gets its own statistics (`__remote_streams`: a report block in every receiver
   report) and source entry (`__active_ssrc`) on its receiver: a participant sending
   under ever new SSRCs grew all three without end (the attack in
   tests/security/sfu/test_sfu_abuse.py). A transport learns at most `MAX_SSRCS`; past
   that, SSRCs not heard for `STALE_SSRC_S` are forgotten (looked for at most once a
   second) and a new one is dropped while none is.
12. Simulcast receive (simulcast.py reads the SDP): all of one m-line's layers reach one
   `RTCRtpReceiver`, whose single jitter buffer and NACK generator would mix their
   sequence numbers. `tap_simulcast` gives it a `LayeredVideoBuffer` (per layer SSRC a
   C `LayerBuffer`: aiortc's `NackGenerator` and `JitterBuffer.add` rules with the prompt
   release and the layer's statistics, in one call per packet; NACKing through
   `_send_rtcp_nack`; from its first packet on, each VP8 layer's packets are taken from
   the datagram to the frame in C: `route_fast`, direct_receive.py), sets
   `__nack_generator` to None (its own would NACK across layers), fills
   `__rtx_ssrc` (RTX SSRC → media SSRC, which `_handle_rtp_packet` needs to unwrap a
   retransmission) from the `repaired-rtp-stream-id` extension, and wraps
   `_handle_rtp_packet` per instance to learn each SSRC's RID first, and sets
   `__remote_bitrate_estimator` to None (its REMB would cap the browser below its
   upper layers). Frames carry their
   SSRC and their own RTP timestamp (`__timestamp_mapper` maps one stream's clock only).
   A single-stream video (`tap_video`) is one such layer, its estimator kept.
   `accept_header_extensions` adds the RID extensions to a transceiver's negotiated
   `_headerExtensions`, which both the answer (`create_media_description_for_transceiver`)
   and the receiver's parameters (`__remoteRtp`) are built from, and to its DTLS
   transport's `_rtp_header_extensions_map` at once (see its docstring).

`problems()` lists what of these is missing or changed (run by `check()` in
__init__.py).
"""

from __future__ import annotations

import datetime
import functools
import inspect
import math
import time
from collections.abc import Callable
from typing import Any

import aiortc
import aiortc.rtp
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpTransceiver, rtcrtpreceiver
from aiortc import clock as _clock
from aiortc import rtcpeerconnection as _pc_module
from aiortc.jitterbuffer import MAX_MISORDER, JitterBuffer, JitterFrame
from aiortc.rtcdtlstransport import RTCDtlsTransport, RtpRouter
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpReceiveParameters
from aiortc.rtcrtpreceiver import NackGenerator

from server.media import _rtp_receive
from server.media._rtp_receive import LayerBuffer
from server.media.aiortc_internals.base import (
    ESTIMATOR_ATTR,
    JITTER_ATTR,
    NACK_ATTR,
    RTX_ATTR,
    FrameSink,
    handle_rtp_source,
    needs,
    sending,
    takes,
    unconnected,
)
from server.media.aiortc_internals.direct_receive import path_of, route_fast
from server.media.aiortc_internals.receive import (
    JITTER_ADD_LINES,
    NOTHING_HELD,
    WholeFrame,
    tap_encoded_frames,
)
from server.media.aiortc_internals.repair import LayerRepair


class LayerFrame(WholeFrame):
    """A simulcast layer's frame: which SSRC it came on, and its own RTP timestamp."""

    def __init__(
        self,
        data: bytes,
        timestamp: int,
        ssrc: int,
        after_gap: bool = False,
        parts: list[bytes] | None = None,
        gate: LayerBuffer | None = None,
        held: tuple[int, int] = NOTHING_HELD,
    ) -> None:
        super().__init__(data, timestamp, parts if parts is not None else [data])
        self.ssrc = ssrc
        self.rtp_timestamp = timestamp
        self.after_gap = after_gap  # frames before it were given up: not decodable alone
        self.gate = gate  # its layer's buffer (receive.py's `frame_gate`)
        self.held = held  # frames and bytes its quiet layer kept back (`frame_held`)


class LayeredVideoBuffer(JitterBuffer):
    """One C `LayerBuffer` per simulcast layer (SSRC): its NACK tracking, its prompt
    jitter buffer of 512 packets and its frame assembly (server/media/_rtp_receive.c:
    aiortc's `NackGenerator`, `PromptVideoBuffer`'s rules and `skip_gap_in`, in one call
    per packet). A layer stuck at a lost packet (packets arrive, no frame comes out for
    `_rtp_receive.STALL_S`: its retransmission was lost too) skips to the next whole
    frame. It sends no PLI itself: a frame that follows frames given up (a skip, the
    sender restarting, the buffer overflowing) comes out `after_gap`, and the
    publication asks for the keyframe through its limiter (keyframes.py: at most one
    request a second a layer, however often the layer stalls)."""

    def __init__(
        self,
        send_nack: Callable[[int, list[int]], None],
        layers: int,
        on_layer: Callable[[int, int, LayerBuffer], None] | None = None,
        replace: bool = False,
    ) -> None:
        super().__init__(capacity=16, is_video=True)
        self._send_nack = send_nack
        self._max = layers
        self._on_layer = on_layer  # (ssrc, payload type, its buffer) of each new layer
        self._replace = replace  # a new SSRC past `layers` replaces the oldest (one stream)
        self.layers: dict[int, LayerBuffer] = {}
        self._payload_types: dict[int, int] = {}  # each layer's, as its first packet had
        self.repair: LayerRepair | None = None  # NACKs again what stays missing

    def add(self, packet: Any) -> tuple[bool, JitterFrame | None]:
        ssrc = packet.ssrc
        layer = self.layers.get(ssrc)
        now = time.monotonic()
        if layer is None:
            if len(self.layers) >= self._max:
                if not self._replace:
                    return False, None  # not one of the layers: an SSRC too many
                oldest = next(iter(self.layers))  # the sender restarted
                del self.layers[oldest]
                self._payload_types.pop(oldest, None)
            layer = self.layers[ssrc] = LayerBuffer(now)
            self._payload_types[ssrc] = packet.payload_type
            if self._on_layer is not None:
                self._on_layer(ssrc, packet.payload_type, layer)
        elif packet.payload_type != self._payload_types.get(ssrc):
            # another codec on the same SSRC: no frame of it is sent on as VP8 from the
            # buffer (the publication, told of the codec by the frame, decides again)
            self._payload_types[ssrc] = packet.payload_type
            layer.forward(None)
        result = layer.add(
            packet.sequence_number, packet.timestamp, packet.marker, packet._data, now
        )
        if result is None:
            return False, None
        # its PLI: `after_gap` says it
        _, lost, data, parts, timestamp, after_gap, held_frames, held_bytes = result
        if lost:
            self._send_nack(ssrc, lost)
        if data is None or timestamp is None:
            return False, None
        held = (held_frames, held_bytes)
        return False, LayerFrame(data, timestamp, ssrc, after_gap, parts, layer, held)


def tap_video(receiver: RTCRtpReceiver, sink: FrameSink, renack_seconds: float | None) -> None:
    """Like `tap_encoded_frames`, for a single-stream video (a camera sent without
    simulcast, a screen share): its stream is one layer of a `LayeredVideoBuffer`, so
    its packets take the same C path as a simulcast layer's (NACKs, frame assembly, the
    stall skip, `renack_seconds`); `sink` gets `LayerFrame`s. A new SSRC replaces the
    stream (the sender restarted). The receiver keeps its bitrate estimator (a
    publisher without transport-cc is sent REMB; its packets then stay on the Python
    path, into the same buffer)."""
    _tap_layers(receiver, sink, 1, renack_seconds, replace=True)


def _tap_layers(
    receiver: RTCRtpReceiver,
    sink: FrameSink,
    count: int,
    renack_seconds: float | None,
    replace: bool = False,
) -> LayeredVideoBuffer:
    tap_encoded_frames(receiver, sink)
    repair: LayerRepair | None = None

    def send_nack(ssrc: int, lost: list[int]) -> None:
        sending.spawn(receiver._send_rtcp_nack(ssrc, lost))
        if repair is not None:
            repair.lost()

    path = path_of(receiver)

    def on_event(
        gate: LayerBuffer,  # the layer's buffer, as routed
        ssrc: int,
        payload_type: int,
        pli: bool,  # no PLI from here: the frame's `after_gap` says it (the class above)
        lost: list[int] | None,
        data: bytes | None,
        parts: list[bytes] | None,
        timestamp: int | None,
        after_gap: bool,
        held_frames: int,
        held_bytes: int,
    ) -> None:  # what the Python path does with a routed layer's packet that had one
        if lost:
            send_nack(ssrc, lost)
        if data is not None and timestamp is not None and path is not None:
            held = (held_frames, held_bytes)
            frame = LayerFrame(data, timestamp, ssrc, after_gap, parts, gate, held)
            path.deliver(ssrc, payload_type, frame)

    def on_layer(ssrc: int, payload_type: int, layer: LayerBuffer) -> None:
        route_fast(receiver, ssrc, payload_type, layer, functools.partial(on_event, layer))

    buffer = LayeredVideoBuffer(send_nack, count, on_layer, replace)
    if renack_seconds is not None:
        repair = buffer.repair = LayerRepair(receiver, buffer.layers, renack_seconds)
    setattr(receiver, JITTER_ATTR, buffer)
    setattr(receiver, NACK_ATTR, None)
    return buffer


def tap_simulcast(
    receiver: RTCRtpReceiver, layers: Any, sink: FrameSink, renack_seconds: float | None = None
) -> None:
    """Like `tap_encoded_frames`, for a simulcast m-line: each layer reassembled and
    NACKed apart; `sink` gets `LayerFrame`s. `layers` is a simulcast.Layers. With
    `renack_seconds`, what is still missing is NACKed again at that interval while a
    loss is outstanding (repair.py's `LayerRepair`, the buffer's `repair`)."""
    _tap_layers(receiver, sink, max(layers.count, 1), renack_seconds)
    # aiortc's REMB caps a sender near 1.5x what it receives: a browser held at its
    # lowest layer never gets to send the others. Without it the browser's own
    # loss-based estimate (from the receiver reports) ramps up to all its layers.
    setattr(receiver, ESTIMATOR_ATTR, None)
    rtx: dict[int, int] = getattr(receiver, RTX_ATTR)
    rtx.update(layers.rtx)
    handle = receiver._handle_rtp_packet

    def learn(packet: Any) -> None:
        extensions = packet.extensions
        if extensions.rtp_stream_id is not None or extensions.repaired_rtp_stream_id is not None:
            layers.learn(packet.ssrc, extensions.rtp_stream_id, extensions.repaired_rtp_stream_id)
            if rtx != layers.rtx:  # the layers' RTX streams, none replaced kept
                rtx.clear()
                rtx.update(layers.rtx)

    async def learn_then_handle(packet: Any, arrival_time_ms: int) -> None:
        learn(packet)
        await handle(packet, arrival_time_ms)

    # aiortc's path (a packet that arrives before the transport is connected) and ours
    receiver._handle_rtp_packet = learn_then_handle  # type: ignore[method-assign]
    path = path_of(receiver)
    if path is not None:
        path.before = learn


def accept_header_extensions(transceiver: RTCRtpTransceiver, offered: dict[str, int]) -> None:
    """Negotiate these extensions (URI → the offer's id) on the transceiver too, and
    teach them to its transport's extension map now: the receiver configures that map
    from `_headerExtensions` only when it starts, and in a room where someone already
    publishes, the answer to the SFU's first re-offer (applied before DTLS connects)
    resets `_headerExtensions` to aiortc's own list, so the receiver started without the
    RID extensions and never learned a layer (`configure` never removes an id)."""
    have = {x.uri for x in transceiver._headerExtensions}
    extensions = [RTCRtpHeaderExtensionParameters(id=i, uri=uri) for uri, i in offered.items()]
    transceiver._headerExtensions += [x for x in extensions if x.uri not in have]
    transceiver.receiver.transport._rtp_header_extensions_map.configure(
        RTCRtpReceiveParameters(headerExtensions=extensions)
    )


def route_by_mid(pc: RTCPeerConnection) -> None:
    """Route RTP packets of undeclared SSRCs by their MID header extension on every
    transport of `pc` (call after each remote description; it is idempotent)."""
    for transceiver in pc.getTransceivers():
        router = transceiver.receiver.transport._rtp_router
        if getattr(router, "_pairwise_by_mid", False):
            continue
        router.route_rtp = _mid_router(router)  # type: ignore[method-assign,assignment]
        router._pairwise_by_mid = True  # type: ignore[attr-defined]


# A connection's streams: audio, three layers and their RTX, a screen share and its RTX,
# and a few senders restarted; a receiver report holds at most 31 report blocks.
MAX_SSRCS = 24
STALE_SSRC_S = 10.0  # an SSRC not heard for this long may be forgotten


def _mid_router(router: Any, clock: Callable[[], float] = time.monotonic) -> Callable[[Any], Any]:
    ssrc_table, pt_table, mid_table = (
        router.ssrc_table,
        router.payload_type_table,
        router.mid_table,
    )
    looked = -math.inf  # when the table was last looked through for stale SSRCs

    def room() -> bool:
        """Whether a new SSRC may be learned: forgets the stale ones when full."""
        nonlocal looked
        if len(ssrc_table) < MAX_SSRCS:
            return True
        now = clock()
        if now - looked < 1.0:
            return False
        looked = now
        oldest = _clock.current_datetime() - datetime.timedelta(seconds=STALE_SSRC_S)
        for ssrc, receiver in list(ssrc_table.items()):
            heard = receiver._RTCRtpReceiver__active_ssrc.get(ssrc)
            if heard is None or heard < oldest:
                del ssrc_table[ssrc]
                _forget(receiver, ssrc)
        return len(ssrc_table) < MAX_SSRCS

    def route_rtp(packet: Any) -> Any:
        known = ssrc_table.get(packet.ssrc)
        candidates = pt_table.get(packet.payload_type, ())
        if known is not None:
            return known if known in candidates else None
        by_mid = mid_table.get(packet.extensions.mid)
        if by_mid is not None and by_mid in candidates:
            if not room():
                return None
            ssrc_table[packet.ssrc] = by_mid
            return by_mid
        if len(candidates) == 1:
            if not room():
                return None
            (only,) = candidates
            ssrc_table[packet.ssrc] = only
            return only
        return None

    return route_rtp


def _forget(receiver: Any, ssrc: int) -> None:
    """What `receiver` keeps per SSRC, gone: its source entry, statistics, last sender
    report and, if it estimates the publisher's bit rate, the estimator's entry (aiortc's
    REMB packs at most 255 SSRCs: past that each REMB raised)."""
    for name in ("active_ssrc", "remote_streams", "lsr", "lsr_time"):
        getattr(receiver, f"_RTCRtpReceiver__{name}").pop(ssrc, None)
    estimator = getattr(receiver, ESTIMATOR_ATTR, None)
    estimator = getattr(estimator, "inner", estimator)  # rtcp.py's cap wraps it
    if estimator is not None:
        estimator.ssrcs.pop(ssrc, None)


def _layer_rules() -> list[str]:
    """What `LayerBuffer` (server/media/_rtp_receive.c) mirrors of aiortc's NACK
    generator and jitter buffer."""
    found = []
    if (_rtp_receive.MAX_MISORDER, _rtp_receive.HISTORY) != (
        MAX_MISORDER,
        rtcrtpreceiver.RTP_HISTORY_SIZE,
    ):
        found.append("aiortc's MAX_MISORDER or RTP_HISTORY_SIZE changed")
    found += needs(
        inspect.getsource(NackGenerator.add) + inspect.getsource(NackGenerator.truncate),
        "NackGenerator",
        "if uint16_gt(packet.sequence_number, self.max_seq):",
        "self.missing.add(seq)",
        "self.missing.discard(packet.sequence_number)",
        "self.truncate()",
        "min_seq = uint16_add(self.max_seq, -RTP_HISTORY_SIZE)",
        "if uint16_gt(min_seq, seq):",
    )
    found += needs(inspect.getsource(JitterBuffer.add), "JitterBuffer.add", *JITTER_ADD_LINES)
    found += needs(
        inspect.getsource(JitterBuffer.smart_remove),
        "JitterBuffer.smart_remove",
        "if i >= count and timestamp != packet.timestamp:",
        "if i == self._capacity - 1:",
    )
    return found


def problems() -> list[str]:
    found = _layer_rules()
    found += needs(
        handle_rtp_source(),
        "RTCRtpReceiver._handle_rtp_packet",
        "original_ssrc = self.__rtx_ssrc.get(packet.ssrc)",
        "if self.__nack_generator is not None and self.__nack_generator.add(packet)",
        "encoded_frame.timestamp = self.__timestamp_mapper.map(",
        "pli_flag, encoded_frame = self.__jitter_buffer.add(packet)",
    )
    if not takes(RTCRtpReceiver, "_handle_rtp_packet", "packet", "arrival_time_ms"):
        found.append("RTCRtpReceiver._handle_rtp_packet(packet, arrival_time_ms) changed")
    if "await receiver._handle_rtp_packet(packet, arrival_time_ms=arrival_time_ms)" not in (
        inspect.getsource(RTCDtlsTransport._handle_rtp_data)
    ):
        found.append("RTCDtlsTransport no longer calls the receiver's _handle_rtp_packet")
    describe = inspect.getsource(_pc_module.create_media_description_for_transceiver)
    if "headerExtensions=transceiver._headerExtensions" not in describe:
        found.append("the answer's extmap lines no longer come from _headerExtensions")
    ids = inspect.getsource(aiortc.rtp.HeaderExtensionsMap.get)
    if "values.rtp_stream_id = " not in ids or "values.repaired_rtp_stream_id = " not in ids:
        found.append("RtpPacket.extensions no longer parses the RID extensions")
    route = inspect.getsource(RtpRouter.route_rtp)
    if (
        "self.ssrc_table.get(packet.ssrc)" not in route
        or "self.payload_type_table.get(packet.payload_type" not in route
        or "self.mid_table[mid] = receiver" not in inspect.getsource(RtpRouter.register_receiver)
        or "receiver = self._rtp_router.route_rtp(packet)"
        not in inspect.getsource(RTCDtlsTransport._handle_rtp_data)
    ):
        found.append("aiortc's RtpRouter no longer routes by ssrc_table/payload_type_table")
    if "values.mid = " not in ids:
        found.append("RtpPacket.extensions.mid is no longer parsed")
    with unconnected() as pc:
        transceiver = pc.addTransceiver("video")
        if not isinstance(getattr(transceiver.receiver, RTX_ATTR, None), dict):
            found.append(f"RTCRtpReceiver instances have no {RTX_ATTR} dict")
        if not isinstance(getattr(transceiver.sender.transport, "_rtp_router", None), RtpRouter):
            found.append("RTCDtlsTransport instances have no _rtp_router")
        for name in ("active_ssrc", "remote_streams", "lsr", "lsr_time"):  # `_forget`
            if not isinstance(getattr(transceiver.receiver, f"_RTCRtpReceiver__{name}", 0), dict):
                found.append(f"RTCRtpReceiver instances have no __{name} dict")
        estimator = getattr(transceiver.receiver, ESTIMATOR_ATTR, None)
        if not isinstance(getattr(estimator, "ssrcs", None), dict):
            found.append("aiortc's RemoteBitrateEstimator has no ssrcs dict")
    return found
