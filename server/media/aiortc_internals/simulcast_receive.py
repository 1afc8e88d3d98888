"""Receiving simulcast, and routing by MID (internals 11, 12).

11. `RTCDtlsTransport._rtp_router` (an `RtpRouter`: `ssrc_table`, `payload_type_table`,
   `mid_table`, `route_rtp(packet)`). aiortc routes an RTP packet by its SSRC, and one
   with an SSRC the SDP did not declare only when a single receiver has its payload
   type; its `mid_table` is filled but never read. A participant's camera and screen
   share are two video receivers with the same payload types, and a simulcast camera
   declares no SSRCs (its layers are named by RID): its packets were dropped.
   `route_by_mid` routes such a packet by its `sdes:mid` header extension (RFC 8843
   §9.2) first, then as aiortc does.
12. Simulcast receive (simulcast.py reads the SDP): all of one m-line's layers reach one
   `RTCRtpReceiver`, whose single jitter buffer and NACK generator would mix their
   sequence numbers. `tap_simulcast` gives it a `LayeredVideoBuffer` (a prompt buffer
   and a `NackGenerator` per layer SSRC, NACKing through `_send_rtcp_nack`), sets
   `__nack_generator` to None (its own would NACK across layers), fills
   `__rtx_ssrc` (RTX SSRC → media SSRC, which `_handle_rtp_packet` needs to unwrap a
   retransmission) from the `repaired-rtp-stream-id` extension, and wraps
   `_handle_rtp_packet` per instance to learn each SSRC's RID first, and sets
   `__remote_bitrate_estimator` to None (its REMB would cap the browser below its
   upper layers). Frames carry their
   SSRC and their own RTP timestamp (`__timestamp_mapper` maps one stream's clock only).
   `accept_header_extensions` adds the RID extensions to a transceiver's negotiated
   `_headerExtensions`, which both the answer (`create_media_description_for_transceiver`)
   and the receiver's parameters (`__remoteRtp`) are built from, and to its DTLS
   transport's `_rtp_header_extensions_map` at once (see its docstring).

`problems()` lists what of these is missing or changed (run by `check()` in
__init__.py).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any

import aiortc
import aiortc.rtp
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpTransceiver
from aiortc import rtcpeerconnection as _pc_module
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcdtlstransport import RTCDtlsTransport, RtpRouter
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpReceiveParameters
from aiortc.rtcrtpreceiver import NackGenerator

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
from server.media.aiortc_internals.direct_receive import path_of
from server.media.aiortc_internals.per_packet import FlatNackGenerator
from server.media.aiortc_internals.receive import (
    PromptVideoBuffer,
    WholeFrame,
    frame_parts,
    tap_encoded_frames,
)
from server.media.aiortc_internals.repair import skip_gap_in


class LayerFrame(WholeFrame):
    """A simulcast layer's frame: which SSRC it came on, and its own RTP timestamp."""

    def __init__(
        self,
        data: bytes,
        timestamp: int,
        ssrc: int,
        after_gap: bool = False,
        parts: list[bytes] | None = None,
    ) -> None:
        super().__init__(data, timestamp, parts if parts is not None else [data])
        self.ssrc = ssrc
        self.rtp_timestamp = timestamp
        self.after_gap = after_gap  # frames before it were given up: not decodable alone


LAYER_STALL_SECONDS = 0.5  # a layer whose packets come but no frame: skip its gap


class LayeredVideoBuffer(JitterBuffer):
    """One prompt jitter buffer and NACK generator per simulcast layer (SSRC). A layer
    stuck at a lost packet (packets arrive, no frame comes out for
    `LAYER_STALL_SECONDS`: its retransmission was lost too) skips to the next whole
    frame and asks for a keyframe (loss_repair.py does this for a single stream)."""

    def __init__(self, send_nack: Callable[[int, list[int]], None], layers: int) -> None:
        super().__init__(capacity=16, is_video=True)
        self._send_nack = send_nack
        self._max = layers
        self.layers: dict[int, tuple[PromptVideoBuffer, NackGenerator]] = {}
        self._last_frame: dict[int, float] = {}
        self._gap: set[int] = set()  # layers whose next frame follows a skipped gap

    def add(self, packet: Any) -> tuple[bool, JitterFrame | None]:
        ssrc = packet.ssrc
        entry = self.layers.get(ssrc)
        now = time.monotonic()
        if entry is None:
            if len(self.layers) >= self._max:
                return False, None  # not one of the layers: an SSRC too many
            entry = (PromptVideoBuffer(512, is_video=True), FlatNackGenerator())
            self.layers[ssrc] = entry
            self._last_frame[ssrc] = now
        buffer, nack = entry
        if nack.add(packet):
            self._send_nack(ssrc, sorted(nack.missing))
        pli, frame = buffer.add(packet)
        if frame is None:
            if now - self._last_frame[ssrc] > LAYER_STALL_SECONDS and skip_gap_in(buffer, nack):
                self._last_frame[ssrc] = now
                self._gap.add(ssrc)
                return True, None  # PLI: the frames after the gap need a keyframe
            return pli, None
        self._last_frame[ssrc] = now
        after_gap = ssrc in self._gap
        self._gap.discard(ssrc)
        return pli, LayerFrame(frame.data, frame.timestamp, ssrc, after_gap, frame_parts(frame))


def tap_simulcast(receiver: RTCRtpReceiver, layers: Any, sink: FrameSink) -> None:
    """Like `tap_encoded_frames`, for a simulcast m-line: each layer reassembled and
    NACKed apart; `sink` gets `LayerFrame`s. `layers` is a simulcast.Layers."""
    tap_encoded_frames(receiver, sink)

    def send_nack(ssrc: int, lost: list[int]) -> None:
        sending.spawn(receiver._send_rtcp_nack(ssrc, lost))

    setattr(receiver, JITTER_ATTR, LayeredVideoBuffer(send_nack, max(layers.count, 1)))
    setattr(receiver, NACK_ATTR, None)
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
            media = layers.rtx.get(packet.ssrc)
            if media is not None:
                rtx[packet.ssrc] = media

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


def _mid_router(router: Any) -> Callable[[Any], Any]:
    ssrc_table, pt_table, mid_table = (
        router.ssrc_table,
        router.payload_type_table,
        router.mid_table,
    )

    def route_rtp(packet: Any) -> Any:
        known = ssrc_table.get(packet.ssrc)
        candidates = pt_table.get(packet.payload_type, ())
        if known is not None:
            return known if known in candidates else None
        by_mid = mid_table.get(packet.extensions.mid)
        if by_mid is not None and by_mid in candidates:
            ssrc_table[packet.ssrc] = by_mid
            return by_mid
        if len(candidates) == 1:
            (only,) = candidates
            ssrc_table[packet.ssrc] = only
            return only
        return None

    return route_rtp


def problems() -> list[str]:
    found = needs(
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
    return found
