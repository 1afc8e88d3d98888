"""The per-packet bookkeeping written out in one call (aiortc_internals/per_packet.py and
`PromptVideoBuffer.add`) keeps what aiortc's own methods keep, packet for packet, for any
order of arrival: losses, reordering, duplicates, sequence numbers wrapping, a sender
restarting far back or jumping far ahead."""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcrtpreceiver import NackGenerator, StreamStatistics
from aiortc.rtp import RtpPacket
from hypothesis import example, given, settings
from hypothesis import strategies as st

from server.media.aiortc_internals import PromptVideoBuffer
from server.media.aiortc_internals.per_packet import FlatNackGenerator, FlatStreamStatistics


@st.composite
def arrivals(draw: st.DrawFn) -> list[tuple[int, int, bool]]:
    """(seq, timestamp, marker) as they arrive: mostly in order, with frames of one to
    five packets, and steps back and forth of any size."""
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
                # at the edges: misordered by 100 (aiortc's limit), past a buffer's size
                st.sampled_from([-101, -100, -99, 15, 16, 17, 127, 128, 129, 511, 512, 513]),
                st.integers(-0xFFFF, 0xFFFF),  # a restart, a jump, a wrap
            ),
            min_size=1,
            max_size=600,
        )
    ):
        seq = (seq + step) & 0xFFFF
        end_of_frame = draw(st.integers(0, 4)) == 0
        out.append((seq, timestamp, end_of_frame))
        if end_of_frame:
            timestamp = (timestamp + 3000) & 0xFFFFFFFF
    return out


def rtp(seq: int, timestamp: int, marker: bool) -> RtpPacket:
    packet = RtpPacket(payload_type=96, sequence_number=seq, timestamp=timestamp, marker=marker)
    packet._data = seq.to_bytes(2, "big")  # type: ignore[attr-defined]
    return packet


@settings(max_examples=300, deadline=None)
@given(arrivals())
def test_the_nack_generator_keeps_what_aiortcs_keeps(packets: list[tuple[int, int, bool]]) -> None:
    ours, theirs = FlatNackGenerator(), NackGenerator()
    for seq, timestamp, marker in packets:
        packet = rtp(seq, timestamp, marker)
        assert ours.add(packet) == theirs.add(packet)
        assert (ours.max_seq, ours.missing) == (theirs.max_seq, theirs.missing)


@settings(max_examples=300, deadline=None)
@given(arrivals(), st.lists(st.integers(0, 50_000), min_size=600, max_size=600))
def test_the_stream_statistics_keep_what_aiortcs_keep(
    packets: list[tuple[int, int, bool]], gaps_us: list[int]
) -> None:
    ours, theirs = FlatStreamStatistics(90_000), StreamStatistics(90_000)
    now = [1_700_000_000.0]
    with pytest.MonkeyPatch.context() as patch:  # one clock for both: the jitter reads it
        patch.setattr(time, "time", lambda: now[0])
        for (seq, timestamp, marker), gap in zip(packets, gaps_us, strict=False):
            now[0] += gap / 1e6
            packet = rtp(seq, timestamp, marker)
            ours.add(packet)
            theirs.add(packet)
            assert vars(ours) == vars(theirs)
    assert (ours.packets_lost, ours.jitter, ours.fraction_lost) == (
        theirs.packets_lost,
        theirs.jitter,
        theirs.fraction_lost,
    )


def state(buffer: JitterBuffer) -> tuple[Any, ...]:
    return buffer._origin, [None if p is None else p.sequence_number for p in buffer._packets]


@settings(max_examples=300, deadline=None)
@given(arrivals(), st.sampled_from([16, 128, 512]))
@example([(1, 0, True), (3, 3000, True), (18, 6000, True)], 16)  # just past the end
@example([(1, 0, True), (2, 3000, True), (3, 6000, True), (5, 9000, False), (20, 9000, False)], 16)
def test_the_prompt_buffer_adds_as_aiortcs_buffer_adds(
    packets: list[tuple[int, int, bool]], capacity: int
) -> None:
    ours = PromptVideoBuffer(capacity, is_video=True)
    theirs = PromptVideoBuffer(capacity, is_video=True)  # aiortc's add, our release
    for seq, timestamp, marker in packets:
        pli, frame = ours.add(rtp(seq, timestamp, marker))
        their_pli, their_frame = JitterBuffer.add(theirs, rtp(seq, timestamp, marker))
        assert pli == their_pli
        assert (frame and (frame.data, frame.timestamp)) == (
            their_frame and (their_frame.data, their_frame.timestamp)
        )
        assert state(ours) == state(theirs)
