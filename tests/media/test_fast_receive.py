"""A simulcast layer's packets taken from the datagram to the frame in C (`RtpDemux`,
`FastLayers`, server/media/_rtp_receive.c) give what the Python path gives: the same frames, NACKs,
PLIs, statistics and transport-cc records, for the same SRTP datagrams with losses,
reordering, retransmissions (RTX), padding and bad packets. Two real aiortc receivers on
transports with SRTP keys set directly (no handshake) are fed the same datagrams, one
with its layers routed to the C path, one with routing turned off; and the routing
gives way when it no longer holds (the receiver unrouted or disabled)."""

from __future__ import annotations

import asyncio
import gc
import os
import random
import struct
import time
import weakref
from typing import Any

import pytest
from aiortc import RTCPeerConnection
from aiortc.rtcdtlstransport import State
from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpReceiveParameters,
)
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from pylibsrtp import Policy, Session

from server.media import _rtp_receive, aiortc_internals, simulcast, transport_feedback
from server.media._rtp_receive import FastLayers, LayerBuffer
from server.media.aiortc_internals.base import JITTER_ATTR, sending, srtp_address
from server.media.aiortc_internals.direct_receive import SRTP_UNPROTECT
from server.media.forwarding import is_keyframe
from server.media.rtp_output import Packetized

SSRCS = (0x1111, 0x2222, 0x3333)  # the three layers
RTX_SSRC = 0x4444  # the top layer's retransmissions
VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
RTX = RTCRtpCodecParameters(
    mimeType="video/rtx", clockRate=90000, payloadType=97, parameters={"apt": 96}
)
TRANSPORT_CC = RTCRtpHeaderExtensionParameters(id=3, uri=transport_feedback.URI)
ABS_SEND_TIME = RTCRtpHeaderExtensionParameters(
    id=2, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
)
RID = RTCRtpHeaderExtensionParameters(id=4, uri="urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id")


class Connected:
    """A receiver of `kind` on a 'connected' transport (SRTP keys set directly), fed its
    datagrams as from the socket: through the C entry (`RtpDemux`) when `entry` is made,
    else to the connection as aioice hands them over."""

    def __init__(self, kind: str, key: bytes) -> None:
        self.pc = RTCPeerConnection()
        receiver = self.receiver = self.pc.addTransceiver(kind, direction="recvonly").receiver
        dtls: Any = receiver.transport
        self.dtls = dtls
        dtls._rx_srtp = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND))
        dtls._state = State.CONNECTED
        dtls._RTCDtlsTransport__handshake_done = True
        dtls.transport._connection._nominated[1] = None
        self.connection = dtls.transport._connection
        self.stun: list[bytes] = []
        self.entry: Any = None

    def register(self, codecs: list[Any], extensions: list[Any], ssrcs: tuple[int, ...]) -> None:
        """Once tapped: the receiver's codecs and extensions negotiated, `ssrcs` its."""
        dtls, receiver = self.dtls, self.receiver
        parameters = RTCRtpReceiveParameters(codecs=codecs, headerExtensions=extensions)
        dtls._register_rtp_receiver(receiver, parameters)
        for ssrc in ssrcs:
            dtls._rtp_router.ssrc_table[ssrc] = receiver
        receiver._RTCRtpReceiver__codecs = {c.payloadType: c for c in codecs}
        receiver._RTCRtpReceiver__decoder_thread = True
        self.direct = self.connection.data_received

    def add_entry(self) -> None:
        self.entry = _rtp_receive.RtpDemux(
            lambda data, addr: self.stun.append(data),
            self.direct,
            1,
            self.dtls,
            State.CONNECTED,
            self.direct.fast,
            self.direct.arrival,
        )
        self.direct.entries.append(self.entry)

    def feed(self, data: bytes) -> None:
        if self.entry is not None:
            self.entry(data, ("127.0.0.1", 5000))
        else:
            self.connection.data_received(data, 1)

    def statistics(self) -> dict[int, tuple[Any, ...]]:
        streams = self.receiver._RTCRtpReceiver__remote_streams
        return {
            ssrc: (s.base_seq, s.max_seq, s.cycles, s.packets_received, s.packets_lost)
            for ssrc, s in streams.items()
        }

    async def close(self) -> None:
        if self.direct.feedback is not None:
            self.direct.feedback.stop()
        await sending.cancel_all()
        await self.pc.close()


class Side(Connected):
    """A tapped simulcast receiver, and what came out of it. `single`: a single-stream
    video tapped as the SFU taps one (`tap_video`), its retransmissions on RTX_SSRC
    those of whichever stream it is on; `estimator`: its REMB estimator kept (a
    publisher without transport-cc), else removed as negotiation.py removes it."""

    def __init__(
        self,
        key: bytes,
        fast: bool,
        renack_seconds: float | None = None,
        single: bool = False,
        estimator: bool = False,
    ) -> None:
        super().__init__("video", key)
        receiver = self.receiver
        self.frames: list[tuple[int, int, bytes, bool]] = []
        self.held: list[tuple[int, int]] = []  # what a quiet layer kept back before each
        self.nacks: list[tuple[int, list[int]]] = []
        self.plis: list[int] = []

        def sink(codec: Any, frame: Any) -> None:
            self.frames.append((frame.ssrc, frame.rtp_timestamp, frame.data, frame.after_gap))
            self.held.append(aiortc_internals.frame_held(frame))

        if single:
            aiortc_internals.tap_video(receiver, sink, renack_seconds)
            if not estimator:
                receiver._RTCRtpReceiver__remote_bitrate_estimator = None  # type: ignore[attr-defined]
        else:
            section = simulcast.SimulcastSection(mid="0", rids=["q", "h", "f"], ssrcs=list(SSRCS))
            section.rtx[RTX_SSRC] = SSRCS[2]
            aiortc_internals.tap_simulcast(
                receiver, simulcast.Layers(section), sink, renack_seconds=renack_seconds
            )
        if not fast:  # the same receiver, its layers never routed to C
            getattr(receiver, JITTER_ATTR)._on_layer = None
        self.register([VP8, RTX], [TRANSPORT_CC, RID, ABS_SEND_TIME], (*SSRCS, RTX_SSRC))

        # recorded when called (the path spawns what they return: nothing to send here)
        def nack(media_ssrc: int, lost: list[int]) -> Any:
            self.nacks.append((media_ssrc, lost))
            return asyncio.sleep(0)

        def pli(media_ssrc: int) -> Any:
            self.plis.append(media_ssrc)
            return asyncio.sleep(0)

        receiver._send_rtcp_nack = nack  # type: ignore[method-assign]
        receiver._send_rtcp_pli = pli  # type: ignore[method-assign]
        if fast:  # datagrams come in as from the socket: through the C entry (RtpDemux)
            self.add_entry()


def feed_both(fast: Connected, python: Connected, sent: list[bytes]) -> None:
    """The same datagrams, in the same order, to the side routed to C and the other."""
    for data in sent:
        fast.feed(data)
        python.feed(data)


def vp8(frame: int, first: bool) -> bytes:
    """A VP8 payload descriptor (X, I with a 15-bit picture id, S on a frame's first
    packet) and some bytes."""
    return bytes(
        [0x90 if first else 0x80, 0x80, 0x80 | (frame >> 8) & 0x7F, frame & 0xFF]
    ) + os.urandom(random.randint(0, 40))


class Stream:
    """Three layers' packets with transport-wide sequence numbers, protected once."""

    def __init__(self, key: bytes) -> None:
        self.tx = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND))
        self.ids = HeaderExtensionsMap()
        self.ids.configure(
            RTCRtpReceiveParameters(headerExtensions=[TRANSPORT_CC, RID, ABS_SEND_TIME])
        )
        self.seq = {ssrc: random.randint(0, 0xFFFF) for ssrc in (*SSRCS, RTX_SSRC)}
        self.wide = random.randint(0, 0xFFFF)
        self.sent: dict[tuple[int, int], RtpPacket] = {}

    def packet(
        self,
        ssrc: int,
        timestamp: int,
        marker: bool,
        payload: bytes,
        rid: str | None = None,
        padding: int = 0,
    ) -> RtpPacket:
        packet = RtpPacket(
            payload_type=96,
            marker=int(marker),
            sequence_number=self.seq[ssrc],
            timestamp=timestamp,
            ssrc=ssrc,
            payload=payload,
        )
        packet.padding_size = padding
        packet.extensions.rtp_stream_id = rid
        self.seq[ssrc] = (self.seq[ssrc] + 1) & 0xFFFF
        self.sent[(ssrc, packet.sequence_number)] = packet
        return packet

    def protect(self, packet: RtpPacket) -> bytes:
        packet.extensions.transport_sequence_number = self.wide
        self.wide = (self.wide + 1) & 0xFFFF
        return self.tx.protect(packet.serialize(self.ids))

    def malformed(self, ssrc: int, timestamp: int) -> bytes:
        """A packet whose abs-send-time extension is 2 bytes long (aiortc's parse would
        raise; ours drops it)."""
        seq, self.seq[ssrc] = self.seq[ssrc], (self.seq[ssrc] + 1) & 0xFFFF
        header = struct.pack("!BBHII", 0x90, 96, seq, timestamp, ssrc)
        extension = b"\xbe\xde\x00\x01" + bytes([ABS_SEND_TIME.id << 4 | 1, 0xAA, 0xBB, 0])
        return self.tx.protect(header + extension + vp8(0, False))

    def retransmission(self, ssrc: int, seq: int) -> bytes:
        """The packet again on the RTX stream (RFC 4588: its sequence number first)."""
        original = self.sent[(ssrc, seq)]
        rtx = RtpPacket(
            payload_type=97,
            marker=original.marker,
            sequence_number=self.seq[RTX_SSRC],
            timestamp=original.timestamp,
            ssrc=RTX_SSRC,
            payload=struct.pack("!H", seq) + original.payload,
        )
        self.seq[RTX_SSRC] = (self.seq[RTX_SSRC] + 1) & 0xFFFF
        return self.protect(rtx)


def datagrams(key: bytes, frames: int, loss: float, seed: int) -> list[bytes]:
    """Frames of 1–4 packets on each layer (the first packets carrying their RID), some
    lost and some of those resent on RTX, some delayed, a few padding-only, damaged, with
    a malformed extension, or of a payload type not negotiated."""
    random.seed(seed)
    stream = Stream(key)
    out: list[bytes] = []
    held: list[bytes] = []
    for frame in range(frames):
        timestamp = (1000 + frame * 3000) & 0xFFFFFFFF
        for layer, ssrc in enumerate(SSRCS):
            count = random.randint(1, 4)
            for i in range(count):
                rid = "qhf"[layer] if frame < 3 else None
                packet = stream.packet(ssrc, timestamp, i == count - 1, vp8(frame, i == 0), rid)
                data = stream.protect(packet)
                roll = random.random()
                if roll < loss:  # lost; maybe resent a little later
                    if ssrc == SSRCS[2] and random.random() < 0.7:
                        held.append(stream.retransmission(ssrc, packet.sequence_number))
                    continue
                if roll < loss * 2:  # late
                    held.append(data)
                    continue
                out.append(data)
            if random.random() < 0.05:  # padding only (a probe)
                out.append(stream.protect(stream.packet(ssrc, timestamp, False, b"", padding=40)))
            if random.random() < 0.02:  # a damaged VP8 descriptor: dropped by both
                out.append(stream.protect(stream.packet(ssrc, timestamp, False, b"\x80")))
            if random.random() < 0.02:  # abs-send-time of 2 bytes, not 3: dropped by both
                out.append(stream.malformed(ssrc, timestamp))
            if random.random() < 0.02:  # a payload type not negotiated: dropped by both
                packet = stream.packet(ssrc, timestamp, False, vp8(frame, False))
                packet.payload_type = 100
                out.append(stream.protect(packet))
        if held and random.random() < 0.5:
            out.append(held.pop(random.randrange(len(held))))
    return out + held


@pytest.mark.parametrize(("loss", "seed"), [(0.0, 1), (0.03, 2), (0.1, 3), (0.3, 4)])
async def test_the_c_path_gives_what_the_python_path_gives(loss: float, seed: int) -> None:
    key = os.urandom(30)
    fast, python = Side(key, fast=True), Side(key, fast=False)
    try:
        feed_both(fast, python, datagrams(key, 300, loss, seed))
        assert fast.direct.fast.routes == 3
        assert python.direct.fast.routes == 0
        assert fast.direct.fast.consumed > 600  # most packets took the C path
        assert fast.frames == python.frames
        assert len(fast.frames) > 50
        assert fast.nacks == python.nacks
        assert fast.plis == python.plis == []  # the publication asks (`after_gap`), not it
        assert fast.statistics() == python.statistics()
        if loss:
            assert fast.nacks and fast.statistics()[SSRCS[0]][4] > 0  # losses seen
        for side in (fast, python):  # every packet's transport-wide number recorded
            assert side.direct.feedback is not None
        assert fast.direct.feedback.log.kept == python.direct.feedback.log.kept  # type: ignore[union-attr]
        assert fast.dtls._RTCDtlsTransport__rx_packets == python.dtls._RTCDtlsTransport__rx_packets
        assert fast.dtls._RTCDtlsTransport__rx_bytes == python.dtls._RTCDtlsTransport__rx_bytes
        assert fast.direct.handled == python.direct.handled > 0
        assert fast.entry.handed == fast.direct.handled and fast.stun == []
    finally:
        await fast.close()
        await python.close()


def single_datagrams(key: bytes, frames: int, loss: float, seed: int) -> list[bytes]:
    """A single stream's frames of 1–6 packets, some lost and resent on RTX, some late, a few padding-only; halfway the sender restarts on a new SSRC (its
    sequence numbers from elsewhere), whose packets all arrive."""
    random.seed(seed)
    stream = Stream(key)
    out: list[bytes] = []
    held: list[bytes] = []
    for frame in range(frames):
        ssrc = SSRCS[0] if frame < frames // 2 else SSRCS[1]
        timestamp = (1000 + frame * 3000) & 0xFFFFFFFF
        count = random.randint(1, 6)
        for i in range(count):
            packet = stream.packet(ssrc, timestamp, i == count - 1, vp8(frame, i == 0))
            data = stream.protect(packet)
            roll = random.random() if ssrc == SSRCS[0] else 1.0
            if roll < loss:
                held.append(stream.retransmission(ssrc, packet.sequence_number))
                continue
            if roll < loss * 2:
                held.append(data)
                continue
            out.append(data)
        if random.random() < 0.05:
            out.append(stream.protect(stream.packet(ssrc, timestamp, False, b"", padding=40)))
        if held and random.random() < 0.5:
            out.append(held.pop(random.randrange(len(held))))
        if frame == frames // 2 - 1:
            out += held  # what the old stream still had in flight
            held = []
    return out + held


@pytest.mark.parametrize(("loss", "seed"), [(0.0, 11), (0.05, 12), (0.3, 13)])
async def test_a_single_stream_video_takes_the_c_path_and_gives_the_same(
    loss: float, seed: int
) -> None:
    """A camera sent without simulcast (or a screen share), tapped as the SFU taps it:
    one layer buffer whose stream a new SSRC replaces. Routed to C, it gives what the
    Python path gives; with a REMB estimator (no transport-cc) it stays on the Python
    path, into the same buffer, and gives the same again."""
    key = os.urandom(30)
    fast, python = Side(key, fast=True, single=True), Side(key, fast=False, single=True)
    remb = Side(key, fast=True, single=True, estimator=True)
    for side in (fast, python, remb):  # the retransmissions are the first stream's
        side.receiver._RTCRtpReceiver__rtx_ssrc[RTX_SSRC] = SSRCS[0]  # type: ignore[attr-defined]
    try:
        sent = single_datagrams(key, 300, loss, seed)
        feed_both(fast, python, sent)
        for data in sent:
            remb.feed(data)
        assert fast.direct.fast.routes == 2  # the first stream, then the one replacing it
        assert python.direct.fast.routes == remb.direct.fast.routes == 0
        assert fast.direct.fast.consumed > len(sent) // 2
        # (a padding-only packet after a frame makes an empty one, which the SFU drops;
        # a frame comes out per packet at most, so a stream's last may be held behind it,
        # and at 30 % loss most of the old stream's frames wait for retransmissions sent
        # just before the restart: their buffer is gone with it)
        frames = [ssrc for ssrc, _, data, _ in fast.frames if data]
        assert frames.count(SSRCS[1]) >= 149  # every frame of the new stream
        assert frames.count(SSRCS[0]) >= (149 if not loss else 100 if loss < 0.1 else 1)
        assert fast.frames == python.frames == remb.frames
        assert fast.nacks == python.nacks == remb.nacks
        assert fast.plis == python.plis == remb.plis == []  # the publication asks
        assert fast.statistics() == python.statistics()
        if loss:
            assert fast.nacks
        buffer = getattr(fast.receiver, JITTER_ATTR)
        assert list(buffer.layers) == [SSRCS[1]]  # the new stream replaced the old
    finally:
        for side in (fast, python, remb):
            await side.close()


async def test_a_layer_whose_receiver_stops_receiving_takes_the_python_path() -> None:
    key = os.urandom(30)
    side = Side(key, fast=True)
    try:
        sent = datagrams(key, 60, 0.0, 5)
        for data in sent[:60]:
            side.feed(data)
        consumed, frames = side.direct.fast.consumed, len(side.frames)
        assert consumed > 0 and frames > 0
        side.receiver._enabled = False  # type: ignore[attr-defined]
        for data in sent[60:90]:
            side.feed(data)
        assert side.direct.fast.consumed == consumed  # declined: the Python path drops them
        assert len(side.frames) == frames
        side.receiver._enabled = True  # type: ignore[attr-defined]
        nacks = len(side.nacks)
        for data in sent[90:120]:  # and back: taken again, the packets it missed asked for
            side.feed(data)
        assert side.direct.fast.consumed > consumed
        assert len(side.nacks) > nacks
        consumed, frames = side.direct.fast.consumed, len(side.frames)
        side.dtls._unregister_rtp_receiver(side.receiver)  # its transceiver stopped
        for data in sent[120:]:
            side.feed(data)
        assert side.direct.fast.consumed == consumed
        assert len(side.frames) == frames
    finally:
        await side.close()


def test_routes_refuse_bad_input_and_a_seventeenth_layer() -> None:
    fast, layer = FastLayers(), LayerBuffer(0.0)
    table: dict[int, Any] = {}
    for bad in [
        (1 << 32, 96, layer, print, object(), table, 90000.0),
        (-1, 96, layer, print, object(), table, 90000.0),
        (1, 128, layer, print, object(), table, 90000.0),
        (1, 96, layer, print, object(), table, 0.0),
        (1, 96, object(), print, object(), table, 90000.0),
        (1, 96, layer, print, object(), [], 90000.0),
    ]:
        with pytest.raises((ValueError, TypeError)):
            fast.route(*bad)
    assert fast.routes == 0
    for ssrc in range(16):
        assert fast.route(ssrc, 96, LayerBuffer(0.0), print, object(), table, 90000.0)
    assert fast.route(99, 96, LayerBuffer(0.0), print, object(), table, 90000.0) is False
    assert fast.route(3, 96, LayerBuffer(0.0), print, object(), table, 90000.0)  # re-routed
    assert fast.routes == 16


def test_a_connection_its_routes_point_back_to_is_collected() -> None:
    class Receiver:
        pass

    receiver = Receiver()
    receiver.fast = FastLayers()  # type: ignore[attr-defined]
    receiver.fast.route(1, 96, LayerBuffer(0.0), print, receiver, {1: receiver}, 90000.0)  # type: ignore[attr-defined]
    gone = weakref.ref(receiver)
    del receiver
    gc.collect()
    assert gone() is None


def test_bad_arguments_to_receive_raise() -> None:
    fast = FastLayers()
    with pytest.raises(ValueError):
        fast.receive(0, 1, b"", HeaderExtensionsMap()._HeaderExtensionsMap__ids, 0)  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        fast.receive(1, 1, "text", None, 0)
    with pytest.raises(TypeError):
        fast.receive(1, 1, b"")
    assert _rtp_receive.FastLayers().consumed == 0


def test_transport_cc_packets_wait_for_the_feedback_then_are_recorded_and_send_it_when_due() -> (
    None
):
    key = os.urandom(30)
    stream = Stream(key)
    rx = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND))
    ids = stream.ids._HeaderExtensionsMap__ids  # type: ignore[attr-defined]

    class Receiver:
        _enabled = True

    class Sender:
        due_ns = 1 << 62
        sent: list[int] = []

        def send(self, now_ns: int) -> None:
            self.sent.append(now_ns)

    receiver, sender, log = Receiver(), Sender(), transport_feedback.TransportFeedback()
    events: list[Any] = []
    fast = FastLayers()
    fast.route(
        SSRCS[0], 96, LayerBuffer(0.0), events.append, receiver, {SSRCS[0]: receiver}, 90000.0
    )

    def receive(arrival_ns: int) -> Any:
        data = stream.protect(stream.packet(SSRCS[0], 0, True, vp8(0, True)))
        return fast.receive(srtp_address(rx), SRTP_UNPROTECT, data, ids, arrival_ns)

    assert isinstance(receive(10**18), RtpPacket)  # no feedback yet: the Python path starts it
    assert fast.consumed == 0
    fast.feedback(sender, log)
    receive(10**18 + 1000)  # taken
    assert fast.consumed == 1 and log.kept == 1 and sender.sent == []
    sender.due_ns = 10**18 + 2000
    receive(10**18 + 2000)
    assert fast.consumed == 2 and log.kept == 2 and sender.sent == [10**18 + 2000]


async def test_the_entry_hands_stun_to_aioice_and_what_is_not_srtp_now_to_python() -> None:
    key = os.urandom(30)
    side = Side(key, fast=True)

    class Direct:  # stands in for DirectReceive: records what the entry hands it
        handled = 0

        def __init__(self) -> None:
            self.python: list[bytes] = []
            self.unprotected: list[int] = []

        def __call__(self, data: bytes, component: int) -> None:
            self.python.append(data)

        def after_unprotect(self, packet: Any, arrival_ns: int) -> None:
            self.unprotected.append(packet.sequence_number)

    direct = Direct()
    entry = _rtp_receive.RtpDemux(
        lambda data, addr: side.stun.append(data),
        direct,
        1,
        side.dtls,
        State.CONNECTED,
        side.direct.fast,
        side.direct.arrival,
    )
    stream = Stream(key)
    try:
        stun = b"\x00\x01\x00\x00" + os.urandom(16)
        entry(stun, ("127.0.0.1", 1))
        entry(b"", ("127.0.0.1", 1))
        assert side.stun == [stun, b""]
        first = stream.protect(stream.packet(SSRCS[0], 0, True, vp8(0, True)))
        entry(first, ("127.0.0.1", 1))  # no SRTP session given yet: Python decides
        assert direct.python == [first]
        srtp = side.dtls._rx_srtp
        entry.srtp(srtp, srtp_address(srtp), SRTP_UNPROTECT)
        rtcp = b"\x80\xc9\x00\x01" + os.urandom(4)
        entry(rtcp, ("127.0.0.1", 1))  # SRTCP: aiortc's path, through Python
        side.dtls._state = State.CLOSED
        closed = stream.protect(stream.packet(SSRCS[0], 3000, True, vp8(1, True)))
        entry(closed, ("127.0.0.1", 1))  # not connected: Python decides
        assert direct.python == [first, rtcp, closed]
        side.dtls._state = State.CONNECTED
        taken = stream.packet(SSRCS[0], 6000, True, vp8(2, True))
        entry(stream.protect(taken), ("127.0.0.1", 1))  # SRTP now: unprotected in C
        assert direct.unprotected == [taken.sequence_number] and direct.handled == 1
        assert entry.handed == 4
        with pytest.raises(TypeError):
            entry(first)  # type: ignore[call-arg]
    finally:
        await side.close()


# -- audio: each packet a frame, through the same C path once its stream is routed ------

AUDIO_SSRC, OTHER_AUDIO_SSRC = 0x5555, 0x6666  # the microphone; a second stream
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, payloadType=111, channels=2)
AUDIO_LEVEL = RTCRtpHeaderExtensionParameters(
    id=1, uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level"
)
MID = RTCRtpHeaderExtensionParameters(id=9, uri="urn:ietf:params:rtp-hdrext:sdes:mid")
AUDIO_EXTENSIONS = [AUDIO_LEVEL, TRANSPORT_CC, MID]


class AudioSide(Connected):
    """A tapped audio receiver, fed through the C entry, and what came out of it."""

    def __init__(self, key: bytes, fast: bool) -> None:
        super().__init__("audio", key)
        self.frames: list[tuple[bytes, int, int | None]] = []
        self.held: list[tuple[int, int]] = []  # what a quiet stream kept back before each
        self.gates: list[Any] = []  # the stream's buffer each came through

        def sink(codec: Any, frame: Any) -> None:
            level = aiortc_internals.audio_level(frame)
            self.frames.append((frame.data, frame.timestamp, level))
            self.held.append(aiortc_internals.frame_held(frame))
            self.gates.append(aiortc_internals.frame_gate(frame))

        aiortc_internals.tap_encoded_frames(self.receiver, sink)
        if not fast:  # its streams never routed to C
            getattr(self.receiver, JITTER_ATTR)._on_stream = None
        self.register([OPUS], AUDIO_EXTENSIONS, (AUDIO_SSRC, OTHER_AUDIO_SSRC))
        self.add_entry()


def audio_datagrams(key: bytes, packets: int, loss: float, seed: int) -> list[bytes]:
    """20 ms Opus packets with audio levels (some without), some lost, late or sent
    twice, a few with a MID (as aiortc sends on every packet; one not ASCII takes the
    Python path, one not UTF-8 is dropped by both), padding, a malformed level, a payload
    type not negotiated, and a second stream on the same receiver (its own sequence
    numbers)."""
    random.seed(seed)
    tx = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND))
    ids = HeaderExtensionsMap()
    ids.configure(RTCRtpReceiveParameters(headerExtensions=AUDIO_EXTENSIONS))
    seq = {AUDIO_SSRC: random.randint(0, 0xFFFF), OTHER_AUDIO_SSRC: random.randint(0, 0xFFFF)}
    wide = random.randint(0, 0xFFFF)
    out: list[bytes] = []
    held: list[bytes] = []

    def protect(ssrc: int, timestamp: int, payload_type: int = 111, padding: int = 0) -> bytes:
        nonlocal wide
        packet = RtpPacket(
            payload_type=payload_type,
            sequence_number=seq[ssrc],
            timestamp=timestamp,
            ssrc=ssrc,
            payload=os.urandom(random.randint(0, 120)),
        )
        seq[ssrc] = (seq[ssrc] + 1) & 0xFFFF
        packet.padding_size = padding
        if random.random() < 0.9:
            packet.extensions.audio_level = (random.random() < 0.5, random.randint(0, 127))
        if random.random() < 0.2:
            packet.extensions.mid = random.choice(["0", "audio", "é"])
        packet.extensions.transport_sequence_number = wide
        wide = (wide + 1) & 0xFFFF
        return tx.protect(packet.serialize(ids))

    for n in range(packets):
        timestamp = (5000 + n * 960) & 0xFFFFFFFF
        data = protect(AUDIO_SSRC, timestamp)
        roll = random.random()
        if roll < loss:
            continue
        if roll < loss * 2:
            held.append(data)
        else:
            out.append(data)
        if random.random() < 0.03:
            out.append(data)  # sent twice
        if random.random() < 0.02:
            out.append(protect(AUDIO_SSRC, timestamp, padding=20))
        if random.random() < 0.02:
            out.append(protect(AUDIO_SSRC, timestamp, payload_type=100))  # dropped by both
        if random.random() < 0.02:  # an audio level of 2 bytes: dropped by both
            s, seq[AUDIO_SSRC] = seq[AUDIO_SSRC], (seq[AUDIO_SSRC] + 1) & 0xFFFF
            header = struct.pack("!BBHII", 0x90, 111, s, timestamp, AUDIO_SSRC)
            out.append(tx.protect(header + b"\xbe\xde\x00\x01" + bytes([0x11, 1, 2, 0]) + b"x"))
        if random.random() < 0.02:  # a MID that is not UTF-8: dropped by both
            s, seq[AUDIO_SSRC] = seq[AUDIO_SSRC], (seq[AUDIO_SSRC] + 1) & 0xFFFF
            header = struct.pack("!BBHII", 0x90, 111, s, timestamp, AUDIO_SSRC)
            mid = bytes([MID.id << 4 | 1, 0xFF, 0xFE, 0])
            out.append(tx.protect(header + b"\xbe\xde\x00\x01" + mid + b"x"))
        if n % 50 == 25:
            out.append(protect(OTHER_AUDIO_SSRC, timestamp))
        if held and random.random() < 0.5:
            out.append(held.pop(random.randrange(len(held))))
    return out + held


def kept_back_in_between(
    all_frames: list[Any], handed: list[Any], held: list[tuple[int, int]], size: Any
) -> tuple[list[int], list[int]]:
    """For each frame `handed` on (a subsequence of `all_frames`, which a loud buffer
    handed on): the frames with data of `all_frames` before it since the one handed on
    before, and their bytes; checks that the held counts say just that."""
    at = 0
    counts, sizes = [], []
    for frame, (held_frames, held_bytes) in zip(handed, held, strict=True):
        skipped = []
        while all_frames[at] != frame:
            skipped.append(all_frames[at])
            at += 1
        at += 1
        kept = [f for f in skipped if size(f)]
        counts.append(len(kept))
        sizes.append(sum(size(f) for f in kept))
        assert (held_frames, held_bytes) == (counts[-1], sizes[-1]), frame
    return counts, sizes


@pytest.mark.parametrize(("loss", "seed"), [(0.0, 21), (0.1, 22)])
async def test_quiet_layers_hand_on_keyframes_and_gaps_and_count_every_frame_kept_back(
    loss: float, seed: int
) -> None:
    """Two receivers fed the same datagrams through the C path, one with its layers
    quiet (nobody takes their frames: `LayerBuffer.quiet`, set by the publication): it
    hands on a subsequence of the other's frames, every keyframe and every frame after a
    gap among them, and at most one other a layer each `QUIET_S`, each frame carrying the
    count and bytes of those kept back before it; its NACKs and statistics are the loud
    one's."""
    key = os.urandom(30)
    loud, quiet = Side(key, fast=True), Side(key, fast=True)
    layers = getattr(quiet.receiver, JITTER_ATTR).layers
    try:
        started = time.monotonic()
        for data in datagrams(key, 300, loss, seed):
            loud.feed(data)
            quiet.feed(data)
            for layer in layers.values():
                layer.quiet = True
        elapsed = time.monotonic() - started
        assert quiet.direct.fast.consumed == loud.direct.fast.consumed > 600
        assert quiet.nacks == loud.nacks
        assert quiet.statistics() == loud.statistics()
        others = 0
        for ssrc in SSRCS:
            every = [f for f in loud.frames if f[0] == ssrc]
            handed = [(f, h) for f, h in zip(quiet.frames, quiet.held, strict=True) if f[0] == ssrc]
            kept_back_in_between(every, [f for f, _ in handed], [h for _, h in handed], len_data)
            for frame in every:
                if frame[3] or is_keyframe(VP8, frame[2]):  # after a gap, a keyframe
                    assert frame in [f for f, _ in handed]
            others += sum(not f[3] and not is_keyframe(VP8, f[2]) for f, _ in handed)
            assert len(handed) < len(every)
        # the first frame of each layer, then one each QUIET_S
        assert others <= len(SSRCS) * (2 + elapsed / _rtp_receive.QUIET_S)
    finally:
        await loud.close()
        await quiet.close()


def len_data(frame: tuple[Any, ...]) -> int:
    return len(frame[2])


async def test_a_quiet_audio_stream_hands_on_a_packet_each_quiet_interval_counting_the_rest() -> (
    None
):
    """As quiet layers, for audio (each packet a frame, none a keyframe): the stream
    hands on its first packet and then one each `QUIET_S`; every packet kept back is
    counted in the next one handed on; loud again, every packet goes."""
    key = os.urandom(30)
    loud, quiet = AudioSide(key, fast=True), AudioSide(key, fast=True)
    streams = getattr(quiet.receiver, JITTER_ATTR).streams
    sent = audio_datagrams(key, 400, 0.05, 31)
    try:
        started = time.monotonic()
        for data in sent[:300]:
            loud.feed(data)
            quiet.feed(data)
            for stream in streams.values():
                stream.quiet = True
        elapsed = time.monotonic() - started
        handed_quiet = len(quiet.frames)
        for stream in streams.values():
            stream.quiet = False
        for data in sent[300:]:
            loud.feed(data)
            quiet.feed(data)
        assert quiet.statistics() == loud.statistics()
        assert handed_quiet <= 2 * (2 + elapsed / _rtp_receive.QUIET_S)  # two streams
        assert len(loud.frames) > 250
        kept = 0
        for ssrc in (AUDIO_SSRC, OTHER_AUDIO_SSRC):

            def of(side: AudioSide, ssrc: int = ssrc) -> list[int]:
                gate = getattr(side.receiver, JITTER_ATTR).streams[ssrc]
                return [i for i, g in enumerate(side.gates) if g is gate]

            every = [loud.frames[i] for i in of(loud)]
            mine = of(quiet)
            counts, _ = kept_back_in_between(
                every,
                [quiet.frames[i] for i in mine],
                [quiet.held[i] for i in mine],
                lambda f: len(f[0]),
            )
            kept += sum(counts)
        assert kept > 200  # kept back while quiet, counted in the next handed on ...
        assert quiet.frames[-50:] == loud.frames[-50:]  # ... and every one once loud
    finally:
        await loud.close()
        await quiet.close()


@pytest.mark.parametrize(("loss", "seed"), [(0.0, 11), (0.05, 12), (0.3, 13)])
async def test_audio_through_the_c_path_gives_what_the_python_path_gives(
    loss: float, seed: int
) -> None:
    key = os.urandom(30)
    fast, python = AudioSide(key, fast=True), AudioSide(key, fast=False)
    try:
        feed_both(fast, python, audio_datagrams(key, 400, loss, seed))
        assert fast.direct.fast.routes == 2  # each stream
        assert python.direct.fast.routes == 0
        assert fast.direct.fast.consumed > 0.7 * fast.direct.handled  # most took the C path
        assert python.direct.fast.consumed == 0
        assert fast.frames == python.frames
        assert len(fast.frames) > 200
        assert {level for _, _, level in fast.frames} > {None}  # levels carried, and none
        assert fast.statistics() == python.statistics()
        assert set(fast.statistics()) == {AUDIO_SSRC, OTHER_AUDIO_SSRC}
        assert fast.direct.feedback.log.kept == python.direct.feedback.log.kept  # type: ignore[union-attr]
        assert fast.dtls._RTCDtlsTransport__rx_packets == python.dtls._RTCDtlsTransport__rx_packets
        assert fast.dtls._RTCDtlsTransport__rx_bytes == python.dtls._RTCDtlsTransport__rx_bytes
    finally:
        await fast.close()
        await python.close()


async def test_an_old_audio_packet_is_dropped_whichever_path_it_takes() -> None:
    """The newest sequence number is one, shared by the C path and the Python path: a
    packet older than one the other path took is not delivered (and the way back: a
    disabled receiver's packets go to Python and are dropped, enabled again they are
    taken again)."""
    key = os.urandom(30)
    side = AudioSide(key, fast=True)
    tx = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND))
    ids = HeaderExtensionsMap()
    ids.configure(RTCRtpReceiveParameters(headerExtensions=AUDIO_EXTENSIONS))

    base = 0xFFFC  # the numbers wrap on the way

    def packet(n: int, mid: str | None = None) -> bytes:
        seq = (base + n) & 0xFFFF
        p = RtpPacket(payload_type=111, sequence_number=seq, timestamp=n * 960, ssrc=AUDIO_SSRC)
        p.payload = bytes([n])
        p.extensions.mid = mid
        return tx.protect(p.serialize(ids))

    try:
        side.feed(packet(0))  # the first: through Python, which routes the stream
        side.feed(packet(5, mid="0"))  # C (an ASCII MID changes nothing on a routed SSRC)
        assert side.direct.fast.consumed == 1
        side.feed(packet(3, mid="é"))  # older, a MID not ASCII: the Python path drops it
        side.feed(packet(7, mid="é"))  # newer: the Python path delivers it
        side.feed(packet(6))  # older than what Python took: C drops it
        eighth = packet(8)
        side.feed(eighth)  # C
        side.feed(eighth)  # again: dropped (by libsrtp's replay check)
        assert [data for data, _, _ in side.frames] == [bytes([n]) for n in (0, 5, 7, 8)]
        assert side.direct.fast.consumed == 3  # 5, 6 and 8
        side.receiver._enabled = False  # type: ignore[attr-defined]
        side.feed(packet(9))
        assert side.direct.fast.consumed == 3 and len(side.frames) == 4
        side.receiver._enabled = True  # type: ignore[attr-defined]
        side.feed(packet(10))
        assert side.direct.fast.consumed == 4 and side.frames[-1][0] == bytes([10])
    finally:
        await side.close()


async def test_a_forwarding_audio_stream_sends_each_packet_and_hands_on_what_a_quiet_one_would() -> (
    None
):
    """An audio stream whose every subscriber is steady (`LayerBuffer.forward`): each
    packet the C path takes goes to the streams from there, as it came, with its level and
    its timestamp moved by the offset; the publication gets a packet each `QUIET_S` (and
    each one the Python path takes), carrying the count of those kept back and each one's
    level with when it came (the speaker detector's input)."""
    key = os.urandom(30)
    every, forwarding = AudioSide(key, fast=True), AudioSide(key, fast=True)
    theirs_of = getattr(every.receiver, JITTER_ATTR).streams
    mine_of = getattr(forwarding.receiver, JITTER_ATTR).streams
    sent = audio_datagrams(key, 400, 0.05, 41)
    sends: dict[int, list[Packetized]] = {}
    # a frame handed on: the (arrival time, level) of each packet kept back before it
    held_levels: dict[int, tuple[tuple[float, int], ...]] = {}
    began = time.monotonic()
    try:
        for data in sent[:40]:  # the streams' first packets: routed
            every.feed(data)
            forwarding.feed(data)
        assert set(mine_of) == {AUDIO_SSRC, OTHER_AUDIO_SSRC}
        start, start_every = len(forwarding.frames), len(every.frames)
        for ssrc, buffer in mine_of.items():
            out = sends[ssrc] = []

            def send(
                streams: list[Any], frame: Packetized, out: list[Packetized] = out
            ) -> list[int]:
                out.append(frame)
                return []

            buffer.forward([object()], send, Packetized, 1000)
        for data in sent[40:]:
            every.feed(data)
            count = len(forwarding.frames)
            forwarding.feed(data)
            for i in range(count, len(forwarding.frames)):
                held_levels[i] = forwarding.gates[i].held_levels
        assert forwarding.statistics() == every.statistics()
        assert len(sends[AUDIO_SSRC]) > 250
        for ssrc, out in sends.items():
            theirs = [
                f
                for f, g in zip(every.frames[start_every:], every.gates[start_every:], strict=True)
                if g is theirs_of[ssrc]
            ]
            # each sent as it came, with its level, in order, the timestamps moved alike
            at, sent_at = 0, []
            for frame in out:
                while (theirs[at][0], theirs[at][2]) != (frame.payloads[0], frame.audio_level):
                    at += 1
                sent_at.append(at)
                at += 1
            origin = every.receiver._RTCRtpReceiver__timestamp_mapper._origin  # type: ignore[attr-defined]
            for i, frame in zip(sent_at, out, strict=True):  # as received (unmapped), + 1000
                assert frame.timestamp == (theirs[i][1] + origin + 1000) & 0xFFFFFFFF
            # handed on: a few, each with the count of those kept back and their levels in
            # order, with their arrival times (in this run, in order), all of which were sent
            handed = [
                i
                for i in range(start, len(forwarding.frames))
                if forwarding.gates[i] is mine_of[ssrc]
            ]
            at, times = 0, [began]
            for i in handed:
                kept, levels = [], []
                while theirs[at] != forwarding.frames[i]:
                    if theirs[at][0]:
                        kept.append(at)
                    if theirs[at][2] is not None:
                        levels.append(theirs[at][2] & 0x7F)
                    at += 1
                at += 1
                assert forwarding.held[i] == (len(kept), sum(len(theirs[k][0]) for k in kept))
                assert [level for _, level in held_levels[i]] == levels
                times += [when for when, _ in held_levels[i]]
                assert set(kept) <= set(sent_at)
            assert times == sorted(times) and times[-1] <= time.monotonic()
            if ssrc == AUDIO_SSRC:
                assert len(handed) < len(theirs) / 4
                assert len(times) > 250
    finally:
        await every.close()
        await forwarding.close()
