"""A simulcast layer's bookkeeping in C (server/media/_rtp_receive.c) does what the
Python it replaced did with aiortc's own classes, packet for packet, for any order of
arrival: losses, reordering, duplicates, sequence numbers wrapping, a sender restarting
far back or jumping far ahead, a layer stalled at a loss that skips its gap.

The reference (`PythonLayer`) is that Python: aiortc's `NackGenerator`, a
`PromptVideoBuffer` of 512 packets adding by aiortc's `JitterBuffer.add`, `skip_gap_in`
(below: the gap skip repair.py had for a single stream), and the stall rule
`LayeredVideoBuffer` had."""

from __future__ import annotations

import fractions
import itertools
import sys
import time
from typing import Any

import av
import pytest
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcrtpreceiver import NackGenerator, StreamStatistics
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add
from hypothesis import example, given, settings
from hypothesis import strategies as st

from server.media._rtp_receive import CAPACITY, QUIET_S, STALL_S, LayerBuffer
from server.media.aiortc_internals import PromptVideoBuffer
from server.media.rtp_output import Packetized

Arrival = tuple[int, int, bool, float]  # seq, timestamp, marker, seconds since the last


def skip_gap_in(jitter: JitterBuffer, nack: NackGenerator) -> list[int]:
    """Drop the packets before the first whole frame after the buffer's first gap (one
    that starts at a packet whose predecessor is present and of another frame); returns
    the sequence numbers dropped, none when there is no gap or no such frame yet."""
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


class PythonLayer:
    """What `LayeredVideoBuffer.add` did per layer before the C (the reference)."""

    def __init__(self, now: float) -> None:
        self.nack = NackGenerator()
        self.buffer = PromptVideoBuffer(CAPACITY, is_video=True)
        self.last_frame = now
        self.gap = False

    def add(self, packet: RtpPacket, now: float) -> tuple[Any, ...] | None:
        lost = sorted(self.nack.missing) if self.nack.add(packet) else None
        pli, frame = JitterBuffer.add(self.buffer, packet)
        self.gap |= pli  # frames were dropped (a restart, an overflow): none follows whole
        if frame is None:
            if now - self.last_frame > STALL_S and skip_gap_in(self.buffer, self.nack):
                self.last_frame = now
                self.gap = True
                return True, lost, None, None, None, False, 0, 0
            return None if not pli and lost is None else (pli, lost, None, None, None, False, 0, 0)
        self.last_frame = now
        after_gap, self.gap = self.gap, False
        return pli, lost, frame.data, frame.parts, frame.timestamp, after_gap, 0, 0


@st.composite
def arrivals(draw: st.DrawFn) -> list[Arrival]:
    """Packets as they arrive: mostly in order, frames of one to five packets, steps back
    and forth of any size, and now and then a pause longer than the stall limit."""
    seq = draw(st.integers(0, 0xFFFF))
    timestamp = draw(st.integers(0, 0xFFFFFFFF))
    out = []
    for step in draw(
        st.lists(
            st.one_of(
                st.just(1),
                st.just(1),
                st.just(1),
                st.integers(-20, 20),  # reordered, duplicated, a few lost
                st.integers(2, 4),  # a loss
                # at the edges: misordered by 100 (aiortc's limit), the NACK history (128),
                # the buffer's size (512)
                st.sampled_from([-101, -100, -99, 127, 128, 129, 130, 511, 512, 513]),
                st.integers(-0xFFFF, 0xFFFF),  # a restart, a jump, a wrap
            ),
            min_size=1,
            max_size=600,
        )
    ):
        seq = (seq + step) & 0xFFFF
        end_of_frame = draw(st.integers(0, 4)) == 0
        pause = draw(st.sampled_from([0.0, 0.0, 0.0, 0.01, 0.3, STALL_S + 0.01]))
        out.append((seq, timestamp, end_of_frame, pause))
        if end_of_frame:
            timestamp = (timestamp + 3000) & 0xFFFFFFFF
    return out


def rtp(seq: int, timestamp: int, marker: bool) -> RtpPacket:
    packet = RtpPacket(payload_type=96, sequence_number=seq, timestamp=timestamp, marker=marker)
    packet._data = seq.to_bytes(2, "big")  # type: ignore[attr-defined]
    return packet


def state(c: LayerBuffer, python: PythonLayer) -> tuple[Any, Any]:
    buffer = python.buffer
    held = sum(p is not None for p in buffer._packets)
    return (
        (c.missing, c.max_seq, c.origin, c.held),
        (sorted(python.nack.missing), python.nack.max_seq, buffer._origin, held),
    )


def run_both(packets: list[Arrival]) -> int:
    """Feed both; every result and the state after every packet must match. Returns
    the frames released."""
    now = 1000.0
    c, python = LayerBuffer(now), PythonLayer(now)
    frames = 0
    for seq, timestamp, marker, pause in packets:
        now += pause
        packet = rtp(seq, timestamp, marker)
        ours = c.add(seq, timestamp, marker, packet._data, now)  # type: ignore[attr-defined]
        theirs = python.add(packet, now)
        assert ours == theirs, (seq, timestamp, marker)
        mine, reference = state(c, python)
        assert mine == reference
        frames += ours is not None and ours[2] is not None
    return frames


@settings(max_examples=400, deadline=None)
@given(arrivals())
@example([(1, 0, True, 0.0), (3, 3000, True, 0.0), (518, 6000, True, 0.0)])  # overflow
@example(  # a loss, a stall, the gap skipped to the next whole frame
    [(1, 0, True, 0.0), (3, 3000, False, 0.0), (4, 6000, True, 0.0), (5, 9000, True, 0.6)]
)
@example([(65534, 0, False, 0.0), (65535, 0, False, 0.0), (0, 0, True, 0.0)])  # a wrap
def test_the_layer_buffer_does_what_aiortcs_classes_did(packets: list[Arrival]) -> None:
    run_both(packets)


def test_a_clean_stream_gives_every_frame_whole_at_its_last_packet() -> None:
    layer = LayerBuffer(0.0)
    released = []
    for frame in range(200):
        for i in range(3):
            seq = (65000 + frame * 3 + i) & 0xFFFF
            result = layer.add(seq, frame * 3000, i == 2, bytes([frame % 256, i]), 0.0)
            if i < 2:
                assert result is None  # nothing to do until the marker packet
            else:
                assert result is not None
                released.append(result)
    assert [r[2] for r in released] == [
        bytes([f % 256, 0, f % 256, 1, f % 256, 2]) for f in range(200)
    ]
    assert all(r[0] is False and r[1] is None and r[5] is False for r in released)
    assert layer.missing == [] and layer.held == 0


def test_a_lost_packet_is_nacked_then_its_resend_completes_the_frame() -> None:
    layer = LayerBuffer(0.0)
    assert layer.add(10, 0, False, b"a", 0.0) is None
    assert layer.add(12, 0, True, b"c", 0.0) == (False, [11], None, None, None, False, 0, 0)
    assert layer.missing == [11]
    assert layer.add(11, 0, False, b"b", 0.1) == (
        False,
        None,
        b"abc",
        [b"a", b"b", b"c"],
        0,
        False,
        0,
        0,
    )
    assert layer.missing == [] and layer.held == 0


def test_a_layer_stuck_at_a_loss_skips_to_the_next_whole_frame_and_asks_for_a_keyframe() -> None:
    layer = LayerBuffer(0.0)
    layer.add(1, 0, True, b"0", 0.0)  # a frame out
    layer.add(3, 3000, True, b"lost before me", 0.1)  # 2 lost for good
    layer.add(4, 6000, False, b"x", 0.2)
    assert layer.add(5, 6000, True, b"y", 0.4) is None  # within the limit: waits
    assert layer.missing == [2]
    skipped = layer.add(6, 9000, True, b"z", 0.7)  # 0.7 s since the last frame
    assert skipped == (True, None, None, None, None, False, 0, 0)  # a PLI, no frame yet
    assert layer.missing == [] and layer.origin == 4
    frame = layer.add(7, 12000, True, b"w", 0.71)
    assert frame is not None and frame[2] == b"xy" and frame[5] is True  # after the gap


KEY, DELTA = b"\x10\x02\x00key", b"\x11\x02\x00delta"  # VP8: bit 0 clear on a keyframe


def test_a_quiet_layer_hands_on_keyframes_and_a_frame_each_quiet_interval_with_the_rest_counted() -> (
    None
):
    """Nobody takes the layer's frames: at 30 frames a second it hands on every keyframe
    and one frame each `QUIET_S`, each carrying the count and bytes of the frames kept back
    before it; loud again, it hands on every frame, the first with what was kept back."""
    layer = LayerBuffer(0.0)
    layer.quiet = True
    handed: list[tuple[float, bytes, int, int]] = []
    sent_bytes = 0
    for frame in range(90):  # three seconds
        now = frame / 30
        if frame == 60:
            layer.quiet = False
        payload = KEY if frame % 45 == 7 else DELTA + bytes(frame % 5)
        sent_bytes += len(payload)
        result = layer.add(frame, frame * 3000, True, payload, now)
        if result is None:
            continue
        assert result[:2] == (False, None) and result[5] is False  # no loss, no gap
        handed.append((now, result[2], result[6], result[7]))
    quiet = [h for h in handed if h[0] < 2.0]
    assert [h[0] for h in quiet if h[1] == KEY] == [7 / 30, 52 / 30]  # each at once
    assert quiet[0][0] == 0.0  # the first frame too
    for before, this in itertools.pairwise(quiet):  # the others: the first due after QUIET_S
        if this[1] != KEY:
            assert QUIET_S <= this[0] - before[0] < QUIET_S + 1 / 30
    assert len(quiet) < 60 / 4
    assert [h[0] for h in handed if h[0] >= 2.0] == [f / 30 for f in range(60, 90)]  # all
    # nothing lost from the counts: every frame is handed on or counted in one that is
    assert sum(1 + h[2] for h in handed) == 90
    assert sum(len(h[1]) + h[3] for h in handed) == sent_bytes
    assert layer.held_frames == 0


def test_a_quiet_layer_still_nacks_and_hands_on_the_frame_after_a_gap() -> None:
    layer = LayerBuffer(0.0)
    layer.quiet = True
    assert layer.add(1, 0, True, DELTA, 0.0) is not None  # the first: handed on
    assert layer.add(2, 3000, True, DELTA, 0.01) is None  # kept back, counted
    assert layer.held_frames == 1
    assert layer.add(4, 6000, True, DELTA, 0.02) == (False, [3], None, None, None, False, 0, 0)
    layer.add(5, 9000, True, DELTA, 0.03)  # waits behind 3
    skipped = layer.add(6, 12000, True, DELTA, 0.6)  # stalled past STALL_S: a PLI
    assert skipped is not None and skipped[0] is True
    after = layer.add(7, 15000, True, DELTA, 0.61)  # within QUIET_S, and yet handed on
    assert after is not None and after[2] == DELTA and after[5] is True
    assert after[6] == 1  # with the one kept back before


@pytest.mark.parametrize("size", [0, 1, 1295, 1296, 1297, 2592, 5000])
def test_packetize_makes_aiortcs_vp8_payloads_with_the_picture_id_running_on(size: int) -> None:
    layer = LayerBuffer(0.0)
    encoder = Vp8Encoder()
    data = bytes(i % 251 for i in range(size))
    for _ in range(3):
        encoder.picture_id = layer.picture_id
        packet = av.Packet(data)
        packet.pts, packet.time_base = 0, fractions.Fraction(1, 90000)
        assert layer.packetize(data) == encoder.pack(packet)[0]
        assert layer.picture_id == encoder.picture_id  # moved on as aiortc's
    with pytest.raises(TypeError):
        layer.packetize(bytearray(data))  # type: ignore[arg-type]


def test_the_picture_id_wraps_at_15_bits() -> None:
    layer = LayerBuffer(0.0)
    seen = {layer.picture_id}
    for _ in range(32768):
        layer.packetize(DELTA)
        seen.add(layer.picture_id)
    assert seen == set(range(32768))


class Sender:
    """`_rtp_send.fan_out`'s stand-in: records what goes to which streams and answers
    which of them sent nothing (`unsent`)."""

    def __init__(self) -> None:
        self.sent: list[tuple[list[object], Packetized]] = []
        self.unsent: list[int] = []

    def __call__(self, streams: list[object], frame: Packetized) -> list[int]:
        self.sent.append((list(streams), frame))
        return list(self.unsent)


def test_a_forwarding_layer_sends_every_frame_and_hands_on_what_a_quiet_one_would() -> None:
    """Every subscriber taking the layer is steady on it: each frame, packetized with the
    layer's picture id, goes to their streams from the buffer; the publication gets only
    keyframes, a frame each `QUIET_S` (carrying what it sent), the frame after a gap, and
    any frame a stream could not send, each counted as a quiet layer counts."""
    layer = LayerBuffer(0.0)
    sender = Sender()
    streams = [object(), object()]
    layer.forward(streams, sender, Packetized)
    assert layer.forwarding
    handed: list[tuple[float, Any, int]] = []
    ids = []
    for frame in range(60):  # two seconds
        now = frame / 30
        payload = KEY if frame == 7 else DELTA + bytes(frame % 5)
        ids.append(layer.picture_id)
        sender.unsent = [1] if frame == 40 else []  # bo's wire changed: his stream sent nothing
        result = layer.add(frame, frame * 3000, True, payload, now)
        sent_streams, sent = sender.sent[-1]
        assert sent_streams == streams and sent.timestamp == frame * 3000
        assert sent.payloads == [bytes([0x90, 0x80, 0x80 | ids[-1] >> 8, ids[-1] & 0xFF]) + payload]
        if result is not None:
            assert layer.sent is not None and layer.sent[0] is sent
            assert layer.sent[1] == sender.unsent
            handed.append((now, result[2], result[6]))
    assert len(sender.sent) == 60  # every frame went out
    assert [i - ids[0] for i in ids] == list(range(60))  # one picture id after another
    assert [h[0] for h in handed if h[1] == KEY] == [7 / 30]
    assert 40 / 30 in [h[0] for h in handed]  # a stream sent nothing: the publication offers
    assert len(handed) <= 60 / 4
    assert sum(1 + h[2] for h in handed) + layer.held_frames == 60  # all counted
    assert layer.fanned == 2 * 60 - 1
    # forwarding stops: every frame is handed on, sent by nobody here
    layer.forward(None)
    assert not layer.forwarding
    assert layer.add(60, 180000, True, DELTA, 2.0) is not None
    assert layer.sent is None and len(sender.sent) == 60


@pytest.mark.parametrize(
    "args",
    [
        ((object(),), Sender(), Packetized),  # not a list
        ([object()], "not callable", Packetized),
        ([object()], Sender()),
        (),
    ],
)
def test_bad_forward_raises_and_changes_nothing(args: tuple[Any, ...]) -> None:
    layer = LayerBuffer(0.0)
    with pytest.raises(TypeError):
        layer.forward(*args)
    assert not layer.forwarding
    sender = Sender()
    layer.forward([object()], sender, Packetized)
    with pytest.raises(TypeError):
        layer.forward(*args)
    assert layer.forwarding  # as it was
    layer.add(1, 0, True, DELTA, 0.0)
    assert len(sender.sent) == 1


def refuse(streams: list[object], frame: Packetized) -> list[int]:
    raise ValueError("a stream's wire is gone")


@pytest.mark.parametrize("send", [lambda streams, frame: None, refuse])
def test_a_send_that_fails_is_reported_and_the_frame_goes_on_after_a_gap(
    send: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some streams may have had it: the frame goes to the publication as one after a
    gap (its subscribers start again at a keyframe), and the error is reported, not
    raised into the receive path."""
    reported: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    layer = LayerBuffer(0.0)
    layer.forward([object()], send, Packetized)
    out = layer.add(1, 0, True, DELTA, 0.0)
    assert out is not None and out[2] == DELTA and out[5] is True  # after a gap
    assert layer.sent is None and len(reported) == 1
    assert reported[0].exc_type in (TypeError, ValueError)


def test_the_frame_after_a_gap_and_padding_are_left_to_the_publication() -> None:
    """A forwarding layer does not send the frame after a gap (the publication first
    makes its subscribers wait for a keyframe) nor a frame of padding only (no picture:
    it takes no picture id)."""
    layer = LayerBuffer(0.0)
    sender = Sender()
    layer.forward([object()], sender, Packetized)
    layer.add(1, 0, True, KEY, 0.0)
    layer.add(2, 3000, True, DELTA, 0.01)
    assert len(sender.sent) == 2
    picture = layer.picture_id
    layer.add(4, 6000, True, DELTA, 0.02)  # 3 lost: waits
    skipped = layer.add(5, 9000, True, DELTA, 0.6)  # stalled: the gap is skipped, a PLI
    assert skipped is not None and skipped[0] is True
    after = layer.add(6, 12000, True, DELTA, 0.61)
    assert after is not None and after[5] is True and after[2] == DELTA
    assert layer.sent is None  # not sent from here
    assert after[4] not in {frame.timestamp for _, frame in sender.sent}
    layer.add(7, 15000, True, DELTA, 0.62)
    assert sender.sent[-1][1].timestamp == after[4] + 3000  # the next one is again

    padded = LayerBuffer(0.0)
    padded.forward([object()], sender, Packetized)
    padded.add(1, 0, True, KEY, 0.0)
    sent, picture = len(sender.sent), padded.picture_id
    out = padded.add(2, 3000, True, b"", 0.01)  # a probe's padding only
    assert out is not None and out[2] == b"" and padded.sent is None
    assert len(sender.sent) == sent and padded.picture_id == picture


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((65536, 0, True, b"", 0.0), ValueError),
        ((-1, 0, True, b"", 0.0), ValueError),
        ((1, 1 << 32, True, b"", 0.0), ValueError),
        ((1, -1, True, b"", 0.0), ValueError),
        (("1", 0, True, b"", 0.0), TypeError),
        ((1, 0, True, bytearray(b"x"), 0.0), TypeError),
        ((1, 0, True, "x", 0.0), TypeError),
        ((1, 0, True, b"", "now"), TypeError),
        ((1, 0, True, b""), TypeError),
    ],
)
def test_bad_input_raises_and_changes_nothing(args: tuple[Any, ...], error: type) -> None:
    layer = LayerBuffer(0.0)
    layer.add(5, 0, False, b"kept", 0.0)
    before = (layer.missing, layer.max_seq, layer.origin, layer.held)
    with pytest.raises(error):
        layer.add(*args)
    assert (layer.missing, layer.max_seq, layer.origin, layer.held) == before


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((65536, 1, 0.0), ValueError),
        ((9, -1, 0.0), ValueError),
        ((9, 1 << 20, 0.0), ValueError),  # longer than any datagram
        (("9", 1, 0.0), TypeError),
        ((9, 1, "now"), TypeError),
        ((9, 1), TypeError),
    ],
)
def test_bad_audio_input_raises_and_changes_nothing(args: tuple[Any, ...], error: type) -> None:
    stream = LayerBuffer(0.0)
    stream.quiet = True
    assert stream.audio(5, 10, 0.0) == (0, 0)
    assert stream.audio(6, 10, 0.1) is None  # kept back: counted
    with pytest.raises(error):
        stream.audio(*args)
    assert (stream.max_seq, stream.held_frames) == (6, 1)
    assert stream.audio(7, 10, 0.3) == (1, 10)  # due: with the one kept back


def test_payloads_held_are_released_when_the_layer_goes() -> None:
    payload = bytes(range(200)) * 3  # one object, counted
    base = sys.getrefcount(payload)
    layer = LayerBuffer(0.0)
    for seq in range(0, 40, 2):  # every other packet lost: all held
        layer.add(seq, 0, False, payload, 0.0)
    assert sys.getrefcount(payload) == base + 20
    del layer
    assert sys.getrefcount(payload) == base


@settings(max_examples=200, deadline=None)
@given(arrivals(), st.lists(st.integers(0, 50_000), min_size=600, max_size=600))
def test_the_statistics_count_as_aiortcs_do(packets: list[Arrival], gaps_us: list[int]) -> None:
    layer, theirs = LayerBuffer(0.0), StreamStatistics(90_000)
    now = [1_700_000_000.0]
    with pytest.MonkeyPatch.context() as patch:  # the arrival aiortc reads, given to ours
        patch.setattr(time, "time", lambda: now[0])
        for (seq, timestamp, marker, _), gap in zip(packets, gaps_us, strict=False):
            now[0] += gap / 1e6
            theirs.add(rtp(seq, timestamp, marker))
            layer.count(seq, timestamp, int(now[0] * 90_000))
            assert (
                layer.base_seq,
                layer.stats_max_seq,
                layer.cycles,
                layer.packets_received,
                layer.jitter_q4,
                layer.last_arrival,
                layer.last_timestamp,
            ) == (
                theirs.base_seq,
                theirs.max_seq,
                theirs.cycles,
                theirs.packets_received,
                theirs._jitter_q4,
                theirs._last_arrival,
                theirs._last_timestamp,
            )


def test_statistics_taken_over_count_on_and_bad_ones_change_nothing() -> None:
    layer = LayerBuffer(0.0)
    layer.take_statistics(65530, 65535, 1 << 16, 70, 48, 12345, 9000)
    layer.count(2, 12000, 12400)  # in order across the wrap
    assert (layer.base_seq, layer.stats_max_seq, layer.cycles, layer.packets_received) == (
        65530,
        2,
        2 << 16,
        71,
    )
    before = (layer.base_seq, layer.stats_max_seq, layer.cycles, layer.packets_received)
    for bad in [
        (65536, 2, 0, 0, 0, None, None),
        (1, 2, -1, 0, 0, None, None),
        (1, 2, 0, 0, 0, None, 1 << 32),
        ("1", 2, 0, 0, 0, None, None),
    ]:
        with pytest.raises((ValueError, TypeError)):
            layer.take_statistics(*bad)
    assert (layer.base_seq, layer.stats_max_seq, layer.cycles, layer.packets_received) == before
