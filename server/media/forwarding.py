"""Encoded pass-through: one publisher's frames to many subscribers, never decoded.

A `Publication` is one participant's audio or video in a room. It outlives the
participant's PeerConnection (a media reconnect attaches a new receiver to it), so
subscribers keep their tracks and only wait for the next keyframe.

Each subscriber gets a `ForwardedTrack`. With the publisher's codec (the usual case)
it sends each frame at once as RTP packets through an `RtpOutput` (rtp_output.py): the
publication packetizes a frame once and every subscriber only adds its own header.
Only a transcoded track (no codec in common) queues frames for its aiortc sender: a
bounded deque of `av.Packet`s with one waiting future. The per-frame path is kept lean
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
from collections import deque
from collections.abc import Callable
from typing import Any

import av
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from server.media import aiortc_internals as internals
from server.media.keyframes import KeyframeLimiter
from server.media.metrics import MediaMetrics
from server.media.rtp_output import Delivery, Packetized, RtpOutput, ntp_now

log = logging.getLogger("pairwise.media.forwarding")

VIDEO_QUEUE_FRAMES = 30  # about 1 s at 30 fps
AUDIO_QUEUE_FRAMES = 50  # 1 s of 20 ms Opus frames


def is_keyframe(codec: RTCRtpCodecParameters, data: bytes) -> bool:
    """Whether a depayloaded frame can be decoded on its own."""
    mime = codec.mimeType.lower()
    if mime == "video/vp8":
        # RFC 6386 §9.1: the frame tag's lowest bit is 0 for a key frame.
        return len(data) >= 3 and not data[0] & 0x01
    if mime == "video/h264":
        return _has_h264_idr(data)
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


class Publication:
    """One published track (audio or video) of one participant, forwarded to subscribers."""

    def __init__(
        self,
        room: str,
        identity: str,
        kind: str,
        metrics: MediaMetrics,
        request_keyframe: Callable[[], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.room = room
        self.identity = identity
        self.kind = kind
        self.codec: RTCRtpCodecParameters | None = None
        self.paused = False  # muted or camera off: nothing is forwarded
        # Stepped below video by the health monitor: frames are still read (and counted,
        # so recovery can see them) but not forwarded.
        self.held = False
        self.subscribers: list[ForwardedTrack] = []
        self.sinks: list[Callable[[RTCRtpCodecParameters, av.Packet], None]] = []
        self.on_close: list[Callable[[], None]] = []
        # Audio: each packet's RFC 6464 level (the active-speaker detector's input).
        self.on_audio_level: Callable[[int], None] | None = None
        self.frames = 0
        self.bytes = 0
        self.keyframes = 0
        self.last_frame_at: float | None = None
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
        self._time_base = fractions.Fraction(1, 90000)
        self._packetize: internals.Packetizer | None = None  # for the codec in use
        self._direct = 0  # subscribers with an RtpOutput

    def attach(
        self, codec: RTCRtpCodecParameters | None, request_keyframe: Callable[[], bool]
    ) -> int:
        """A (new) receiver feeds this publication; returns its generation."""
        self._generation += 1
        self.codec = codec
        self._packetize = None
        if codec is not None:
            self._time_base = fractions.Fraction(1, codec.clockRate)
        self._request_upstream = request_keyframe
        self._rebase = self.frames > 0
        self.expected_since = time.monotonic()
        for track in self.subscribers:
            track.wait_for_keyframe()
        return self._generation

    def detach(self, generation: int) -> None:
        if generation == self._generation:
            self._request_upstream = None

    def sink_for(self, generation: int) -> Callable[[RTCRtpCodecParameters, JitterFrame], None]:
        """The callback a receiver's tap delivers encoded frames to."""

        def deliver(codec: RTCRtpCodecParameters, frame: JitterFrame) -> None:
            if generation == self._generation:
                self.push(codec, frame.data, frame.timestamp, internals.audio_level(frame))

        return deliver

    def push(
        self,
        codec: RTCRtpCodecParameters,
        data: bytes,
        timestamp: int,
        audio_level: int | None = None,
    ) -> None:
        """One complete encoded frame from the publisher (on the event loop), with its
        RFC 6464 audio level if it is audio and had one (kept on forwarded packets)."""
        now = time.monotonic()
        self.last_frame_at = now
        self.frames += 1
        self.bytes += len(data)
        if self.codec is None or self.codec.mimeType != codec.mimeType:
            self.codec = codec
            self._time_base = fractions.Fraction(1, codec.clockRate)
            self._packetize = None
        if self._rebase:
            self._offset = self._last_ts + self._frame_ticks() - timestamp
            self._rebase = False
        self._last_ts = timestamp + self._offset
        key = is_keyframe(codec, data)
        if key:
            self.keyframes += 1
            self._keyframes.keyframe()
        if self.paused or self.held or not (self.subscribers or self.sinks):
            return
        if audio_level is not None and self.on_audio_level is not None:
            self.on_audio_level(audio_level)
        packet = av.Packet(data)
        packet.pts = self._last_ts
        packet.time_base = self._time_base
        for sink in self.sinks:
            sink(codec, packet)
        packetized = None
        if self._direct:
            if self._packetize is None:
                self._packetize = internals.packetizer(codec)
            packetized = Packetized(self._packetize(packet), self._last_ts, ntp_now(), audio_level)
        waiting = False
        for track in self.subscribers:
            waiting |= not track.offer(packet, key, packetized)
        if waiting:
            self.request_keyframe("gate")

    def request_keyframe(self, reason: str) -> None:
        """Ask the publisher for a keyframe: now, or coalesced with the others made
        within a second of the last one sent (keyframes.py)."""
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
        subscriber resumes at a keyframe, which the publisher is asked for."""
        for track in self.subscribers:
            track.wait_for_keyframe()
        self.request_keyframe("stall")

    def subscribe(self, track: ForwardedTrack) -> None:
        self.subscribers.append(track)
        self._direct += track.output is not None
        self._metrics.forwarded_streams.inc()
        if track.transcoder is not None:
            self._metrics.transcoded_pairs.inc()
        self.request_keyframe("new_subscriber")

    def unsubscribe(self, track: ForwardedTrack) -> None:
        if track in self.subscribers:
            self.subscribers.remove(track)
            self._direct -= track.output is not None
            self._metrics.forwarded_streams.dec()
            if track.transcoder is not None:
                self._metrics.transcoded_pairs.dec()
        track.end()

    def set_paused(self, paused: bool) -> None:
        if paused != self.paused:
            self.paused = paused
            if not paused:
                self._resume()

    def set_held(self, held: bool) -> None:
        """Stop (or resume) forwarding while the publisher's network cannot carry it."""
        if held != self.held:
            self.held = held
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
        self.sinks.clear()
        self._request_upstream = None
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        callbacks, self.on_close = self.on_close, []
        for callback in callbacks:
            callback()

    def _frame_ticks(self) -> int:
        return 3000 if self.kind == "video" else 960


class ForwardedTrack(MediaStreamTrack):
    """What the SFU sends to one subscriber: the publisher's encoded frames.

    With an `output` (set once negotiated, same codec) frames go out at once as RTP;
    the aiortc sender's own loop waits in `recv()` and never gets one. With a
    `transcoder` (no codec in common) `recv()` returns decoded frames instead, which
    the sender then encodes.
    """

    def __init__(
        self,
        publication: Publication,
        subscriber: str,
        metrics: MediaMetrics,
        transcoder: Any = None,
    ) -> None:
        super().__init__()
        self.kind = publication.kind
        self.publication = publication
        self.subscriber = subscriber
        self.transcoder = transcoder
        self.output: RtpOutput | None = None
        self.enabled = True  # false while the subscriber receives audio only
        self.frames_out = 0
        self.dropped = 0
        self._forwarded = metrics.forwarded_frames.labels(self.kind)
        self._transcoded = metrics.transcoded_frames.labels(self.kind)
        self._dropped = metrics.dropped_frames.labels(self.kind)
        self._capacity = VIDEO_QUEUE_FRAMES if self.kind == "video" else AUDIO_QUEUE_FRAMES
        self._queue: deque[av.Packet | None] = deque()
        self._waiter: asyncio.Future[None] | None = None  # the sender waiting in recv()
        self._pending: list[Any] = []
        self._need_keyframe = self.kind == "video"

    def wait_for_keyframe(self) -> None:
        if self.kind == "video":
            self._need_keyframe = True

    def set_enabled(self, enabled: bool) -> None:
        if enabled == self.enabled:
            return
        self.enabled = enabled
        if enabled:
            self.wait_for_keyframe()
            self.publication.request_keyframe("resume")
        else:
            self._clear()

    def offer(self, packet: av.Packet, keyframe: bool, packetized: Packetized | None) -> bool:
        """Send (or queue) a frame; returns False if this track is waiting for a keyframe."""
        if not self.enabled or self.readyState != "live":
            return True
        if self._need_keyframe:
            if not keyframe:
                return False
            self._need_keyframe = False
        if self.output is not None and packetized is not None:
            delivery = self.output.send(packetized)
            if delivery is Delivery.SENT:
                self.frames_out += 1
                self._forwarded.inc()
            elif delivery is Delivery.STALLED:
                self._lose()
            else:
                self.wait_for_keyframe()  # not connected: start at a keyframe once it is
        elif len(self._queue) >= self._capacity:
            self._overflow(packet)
        else:
            self._put(packet)
        return True

    def _put(self, item: av.Packet | None) -> None:
        self._queue.append(item)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _lose(self) -> None:
        """This frame and any queued are lost; video resumes at a keyframe (a delta frame
        after a gap is undecodable)."""
        lost = self._clear() + 1
        self.dropped += lost
        self._dropped.inc(lost)
        if self.kind == "video":
            self._need_keyframe = True
            self.publication.request_keyframe("stall")

    def _overflow(self, packet: av.Packet) -> None:
        if self.kind == "video":
            self._lose()
        else:
            self._queue.popleft()
            self._put(packet)
            self.dropped += 1
            self._dropped.inc()

    def _clear(self) -> int:
        count = len(self._queue)
        self._queue.clear()
        return count

    async def recv(self) -> Any:
        while True:
            if self._pending:
                return self._pending.pop(0)
            if self.readyState != "live":
                raise MediaStreamError
            if not self._queue:
                self._waiter = asyncio.get_running_loop().create_future()
                await self._waiter
                continue
            packet = self._queue.popleft()
            if packet is None:
                self.stop()
                raise MediaStreamError
            if self.transcoder is None:
                self.frames_out += 1
                self._forwarded.inc()
                return packet
            frames = await self.transcoder.decode(packet)
            self.frames_out += len(frames)
            self._transcoded.inc(len(frames))
            self._pending.extend(frames)

    def end(self) -> None:
        """No more frames: the sender's loop ends, the subscriber's track ends."""
        self._clear()
        self._put(None)
