"""transport-cc feedback (server/media/transport_feedback.py), read back by a decoder
written here from the draft alone (draft-holmer-rmcat-transport-wide-cc-extensions-01
§3.1), and framed so aiortc's RTCP parser splits it as Chrome's would."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import pytest
from aiortc.rtcrtpparameters import (
    RTCRtcpFeedback,
    RTCRtpHeaderExtensionParameters,
    RTCRtpReceiveParameters,
)
from aiortc.rtp import HeaderExtensionsMap, RtcpPacket, RtcpRtpfbPacket, RtpPacket, is_rtcp
from aiortc.sdp import SessionDescription
from hypothesis import given, settings
from hypothesis import strategies as st

from server.media import aiortc_internals
from server.media.transport_feedback import (
    BACK_WINDOW_US,
    MAX_BYTES,
    REFERENCE_US,
    REFERENCE_WRAP,
    URI,
    TransportFeedback,
    status_chunks,
)
from tests.media.conftest import Join
from tests.media.support import MediaClient
from tests.support.parts import ServerParts
from tests.support.waiting import eventually

TRANSPORT_CC = RTCRtcpFeedback(type="transport-cc")

WRAP_US = REFERENCE_WRAP * REFERENCE_US  # the reference time wraps after ~12.4 days


@dataclass
class Decoded:
    sender_ssrc: int
    media_ssrc: int
    count: int  # feedback packet count
    packets: list[tuple[int, int | None]]  # (16-bit seq, arrival µs mod WRAP_US or None)


def symbols_of(data: bytes, pos: int, count: int) -> tuple[list[int], int]:
    """`count` packet status symbols from the chunks at `pos`; and where they end."""
    symbols: list[int] = []
    while len(symbols) < count:
        (chunk,) = struct.unpack_from("!H", data, pos)
        pos += 2
        if chunk >> 15 == 0:  # run length: 2-bit symbol, 13-bit length
            assert chunk & 0x1FFF, "an empty run"
            symbols += [chunk >> 13 & 3] * (chunk & 0x1FFF)
        elif chunk >> 14 & 1 == 0:  # fourteen 1-bit symbols
            symbols += [chunk >> (13 - i) & 1 for i in range(14)]
        else:  # seven 2-bit symbols
            symbols += [chunk >> (12 - 2 * i) & 3 for i in range(7)]
    return symbols[:count], pos


def decode(data: bytes) -> Decoded:
    first, packet_type, length = struct.unpack_from("!BBH", data)
    assert first == 0x80 | 15 and packet_type == 205  # V=2, no padding bit, RTPFB, FMT 15
    assert (length + 1) * 4 == len(data) <= MAX_BYTES
    sender, media, base, count = struct.unpack_from("!IIHH", data, 4)
    reference = int.from_bytes(data[16:19], "big")
    symbols, pos = symbols_of(data, 20, count)
    time = reference * REFERENCE_US
    packets: list[tuple[int, int | None]] = []
    for i, symbol in enumerate(symbols):
        seq = (base + i) & 0xFFFF
        if symbol == 0:
            packets.append((seq, None))
            continue
        if symbol == 1:
            time += data[pos] * 250
            pos += 1
        else:
            assert symbol == 2
            time += struct.unpack_from("!h", data, pos)[0] * 250
            pos += 2
        packets.append((seq, time % WRAP_US))
    assert packets[-1][1] is not None, "a feedback ends with a received packet"
    assert len(data) - pos < 4 and not any(data[pos:]), "only zero padding is left"
    return Decoded(sender, media, data[19], packets)


def close(reported: int, arrival: int) -> bool:
    """Within a 250 µs tick's rounding, across the reference time's wrap."""
    return min((reported - arrival) % WRAP_US, (arrival - reported) % WRAP_US) <= 125


@st.composite
def arrivals(draw: st.DrawFn) -> tuple[list[tuple[int, int]], list[int]]:
    """Packets as they arrive: (seq, arrival µs), some lost, some swapped with the one
    before; and after which arrivals the feedback is built."""
    first_seq = draw(st.integers(0, 0xFFFF))
    n = draw(st.integers(1, 300))
    lost = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    gaps = draw(
        st.lists(
            st.one_of(
                st.integers(0, 3_000),  # a burst's spacing
                st.integers(3_000, 200_000),  # frame gaps and queues: large deltas
                st.integers(8_000_000, 20_000_000),  # a stall past int16's ±8.19 s
            ),
            min_size=n,
            max_size=n,
        )
    )
    swaps = draw(st.lists(st.integers(1, max(1, n - 1)), max_size=n // 4))
    order = list(range(n))
    for i in swaps:
        if i < n:
            order[i - 1], order[i] = order[i], order[i - 1]
    now = draw(st.integers(0, WRAP_US * 3))  # any clock, the reference's wrap included
    out = []
    for index in order:
        now += gaps[len(out)]
        if not lost[index]:
            out.append(((first_seq + index) & 0xFFFF, now))
    cuts = draw(st.lists(st.integers(0, len(out)), max_size=12))
    return out, sorted(set(cuts))


@settings(max_examples=100, deadline=None)
@given(arrivals(), st.integers(0, 0xFFFFFFFF))
def test_every_packet_is_reported_received_at_its_time_and_never_lost_once_it_came(
    case: tuple[list[tuple[int, int]], list[int]], sender_ssrc: int
) -> None:
    packets, cuts = case
    feedback = TransportFeedback()
    arrived: dict[int, int] = {}
    last_report: dict[int, int | None] = {}
    counts: list[int] = []
    for i, (seq, at) in enumerate(packets):
        feedback.record(seq, at, 0xABC)
        arrived[seq] = at
        if i + 1 in cuts or i + 1 == len(packets):
            for data in feedback.feedbacks(sender_ssrc):
                decoded = decode(data)
                framed = RtcpPacket.parse(data)
                assert len(framed) == 1 and isinstance(framed[0], RtcpRtpfbPacket)
                assert (framed[0].fmt, framed[0].ssrc) == (15, sender_ssrc)
                assert (decoded.sender_ssrc, decoded.media_ssrc) == (sender_ssrc, 0xABC)
                counts.append(decoded.count)
                for reported_seq, time in decoded.packets:
                    if time is None:
                        assert reported_seq not in arrived, "reported lost after it came"
                    else:
                        assert close(time, arrived[reported_seq])
                    last_report[reported_seq] = time
    assert counts == [i & 0xFF for i in range(len(counts))]
    # Reordered by one place at most, nothing came too late to be reported.
    assert {s for s, t in last_report.items() if t is not None} == set(arrived)
    assert feedback.feedbacks(sender_ssrc) == []  # nothing new: nothing sent


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([0, 1, 2]), min_size=1, max_size=400))
def test_status_chunks_hold_every_symbol_in_order(symbols: list[int]) -> None:
    encoded = b"".join(struct.pack("!H", c) for c in status_chunks(symbols))
    assert symbols_of(encoded, 0, len(symbols))[0] == symbols


def one_feedback(packets: list[tuple[int, int]]) -> list[Decoded]:
    feedback = TransportFeedback()
    for seq, at in packets:
        feedback.record(seq, at, 1)
    return [decode(data) for data in feedback.feedbacks(2)]


def test_a_steady_stream_is_one_run_of_small_deltas() -> None:
    (only,) = one_feedback([(i, 1_000_000 + i * 2_000) for i in range(30)])
    assert len(only.packets) == 30
    # header 20 + one run-length chunk 2 + 30 one-byte deltas = 52 bytes
    feedback = TransportFeedback()
    for i in range(30):
        feedback.record(i, 1_000_000 + i * 2_000, 1)
    assert len(feedback.feedbacks(2)[0]) == 52


def test_sequence_numbers_wrap() -> None:
    (only,) = one_feedback([(0xFFFE, 0), (0xFFFF, 1_000), (0, 2_000), (1, 3_000)])
    assert [s for s, _ in only.packets] == [0xFFFE, 0xFFFF, 0, 1]


def test_a_late_packet_is_reported_again_once_it_comes() -> None:
    feedback = TransportFeedback()
    feedback.record(10, 1_000, 1)
    feedback.record(12, 3_000, 1)
    (first,) = [decode(d) for d in feedback.feedbacks(2)]
    assert first.packets == [(10, 1_000), (11, None), (12, 3_000)]
    feedback.record(11, 104_000, 1)  # reordered: after the feedback that missed it
    feedback.record(13, 105_000, 1)
    (second,) = [decode(d) for d in feedback.feedbacks(2)]
    assert second.packets == [(11, 104_000), (12, 3_000), (13, 105_000)]  # 12: a -101 ms delta


def test_a_stall_longer_than_a_delta_can_say_starts_another_feedback() -> None:
    first, second = one_feedback([(1, 0), (2, 9_000_000)])
    assert first.packets == [(1, 0)] and second.packets == [(2, 9_000_000)]
    assert second.count == first.count + 1


def test_a_long_gap_of_lost_packets_is_a_few_runs() -> None:
    (only,) = one_feedback([(0, 0), (30_001, 5_000)])
    assert len(only.packets) == 30_002
    assert sum(1 for _, t in only.packets if t is None) == 30_000


def test_too_many_for_one_packet_are_split_and_all_reported() -> None:
    # every other packet lost and 30 ms apart: 2-bit chunks and 2-byte deltas
    packets = [(i, i * 30_000) for i in range(0, 4_000, 2)]
    decoded = one_feedback(packets)
    assert len(decoded) > 1
    received = [s for d in decoded for s, t in d.packets if t is not None]
    assert received == [s for s, _ in packets]


def test_arrivals_older_than_the_window_are_forgotten_once_reported() -> None:
    feedback = TransportFeedback()
    feedback.record(1, 0, 1)
    feedback.record(3, 1_000_000, 1)
    assert len(feedback.feedbacks(2)) == 1
    feedback.record(2, 1_001_000, 1)  # 1 s late: 1 is forgotten, 2 can still be told
    (again,) = [decode(d) for d in feedback.feedbacks(2)]
    assert again.packets[0] == (2, 1_001_000)
    feedback.record(4, 1_600_000, 1)
    feedback.feedbacks(2)
    feedback.record(1, 1_700_000, 1)  # a duplicate or a packet far too late: ignored
    assert feedback.feedbacks(2) == []


def test_what_is_kept_stays_within_the_back_window_however_long_the_stream() -> None:
    feedback = TransportFeedback()
    for i in range(100_000):  # 100 s at a packet a millisecond, a feedback every 100
        feedback.record(i & 0xFFFF, i * 1_000, 1)
        if i % 100 == 99:
            feedback.feedbacks(2)
    assert feedback.kept <= BACK_WINDOW_US // 1_000 + 100
    assert feedback.count == 1_000


def test_bad_input_is_refused_and_changes_nothing() -> None:
    feedback = TransportFeedback()
    feedback.record(7, 1_000, 1)
    for seq in (-1, 0x10000, "8", None):
        with pytest.raises((ValueError, TypeError)):
            feedback.record(seq, 2_000, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        feedback.record(8, 2_000)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        feedback.feedbacks("2")  # type: ignore[arg-type]
    (only,) = [decode(d) for d in feedback.feedbacks(2)]
    assert only.packets == [(7, 1_000)]
    for symbols in ([3], [-1], ["1"], 5):
        with pytest.raises((ValueError, TypeError)):
            status_chunks(symbols)  # type: ignore[arg-type]


async def test_feedback_on_a_transport_not_connected_is_not_sent() -> None:
    with aiortc_internals.base.unconnected() as pc:
        dtls: Any = pc.addTransceiver("video").receiver.transport
        assert aiortc_internals.direct_receive.send_rtcp_now(dtls, b"\x8f\xcd\x00\x01") is False
        assert (dtls._RTCDtlsTransport__tx_packets, dtls._RTCDtlsTransport__tx_bytes) == (0, 0)


# -- with real aiortc peers: the SFU negotiates it and sends the feedback ---------------

TRANSPORT_CC_ID = 5  # unused by aiortc's own offer (mid 1, audio level 2, abs-send-time 3)


def offering_transport_cc(sdp: str) -> str:
    """An aiortc offer that offers transport-cc on every section, as Chrome's does."""
    out = []
    for line in sdp.split("\r\n"):
        out.append(line)
        if line.startswith("a=mid:"):
            out.append(f"a=extmap:{TRANSPORT_CC_ID} {URI}")
        elif line.startswith("a=rtpmap:"):
            out.append(f"a=rtcp-fb:{line[9:].split()[0]} transport-cc")
    return "\r\n".join(out)


class Stamping:
    """Makes an aiortc client's transport stamp a transport-wide sequence number on each
    RTP packet it sends (aiortc's sender stamps none), holding back every tenth as lost,
    and keeps the RTCP it receives."""

    def __init__(self, client: MediaClient) -> None:
        dtls: Any = client.pc.getTransceivers()[0].receiver.transport
        self.ids = HeaderExtensionsMap()
        self.ids.configure(
            RTCRtpReceiveParameters(
                headerExtensions=[
                    RTCRtpHeaderExtensionParameters(
                        id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid"
                    ),
                    RTCRtpHeaderExtensionParameters(
                        id=2, uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level"
                    ),
                    RTCRtpHeaderExtensionParameters(
                        id=3, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
                    ),
                    RTCRtpHeaderExtensionParameters(id=TRANSPORT_CC_ID, uri=URI),
                ]
            )
        )
        self.seq = 0xFFF0  # wraps within the test
        self.silent = False  # True: no RTP goes out at all
        self.sent: set[int] = set()
        self.last: list[int] = []  # the latest sent, in order
        self.held: set[int] = set()
        self.rtcp: list[bytes] = []
        send, handle = dtls._send_rtp, dtls._handle_rtcp_data

        async def stamped(data: bytes) -> None:
            if is_rtcp(data):
                return await send(data)
            if self.silent:
                return None
            packet = RtpPacket.parse(data, self.ids)
            packet.extensions.transport_sequence_number = self.seq
            seq, self.seq = self.seq, (self.seq + 1) & 0xFFFF
            if seq % 10 == 3:
                self.held.add(seq)
                return None
            self.sent.add(seq)
            self.last = [*self.last[-19:], seq]
            return await send(packet.serialize(self.ids))

        async def kept(data: bytes) -> None:
            self.rtcp.append(data)
            await handle(data)

        dtls._send_rtp, dtls._handle_rtcp_data = stamped, kept

    def feedback(self) -> list[Decoded]:
        found = []
        for data in self.rtcp:
            pos = 0
            while pos + 4 <= len(data):
                length = (struct.unpack_from("!H", data, pos + 2)[0] + 1) * 4
                if data[pos + 1] == 205 and data[pos] & 0x1F == 15:
                    found.append(decode(data[pos : pos + length]))
                pos += length
        return found


@pytest.mark.slow
async def test_the_sfu_negotiates_transport_cc_with_a_publisher_and_reports_its_packets(
    join: Join, server: Any
) -> None:
    bo = await join("bo")  # publishes without transport-cc
    ada = await join("ada", connect=False, munge_first_offer=offering_transport_cc)
    stamping = Stamping(ada)
    ack = await ada.connect()
    rembs: list[int] = []
    for transceiver in ada.pc.getTransceivers():
        aiortc_internals.on_feedback(
            transceiver.sender, rembs.append, lambda fraction, highest: None
        )

    answered = SessionDescription.parse(ack["sdp"]).media
    for media in answered:  # ada's audio and video: both sent by her, received by the SFU
        assert [x.id for x in media.rtp.headerExtensions if x.uri == URI] == [TRANSPORT_CC_ID]
        assert all(TRANSPORT_CC in c.rtcpFeedback for c in media.rtp.codecs if c.name != "rtx")

    def reported() -> dict[int, bool]:
        last: dict[int, bool] = {}
        for feedback in stamping.feedback():
            for seq, time in feedback.packets:
                last[seq] = time is not None
        return last

    await eventually(lambda: len(stamping.held) > 30 and len(reported()) > 300, timeout=20)
    last = reported()
    assert {s for s, received in last.items() if received} <= stamping.sent
    assert {s for s, received in last.items() if not received} <= stamping.held
    assert 0 in last and 0xFFFF in last  # across the wrap
    assert not rembs  # no REMB from aiortc's estimate: Ada's sender estimates itself

    # While packets flow, the feedback goes out from the packet path when due, not from a
    # timer of its own (a timer firing first after a stall of this loaded machine's loop
    # may send some).
    peer = ServerParts(server.app).sfu.peer("pair-1", "ada")
    senders = {
        id(r): r.feedback
        for t in peer.pc.getTransceivers()
        if isinstance(
            r := t.receiver.transport.transport._connection.data_received,
            aiortc_internals.DirectReceive,
        )
        and r.feedback is not None
    }
    (feedback,) = senders.values()  # one transport (bundled), one feedback sender
    assert feedback.sent > 10 and feedback.by_timer * 2 < feedback.sent
    # When they stop, the backstop timer reports what is left (the last packets sent are
    # reported received), then finds nothing more and idles: the next packet sends at once.
    stamping.silent = True
    await eventually(lambda: {s for s, got in reported().items() if got} >= set(stamping.last))
    await eventually(lambda: feedback._timer is None and feedback.due_ns == 0)
    # And back: packets again, and their feedback from the packet path again.
    sent, by_timer = feedback.sent, feedback.by_timer
    stamping.silent = False
    await eventually(lambda: feedback.sent > sent + 5 and feedback._timer is not None)
    assert feedback.by_timer - by_timer <= (feedback.sent - sent) // 2
    # A due time far ahead (the wall clock stepped back) is put right by the backstop.
    sent, by_timer = feedback.sent, feedback.by_timer
    feedback.due_ns = 1 << 61
    await eventually(lambda: feedback.by_timer > by_timer and feedback.due_ns < 1 << 61)
    await eventually(lambda: feedback.sent > feedback.by_timer - by_timer + sent + 5)

    # The tracks the SFU forwards to Ada (Bo's) carry no transport-cc: it stamps nothing.
    await eventually(lambda: any(r.kind == "video" and r.frames > 5 for r in ada.received))
    forwarded = [
        m
        for m in SessionDescription.parse(ada.offers[-1]["sdp"]).media
        if m.direction == "sendonly"
    ]
    assert forwarded
    for media in forwarded:
        assert all(x.uri != URI for x in media.rtp.headerExtensions)
        assert all(TRANSPORT_CC not in c.rtcpFeedback for c in media.rtp.codecs)
    assert bo.pc.connectionState == "connected"
