"""Receiving encoded frames instead of decoded ones (internals 1, 2, 8).

1. `RTCRtpReceiver._RTCRtpReceiver__decoder_queue`: the `queue.Queue` that
   `_handle_rtp_packet` fills with `(codec, JitterFrame)` once the jitter buffer has
   a complete, depayloaded frame, and that `decoder_worker` (a thread started by
   `receive()`) drains. Replacing it before `receive()` hands us every encoded frame
   on the event loop, with no decoder thread hop; `None` still ends the worker.
2. `aiortc.jitterbuffer.JitterFrame` (`data`, `timestamp`): the frame handed over.
8. `RTCRtpReceiver._RTCRtpReceiver__jitter_buffer` (a `JitterBuffer`: `_origin`,
   `_packets`, `_capacity`, `remove(count)`; each packet's `timestamp` and depayloaded
   `_data`). A video buffer holds 512 packets and waits at a missing one until 512
   newer ones arrive (~10 s at 500 kbit/s) (the SFU's video receivers have a layer
   buffer instead: simulcast_receive.py's `tap_video`, which skips such a gap). aiortc's buffers also release a video frame
   only when the *next* frame's first packet arrives (a frame interval late) and hold
   four audio packets (80 ms): `tap_encoded_frames` swaps in `PromptVideoBuffer`
   (a frame goes as soon as its marker-bit packet is in; `JitterBuffer.add` ends in
   `self._remove_frame(...)`, which it overrides) and `AudioPassThrough` (each audio
   packet goes as it arrives; nothing reads an audio buffer's other internals; each
   audio stream's packets are then taken from the datagram in C: direct_receive.py's
   `route_fast`). It
   hands on each packet's RFC 6464 level too (the parsed
   `RtpPacket.extensions.audio_level`, `(voice, level)`), as a `LeveledFrame`, so the
   SFU forwards it and finds the active speaker (speakers.py).

`problems()` lists what of these is missing or changed (run by `check()` in
__init__.py).
"""

from __future__ import annotations

import functools
import inspect
import queue
import time
from collections.abc import Callable
from typing import Any

import aiortc
import aiortc.rtp
from aiortc import RTCRtpReceiver
from aiortc import codecs as _codecs_module
from aiortc import rtcrtpreceiver as _receiver_module
from aiortc.jitterbuffer import MAX_MISORDER, JitterBuffer, JitterFrame
from aiortc.rtcrtpreceiver import NackGenerator

from server.media._rtp_receive import LayerBuffer
from server.media.aiortc_internals.base import (
    JITTER_ATTR,
    NACK_ATTR,
    QUEUE_ATTR,
    AiortcInternalsChanged,
    FrameSink,
    handle_rtp_source,
    needs,
    takes,
    unconnected,
)
from server.media.aiortc_internals.direct_receive import receive_directly, route_fast
from server.media.aiortc_internals.per_packet import FlatNackGenerator


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


NOTHING_HELD = (0, 0)


def frame_gate(frame: JitterFrame) -> LayerBuffer | None:
    """The C buffer a tapped frame came through (a video layer's, an audio stream's),
    whose `quiet` the publication sets while nobody takes its frames; None if none."""
    return getattr(frame, "gate", None)


def frame_held(frame: JitterFrame) -> tuple[int, int]:
    """The frames and bytes its quiet buffer kept back before this frame: counted, not
    handed on (`LayerBuffer.quiet`)."""
    return getattr(frame, "held", NOTHING_HELD)


class PromptVideoBuffer(JitterBuffer):
    """A video jitter buffer that releases a frame as soon as it is whole: its packets
    are all in up to the one with the RTP marker bit (the last of a frame), or the
    next frame has begun.

    `add` is aiortc's `JitterBuffer.add` with its `uint16_add` calls and `capacity`
    property written out (it runs for every video packet): the same slots, origin and
    PLI flag. (A simulcast layer's is in C: server/media/_layer_buffer.c.)"""

    def add(self, packet: Any) -> tuple[bool, JitterFrame | None]:
        seq = packet.sequence_number
        capacity = self._capacity
        origin = self._origin
        pli = False
        if origin is None:
            self._origin = seq
        else:
            delta = (seq - origin) & 0xFFFF
            misorder = (origin - seq) & 0xFFFF
            if misorder < delta:  # older than the origin
                if misorder < MAX_MISORDER:
                    return False, None
                self.remove(capacity)  # far older: the sender restarted, start again
                self._origin = seq
                delta = 0
                pli = self._is_video
            if delta >= capacity:  # remove just enough frames to fit it
                if self.smart_remove(delta - capacity + 1):
                    self._origin = seq
                pli = self._is_video
        self._packets[seq % capacity] = packet
        return pli, self._remove_frame(seq)

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        slots: list[Any] = self._packets
        capacity = self._capacity
        added, first = slots[sequence_number % capacity], slots[self._origin % capacity]  # type: ignore[operator]
        if first is None:
            return None
        if (
            not added.marker
            and added.timestamp == first.timestamp
            and slots[(sequence_number + 1) % capacity] is None
        ):
            # The packet just added belongs to the first frame and has no successor
            # yet: that frame cannot be whole now. Most packets end here, so a frame
            # costs one scan (at its marker), not one per packet.
            return None
        return self._release_first()

    def _release_first(self) -> JitterFrame | None:
        """The first frame, removed from the buffer, if it is whole."""
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

    def __init__(
        self,
        data: bytes,
        timestamp: int,
        audio_level: int | None,
        gate: LayerBuffer | None = None,
        held: tuple[int, int] = NOTHING_HELD,
    ) -> None:
        super().__init__(data, timestamp)
        self.rtp_timestamp = timestamp  # as it came (`timestamp` is mapped on delivery)
        self.audio_level = audio_level
        self.gate = gate  # its stream's buffer (`frame_gate`)
        self.held = held  # `frame_held`


def audio_level(frame: JitterFrame) -> int | None:
    """The RFC 6464 byte of a tapped audio frame, or None."""
    return frame.audio_level if isinstance(frame, LeveledFrame) else None


class AudioPassThrough(JitterBuffer):
    """Audio packets go on as they arrive (each is a whole frame); duplicates and
    packets older than their stream's newest are dropped. The subscriber's own jitter
    buffer smooths the timing. Each stream's (SSRC's) newest is kept in a C
    `LayerBuffer`, which the fast path shares once the stream is routed
    (`on_stream(ssrc, payload type, buffer)`, called with a stream's first packet:
    `tap_encoded_frames` routes it). A new SSRC (the publisher restarted its sender)
    starts afresh; the `STREAMS` most recent are kept."""

    STREAMS = 16

    def __init__(self, on_stream: Callable[[int, int, LayerBuffer], object] | None = None) -> None:
        super().__init__(capacity=16)
        self.streams: dict[int, LayerBuffer] = {}
        self._on_stream = on_stream

    def add(self, packet: Any) -> tuple[bool, JitterFrame | None]:
        stream = self.streams.get(packet.ssrc)
        if stream is None:
            if len(self.streams) >= self.STREAMS:
                del self.streams[next(iter(self.streams))]
            stream = self.streams[packet.ssrc] = LayerBuffer(0.0)
            if self._on_stream is not None:
                self._on_stream(packet.ssrc, packet.payload_type, stream)
        data = packet._data
        held = stream.audio(packet.sequence_number, len(data), time.monotonic())
        if held is None:  # not the newest, or kept back (its stream quiet)
            return False, None
        level = packet.extensions.audio_level
        byte = None if level is None else (0x80 if level[0] else 0) | (level[1] & 0x7F)
        return False, LeveledFrame(data, packet.timestamp, byte, stream, held)


def tap_encoded_frames(receiver: RTCRtpReceiver, sink: FrameSink) -> None:
    """Deliver `receiver`'s depayloaded encoded frames to `sink`, each as soon as it is
    whole, instead of decoding them.

    Call before the receiver starts (in the `track` event); its track then never
    receives frames. Its packets are handled directly (direct_receive.py).
    """
    current = getattr(receiver, QUEUE_ATTR, None)
    jitter = getattr(receiver, JITTER_ATTR, None)
    if not isinstance(current, queue.Queue) or not isinstance(jitter, JitterBuffer):
        raise AiortcInternalsChanged(f"RTCRtpReceiver has no {QUEUE_ATTR} or {JITTER_ATTR}")
    setattr(receiver, QUEUE_ATTR, _TapQueue(sink))
    path = receive_directly(receiver, sink)
    if jitter._is_video:
        setattr(receiver, JITTER_ATTR, PromptVideoBuffer(jitter.capacity, is_video=True))
    else:  # each stream's packets then go from the datagram to the frame in C

        def on_audio(
            gate: LayerBuffer,  # the stream's buffer, as routed
            ssrc: int,
            payload_type: int,
            data: bytes,
            timestamp: int,
            level: Any,
            held_frames: int,
            held_bytes: int,
        ) -> None:
            frame = LeveledFrame(data, timestamp, level, gate, (held_frames, held_bytes))
            path.deliver(ssrc, payload_type, frame)

        def on_stream(ssrc: int, payload_type: int, buffer: LayerBuffer) -> None:
            route_fast(receiver, ssrc, payload_type, buffer, functools.partial(on_audio, buffer))

        setattr(receiver, JITTER_ATTR, AudioPassThrough(on_stream))
    if type(getattr(receiver, NACK_ATTR, None)) is NackGenerator:  # video, not started
        setattr(receiver, NACK_ATTR, FlatNackGenerator())


# What of aiortc's `JitterBuffer.add` `PromptVideoBuffer.add` writes out (and the C
# `LayerBuffer` mirrors: simulcast_receive.py checks it too)
JITTER_ADD_LINES = (
    "delta = uint16_add(packet.sequence_number, -self._origin)",
    "misorder = uint16_add(self._origin, -packet.sequence_number)",
    "if misorder < delta:",
    "if misorder >= MAX_MISORDER:",
    "self.remove(self.capacity)",
    "if delta >= self.capacity:",
    "excess = delta - self.capacity + 1",
    "if self.smart_remove(excess):",
    "pos = packet.sequence_number % self._capacity",
)


def problems() -> list[str]:
    found = []
    handle = handle_rtp_source()
    if "self.__decoder_queue.put((codec, encoded_frame))" not in handle:
        found.append(
            "RTCRtpReceiver._handle_rtp_packet no longer puts (codec, frame) on __decoder_queue"
        )
    receive = inspect.getsource(RTCRtpReceiver.receive)
    if "self.__decoder_queue" not in receive or "decoder_worker" not in receive:
        found.append("RTCRtpReceiver.receive no longer starts decoder_worker on __decoder_queue")
    worker = inspect.signature(_receiver_module.decoder_worker)
    if list(worker.parameters) != ["loop", "input_q", "output_q", "decode_error"]:
        found.append(f"decoder_worker signature changed: {worker}")
    if "task is None" not in inspect.getsource(_receiver_module.decoder_worker):
        found.append("decoder_worker no longer stops on None")
    if {"data", "timestamp"} - set(inspect.signature(JitterFrame).parameters):
        found.append("JitterFrame(data, timestamp) changed")
    if "values.audio_level = (" not in inspect.getsource(aiortc.rtp.HeaderExtensionsMap.get):
        found.append("RtpPacket.extensions.audio_level is no longer (voice, level)")
    add = inspect.getsource(JitterBuffer.add)
    if "return pli_flag, self._remove_frame(packet.sequence_number)" not in add:
        found.append("JitterBuffer.add no longer ends by releasing _remove_frame's frame")
    found += needs(add, "JitterBuffer.add", *JITTER_ADD_LINES)  # PromptVideoBuffer.add
    if not takes(JitterBuffer, "remove", "count"):  # PromptVideoBuffer's state and calls
        found.append("JitterBuffer.remove(count) is gone or changed")
    jitter = JitterBuffer(capacity=16, is_video=True)
    if (
        not isinstance(jitter._packets, list)
        or jitter._capacity != len(jitter._packets)
        or jitter._origin is not None
        or jitter._is_video is not True
    ):
        found.append("JitterBuffer._packets/_capacity/_origin/_is_video changed")
    if "self.__jitter_buffer.add(packet)" not in handle:
        found.append("RTCRtpReceiver no longer feeds packets to __jitter_buffer.add")
    frames = inspect.getsource(JitterBuffer._remove_frame)
    if "packet.timestamp != timestamp" not in frames or "x._data" not in frames:
        found.append("JitterBuffer no longer splits frames by RTP timestamp from ._data")
    if "return payload" not in inspect.getsource(_codecs_module.depayload):
        found.append("aiortc's depayload no longer leaves an unknown codec's payload alone")
    if "packet._data = depayload(codec, packet.payload)" not in handle:
        found.append("RTCRtpReceiver no longer keeps each packet's depayloaded ._data")
    with unconnected() as pc:
        receiver = pc.addTransceiver("audio").receiver
        if not isinstance(getattr(receiver, QUEUE_ATTR, None), queue.Queue):
            found.append(f"RTCRtpReceiver instances have no {QUEUE_ATTR} queue")
    return found
