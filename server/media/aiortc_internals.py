"""Every touch of aiortc's private internals, in one place. aiortc is pinned (==1.16.0).

aiortc has public hooks for *sending* encoded media (a track whose `recv()` returns an
`av.Packet` is only packetized) but none for *receiving* it, nor for keyframe
requests. The SFU needs both, so it relies on these internals:

1. `RTCRtpReceiver._RTCRtpReceiver__decoder_queue`: the `queue.Queue` that
   `_handle_rtp_packet` fills with `(codec, JitterFrame)` once the jitter buffer has
   a complete, depayloaded frame, and that `decoder_worker` (a thread started by
   `receive()`) drains. Replacing it before `receive()` hands us every encoded frame
   on the event loop, with no decoder thread hop; `None` still ends the worker.
2. `aiortc.jitterbuffer.JitterFrame` (`data`, `timestamp`): the frame handed over.
3. `RTCRtpReceiver._send_rtcp_pli(media_ssrc)`: sends a PLI upstream.
4. `RTCRtpSender._send_keyframe()`: what a sender calls on a PLI/FIR from its remote
   peer; we rebind it per sender to forward the request to the publisher.
5. `RTCRtpTransceiver._codecs` and `._headerExtensions`: the negotiated codecs (`[0]`
   is what the sender uses) and header extensions. `createOffer()` resets them on
   *every* transceiver to aiortc's defaults until the answer arrives; a receiver or
   sender that starts in between (DTLS connecting while the SFU's first re-offer is
   out) would take aiortc's numbers instead of the negotiated ones: its receiver drops
   every packet, and the transport's extension map misreads the publisher's packets
   until the DTLS transport dies. `keep_negotiated` puts them back right after
   `createOffer()`.
6. `RTCRtpSender._stream_id`: the stream id aiortc writes into the m-line's `a=msid`
   (a random UUID); the SFU sets it to the track owner's identity, so a browser's
   `ontrack` event names the participant in `event.streams[0].id`.
7. `RTCRtpReceiver._RTCRtpReceiver__nack_generator` (a `NackGenerator`: `missing`, the
   set of lost sequence numbers, and `max_seq`) and `RTCRtpReceiver._send_rtcp_nack(
   media_ssrc, lost)`. aiortc NACKs only when a *new* gap appears and forgets a loss
   128 packets later, so a lost retransmission is never asked for again once loss
   stops (`VideoRepair.renack` asks again on a timer).
8. `RTCRtpReceiver._RTCRtpReceiver__jitter_buffer` (a `JitterBuffer`: `_origin`,
   `_packets`, `_capacity`, `remove(count)`; each packet's `timestamp` and depayloaded
   `_data`). A video buffer holds 512 packets and waits at a missing one until 512
   newer ones arrive (~10 s at 500 kbit/s); `VideoRepair.skip_gap` moves it to the
   next whole frame after the gap instead. aiortc's buffers also release a video frame
   only when the *next* frame's first packet arrives (a frame interval late) and hold
   four audio packets (80 ms): `tap_encoded_frames` swaps in `PromptVideoBuffer`
   (a frame goes as soon as its marker-bit packet is in; `JitterBuffer.add` ends in
   `self._remove_frame(...)`, which it overrides) and `AudioPassThrough` (each audio
   packet goes as it arrives; nothing reads an audio buffer's other internals). It
   hands on each packet's RFC 6464 level too (the parsed
   `RtpPacket.extensions.audio_level`, `(voice, level)`), as a `LeveledFrame`, so the
   SFU forwards it and finds the active speaker (speakers.py).

9. The send side, so the SFU can send a forwarded frame's RTP packets itself instead of
   through `RTCRtpSender._run_rtp` (whose per-packet Python is most of an SFU's cost):
   `RTCRtpSender._ssrc` / `._rtx_ssrc`; its report counters `__packet_count`,
   `__octet_count`, `__rtp_timestamp`, `__ntp_timestamp` (its RTCP sender reports and
   `getStats()` read them); `._retransmit(seq)` (what a NACK calls; rebound per sender);
   `RTCDtlsTransport._state`, `._tx_srtp` (a pylibsrtp `Session`), `__tx_bytes`,
   `__tx_packets`; `RTCIceTransport._connection` (an aioice `Connection`) and its
   `_nominated[1]` (a `CandidatePair`: `protocol.transport`, `remote_addr`), which is
   exactly where aioice's own `StunProtocol.send_data` sends (TURN-relayed pairs included:
   their `transport` is aioice's `TurnTransport`). For a frame sent in one GSO call
   (gso.py), asyncio's `_SelectorDatagramTransport._sock`: the socket behind a host
   pair's transport, written directly only while the transport queues nothing.
10. `aiortc.codecs.get_encoder(codec).pack(av.Packet)`: the VP8/H264 packetizers (Opus
   needs none: one frame is one packet).
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
   and the receiver's parameters (`__remoteRtp`) are built from.
13. `RTCRtpSender._handle_rtcp_packet(packet)`: `on_feedback` wraps it per sender to see
   the subscriber's REMB and receiver reports (layer choice, simulcast_choice.py).
14. Liveness (liveness.py): `RTCDtlsTransport.__rx_packets` (every datagram the transport
   received: SRTP, SRTCP, DTLS) and, to ask the far end directly, aioice's
   `Connection.build_request(pair, nominate=False)`, `.remote_password` and
   `StunProtocol.request(..., integrity_key=, retransmissions=)` on `_nominated`'s pairs:
   exactly what aioice's own `query_consent` sends (RFC 7675), only more often.
15. Asking a single-layer publisher for less (publisher_cap.py): a video
   `RTCRtpReceiver`'s `__remote_bitrate_estimator` (a `RemoteBitrateEstimator`, whose
   `add(arrival_time_ms=, abs_send_time=, payload_size=, ssrc=)` returns
   `(bitrate, ssrcs)` when `_handle_rtp_packet` should send a REMB) is wrapped by
   `UpstreamCap`, so the REMBs aiortc sends from its own estimate never exceed the cap
   (a later uncapped REMB would undo it), and the cap itself is sent at once with the
   receiver's `__rtcp_ssrc` as the sender, through `_send_rtcp`.

16. Forward-only codecs (forward_only.py): `rtcpeerconnection.CODECS`, the codec table
   `createOffer` and `setRemoteDescription` negotiate from (aiortc has no VP9 or AV1),
   is replaced by `_CodecTable`, which adds VP9 and AV1 only inside
   `forward_only_codecs(...)` (a context variable: the SFU's own calls, never another
   PeerConnection in the process, such as a test's aiortc client, which would offer
   codecs it cannot decode); there `aiortc.rtp.DYNAMIC_PAYLOAD_TYPES` (which
   `find_common_codecs` reads) also takes 35-63, where Chrome numbers AV1. `RTCRtpTransceiver._preferred_codecs` is set directly
   (`setCodecPreferences` accepts only `aiortc.codecs`' table). aiortc's `depayload`
   leaves their payloads as they came, so `PromptVideoBuffer` hands on each packet's
   payload too (`frame_parts`): those are forwarded unchanged.

The offers' numbers themselves need no internals: `payload_types.py` rewrites aiortc's
offer text, and aiortc takes its numbers from the answer.

`check()` verifies all of them and fails loudly; tests/media/test_aiortc_internals.py
runs it, and the SFU runs it once at start.
"""

from __future__ import annotations

import asyncio
import asyncio.selector_events
import contextlib
import contextvars
import inspect
import queue
import time
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping
from typing import Any

import aioice.ice
import aioice.stun
import aiortc
import aiortc.rtp
import av
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc import codecs as _codecs_module
from aiortc import rtcpeerconnection as _pc_module
from aiortc import rtcrtpreceiver as _receiver_module
from aiortc.codecs import get_encoder
from aiortc.codecs.base import Encoder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcdtlstransport import RTCDtlsTransport, RtpRouter
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters
from aiortc.rtcrtpreceiver import NackGenerator
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpSrPacket,
    pack_remb_fci,
    unpack_remb_fci,
)
from aiortc.utils import uint16_add

from server.media import forward_only, gso
from server.tasks import BackgroundTasks

PINNED_VERSION = "1.16.0"
_QUEUE_ATTR = "_RTCRtpReceiver__decoder_queue"
_NACK_ATTR = "_RTCRtpReceiver__nack_generator"
_JITTER_ATTR = "_RTCRtpReceiver__jitter_buffer"
_RTX_ATTR = "_RTCRtpReceiver__rtx_ssrc"
_ESTIMATOR_ATTR = "_RTCRtpReceiver__remote_bitrate_estimator"
_RTCP_SSRC_ATTR = "_RTCRtpReceiver__rtcp_ssrc"
_RX_PACKETS_ATTR = "_RTCDtlsTransport__rx_packets"
# RTCP feedback (PLI, NACK, REMB) on its way out, held until sent.
_sending = BackgroundTasks()

FrameSink = Callable[[RTCRtpCodecParameters, JitterFrame], None]


class AiortcInternalsChanged(RuntimeError):
    """The installed aiortc no longer has what the SFU relies on."""


class _TapQueue(queue.Queue[Any]):
    """Stands in for the receiver's decoder queue: frames go to `sink`, on the loop."""

    def __init__(self, sink: FrameSink) -> None:
        super().__init__()
        self._sink = sink

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:  # the receiver stopping: let the idle decoder thread end
            super().put(None)
            return
        codec, frame = item
        self._sink(codec, frame)


class WholeFrame(JitterFrame):
    """A video frame with each of its packets' depayloaded data (`parts`): for a codec
    aiortc does not know (VP9, AV1) these are the RTP payloads as they came."""

    def __init__(self, data: bytes, timestamp: int, parts: list[bytes]) -> None:
        super().__init__(data, timestamp)
        self.parts = parts


def frame_parts(frame: JitterFrame) -> list[bytes] | None:
    """A tapped video frame's packet payloads, or None (audio)."""
    return frame.parts if isinstance(frame, WholeFrame) else None


class PromptVideoBuffer(JitterBuffer):
    """A video jitter buffer that releases a frame as soon as it is whole: its packets
    are all in up to the one with the RTP marker bit (the last of a frame), or the
    next frame has begun."""

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        packets: list[Any] = []
        timestamp = None
        for count in range(self._capacity):
            packet = self._packets[(self._origin + count) % self._capacity]  # type: ignore[operator]
            if packet is None:
                return None
            if timestamp is None:
                timestamp = packet.timestamp
            elif packet.timestamp != timestamp:
                break  # the next frame began: this one is whole (its marker was lost)
            packets.append(packet)
            if packet.marker:
                break
        else:
            return None
        self.remove(len(packets))
        parts = [p._data for p in packets]
        return WholeFrame(b"".join(parts), timestamp, parts)


class LeveledFrame(JitterFrame):
    """An audio frame with its packet's audio level: the RFC 6464 byte (V bit and
    0..127 = -dBov), or None when the packet carried none."""

    def __init__(self, data: bytes, timestamp: int, audio_level: int | None) -> None:
        super().__init__(data, timestamp)
        self.audio_level = audio_level


def audio_level(frame: JitterFrame) -> int | None:
    """The RFC 6464 byte of a tapped audio frame, or None."""
    return frame.audio_level if isinstance(frame, LeveledFrame) else None


class AudioPassThrough(JitterBuffer):
    """Audio packets go on as they arrive (each is a whole frame); duplicates and
    packets older than the newest are dropped. The subscriber's own jitter buffer
    smooths the timing."""

    def __init__(self) -> None:
        super().__init__(capacity=16)
        self._newest: int | None = None

    def add(self, packet: Any) -> tuple[bool, JitterFrame | None]:
        if (
            self._newest is not None
            and not 0 < uint16_add(packet.sequence_number, -self._newest) < 0x8000
        ):
            return False, None
        self._newest = packet.sequence_number
        level = packet.extensions.audio_level
        byte = None if level is None else (0x80 if level[0] else 0) | (level[1] & 0x7F)
        return False, LeveledFrame(packet._data, packet.timestamp, byte)


def tap_encoded_frames(receiver: RTCRtpReceiver, sink: FrameSink) -> None:
    """Deliver `receiver`'s depayloaded encoded frames to `sink`, each as soon as it is
    whole, instead of decoding them.

    Call before the receiver starts (in the `track` event); its track then never
    receives frames.
    """
    current = getattr(receiver, _QUEUE_ATTR, None)
    jitter = getattr(receiver, _JITTER_ATTR, None)
    if not isinstance(current, queue.Queue) or not isinstance(jitter, JitterBuffer):
        raise AiortcInternalsChanged(f"RTCRtpReceiver has no {_QUEUE_ATTR} or {_JITTER_ATTR}")
    setattr(receiver, _QUEUE_ATTR, _TapQueue(sink))
    prompt = (
        PromptVideoBuffer(jitter.capacity, is_video=True)
        if jitter._is_video
        else AudioPassThrough()
    )
    setattr(receiver, _JITTER_ATTR, prompt)


def send_pli(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """Ask the remote sender of `media_ssrc` for a keyframe (RTCP PLI), in the background."""
    _sending.spawn(receiver._send_rtcp_pli(media_ssrc))


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call `callback` whenever `sender`'s remote peer sends a PLI or FIR."""
    sender._send_keyframe = callback  # type: ignore[method-assign]


def set_stream_id(sender: RTCRtpSender, stream_id: str) -> None:
    """Name the stream the sender's track belongs to (`a=msid:<stream_id> <track>`)."""
    sender._stream_id = stream_id


class VideoRepair:
    """Loss repair for one video receiver that aiortc does not do itself."""

    def __init__(self, receiver: RTCRtpReceiver) -> None:
        nack, jitter = getattr(receiver, _NACK_ATTR, None), getattr(receiver, _JITTER_ATTR, None)
        if not isinstance(nack, NackGenerator) or not isinstance(jitter, JitterBuffer):
            raise AiortcInternalsChanged("not a video RTCRtpReceiver, or its internals changed")
        self._receiver = receiver
        self._nack = nack
        self._jitter = jitter
        self._outstanding: set[int] = set()

    @property
    def newest(self) -> int | None:
        """The highest sequence number received so far (changes while packets arrive)."""
        return self._nack.max_seq

    async def renack(self, media_ssrc: int) -> int:
        """NACK again every packet that was already missing at the previous call (so a
        packet gets at least one call's interval for its first retransmission); returns
        how many were asked for."""
        missing = set(self._nack.missing)
        again = sorted(missing & self._outstanding)
        self._outstanding = missing
        if again:
            await self._receiver._send_rtcp_nack(media_ssrc, again)
        return len(again)

    def skip_gap(self) -> bool:
        """Drop the packets before the first whole frame after the buffer's first gap.

        A whole frame starts at a packet whose predecessor is present and belongs to
        another frame (another timestamp). Returns False (changing nothing) when there
        is no gap or no such frame yet.
        """
        skipped = _skip_gap(self._jitter, self._nack)
        self._outstanding.difference_update(skipped)
        return bool(skipped)


def _skip_gap(jitter: JitterBuffer, nack: NackGenerator) -> list[int]:
    """VideoRepair.skip_gap on one buffer; returns the sequence numbers dropped."""
    if jitter._origin is None:
        return []
    capacity = jitter._capacity
    slots = [jitter._packets[(jitter._origin + i) % capacity] for i in range(capacity)]
    gap = next((i for i, packet in enumerate(slots) if packet is None), None)
    if gap is None:
        return []
    for i in range(gap + 2, capacity):
        packet, before = slots[i], slots[i - 1]
        if packet is not None and before is not None and packet.timestamp != before.timestamp:
            skipped = [uint16_add(jitter._origin, n) for n in range(i)]
            jitter.remove(i)
            nack.missing.difference_update(skipped)
            return skipped
    return []


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
            entry = (PromptVideoBuffer(512, is_video=True), NackGenerator())
            self.layers[ssrc] = entry
            self._last_frame[ssrc] = now
        buffer, nack = entry
        if nack.add(packet):
            self._send_nack(ssrc, sorted(nack.missing))
        pli, frame = buffer.add(packet)
        if frame is None:
            if now - self._last_frame[ssrc] > LAYER_STALL_SECONDS and _skip_gap(buffer, nack):
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
        _sending.spawn(receiver._send_rtcp_nack(ssrc, lost))

    setattr(receiver, _JITTER_ATTR, LayeredVideoBuffer(send_nack, max(layers.count, 1)))
    setattr(receiver, _NACK_ATTR, None)
    # aiortc's REMB caps a sender near 1.5x what it receives: a browser held at its
    # lowest layer never gets to send the others. Without it the browser's own
    # loss-based estimate (from the receiver reports) ramps up to all its layers.
    setattr(receiver, _ESTIMATOR_ATTR, None)
    rtx: dict[int, int] = getattr(receiver, _RTX_ATTR)
    rtx.update(layers.rtx)
    handle = receiver._handle_rtp_packet

    async def learn_then_handle(packet: Any, arrival_time_ms: int) -> None:
        extensions = packet.extensions
        if extensions.rtp_stream_id is not None or extensions.repaired_rtp_stream_id is not None:
            layers.learn(packet.ssrc, extensions.rtp_stream_id, extensions.repaired_rtp_stream_id)
            media = layers.rtx.get(packet.ssrc)
            if media is not None:
                rtx[packet.ssrc] = media
        await handle(packet, arrival_time_ms)

    receiver._handle_rtp_packet = learn_then_handle  # type: ignore[method-assign]


def accept_header_extensions(transceiver: RTCRtpTransceiver, offered: dict[str, int]) -> None:
    """Negotiate these extensions (URI → the offer's id) on the transceiver too."""
    have = {x.uri for x in transceiver._headerExtensions}
    for uri, ident in offered.items():
        if uri not in have:
            transceiver._headerExtensions.append(RTCRtpHeaderExtensionParameters(id=ident, uri=uri))


def on_feedback(
    sender: RTCRtpSender, on_remb: Callable[[int], None], on_loss: Callable[[float], None]
) -> None:
    """Call `on_remb(bit/s)` for each REMB and `on_loss(fraction)` for each receiver
    report about this sender's stream that its remote peer sends."""
    handle = sender._handle_rtcp_packet

    async def seen_then_handle(packet: Any) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            with contextlib.suppress(ValueError):
                on_remb(unpack_remb_fci(packet.fci)[0])
        elif isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
            for report in packet.reports:
                if report.ssrc == sender._ssrc:
                    on_loss(report.fraction_lost / 256)
        await handle(packet)

    sender._handle_rtcp_packet = seen_then_handle  # type: ignore[method-assign]


def send_remb(receiver: RTCRtpReceiver, bitrate: int, media_ssrcs: list[int]) -> None:
    """Send a REMB (receiver estimated maximum bitrate) for these streams, in the
    background, as a browser receiving them would."""
    packet = RtcpPsfbPacket(
        fmt=RTCP_PSFB_APP, ssrc=0, media_ssrc=0, fci=pack_remb_fci(bitrate, media_ssrcs)
    )
    _sending.spawn(receiver._send_rtcp(packet))


class _CappedEstimator:
    """A receiver's own bit rate estimator whose REMBs never exceed `cap`."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.cap: int | None = None
        self.estimate: int | None = None  # its own latest estimate (bit/s)

    def add(
        self, arrival_time_ms: int, abs_send_time: int, payload_size: int, ssrc: int
    ) -> tuple[int, list[int]] | None:
        remb = self.inner.add(
            arrival_time_ms=arrival_time_ms,
            abs_send_time=abs_send_time,
            payload_size=payload_size,
            ssrc=ssrc,
        )
        if remb is None:
            return None
        bitrate, ssrcs = remb
        self.estimate = bitrate
        return (bitrate if self.cap is None else min(bitrate, self.cap)), ssrcs


class UpstreamCap:
    """Asks the remote sender behind a video receiver for at most a bit rate (REMB)."""

    # Sent to lift a cap when the receiver has no estimate of its own (the publisher
    # sends no abs-send-time): a REMB stays in force until the next, so "no cap" has
    # to be a number, and this is above any camera's rate.
    UNCAPPED = 10_000_000

    def __init__(self, receiver: RTCRtpReceiver) -> None:
        self._receiver = receiver
        inner = getattr(receiver, _ESTIMATOR_ATTR, None)
        self._estimator = _CappedEstimator(inner) if inner is not None else None
        if self._estimator is not None:
            setattr(receiver, _ESTIMATOR_ATTR, self._estimator)

    def ask(self, bitrate: float | None, media_ssrc: int) -> int:
        """Cap the sender of `media_ssrc` at `bitrate` (None: lift the cap) now and in
        every REMB after; returns the bit rate sent."""
        cap = None if bitrate is None else int(bitrate)
        own = self._estimator.estimate if self._estimator is not None else None
        if self._estimator is not None:
            self._estimator.cap = cap
        if cap is None:
            value = own if own is not None else self.UNCAPPED
        else:
            value = cap if own is None else min(own, cap)
        sender_ssrc = getattr(self._receiver, _RTCP_SSRC_ATTR, None) or 0
        packet = RtcpPsfbPacket(
            fmt=RTCP_PSFB_APP,
            ssrc=sender_ssrc,
            media_ssrc=0,
            fci=pack_remb_fci(value, [media_ssrc]),
        )
        asyncio.ensure_future(self._receiver._send_rtcp(packet))
        return value


def listen_rtcp(transport: RTCDtlsTransport, ssrc: int, callback: Callable[[Any], None]) -> None:
    """Receive the RTCP feedback (PLI, NACK, REMB) a peer sends about `ssrc`, an SSRC
    this side sends on by itself (a simulcast layer the tests play, not an aiortc
    sender's)."""

    class Listener:
        async def _handle_rtcp_packet(self, packet: Any) -> None:
            callback(packet)

    transport._rtp_router.register_sender(Listener(), ssrc)  # type: ignore[arg-type]


SendPackets = Callable[[list[bytes]], None]
MAX_SOCKET_BACKLOG = 256 * 1024  # bytes asyncio may hold for a UDP socket it cannot write


class RtpLink:
    """Sends finished RTP packets for one negotiated `RTCRtpSender` on its transport:
    SRTP-protected, straight to the nominated ICE pair's socket (what aiortc does per
    packet, without its per-packet coroutines)."""

    def __init__(self, sender: RTCRtpSender) -> None:
        self._sender = sender
        self._dtls: RTCDtlsTransport = sender.transport
        self.ssrc: int = sender._ssrc
        self.rtx_ssrc: int = sender._rtx_ssrc

    def sender(self) -> SendPackets | None:
        """A function that protects and sends RTP packets (a frame's, in order), valid
        until the next await; None while the transport cannot send (not connected yet,
        closed, or the socket's backlog is over `MAX_SOCKET_BACKLOG`: a stalled peer).
        With the socket itself at hand and nothing queued before them, a frame's packets
        go out in one GSO system call (gso.py); otherwise one by one through asyncio."""
        dtls = self._dtls
        if dtls._state is not DtlsState.CONNECTED:
            return None
        pair = dtls.transport._connection._nominated.get(1)
        if pair is None:
            return None
        udp = pair.protocol.transport
        backlog = getattr(udp, "get_write_buffer_size", None)
        queued = backlog() if backlog is not None else 0
        if queued > MAX_SOCKET_BACKLOG:
            return None
        protect, sendto, addr = dtls._tx_srtp.protect, udp.sendto, pair.remote_addr
        sock = getattr(udp, "_sock", None)  # asyncio's datagram transport: its socket
        if sock is None or queued:  # TURN-relayed, or packets already wait: keep the order

            def send_each(packets: list[bytes]) -> None:
                for packet in packets:
                    sendto(protect(packet), addr)

            return send_each

        def send_batched(packets: list[bytes]) -> None:
            gso.send_all(sock, [protect(packet) for packet in packets], addr, sendto)

        return send_batched

    @property
    def connected(self) -> bool:
        return self._dtls._state is DtlsState.CONNECTED

    def count(
        self, packets: int, octets: int, payload_octets: int, rtp_timestamp: int, ntp: int
    ) -> None:
        """Account packets sent by `sender()` where aiortc would have: the RTP sender's
        reports and stats, and the transport's."""
        sender, dtls = self._sender, self._dtls
        sender._RTCRtpSender__packet_count += packets  # type: ignore[attr-defined]
        sender._RTCRtpSender__octet_count += payload_octets  # type: ignore[attr-defined]
        sender._RTCRtpSender__rtp_timestamp = rtp_timestamp  # type: ignore[attr-defined]
        sender._RTCRtpSender__ntp_timestamp = ntp  # type: ignore[attr-defined]
        dtls._RTCDtlsTransport__tx_packets += packets  # type: ignore[attr-defined]
        dtls._RTCDtlsTransport__tx_bytes += octets  # type: ignore[attr-defined]

    def on_retransmit_request(self, callback: Callable[[int], Awaitable[None]]) -> None:
        """Call `callback(seq)` for each sequence number the remote peer NACKs."""
        self._sender._retransmit = callback  # type: ignore[method-assign,assignment]


Packetizer = Callable[[av.Packet], list[bytes]]


def packetizer(codec: RTCRtpCodecParameters) -> Packetizer:
    """Splits an encoded frame (an `av.Packet`) into RTP payloads, as aiortc's sender
    would; one per publication (VP8's picture id runs on across frames)."""
    if codec.mimeType.lower().startswith("audio/") or forward_only.covers(codec):
        return lambda packet: [bytes(packet)]  # forward-only: never used (as_payloads)
    encoder = get_encoder(codec)
    return lambda packet: encoder.pack(packet)[0]


Negotiated = dict[RTCRtpTransceiver, tuple[list[Any], list[Any]]]


def negotiated(pc: RTCPeerConnection) -> Negotiated:
    """Each negotiated transceiver's codecs and header extensions (before an offer)."""
    return {
        t: (list(t._codecs), list(t._headerExtensions))
        for t in pc.getTransceivers()
        if t.currentDirection is not None and t._codecs
    }


def keep_negotiated(saved: Negotiated) -> None:
    """Undo `createOffer()`'s reset of the negotiated transceivers' parameters."""
    for transceiver, (codecs, extensions) in saved.items():
        transceiver._codecs = codecs
        transceiver._headerExtensions = extensions


def negotiated_parameters(transceiver: RTCRtpTransceiver) -> tuple[list[Any], list[Any]]:
    """The transceiver's negotiated codecs (`[0]` first, then e.g. its RTX) and header
    extensions."""
    return list(transceiver._codecs), list(transceiver._headerExtensions)


# The forward-only codecs the SFU may negotiate in this context; None: not the SFU's.
_forward_only: contextvars.ContextVar[frozenset[str] | None] = contextvars.ContextVar(
    "pairwise_forward_only", default=None
)


class _CodecTable(Mapping[str, list[RTCRtpCodecParameters]]):
    """aiortc's codec table, plus the forward-only codecs allowed in this context."""

    def __init__(self, base: dict[str, list[RTCRtpCodecParameters]]) -> None:
        self._base = base

    def __getitem__(self, kind: str) -> list[RTCRtpCodecParameters]:
        codecs = self._base[kind]
        extra = _forward_only.get()
        return [*codecs, *forward_only.codecs(extra)] if extra and kind == "video" else codecs

    def __iter__(self) -> Iterator[str]:
        return iter(self._base)

    def __len__(self) -> int:
        return len(self._base)


class _DynamicPayloadTypes:
    """aiortc's dynamic payload types (96-127), and in the SFU's context also 35-63:
    Chrome numbers codecs there once 96-127 are taken (AV1 is 45). aiortc keeps its own
    number for a codec the offer numbers outside its range (`find_common_codecs`),
    answering AV1 as 105 and dropping its RTX: the subscriber then drops every packet."""

    def __contains__(self, pt: object) -> bool:
        if not isinstance(pt, int):
            return False
        return 96 <= pt < 128 or (_forward_only.get() is not None and 35 <= pt < 64)


@contextlib.contextmanager
def forward_only_codecs(mimes: Collection[str]) -> Iterator[None]:
    """Within this block (this task only), aiortc's offers and answers may negotiate
    these forward-only codecs (forward_only.py) as well as its own, numbered as the
    browser numbers them."""
    if not isinstance(_pc_module.CODECS, _CodecTable):
        _pc_module.CODECS = _CodecTable(_codecs_module.CODECS)  # type: ignore[assignment]
        aiortc.rtp.DYNAMIC_PAYLOAD_TYPES = _DynamicPayloadTypes()  # type: ignore[assignment]
    token = _forward_only.set(frozenset(mimes))
    try:
        yield
    finally:
        _forward_only.reset(token)


def prefer_codecs(transceiver: RTCRtpTransceiver, codecs: list[Any]) -> None:
    """`setCodecPreferences` that also takes the forward-only codecs."""
    transceiver._preferred_codecs = list(codecs)


def negotiated_codec(transceiver: RTCRtpTransceiver) -> RTCRtpCodecParameters | None:
    """The codec the transceiver's sender uses (after negotiation), or None."""
    codecs: list[RTCRtpCodecParameters] = getattr(transceiver, "_codecs", [])
    return codecs[0] if codecs else None


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


def packets_received(pc: RTCPeerConnection) -> int:
    """Datagrams the connection's DTLS transports have received so far: SRTP (media),
    SRTCP (reports, feedback) and DTLS alike."""
    transports = {id(t.receiver.transport): t.receiver.transport for t in pc.getTransceivers()}
    return sum(
        getattr(dtls, _RX_PACKETS_ATTR, 0) for dtls in transports.values() if dtls is not None
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


def check() -> None:
    """Fail loudly (AiortcInternalsChanged) if any internal above is missing or changed."""
    problems = []
    if aiortc.__version__ != PINNED_VERSION:
        problems.append(
            f"aiortc {aiortc.__version__} is installed; the SFU is written for {PINNED_VERSION}"
        )
    handle = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    if "self.__decoder_queue.put((codec, encoded_frame))" not in handle:
        problems.append(
            "RTCRtpReceiver._handle_rtp_packet no longer puts (codec, frame) on __decoder_queue"
        )
    receive = inspect.getsource(RTCRtpReceiver.receive)
    if "self.__decoder_queue" not in receive or "decoder_worker" not in receive:
        problems.append("RTCRtpReceiver.receive no longer starts decoder_worker on __decoder_queue")
    worker = inspect.signature(_receiver_module.decoder_worker)
    if list(worker.parameters) != ["loop", "input_q", "output_q", "decode_error"]:
        problems.append(f"decoder_worker signature changed: {worker}")
    if "task is None" not in inspect.getsource(_receiver_module.decoder_worker):
        problems.append("decoder_worker no longer stops on None")
    if not _takes(RTCRtpReceiver, "_send_rtcp_pli", "media_ssrc"):
        problems.append("RTCRtpReceiver._send_rtcp_pli(media_ssrc) is gone or changed")
    if not _takes(RTCRtpSender, "_send_keyframe"):
        problems.append("RTCRtpSender._send_keyframe() is gone or changed")
    elif "self._send_keyframe()" not in inspect.getsource(RTCRtpSender._handle_rtcp_packet):
        problems.append("RTCRtpSender no longer calls _send_keyframe on PLI/FIR")
    offer = inspect.getsource(RTCPeerConnection.createOffer)
    if "transceiver._codecs = " not in offer or "await " in offer.split('"""', 2)[2]:
        problems.append(
            "RTCPeerConnection.createOffer changed (how it resets _codecs, or it now awaits)"
        )
    describe = inspect.getsource(_pc_module.create_media_description_for_transceiver)
    if "transceiver.sender._stream_id" not in describe:
        problems.append("the m-line's a=msid no longer comes from RTCRtpSender._stream_id")
    if {"data", "timestamp"} - set(inspect.signature(JitterFrame).parameters):
        problems.append("JitterFrame(data, timestamp) changed")
    if "values.audio_level = (" not in inspect.getsource(aiortc.rtp.HeaderExtensionsMap.get):
        problems.append("RtpPacket.extensions.audio_level is no longer (voice, level)")
    if not _takes(RTCRtpReceiver, "_send_rtcp_nack", "media_ssrc", "lost"):
        problems.append("RTCRtpReceiver._send_rtcp_nack(media_ssrc, lost) is gone or changed")
    if "self.missing" not in inspect.getsource(NackGenerator.add):
        problems.append("NackGenerator no longer keeps the lost packets in .missing")
    if not _takes(JitterBuffer, "remove", "count"):
        problems.append("JitterBuffer.remove(count) is gone or changed")
    add = inspect.getsource(JitterBuffer.add)
    if "return pli_flag, self._remove_frame(packet.sequence_number)" not in add:
        problems.append("JitterBuffer.add no longer ends by releasing _remove_frame's frame")
    if "self.__jitter_buffer.add(packet)" not in handle:
        problems.append("RTCRtpReceiver no longer feeds packets to __jitter_buffer.add")
    frames = inspect.getsource(JitterBuffer._remove_frame)
    if "packet.timestamp != timestamp" not in frames or "x._data" not in frames:
        problems.append("JitterBuffer no longer splits frames by RTP timestamp from ._data")
    if not _takes(RTCRtpSender, "_retransmit", "sequence_number"):
        problems.append("RTCRtpSender._retransmit(sequence_number) is gone or changed")
    elif "await self._retransmit(seq)" not in inspect.getsource(RTCRtpSender._handle_rtcp_packet):
        problems.append("RTCRtpSender no longer calls _retransmit on NACK")
    run_rtp = inspect.getsource(RTCRtpSender._run_rtp)
    for counter in ("__ntp_timestamp", "__rtp_timestamp", "__octet_count", "__packet_count"):
        if f"self.{counter}" not in run_rtp:
            problems.append(f"RTCRtpSender no longer keeps {counter} while sending")
    send_rtp = inspect.getsource(RTCDtlsTransport._send_rtp)
    for needed in ("self._tx_srtp.protect(data)", "self.transport._send(data)", "self.__tx_bytes"):
        if needed not in send_rtp:
            problems.append(f"RTCDtlsTransport._send_rtp no longer does {needed}")
    if not hasattr(DtlsState, "CONNECTED"):
        problems.append("RTCDtlsTransport's State has no CONNECTED")
    connection_send = inspect.getsource(aioice.ice.Connection.sendto)
    stun_send = inspect.getsource(aioice.ice.StunProtocol.send_data)
    if (
        "self._nominated.get(component)" not in connection_send
        or "active_pair.protocol.send_data(data, active_pair.remote_addr)" not in connection_send
        or "self.transport.sendto(data, addr)" not in stun_send
    ):
        problems.append("aioice no longer sends on _nominated[component].protocol.transport")
    consent = inspect.getsource(aioice.ice.Connection.query_consent)
    if (
        "self.build_request(pair, nominate=False)" not in consent
        or 'integrity_key=self.remote_password.encode("utf8")' not in consent
        or not _takes(
            aioice.ice.StunProtocol,
            "request",
            "request",
            "addr",
            "integrity_key",
            "retransmissions",
        )
    ):
        problems.append("aioice's consent check is no longer build_request + protocol.request")
    transport_init = inspect.getsource(
        asyncio.selector_events._SelectorTransport.__init__  # type: ignore[attr-defined]
    )
    if "self._sock = sock" not in transport_init:
        problems.append("asyncio's datagram transport no longer keeps its socket in _sock")
    for needed in (
        "original_ssrc = self.__rtx_ssrc.get(packet.ssrc)",
        "if self.__nack_generator is not None and self.__nack_generator.add(packet)",
        "encoded_frame.timestamp = self.__timestamp_mapper.map(",
        "pli_flag, encoded_frame = self.__jitter_buffer.add(packet)",
        "if self.__remote_bitrate_estimator is not None:",
        "remb = self.__remote_bitrate_estimator.add(",
        "fci=pack_remb_fci(*remb),",
    ):
        if needed not in handle:
            problems.append(f"RTCRtpReceiver._handle_rtp_packet no longer does {needed}")
    if not _takes(RTCRtpReceiver, "_handle_rtp_packet", "packet", "arrival_time_ms"):
        problems.append("RTCRtpReceiver._handle_rtp_packet(packet, arrival_time_ms) changed")
    if "await receiver._handle_rtp_packet(packet, arrival_time_ms=arrival_time_ms)" not in (
        inspect.getsource(RTCDtlsTransport._handle_rtp_data)
    ):
        problems.append("RTCDtlsTransport no longer calls the receiver's _handle_rtp_packet")
    if "headerExtensions=transceiver._headerExtensions" not in describe:
        problems.append("the answer's extmap lines no longer come from _headerExtensions")
    if not _takes(RTCRtpSender, "_handle_rtcp_packet", "packet") or (
        "await recipient._handle_rtcp_packet(packet)"
        not in inspect.getsource(RTCDtlsTransport._handle_rtcp_data)
    ):
        problems.append("RTCRtpSender._handle_rtcp_packet(packet) is no longer how RTCP arrives")
    if not _takes(RTCRtpReceiver, "_send_rtcp", "packet") or not _takes(
        RtpRouter, "register_sender", "sender", "ssrc"
    ):
        problems.append("RTCRtpReceiver._send_rtcp or RtpRouter.register_sender changed")
    ids = inspect.getsource(aiortc.rtp.HeaderExtensionsMap.get)
    if "values.rtp_stream_id = " not in ids or "values.repaired_rtp_stream_id = " not in ids:
        problems.append("RtpPacket.extensions no longer parses the RID extensions")
    route = inspect.getsource(RtpRouter.route_rtp)
    if (
        "self.ssrc_table.get(packet.ssrc)" not in route
        or "self.payload_type_table.get(packet.payload_type" not in route
        or "self.mid_table[mid] = receiver" not in inspect.getsource(RtpRouter.register_receiver)
        or "receiver = self._rtp_router.route_rtp(packet)"
        not in inspect.getsource(RTCDtlsTransport._handle_rtp_data)
    ):
        problems.append("aiortc's RtpRouter no longer routes by ssrc_table/payload_type_table")
    if "values.mid = " not in inspect.getsource(aiortc.rtp.HeaderExtensionsMap.get):
        problems.append("RtpPacket.extensions.mid is no longer parsed")
    if (
        "CODECS[transceiver.kind][:], transceiver._preferred_codecs" not in offer
        or "find_common_codecs(CODECS[media.kind], media.rtp.codecs)"
        not in inspect.getsource(RTCPeerConnection.setRemoteDescription)
        or not isinstance(getattr(_codecs_module, "CODECS", None), dict)
    ):
        problems.append("aiortc no longer negotiates from rtcpeerconnection.CODECS")
    if "if c.payloadType in rtp.DYNAMIC_PAYLOAD_TYPES:" not in inspect.getsource(
        _pc_module.find_common_codecs
    ):
        problems.append("find_common_codecs no longer reads rtp.DYNAMIC_PAYLOAD_TYPES")
    if "return payload" not in inspect.getsource(_codecs_module.depayload):
        problems.append("aiortc's depayload no longer leaves an unknown codec's payload alone")
    if "packet._data = depayload(codec, packet.payload)" not in handle:
        problems.append("RTCRtpReceiver no longer keeps each packet's depayloaded ._data")
    if list(inspect.signature(Encoder.pack).parameters) != ["self", "packet"]:
        problems.append("aiortc's Encoder.pack(packet) changed")
    # A live receiver and transceiver, to check the instance attributes exist.
    pc = RTCPeerConnection()
    try:
        transceiver = pc.addTransceiver("audio")
        if not isinstance(getattr(transceiver.receiver, _RTX_ATTR, None), dict):
            problems.append(f"RTCRtpReceiver instances have no {_RTX_ATTR} dict")
        if not isinstance(getattr(transceiver.receiver, _QUEUE_ATTR, None), queue.Queue):
            problems.append(f"RTCRtpReceiver instances have no {_QUEUE_ATTR} queue")
        for attr in ("_codecs", "_headerExtensions", "_preferred_codecs"):
            if not isinstance(getattr(transceiver, attr, None), list):
                problems.append(f"RTCRtpTransceiver instances have no {attr} list")
        sender = transceiver.sender
        if not isinstance(getattr(sender, "_stream_id", None), str):
            problems.append("RTCRtpSender instances have no _stream_id")
        for attr in ("_ssrc", "_rtx_ssrc", "_RTCRtpSender__packet_count"):
            if not isinstance(getattr(sender, attr, None), int):
                problems.append(f"RTCRtpSender instances have no {attr}")
        dtls = sender.transport
        if not isinstance(getattr(dtls, "_rtp_router", None), RtpRouter):
            problems.append("RTCDtlsTransport instances have no _rtp_router")
        if not isinstance(getattr(dtls, "_RTCDtlsTransport__tx_bytes", None), int):
            problems.append("RTCDtlsTransport instances have no __tx_bytes")
        if not isinstance(getattr(dtls, _RX_PACKETS_ATTR, None), int):
            problems.append("RTCDtlsTransport instances have no __rx_packets")
        if not isinstance(getattr(dtls.transport, "_connection", None), aioice.ice.Connection):
            problems.append("RTCIceTransport instances have no aioice _connection")
        elif not isinstance(getattr(dtls.transport._connection, "_nominated", None), dict):
            problems.append("aioice Connection instances have no _nominated dict")
        video = pc.addTransceiver("video")
        estimator = getattr(video.receiver, _ESTIMATOR_ATTR, None)
        if not _takes(
            type(estimator), "add", "arrival_time_ms", "abs_send_time", "payload_size", "ssrc"
        ):
            problems.append(f"video receivers' {_ESTIMATOR_ATTR} no longer has add(...)")
        if not hasattr(video.receiver, _RTCP_SSRC_ATTR):
            problems.append(f"RTCRtpReceiver instances have no {_RTCP_SSRC_ATTR}")
        try:
            repair = VideoRepair(video.receiver)
            jitter = repair._jitter
            if not isinstance(jitter._packets, list) or jitter._capacity != len(jitter._packets):
                problems.append("JitterBuffer._packets/_capacity changed")
            if jitter._origin is not None or repair.newest is not None:
                problems.append("a fresh JitterBuffer/NackGenerator no longer starts empty")
            if not isinstance(jitter._is_video, bool) or not jitter._is_video:
                problems.append("JitterBuffer._is_video changed")
            if not isinstance(repair._nack.missing, set):
                problems.append("NackGenerator.missing is no longer a set")
        except AiortcInternalsChanged as exc:
            problems.append(str(exc))
    finally:
        _close_quietly(pc)
    if problems:
        raise AiortcInternalsChanged("; ".join(problems))


def _takes(cls: type, name: str, *parameters: str) -> bool:
    """Whether `cls` still has the method `name(self, *parameters)`."""
    method = getattr(cls, name, None)
    return method is not None and list(inspect.signature(method).parameters) == [
        "self",
        *parameters,
    ]


def _close_quietly(pc: RTCPeerConnection) -> None:
    # Nothing was negotiated, so there is nothing to stop: dropping it is enough.
    pc.remove_all_listeners()
