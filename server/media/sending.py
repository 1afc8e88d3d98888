"""How a forwarded track's frames reach its subscriber: chosen once, at negotiation.

`Sfu._on_negotiated` gives each `ForwardedTrack` (forwarding.py) one of these, as
mediasoup has one consumer class per way of forwarding and LiveKit a down track beside
its forwarder. The track itself exists before (aiortc's sender needs it in the offer,
before the codec is known); it gates frames (enabled, keyframes, simulcast layer) and
hands the ones to send here.

- `DirectSend`: the publisher's codec (always so for VP9 and AV1, which the SFU cannot
  transcode: forward_only.py). Each frame goes out at once as RTP through an
  `RtpOutput`; aiortc's sender waits in `recv()` and never gets one.
- `QueuedSend`: no codec in common. Frames queue (a bounded deque, one waiting future)
  for aiortc's sender, decoded by a `Transcoder` (transcode.py) that it encodes again;
  with no codec negotiated at all, the packets go to it as they are.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections import deque
from typing import Any

import av

from server.media.metrics import MediaMetrics
from server.media.rtp_output import Delivery, Packetized, RtpOutput
from server.media.transcode import Transcoder

# Frames counted before the shared Prometheus counter is told (its `inc` takes a lock and
# two calls: ~0.7 µs, as much as a header, once per frame per subscriber).
METRIC_BATCH = 32
VIDEO_QUEUE_FRAMES = 30  # about 1 s at 30 fps
AUDIO_QUEUE_FRAMES = 50  # 1 s of 20 ms Opus frames


class Sending(ABC):
    """What both ways share: the counts of frames sent and lost."""

    output: RtpOutput | None = None
    transcoder: Transcoder | None = None

    def __init__(self, kind: str, metrics: MediaMetrics) -> None:
        self.kind = kind
        self._frames = 0
        self.dropped = 0
        self._uncounted = 0  # frames sent but not yet added to the forwarded-frames metric
        self._forwarded = metrics.forwarded_frames.labels(kind)
        self._dropped = metrics.dropped_frames.labels(kind)

    @abstractmethod
    def send(self, packet: av.Packet | None, packetized: Packetized | None) -> Delivery:
        """Send (or queue) one frame (`packet` is None when no queued sending needs one).
        STALLED: it was lost (and any queued with it), video resumes at a keyframe;
        DOWN: not connected, resume at a keyframe."""

    def clear(self) -> None:
        """Forget the frames not sent yet (the subscriber stopped receiving video); direct
        sending queues nothing, so by default there is nothing to forget."""
        return None

    @abstractmethod
    async def recv(self) -> Any:
        """The next item for aiortc's sender, or None once the track ended."""

    @abstractmethod
    def end(self) -> None:
        """No more frames: `recv` returns None."""

    @property
    def frames_out(self) -> int:
        """Frames sent (or handed to aiortc's sender)."""
        return self._frames

    def _sent(self, count: int = 1) -> None:
        self._frames += count
        self._uncounted += count
        if self._uncounted >= METRIC_BATCH:
            self.flush_metrics()

    def flush_metrics(self) -> None:
        """Add the frames sent since the last flush to the forwarded-frames metric (done
        every `METRIC_BATCH` frames and when the track ends)."""
        if self._uncounted:
            self._forwarded.inc(self._uncounted)
            self._uncounted = 0

    def _lost(self, count: int) -> None:
        self.dropped += count
        self._dropped.inc(count)


class DirectSend(Sending):
    """Frames sent at once as RTP, in the subscriber's own headers (rtp_output.py)."""

    def __init__(self, kind: str, metrics: MediaMetrics, output: RtpOutput) -> None:
        super().__init__(kind, metrics)
        self.output = self._output = output
        self._ended = asyncio.Event()

    def send(self, packet: av.Packet | None, packetized: Packetized | None) -> Delivery:
        if packetized is None:  # the publication packetizes whenever one is direct
            return Delivery.SENT
        delivery = self._output.send(packetized)
        if delivery is Delivery.SENT:
            self._sent()  # (frames_out reads the output's count: this counts the metric)
        elif delivery is Delivery.STALLED:
            self._lost(1)
        return delivery

    @property
    def frames_out(self) -> int:
        """Frames sent, here or by the publication's `fan_out` (which counts them in the
        forwarded-frames metric itself)."""
        return self._output.frames

    def clear(self) -> None:
        """Nothing sent so far is resent: a subscriber that stopped receiving the video
        (paused for its link, or it chose audio only) kept NACKing the packets it missed
        before, and a resend room that the pause left empty sent them all again."""
        self._output.forget_sent()

    async def recv(self) -> Any:
        await self._ended.wait()
        return None

    def end(self) -> None:
        self.flush_metrics()
        self._ended.set()


class QueuedSend(Sending):
    """Frames queued for aiortc's sender: decoded by `transcoder`, or as they are."""

    def __init__(
        self, kind: str, metrics: MediaMetrics, transcoder: Transcoder | None = None
    ) -> None:
        super().__init__(kind, metrics)
        self.transcoder = transcoder
        self._transcoded = metrics.transcoded_frames.labels(kind)
        self._capacity = VIDEO_QUEUE_FRAMES if kind == "video" else AUDIO_QUEUE_FRAMES
        self._queue: deque[av.Packet | None] = deque()
        self._waiter: asyncio.Future[None] | None = None  # the sender waiting in recv()
        self._pending: list[Any] = []

    def send(self, packet: av.Packet | None, packetized: Packetized | None) -> Delivery:
        if packet is None:  # the publication makes one whenever a subscriber queues
            return Delivery.SENT
        if len(self._queue) < self._capacity:
            self._put(packet)
        elif self.kind == "video":  # a delta frame after a gap is undecodable
            self._lost(self._clear() + 1)
            return Delivery.STALLED
        else:
            self._queue.popleft()
            self._put(packet)
            self._lost(1)
        return Delivery.SENT

    def clear(self) -> None:
        self._clear()

    def _clear(self) -> int:
        count = len(self._queue)
        self._queue.clear()
        return count

    def _put(self, item: av.Packet | None) -> None:
        self._queue.append(item)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def recv(self) -> Any:
        while True:
            if self._pending:
                return self._pending.pop(0)
            if not self._queue:
                self._waiter = asyncio.get_running_loop().create_future()
                await self._waiter
                continue
            packet = self._queue.popleft()
            if packet is None or self.transcoder is None:
                if packet is not None:
                    self._sent()
                return packet
            frames = await self.transcoder.decode(packet)
            self._frames += len(frames)
            self._transcoded.inc(len(frames))
            self._pending.extend(frames)

    def end(self) -> None:
        self.flush_metrics()
        self._clear()
        self._put(None)
