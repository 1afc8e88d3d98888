"""The SFU's receivers release media as soon as it is whole (aiortc_internals/receive.py):
aiortc's own buffers hold a video frame until the next frame begins and four audio
packets (80 ms) before anything goes on."""

from __future__ import annotations

from typing import Any

from aiortc.jitterbuffer import JitterFrame
from aiortc.rtp import RtpPacket
from hypothesis import given, settings
from hypothesis import strategies as st

from server.media.aiortc_internals import AudioPassThrough, PromptVideoBuffer


def packet(seq: int, timestamp: int, data: bytes, marker: bool = False) -> RtpPacket:
    p = RtpPacket(payload_type=96, sequence_number=seq, timestamp=timestamp, marker=int(marker))
    p._data = data  # type: ignore[attr-defined]  # what aiortc's depayloader sets
    return p


def test_a_video_frame_goes_when_its_marker_packet_is_in() -> None:
    buffer = PromptVideoBuffer(capacity=512, is_video=True)
    assert buffer.add(packet(100, 3000, b"a"))[1] is None
    assert buffer.add(packet(101, 3000, b"b"))[1] is None
    frame = buffer.add(packet(102, 3000, b"c", marker=True))[1]
    assert frame is not None and (frame.data, frame.timestamp) == (b"abc", 3000)
    # The next frame starts clean at the packet after the marker.
    frame = buffer.add(packet(103, 6000, b"d", marker=True))[1]
    assert frame is not None and (frame.data, frame.timestamp) == (b"d", 6000)


def test_a_video_frame_waits_for_a_missing_packet_and_goes_when_it_arrives() -> None:
    buffer = PromptVideoBuffer(capacity=512, is_video=True)
    assert buffer.add(packet(10, 3000, b"a"))[1] is None
    assert buffer.add(packet(12, 3000, b"c", marker=True))[1] is None  # 11 is missing
    frame = buffer.add(packet(11, 3000, b"b"))[1]  # the retransmission
    assert frame is not None and frame.data == b"abc"


def test_a_video_frame_whose_marker_was_lost_goes_when_the_next_frame_begins() -> None:
    buffer = PromptVideoBuffer(capacity=512, is_video=True)
    assert buffer.add(packet(10, 3000, b"a"))[1] is None
    frame = buffer.add(packet(11, 6000, b"b"))[1]
    assert frame is not None and (frame.data, frame.timestamp) == (b"a", 3000)


def test_audio_packets_go_as_they_arrive_and_old_ones_are_dropped() -> None:
    buffer = AudioPassThrough()
    released = [buffer.add(packet(seq, seq * 960, bytes([seq]))) for seq in (1, 2, 4)]
    assert [frame.data for _, frame in released if frame] == [b"\x01", b"\x02", b"\x04"]
    assert buffer.add(packet(3, 3 * 960, b"\x03"))[1] is None  # late: older than the newest
    assert buffer.add(packet(4, 4 * 960, b"\x04"))[1] is None  # duplicate
    wrapped = buffer.add(packet(5, 5 * 960, b"\x05"))[1]
    assert wrapped is not None
    buffer = AudioPassThrough()
    buffer.add(packet(65535, 0, b"x"))
    assert buffer.add(packet(0, 960, b"y"))[1] is not None  # across the wrap


def test_a_new_audio_stream_starts_afresh_and_the_oldest_of_too_many_is_forgotten() -> None:
    routed: list[int] = []
    buffer = AudioPassThrough(lambda ssrc, payload_type, stream: routed.append(ssrc))

    def add(ssrc: int, seq: int) -> bool:
        p = packet(seq, seq * 960, b"x")
        p.ssrc = ssrc
        return buffer.add(p)[1] is not None

    assert add(1, 40000) and add(1, 40001)
    assert add(2, 7)  # the publisher restarted its sender: numbers far behind are new
    assert not add(1, 40001) and add(1, 40002)  # each stream keeps its own newest
    for ssrc in range(3, 3 + AudioPassThrough.STREAMS - 1):
        assert add(ssrc, 0)
    assert routed == [1, 2, *range(3, 3 + AudioPassThrough.STREAMS - 1)]  # each once
    assert 1 not in buffer.streams and len(buffer.streams) == AudioPassThrough.STREAMS
    assert add(1, 40001) and routed[-1] == 1  # forgotten: starts afresh, routed again


class ScanningVideoBuffer(PromptVideoBuffer):
    """The prompt buffer without its shortcut: it scans from the first packet at every
    packet added (what the cheaper `_remove_frame` must release identically)."""

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        return self._release_first()


@st.composite
def arrivals(draw: Any) -> list[RtpPacket]:
    """Frames of 1-5 packets (a few with their marker lost), from a sequence number near
    the 16-bit wrap, arriving shuffled a little, with some lost, some repeated."""
    seq = draw(st.integers(65500, 65535))
    packets = []
    for frame in range(draw(st.integers(1, 25))):
        count = draw(st.integers(1, 5))
        marker_lost = draw(st.booleans()) and draw(st.booleans())
        for i in range(count):
            last = i == count - 1 and not marker_lost
            packets.append(packet(seq, frame * 3000, bytes([frame, i]), last))
            seq = (seq + 1) & 0xFFFF
    order = []
    for p in packets:
        fate = draw(st.sampled_from(["in", "in", "in", "in", "lost", "late", "twice"]))
        if fate != "lost":
            order.append(p)
        if fate == "twice":
            order.append(p)
        if fate == "late" and len(order) > 1:
            order[-1], order[-2] = order[-2], order[-1]
    return order


@settings(max_examples=80, deadline=None)
@given(arrivals())
def test_the_prompt_video_buffer_releases_what_a_full_scan_would(order: list[RtpPacket]) -> None:
    quick, scanning = PromptVideoBuffer(64, is_video=True), ScanningVideoBuffer(64, is_video=True)
    for p in order:
        (_, got), (_, want) = quick.add(p), scanning.add(p)
        assert (got and (got.timestamp, got.data)) == (want and (want.timestamp, want.data))
