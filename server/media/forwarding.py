"""Encoded pass-through: one publisher's frames to many subscribers, never decoded.

A `Publication` is one participant's audio or video in a room. It outlives the
participant's PeerConnection (a media reconnect attaches a new receiver to it), so
subscribers keep their tracks and only wait for the next keyframe.

Each subscriber gets a `ForwardedTrack`, which sends the way chosen at negotiation
(sending.py). With the publisher's codec (the usual case) each frame goes at once as
RTP packets through an `RtpOutput` (rtp_output.py): the publication packetizes a frame
once and every subscriber only adds its own header; the subscribers a frame goes to with
no decision to make (`ForwardedTrack.steady`: enabled, live, sent directly, not waiting
for a keyframe; for a simulcast layer's frame `steady_on`: also on that layer and staying
there, not probing) get it in one C call (`_rtp_send.fan_out`), the others through
`ForwardedTrack.offer`. A VP8 simulcast layer whose every taker is steady on it is
sent from its C receive buffer as each frame completes (`Gate.forward`): the
publication then sees only what a quiet buffer hands on (keyframes, a frame each
quarter second with the count of the rest). Only a transcoded track (no codec in
common) queues frames for its aiortc sender. The per-frame path is kept lean
(it runs once per frame per subscriber): metric children resolved once, one
`av.Packet` and one `Packetized` per frame for everyone. A subscriber that falls behind
(its socket's backlog is full, or its queue) loses frames, never memory: video then
waits for a keyframe (and asks the publisher for one, at most once a second:
keyframes.py), audio drops frames.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import av
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from server.media import _rtp_send, forward_only
from server.media import aiortc_internals as internals
from server.media.keyframes import KeyframeLimiter
from server.media.metrics import MediaMetrics
from server.media.publisher_cap import Cap
from server.media.reported_loss import ReportedLoss
from server.media.rtp_output import (
    MAX_PAYLOAD,
    Delivery,
    Packetized,
    RtpOutput,
    forwardable,
    ntp_now,
)
from server.media.sending import METRIC_BATCH, Sending
from server.media.simulcast_choice import Choice
from server.media.transcode import Transcoder

log = logging.getLogger("pairwise.media.forwarding")


class Streams(list[_rtp_send.Stream]):
    """The streams of steady subscribers (a C call sends to them all), with their tracks:
    a position in one is the same track's in the other."""

    def __init__(self, tracks: list[ForwardedTrack]) -> None:
        self.tracks = [track for track in tracks if track.output is not None]
        super().__init__(track.output.stream for track in self.tracks if track.output)


# A frame the C buffer sent to steady subscribers' streams itself: what it sent, the
# positions of the streams that sent nothing, and the streams (`LayerBuffer.sent`).
Sent = tuple[Packetized, list[int], Streams]


def split_sent(sent: Sent) -> tuple[list[ForwardedTrack], set[int]]:
    """The tracks a frame the C buffer sent did not reach, and the ids of those it did."""
    _, unsent, streams = sent
    missed = [streams.tracks[position] for position in unsent]
    reached = {id(track) for track in streams.tracks} - {id(track) for track in missed}
    return missed, reached


class Gate(Protocol):
    """A C buffer frames come through (`_rtp_receive.LayerBuffer`), quiet while nobody
    takes them; a simulcast VP8 layer's also packetizes its frames (one picture id
    running on) and, while every subscriber taking them is steady on it, sends each to
    their streams itself (`forward`), handing on only what a quiet one would."""

    quiet: bool
    fanned: int  # frames it sent to a stream, not yet counted in the metric
    picture_id: int  # VP8: the next frame's (carried on to a buffer that takes over)

    @property
    def sent(self) -> Sent | None: ...
    @property
    def forwarding(self) -> bool: ...
    @property
    def last_sent(self) -> int | None: ...  # the timestamp of the last frame it sent
    @property
    def held_levels(self) -> tuple[tuple[float, int], ...]: ...  # audio: (time, level) kept back
    def forward(self, *args: Any) -> None: ...
    def packetize(self, data: bytes) -> list[bytes]: ...
    def take_held(self) -> tuple[int, int]: ...  # frames and bytes kept back, counted now


def takes(track: ForwardedTrack) -> bool:
    """Whether `track` takes the frames offered to it now (else `offer` drops them)."""
    return track.enabled and track.readyState == "live" and track.sending is not None


def is_keyframe(codec: RTCRtpCodecParameters, data: bytes) -> bool:
    """Whether a depayloaded frame can be decoded on its own."""
    mime = codec.mimeType.lower()
    if mime == "video/vp8":
        # RFC 6386 §9.1: the frame tag's lowest bit is 0 for a key frame.
        return len(data) >= 3 and not data[0] & 0x01
    if mime == "video/h264":
        return _has_h264_idr(data)
    if mime in forward_only.ALL:  # VP9, AV1: the data still has its payload headers
        return forward_only.is_keyframe(mime, data)
    return True  # audio: every frame stands alone


def _has_h264_idr(data: bytes) -> bool:
    start = data.find(b"\x00\x00\x01")
    while start != -1 and start + 3 < len(data):
        nal_type = data[start + 3] & 0x1F
        if nal_type == 5:  # IDR slice (SPS/PPS come before it in the same frame)
            return True
        start = data.find(b"\x00\x00\x01", start + 3)
    return False


def same_codec(a: RTCRtpCodecParameters, b: RTCRtpCodecParameters) -> bool:
    """Whether frames of codec `a` can be sent unchanged as codec `b`."""
    if a.mimeType.lower() != b.mimeType.lower() or a.clockRate != b.clockRate:
        return False
    if a.mimeType.lower() == "video/h264":
        mode = "packetization-mode"
        return str(a.parameters.get(mode, "0")) == str(b.parameters.get(mode, "0"))
    return True


def repacketized(codec: RTCRtpCodecParameters) -> bool:
    """Whether a frame of this codec is split into RTP payloads again (VP8, H264) rather
    than sent as it came: audio (one frame, one packet) and VP9/AV1 (forward_only.py)."""
    return not (codec.mimeType.lower().startswith("audio/") or forward_only.covers(codec))


def as_payloads(
    codec: RTCRtpCodecParameters,
    data: bytes,
    packet: av.Packet | None,
    parts: list[bytes] | None,
    packetize: internals.Packetizer,
) -> list[bytes]:
    """A frame's RTP payloads for subscribers: audio as it came (one packet), VP9 and AV1
    as their packets came (the SFU has no packetizer for them, and needs none), the
    others packetized again (from `packet`, which they need)."""
    if packet is None or not repacketized(codec):
        if forward_only.covers(codec) and parts is not None:
            return parts
        return [data]
    return packetize(packet)


LAYER_IDLE_SECONDS = 1.5  # a simulcast layer with no frame for this long is not offered
# Who a frame goes to: the steady subscribers, their streams (one C call), the others.
Split = tuple[list["ForwardedTrack"], "Streams", list["ForwardedTrack"]]


def vp8_size(data: bytes) -> tuple[int, int] | None:
    """The width and height a VP8 keyframe says (RFC 6386 §9.1), or None."""
    if len(data) < 10 or data[0] & 0x01 or data[3:6] != b"\x9d\x01\x2a":
        return None
    return (
        int.from_bytes(data[6:8], "little") & 0x3FFF,
        int.from_bytes(data[8:10], "little") & 0x3FFF,
    )


@dataclass
class Layer:
    """One simulcast layer of a publication, as received: its size, its bit rate, and
    its own packetizer and keyframe-request limiter."""

    index: int
    width: int = 0
    height: int = 0
    frames: int = 0
    bitrate: float = 0.0  # bit/s over the last second
    last_frame_at: float | None = None
    packetize: internals.Packetizer | None = None
    limiter: KeyframeLimiter = field(default_factory=KeyframeLimiter)
    retry: asyncio.TimerHandle | None = None
    _window_start: float = 0.0
    _window_bytes: int = 0

    def count(self, size: int, now: float, frames: int = 1) -> None:
        self.frames += frames
        if self.last_frame_at is None or now - self.last_frame_at > LAYER_IDLE_SECONDS:
            self._window_start, self._window_bytes = now, 0  # (re)started: a fresh second
        self.last_frame_at = now
        self._window_bytes += size
        elapsed = now - self._window_start
        if elapsed >= 1.0:
            rate = self._window_bytes * 8 / elapsed  # keyframes make one second jumpy
            self.bitrate = rate if not self.bitrate else (self.bitrate + rate) / 2
            self._window_start, self._window_bytes = now, 0

    def active(self, now: float) -> bool:
        return self.last_frame_at is not None and now - self.last_frame_at < LAYER_IDLE_SECONDS


CAMERA = "camera"
MICROPHONE = "microphone"
SCREEN = "screen"


class Publication:
    """One published track (audio or video) of one participant, forwarded to subscribers.

    `source` says what it shows: the `camera` or `microphone`, or a `screen` share (a
    participant's second video track, forwarded only while they share).
    """

    def __init__(
        self,
        room: str,
        identity: str,
        kind: str,
        metrics: MediaMetrics,
        request_keyframe: Callable[[], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
        source: str | None = None,
    ) -> None:
        self.room = room
        self.identity = identity
        self.kind = kind
        self.source = source or (MICROPHONE if kind == "audio" else CAMERA)
        self.codec: RTCRtpCodecParameters | None = None
        self.paused = False  # muted or camera off: nothing is forwarded
        # Stepped below video by the health monitor: frames are still read (and counted,
        # so recovery can see them) but not forwarded.
        self.held = False
        self.subscribers: list[ForwardedTrack] = []
        self.sinks: list[Callable[[RTCRtpCodecParameters, av.Packet], None]] = []
        self.on_close: list[Callable[[], None]] = []
        # Audio: each packet's RFC 6464 level and when it came (monotonic seconds), the
        # active-speaker detector's input.
        self.on_audio_level: Callable[[int, float], None] | None = None
        self.frames = 0
        self.bytes = 0
        self.oversized = 0  # frames not sent to a subscriber: a payload over MAX_PAYLOAD
        self.keyframes = 0
        # When the last frame came that a subscriber could use: not one after frames
        # lost for good (`frames_lost`) before the next keyframe, which nobody can decode
        # (the health monitor judges video by this).
        self.last_frame_at: float | None = None
        self._broken = False  # frames lost for good, no keyframe since
        self.expected_since = time.monotonic()  # attached or unpaused: frames should come
        self._metrics = metrics
        self._request_upstream = request_keyframe
        self._clock = clock
        self._keyframes = KeyframeLimiter()
        self._retry: asyncio.TimerHandle | None = None  # sends the requests held back
        self._generation = 0
        # Timestamps continue across receivers, so subscribers' senders never go back.
        self._offset = 0
        self._last_ts = 0
        self._rebase = False
        # Not simulcast: what turns a received RTP timestamp into the one sent on (None:
        # no frame of this receiver yet), given to a C buffer that sends (`Gate.forward`).
        self._raw_offset: int | None = None
        self._time_base = fractions.Fraction(1, 90000)
        self._direct = 0  # subscribers with an RtpOutput
        # The subscribers a frame goes to without a decision (`ForwardedTrack.steady`),
        # their streams (sent to in one C call: `_rtp_send.fan_out`), and the others; made
        # again after any change to who is steady (None: to be made).
        self._split: Split | None = None
        # Simulcast: per layer, the subscribers steady on it (`ForwardedTrack.steady_on`)
        # and their streams, and the others; made again as `_split` is.
        self._layer_splits: dict[int, Split] = {}
        self._fanned = 0  # frames sent by fan_out, not yet in the forwarded-frames metric
        # Frames (one per subscriber stream) its C buffers sent as they came (`Gate`).
        self.sent_on_receipt = 0
        self._forwarded = metrics.forwarded_frames.labels(kind)
        # Simulcast: the layers received (lowest first), each asked for keyframes apart.
        self.layers: list[Layer] = []
        self.meter = Layer(0)  # the bit rate received, when not simulcast
        self._request_layer: Callable[[int], bool] | None = None
        self.on_layers: Callable[[], None] | None = None  # a layer started or stopped
        # Not simulcast: the cap its subscribers put on the publisher (publisher_cap.py),
        # the one last sent, and how to send one (False: not now, no SSRC known yet).
        self.cap = Cap()
        self.cap_sent: float | None = None
        self.ask_bitrate: Callable[[float | None], bool] | None = None
        self.on_unsubscribe: Callable[[], None] | None = None
        # The C buffers its frames come through, by layer (-1: not simulcast), each told
        # while nobody takes its frames (`_taken`): it then hands on only keyframes and
        # a frame every quarter second, with the count of the others.
        self._gates: dict[int, Gate] = {}

    @property
    def key(self) -> str:
        """Its key among its publisher's publications: "audio", "video" or "screen"."""
        return SCREEN if self.source == SCREEN else self.kind

    def attach(
        self,
        codec: RTCRtpCodecParameters | None,
        request_keyframe: Callable[[], bool],
        layers: int = 0,
        request_layer: Callable[[int], bool] | None = None,
    ) -> int:
        """A (new) receiver feeds this publication; returns its generation. With
        `layers` (simulcast) frames come through `push_layer`, and `request_layer(i)`
        asks for a keyframe on layer i."""
        self._generation += 1
        self._forget_gates()
        self.steady_changed()
        for layer in self.layers:
            if layer.retry is not None:
                layer.retry.cancel()
        self.layers = [Layer(i) for i in range(layers)]
        self._request_layer = request_layer
        for track in self.subscribers:
            track.layer = None  # the next keyframe of its target layer starts it again
        self.codec = codec
        self.meter.packetize = None
        if codec is not None:
            self._time_base = fractions.Fraction(1, codec.clockRate)
        self._request_upstream = request_keyframe
        self._rebase = self.frames > 0
        self._raw_offset = None
        self.expected_since = time.monotonic()
        self._broken = False
        for track in self.subscribers:
            track.wait_for_keyframe()
        return self._generation

    def detach(self, generation: int) -> None:
        if generation == self._generation:
            self._request_upstream = None
            self._request_layer = None
            self._forget_gates()  # the receiver's buffers, with what they hold

    def layer_sink_for(
        self, generation: int, index_of: Callable[[int], int | None]
    ) -> Callable[[RTCRtpCodecParameters, JitterFrame], None]:
        """The callback a simulcast receiver's tap delivers `LayerFrame`s to."""

        def deliver(codec: RTCRtpCodecParameters, frame: JitterFrame) -> None:
            if generation != self._generation:
                return
            index = index_of(getattr(frame, "ssrc", -1))
            gate = internals.frame_gate(frame)
            if index is None or index >= len(self.layers):
                if gate is not None and gate.forwarding:  # a layer no longer known here:
                    gate.forward(None)  # nothing it sends would be looked after
                return
            self._count_held(internals.frame_held(frame), self.layers[index])
            self._watch(index, gate)
            self._count_fanned(gate)
            if getattr(frame, "after_gap", False):  # frames were lost for good (said even
                self.layer_frames_lost(index)  # by a frame of padding only)
            if frame.data:  # not padding only
                self.push_layer(
                    codec,
                    frame.data,
                    getattr(frame, "rtp_timestamp", 0),
                    index,
                    internals.frame_parts(frame),
                    gate.sent if gate is not None else None,
                )

        return deliver

    def push_layer(
        self,
        codec: RTCRtpCodecParameters,
        data: bytes,
        timestamp: int,
        index: int,
        parts: list[bytes] | None = None,
        sent: Sent | None = None,
    ) -> None:
        """One encoded frame of simulcast layer `index`. Each subscriber gets one layer:
        the one it is on, until a keyframe of its target layer arrives (it then moves,
        its timestamps continuing: RtpOutput.continue_at). `sent`: its C buffer already
        sent it to the subscribers steady on the layer (`Gate.forward`)."""
        now = time.monotonic()
        self.last_frame_at = now
        self.frames += 1
        self.bytes += len(data)
        if self.codec is None or self.codec.mimeType != codec.mimeType:
            self.codec = codec
            self._time_base = fractions.Fraction(1, codec.clockRate)
            for each in self.layers:
                each.packetize = None
            self.steady_changed()  # which buffers may forward depends on the codec
        layer = self.layers[index]
        was_active = layer.active(now)
        layer.count(len(data), now)
        key = is_keyframe(codec, data)
        if key:
            self.keyframes += 1
            layer.limiter.keyframe()
            size = (
                forward_only.frame_size(codec, data)
                if forward_only.covers(codec)
                else vp8_size(data)
            )
            if size is not None:
                layer.width, layer.height = size
        if not was_active and self.on_layers is not None:
            self.on_layers()
        if self.paused or self.held or not self.subscribers:
            return
        steady, streams, others = self._layer_split(index)
        packet: av.Packet | None = None
        packetized: Packetized | None = None
        waiting = False
        reached: set[int] = set()
        if sent is not None and sent[0].timestamp == timestamp:
            # sent by the C buffer to those staying on this layer (then): the ones it
            # could not send to as `_send_steady` does; none it reached again below
            packetized = sent[0]
            missed, reached = split_sent(sent)
            for track in missed:
                waiting |= not track.offer(packet, key, packetized)
        elif streams:  # the frame as it is to those staying on this layer, in one C call
            if repacketized(codec):
                packet = av.Packet(data)
                packet.pts = timestamp
                packet.time_base = self._time_base
            payloads = self._payloads(codec, data, packet, parts, index)
            if forwardable(payloads):
                packetized = Packetized(payloads, timestamp, ntp_now())
                waiting = self._send_steady(steady, streams, packet, key, packetized)
            else:
                others = self.subscribers  # each as below: it waits for a keyframe
        for track in others:
            if id(track) in reached:
                continue
            switched = False
            if track.layer != index:
                if track.target != index:
                    continue
                if not key:
                    waiting = waiting or track.enabled
                    continue
                previous = track.layer
                track.layer, switched = index, True
            elif track.target < index and track.choice.stepping_down:
                continue  # congested: nothing more of this layer until the lower one's keyframe
            if packet is None and (track.output is None or repacketized(codec)):
                packet = av.Packet(data)
                packet.pts = timestamp
                packet.time_base = self._time_base
            if track.output is not None and packetized is None:
                payloads = self._payloads(codec, data, packet, parts, index)
                if not forwardable(payloads):
                    self._oversized()
                    if switched:  # it stays where it was: the target's next keyframe moves it
                        track.layer = previous
                    else:
                        track.wait_for_keyframe()
                    waiting = True
                    continue
                packetized = Packetized(payloads, timestamp, ntp_now())
            if switched:
                track.switched(packetized)
            waiting |= not track.offer(packet, key, packetized)
        if waiting:
            self.request_layer_keyframe(index, "layer")

    def _payloads(
        self,
        codec: RTCRtpCodecParameters,
        data: bytes,
        packet: av.Packet | None,
        parts: list[bytes] | None,
        index: int,
    ) -> list[bytes]:
        """A frame of simulcast layer `index` (-1: not simulcast) as RTP payloads: VP8 by
        the C buffer it came through (whose picture id that buffer's own sends share:
        `_forward_from`), others as `as_payloads`."""
        if self._packetized_by_gate(codec, index):
            return self._gates[index].packetize(data)
        layer = self._layer(index)
        assert layer is not None  # a frame of a layer it does not know is not pushed
        if layer.packetize is None:
            layer.packetize = internals.packetizer(codec)
        return as_payloads(codec, data, packet, parts, layer.packetize)

    def _layer(self, index: int) -> Layer | None:
        """Simulcast layer `index`, or the stream's own meter (-1: not simulcast); None
        for a layer it does not know (any more)."""
        if index < 0:
            return self.meter
        return self.layers[index] if index < len(self.layers) else None

    def _packetized_by_gate(self, codec: RTCRtpCodecParameters, index: int) -> bool:
        """Whether frames of layer `index` (-1: not simulcast) are packetized by the C
        buffer they come through (VP8)."""
        return index in self._gates and codec.mimeType.lower() == "video/vp8"

    def _oversized(self) -> None:
        """A frame with a payload too long to forward (rtp_output.MAX_PAYLOAD: only a
        misbehaving publisher sends one) is not sent to a direct subscriber, who goes on
        from the next keyframe (its publisher is asked for one)."""
        self.oversized += 1
        if self.oversized == 1:
            log.warning("%s/%s sent a payload over %d bytes", self.room, self.identity, MAX_PAYLOAD)

    def request_layer_keyframe(self, index: int, reason: str) -> None:
        """Ask for a keyframe on one simulcast layer, at most once a second per layer."""
        if self._request_layer is None or index >= len(self.layers):
            return
        layer = self.layers[index]
        now = self._clock()
        if not layer.limiter.allows(now):
            retry_at = layer.limiter.retry_at()
            if layer.retry is None and retry_at is not None:

                def again() -> None:
                    layer.retry = None
                    if layer.limiter.pending:
                        self.request_layer_keyframe(index, "coalesced")

                layer.retry = asyncio.get_running_loop().call_later(retry_at - now, again)
            return
        if self._request_layer(index):
            layer.limiter.sent(now)
            self._metrics.keyframe_requests.labels(reason).inc()

    def sink_for(self, generation: int) -> Callable[[RTCRtpCodecParameters, JitterFrame], None]:
        """The callback a receiver's tap delivers encoded frames to."""

        def deliver(codec: RTCRtpCodecParameters, frame: JitterFrame) -> None:
            if generation != self._generation:
                return
            self._count_held(internals.frame_held(frame), self.meter)
            gate = internals.frame_gate(frame)
            self._watch(-1, gate)  # (before `push`: it packetizes VP8 with the buffer)
            self._count_fanned(gate)
            if getattr(frame, "after_gap", False):  # frames were lost for good (said even
                self.frames_lost()  # by a frame of padding only)
            # A frame of padding packets only (a browser probing bandwidth) has no data.
            if frame.data:
                self.push(
                    codec,
                    frame.data,
                    frame.timestamp,
                    internals.audio_level(frame),
                    internals.frame_parts(frame),
                    gate.sent if gate is not None else None,
                    gate.held_levels if gate is not None else (),
                )
                raw = getattr(frame, "rtp_timestamp", None)
                if raw is not None:  # what the C buffer adds to the timestamps it sends
                    offset = (self._last_ts - raw) & 0xFFFFFFFF
                    if offset != self._raw_offset:
                        self._raw_offset = offset
                        if gate is not None and self._gates.get(-1) is gate:
                            self._forward_from(-1, self._gates[-1])

        return deliver

    def push(
        self,
        codec: RTCRtpCodecParameters,
        data: bytes,
        timestamp: int,
        audio_level: int | None = None,
        parts: list[bytes] | None = None,
        sent: Sent | None = None,
        held_levels: Sequence[tuple[float, int]] = (),
    ) -> None:
        """One complete encoded frame from the publisher (on the event loop), with its
        RFC 6464 audio level if it is audio and had one (kept on forwarded packets), and
        its packets' payloads (`parts`: forwarded as they are for VP9 and AV1). `sent`:
        its C buffer already sent it to the steady subscribers (`Gate.forward`);
        `held_levels`: (arrival time, level) of each audio packet it kept back before this
        one, heard by the speaker detector at their own times."""
        now = time.monotonic()
        self.frames += 1
        self.bytes += len(data)
        self.meter.count(len(data), now)
        if self.codec is None or self.codec.mimeType != codec.mimeType:
            self.codec = codec
            self._time_base = fractions.Fraction(1, codec.clockRate)
            self.meter.packetize = None
            self.steady_changed()  # whether its buffer may forward depends on the codec
        if self._rebase:
            self._offset = self._last_ts + self._frame_ticks() - timestamp
            self._rebase = False
        self._last_ts = timestamp + self._offset
        key = is_keyframe(codec, data)
        if key:
            self.keyframes += 1
            self._keyframes.keyframe()
            self._broken = False
        if not self._broken:
            self.last_frame_at = now
        if self.paused or self.held or not (self.subscribers or self.sinks):
            return
        if self.on_audio_level is not None:
            for at, level in held_levels:
                self.on_audio_level(level, at)
            if audio_level is not None:
                self.on_audio_level(audio_level, self._clock())
        # An av.Packet (a copy of the frame) only for those that take one: the sinks, the
        # queued subscribers, and aiortc's packetizers (VP8's is its C buffer's, and H264).
        packet: av.Packet | None = None
        if (
            self.sinks
            or self._direct < len(self.subscribers)
            or (self._direct and repacketized(codec) and not self._packetized_by_gate(codec, -1))
        ):
            packet = av.Packet(data)
            packet.pts = self._last_ts
            packet.time_base = self._time_base
        for sink in self.sinks:
            sink(codec, packet)  # type: ignore[arg-type]  # made above when there are sinks
        packetized = None
        waiting = oversized = False
        if sent is not None and sent[0].timestamp == self._last_ts & 0xFFFFFFFF:
            waiting = self._fan_out(packet, key, sent[0], sent)
        elif self._direct:
            payloads = self._payloads(codec, data, packet, parts, -1)
            if forwardable(payloads):
                packetized = Packetized(payloads, self._last_ts, ntp_now(), audio_level)
            else:
                oversized = True
        if packetized is not None:
            waiting = self._fan_out(packet, key, packetized)
        else:
            for track in self.subscribers:
                if oversized and track.output is not None:
                    self._oversized()
                    track.wait_for_keyframe()
                    waiting |= self.kind == "video"
                    continue
                waiting |= not track.offer(packet, key, packetized)
        if waiting:
            self.request_keyframe("gate")

    def _fan_out(
        self,
        packet: av.Packet | None,
        key: bool,
        packetized: Packetized,
        sent: Sent | None = None,
    ) -> bool:
        """A frame to every subscriber: to the steady ones' streams in one C call, to
        the others (and to a steady one whose wire has changed) through `offer`. True if
        one waits for a keyframe. `sent`: the C buffer sent it to the steady ones (then)
        already."""
        steady, streams, others = self._stream_split()
        waiting = False
        reached: set[int] = set()
        if sent is not None:
            missed, reached = split_sent(sent)
            for track in missed:
                waiting |= not track.offer(packet, key, packetized)
        elif streams:
            waiting = self._send_steady(steady, streams, packet, key, packetized)
        for track in others:
            if id(track) not in reached:
                waiting |= not track.offer(packet, key, packetized)
        return waiting

    def _send_steady(
        self,
        steady: list[ForwardedTrack],
        streams: list[_rtp_send.Stream],
        packet: av.Packet | None,
        key: bool,
        packetized: Packetized,
    ) -> bool:
        """A frame to the steady subscribers' streams in one C call; through `offer` to
        one whose wire has changed. True if one waits for a keyframe."""
        unsent = _rtp_send.fan_out(streams, packetized)
        self._fanned += len(streams) - len(unsent)
        if self._fanned >= METRIC_BATCH:
            self._flush_fanned()
        waiting = False
        for index in unsent:
            waiting |= not steady[index].offer(packet, key, packetized)
        return waiting

    def _flush_fanned(self) -> None:
        if self._fanned:
            self._forwarded.inc(self._fanned)
            self._fanned = 0

    def steady_changed(self) -> None:
        """A subscriber's `steady` or `steady_on` may have changed (or the subscribers
        did)."""
        self._split = None
        self._layer_splits.clear()
        if self._gates:
            taken = self._taken()
            for index, gate in self._gates.items():
                gate.quiet = index not in taken
                self._forward_from(index, gate)

    def _forward_from(self, index: int, gate: Gate) -> None:
        """Let the C buffer of simulcast VP8 layer `index`, or of this stream (-1: audio,
        or a VP8 video not sent simulcast), send its frames to the subscribers steady on
        it while they are all who take its frames (no one else on that layer or moving
        to it, no sinks, nothing paused or held); else stop it."""
        streams = self._forwardable(index)
        if streams:
            # a simulcast layer's timestamps go as they came; a stream's as `push` sends
            # them (aiortc's mapping, then continued across receivers: `_offset`)
            offset = self._raw_offset if index < 0 else 0
            gate.forward(streams, _rtp_send.fan_out, Packetized, offset)
        else:
            self._stop_forwarding(index, gate)

    def _forwardable(self, index: int) -> Streams | None:
        """The streams the buffer of layer `index` (-1: this stream, not simulcast) may
        send to itself, or None while the publication must see each frame."""
        codec = self.codec
        if codec is None or self.paused or self.held or self.sinks:
            return None
        vp8 = codec.mimeType.lower() == "video/vp8"
        if index >= 0:
            if not vp8:
                return None
            _, streams, others = self._layer_split(index)
            # one takes frames through `offer`: all go through here
            blocked = any(index in (t.layer, t.target) and takes(t) for t in others)
            return None if blocked else streams
        # a stream's timestamps are moved as `push` moves them (known from its first frame)
        if self.layers or self._raw_offset is None or not (vp8 or self.kind == "audio"):
            return None
        _, streams, others = self._stream_split()
        return None if any(takes(track) for track in others) else streams

    def _stop_forwarding(self, index: int, gate: Gate) -> None:
        """The buffer of layer `index` (-1: not simulcast) sends no more; a stream's
        timestamps go on from the last it sent (`push` continues them)."""
        if not gate.forwarding:
            return
        gate.forward(None)
        last = gate.last_sent
        if index < 0 and last is not None and (last - self._last_ts) & 0xFFFFFFFF < 1 << 31:
            self._last_ts += (last - self._last_ts) & 0xFFFFFFFF

    def _stream_split(self) -> Split:
        """Who a frame goes to, not simulcast (made again after a change)."""
        if self._split is None:
            steady: list[ForwardedTrack] = []
            others: list[ForwardedTrack] = []
            for track in self.subscribers:
                (steady if track.steady else others).append(track)
            self._split = (steady, Streams(steady), others)
        return self._split

    def _count_fanned(self, gate: Gate | None) -> None:
        """The frames `gate` sent itself since the last frame it handed on, counted."""
        if gate is not None and gate.fanned:
            self._fanned += gate.fanned
            self.sent_on_receipt += gate.fanned
            gate.fanned = 0
            if self._fanned >= METRIC_BATCH:
                self._flush_fanned()

    def _layer_split(self, index: int) -> Split:
        """Who a frame of simulcast layer `index` goes to (made again after a change)."""
        split = self._layer_splits.get(index)
        if split is None:
            steady = [track for track in self.subscribers if track.steady_on(index)]
            streams = Streams(steady)
            others = [track for track in self.subscribers if track not in steady]
            split = self._layer_splits[index] = (steady, streams, others)
        return split

    def _forget_gates(self) -> None:
        """A receiver's buffers are no longer this publication's."""
        for index, gate in self._gates.items():
            self._release(index, gate)
        self._gates.clear()

    def _release(self, index: int, gate: Gate) -> None:
        """`gate` brings layer `index`'s frames no more (its receiver is gone, or a new
        buffer took over): it sends nothing more for this publication, and what it sent
        and what it kept back are counted."""
        self._stop_forwarding(index, gate)
        self._count_fanned(gate)
        layer = self._layer(index)
        if layer is not None:
            self._count_held(gate.take_held(), layer)

    def _taken(self) -> set[int]:
        """The layers whose frames someone takes now (-1: this publication's own, not
        simulcast): a subscriber on it or moving to it, or a sink. The others' buffers
        are quiet. All of them while it has sinks or while its codec is one whose
        keyframes the C buffer does not know (it hands those on: only VP8, and audio)."""
        codec = self.codec
        if (
            self.sinks
            or codec is None
            or (self.kind == "video" and codec.mimeType.lower() != "video/vp8")
        ):
            return set(self._gates)
        if not self.layers:
            return {-1} if self.subscribers else set()
        taken: set[int] = set()
        for track in self.subscribers:
            taken.add(track.target)
            if track.layer is not None:
                taken.add(track.layer)
        return taken

    def _watch(self, index: int, gate: Gate | None) -> None:
        """The buffer frames of layer `index` come through (a new one when the publisher
        restarted a stream): told whether it is quiet, and from now on whenever that
        changes (`steady_changed`)."""
        if gate is not None and self._gates.get(index) is not gate:
            old = self._gates.get(index)
            if old is not None:
                self._release(index, old)
                gate.picture_id = old.picture_id  # each subscriber's VP8 picture ids run on
                if index < 0:  # a new stream: its timestamps go on from the old one's, and
                    self._rebase = self.frames > 0  # its video from its first keyframe
                    for track in self.subscribers:
                        track.wait_for_keyframe()
            self._gates[index] = gate
            gate.quiet = index not in self._taken()
            self._forward_from(index, gate)

    def _count_held(self, held: tuple[int, int], layer: Layer) -> None:
        """Frames a quiet buffer counted instead of handing on (`_taken`): what `push`
        and `push_layer` count of a frame."""
        frames, size = held
        if not frames:
            return
        now = time.monotonic()
        self.frames += frames
        self.bytes += size
        if layer.active(now):
            layer.count(size, now, frames)
            if not self._broken:
                self.last_frame_at = now
        else:  # kept back before a pause: the frame after it starts the layer again
            layer.frames += frames

    def add_sink(self, sink: Callable[[RTCRtpCodecParameters, av.Packet], None]) -> None:
        """Every frame from now on also goes to `sink` (an av.Packet each)."""
        self.sinks.append(sink)
        self.steady_changed()

    def remove_sink(self, sink: Callable[[RTCRtpCodecParameters, av.Packet], None]) -> None:
        if sink in self.sinks:
            self.sinks.remove(sink)
            self.steady_changed()

    def request_keyframe(self, reason: str) -> None:
        """Ask the publisher for a keyframe: now, or coalesced with the others made
        within a second of the last one sent (keyframes.py)."""
        if self.layers:  # simulcast: the layers subscribers are on or moving to
            for index in {t.target for t in self.subscribers} | {
                t.layer for t in self.subscribers if t.layer is not None
            }:
                self.request_layer_keyframe(index, reason)
            return
        if self.kind != "video" or self._request_upstream is None:
            return
        now = self._clock()
        if not self._keyframes.allows(now):
            retry_at = self._keyframes.retry_at()
            if self._retry is None and retry_at is not None:
                self._retry = asyncio.get_running_loop().call_later(
                    retry_at - now, self._send_held_back
                )
            return
        if self._request_upstream():
            self._keyframes.sent(now)
            self._metrics.keyframe_requests.labels(reason).inc()

    def _send_held_back(self) -> None:
        self._retry = None
        if self._keyframes.pending:  # no keyframe came meanwhile
            self.request_keyframe("coalesced")

    def frames_lost(self) -> None:
        """Frames between the last one pushed and the next are gone for good: every
        subscriber resumes at a keyframe, which the publisher is asked for; until it
        comes, frames are not usable video (`last_frame_at` stays)."""
        self._broken = self.kind == "video"
        for track in self.subscribers:
            track.wait_for_keyframe()
        self.request_keyframe("stall")

    def layer_frames_lost(self, index: int) -> None:
        """As `frames_lost`, for simulcast layer `index`: its subscribers resume at its
        next keyframe, asked for if any is on it or moving to it."""
        wanted = False
        for track in self.subscribers:
            if track.layer == index:
                track.wait_for_keyframe()
            wanted |= index in (track.layer, track.target)
        if wanted:
            self.request_layer_keyframe(index, "stall")

    def subscribe(self, track: ForwardedTrack) -> None:
        self.subscribers.append(track)
        self.steady_changed()
        self._direct += track.output is not None
        self._metrics.forwarded_streams.inc()
        if track.transcoder is not None:
            self._metrics.transcoded_pairs.inc()
        self.request_keyframe("new_subscriber")

    def unsubscribe(self, track: ForwardedTrack) -> None:
        if track in self.subscribers:
            self.subscribers.remove(track)
            self.steady_changed()
            self._direct -= track.output is not None
            self._metrics.forwarded_streams.dec()
            if track.transcoder is not None:
                self._metrics.transcoded_pairs.dec()
            if self.on_unsubscribe is not None:
                self.on_unsubscribe()
        track.end()

    def set_paused(self, paused: bool) -> None:
        if paused != self.paused:
            self.paused = paused
            self.steady_changed()
            if not paused:
                self._resume()

    def set_held(self, held: bool) -> None:
        """Stop (or resume) forwarding while the publisher's network cannot carry it."""
        if held != self.held:
            self.held = held
            self.steady_changed()
            if not held:
                self._resume()

    def _resume(self) -> None:
        # Frames are expected again, and subscribers restart at a keyframe.
        self.expected_since = time.monotonic()
        for track in self.subscribers:
            track.wait_for_keyframe()
        self.request_keyframe("resume")

    def close(self) -> None:
        for track in list(self.subscribers):
            self.unsubscribe(track)
        for gate in self._gates.values():
            self._count_fanned(gate)
        self._flush_fanned()
        self.sinks.clear()
        self._request_upstream = None
        self._request_layer = None
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        for layer in self.layers:
            if layer.retry is not None:
                layer.retry.cancel()
                layer.retry = None
        callbacks, self.on_close = self.on_close, []
        for callback in callbacks:
            callback()

    def _frame_ticks(self) -> int:
        return 3000 if self.kind == "video" else 960


class ForwardedTrack(MediaStreamTrack):
    """What the SFU sends to one subscriber: the publisher's encoded frames.

    It decides which frames go (enabled, from a keyframe on, its simulcast layer);
    how they go is its `sending` (sending.py), chosen once at negotiation: a
    `DirectSend` sends them at once as RTP, a `QueuedSend` hands them (decoded, when
    transcoding) to aiortc's sender, which waits in `recv()`.
    """

    def __init__(self, publication: Publication, subscriber: str) -> None:
        super().__init__()
        self.kind = publication.kind
        self.publication = publication
        self.subscriber = subscriber
        self.sending: Sending | None = None  # set by `use`, at negotiation
        self._chosen = asyncio.Event()  # sending chosen, or the track ended before
        self.wanted = True  # false while the subscriber receives audio only (its choice)
        # Paused by the SFU: the subscriber's link cannot carry it (downlink_pause.py).
        self.link_paused = False
        self._need_keyframe = self.kind == "video"  # set through `_needs_keyframe`
        self._layer: int | None = None  # `layer`
        self._target = 0  # `target`
        self.choice = Choice()
        self.reported_loss = ReportedLoss()  # from the subscriber's receiver reports
        self.view: tuple[int, int] | None = None  # the tile's size (media_view)
        self.switches = 0
        self.switched_at: float | None = None

    def use(self, sending: Sending) -> None:
        """How its frames go, from now on (once negotiated)."""
        self.sending = sending
        self._chosen.set()
        self.publication.steady_changed()

    def steady_on(self, index: int) -> bool:
        """The next frame of simulcast layer `index` goes out to it as it is: enabled,
        live, sent directly, not waiting for a keyframe, on that layer and staying there
        (its target; no switch pending), not probing its link (which pads each frame).
        Whatever changes one of these tells the publication (`layer` and `target` do
        when set; the SFU when a choice starts or stops probing)."""
        return (
            self._layer == index
            and self._target == index
            and self.enabled
            and not self._need_keyframe
            and self.readyState == "live"
            and self.output is not None
            and not self.choice.probe_rate
        )

    @property
    def layer(self) -> int | None:
        """Simulcast: the layer being sent (None until its first keyframe)."""
        return self._layer

    @layer.setter
    def layer(self, index: int | None) -> None:
        if index != self._layer:
            self._layer = index
            self.publication.steady_changed()

    @property
    def target(self) -> int:
        """Simulcast: the layer chosen for it (simulcast_choice.py), moved to on its
        keyframe."""
        return self._target

    @target.setter
    def target(self, index: int) -> None:
        if index != self._target:
            self._target = index
            self.publication.steady_changed()

    @property
    def steady(self) -> bool:
        """The next frame of a publication that is not simulcast goes out as it is, with
        no decision to make: enabled, live, sent directly, not waiting for a keyframe
        (`Publication._fan_out`). Whatever changes one of these tells the publication."""
        return (
            self.enabled
            and not self._need_keyframe
            and self.readyState == "live"
            and self.output is not None
            and self._layer is None
        )

    def _needs_keyframe(self, needs: bool) -> None:
        if needs != self._need_keyframe:
            self._need_keyframe = needs
            self.publication.steady_changed()

    def stop(self) -> None:
        super().stop()
        self.publication.steady_changed()

    @property
    def loss(self) -> float:
        """The fraction of this stream the subscriber lost lately (reported_loss.py)."""
        return self.reported_loss.value

    @property
    def output(self) -> RtpOutput | None:
        """Sending directly: its RTP output."""
        return self.sending.output if self.sending is not None else None

    @property
    def transcoder(self) -> Transcoder | None:
        """Transcoding: its decoder."""
        return self.sending.transcoder if self.sending is not None else None

    @property
    def frames_out(self) -> int:
        return self.sending.frames_out if self.sending is not None else 0

    @property
    def dropped(self) -> int:
        return self.sending.dropped if self.sending is not None else 0

    def switched(self, frame: Packetized | None) -> None:
        """The next frame is the first of another layer (a keyframe)."""
        self.switches += 1
        self.switched_at = time.monotonic()
        self._needs_keyframe(False)
        if self.output is not None and frame is not None:
            self.output.continue_at(frame)

    def wait_for_keyframe(self) -> None:
        if self.kind == "video":
            self._needs_keyframe(True)

    @property
    def enabled(self) -> bool:
        """Frames go: the subscriber wants it and its link is not paused."""
        return self.wanted and not self.link_paused

    def set_enabled(self, enabled: bool) -> None:
        """The subscriber's choice (audio only: False)."""
        self._change(wanted=enabled, link_paused=self.link_paused)

    def set_link_paused(self, paused: bool) -> None:
        self._change(wanted=self.wanted, link_paused=paused)

    def _change(self, wanted: bool, link_paused: bool) -> None:
        before = self.enabled
        self.wanted, self.link_paused = wanted, link_paused
        if self.enabled == before:
            return
        self.publication.steady_changed()
        if self.enabled:
            self.wait_for_keyframe()
            self.publication.request_keyframe("resume")
        elif self.sending is not None:
            self.sending.clear()

    def offer(
        self, packet: av.Packet | None, keyframe: bool, packetized: Packetized | None
    ) -> bool:
        """Send (or queue) a frame; returns False if this track is waiting for a keyframe.
        `packet` is None only when every subscriber sends directly (`packetized`)."""
        if not self.enabled or self.readyState != "live" or self.sending is None:
            return True
        if self._need_keyframe:
            if not keyframe:
                return False
            self._needs_keyframe(False)
        delivery = self.sending.send(packet, packetized)
        if self.choice.probe_rate and self.output is not None and self.layer == self.target:
            # probing its link (not while a switch down waits for its keyframe to get
            # through a full link)
            now = time.monotonic()
            self.output.pad(self.choice.padding(now), now)
        if delivery is Delivery.STALLED and self.kind == "video":
            self._needs_keyframe(True)
            self.publication.request_keyframe("stall")
        elif delivery is Delivery.DOWN:
            self.wait_for_keyframe()  # not connected: start at a keyframe once it is
        return True

    async def recv(self) -> Any:
        await self._chosen.wait()
        if self.readyState != "live":
            raise MediaStreamError
        item = await self.sending.recv() if self.sending is not None else None
        if item is None:
            self.stop()
            raise MediaStreamError
        return item

    def end(self) -> None:
        """No more frames: the sender's loop ends, the subscriber's track ends."""
        if self.sending is not None:
            self.sending.end()
        self._chosen.set()
