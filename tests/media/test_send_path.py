"""The SFU's per-packet send path, on the wire: what `RtpOutput` sends through a real
`RtpLink` (a real asyncio datagram transport and pylibsrtp session behind stand-ins for
aiortc's sender, DTLS transport and ICE pair), read back from a real UDP socket,
unprotected and parsed by aiortc.

Checks what the fast path must keep: SRTP that a receiver accepts (C protects with
pylibsrtp's libsrtp: tests/unit/test_rtp_send.py), sequence numbers, the marker on a frame's
last packet, header extensions (mid, abs-send-time, audio level), and a NACKed packet
sent again whole, as RTX, from the history (which keeps packets, not header/payload
pairs).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pylibsrtp
import pytest
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from prometheus_client import CollectorRegistry, Counter

from server.media import forward_only
from server.media.aiortc_internals import RtpLink
from server.media.aiortc_internals.transport import MAX_SOCKET_BACKLOG
from server.media.forwarding import ForwardedTrack, Publication
from server.media.metrics import MediaMetrics
from server.media.resend_room import ResendRoom
from server.media.rtp_output import (
    ABS_SEND_TIME_URI,
    AUDIO_LEVEL_URI,
    MAX_PAYLOAD,
    MID_URI,
    Delivery,
    Packetized,
    RtpOutput,
    header_size,
    ntp_now,
)
from server.media.sending import DirectSend
from server.media.simulcast_choice import Estimate

KEY = bytes(range(30))
SSRC, RTX_SSRC = 1111, 2222
VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
RTX = RTCRtpCodecParameters(
    mimeType="video/rtx", clockRate=90000, payloadType=97, parameters={"apt": 96}
)
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)
EXTENSIONS = [
    RTCRtpHeaderExtensionParameters(id=4, uri=MID_URI),
    RTCRtpHeaderExtensionParameters(id=2, uri=ABS_SEND_TIME_URI),
    RTCRtpHeaderExtensionParameters(id=1, uri=AUDIO_LEVEL_URI),
]


def session(direction: int) -> pylibsrtp.Session:
    policy = pylibsrtp.Policy(key=KEY, ssrc_type=direction)
    policy.allow_repeat_tx = True
    return pylibsrtp.Session(policy)


class Wire:
    """A subscriber's socket and SRTP session, and the SFU's link to it."""

    def __init__(self, transport: Any, receiver: socket.socket) -> None:
        self.receiver = receiver
        self.inbound = session(pylibsrtp.Policy.SSRC_ANY_INBOUND)
        pair = SimpleNamespace(
            protocol=SimpleNamespace(transport=transport), remote_addr=receiver.getsockname()
        )
        self.dtls = SimpleNamespace(
            _state=DtlsState.CONNECTED,
            transport=SimpleNamespace(_connection=SimpleNamespace(_nominated={1: pair})),
            _tx_srtp=session(pylibsrtp.Policy.SSRC_ANY_OUTBOUND),
            _RTCDtlsTransport__tx_packets=0,
            _RTCDtlsTransport__tx_bytes=0,
        )
        self.sender = SimpleNamespace(
            transport=self.dtls,
            _ssrc=SSRC,
            _rtx_ssrc=RTX_SSRC,
            _RTCRtpSender__packet_count=0,
            _RTCRtpSender__octet_count=0,
            _RTCRtpSender__rtp_timestamp=0,
            _RTCRtpSender__ntp_timestamp=0,
        )
        self.link = RtpLink(self.sender)  # type: ignore[arg-type]
        self.extensions = HeaderExtensionsMap()
        self.extensions.configure(SimpleNamespace(headerExtensions=EXTENSIONS))  # type: ignore[arg-type]

    def output(
        self, codecs: list[RTCRtpCodecParameters], ssrcs: tuple[int, int] | None = None
    ) -> RtpOutput:
        """An output on the link, or on another sender's (its SSRC and RTX SSRC) on the
        same transport: two streams on one SSRC would collide in SRTP."""
        link = self.link
        if ssrcs is not None:
            sender = SimpleNamespace(
                **{**vars(self.sender), "_ssrc": ssrcs[0], "_rtx_ssrc": ssrcs[1]}
            )
            link = RtpLink(sender)  # type: ignore[arg-type]
        retransmissions = Counter("r", "r", registry=CollectorRegistry())
        return RtpOutput(link, codecs, EXTENSIONS, "7", retransmissions)

    def read(self, count: int) -> list[RtpPacket]:
        return [
            RtpPacket.parse(self.inbound.unprotect(self.receiver.recv(2048)), self.extensions)
            for _ in range(count)
        ]


@pytest.fixture
async def wire() -> AsyncIterator[Wire]:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(2)
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    yield Wire(transport, receiver)
    transport.close()
    receiver.close()


async def test_a_video_frame_arrives_as_rtp_with_extensions_and_is_sent_again_as_rtx(
    wire: Wire,
) -> None:
    output = wire.output([VP8, RTX])
    payloads = [b"a" * 1000, b"b" * 1000, b"c" * 400]  # one GSO run
    ntp = ntp_now()
    assert output.send(Packetized(payloads, 3000, ntp)) is not None
    packets = wire.read(3)
    assert [p.payload for p in packets] == payloads
    assert [p.marker for p in packets] == [0, 0, 1]
    first = packets[0].sequence_number
    assert [p.sequence_number for p in packets] == [(first + i) & 0xFFFF for i in range(3)]
    assert {p.ssrc for p in packets} == {SSRC} and {p.payload_type for p in packets} == {96}
    assert len({p.timestamp for p in packets}) == 1
    for packet in packets:
        assert packet.extensions.mid == "7"
        assert packet.extensions.abs_send_time == (ntp >> 14) & 0xFFFFFF

    await output.retransmit(first + 1)
    (rtx,) = wire.read(1)
    assert (rtx.payload_type, rtx.ssrc) == (97, RTX_SSRC)
    assert rtx.payload[:2] == (first + 1).to_bytes(2, "big") and rtx.payload[2:] == payloads[1]
    assert rtx.timestamp == packets[1].timestamp and rtx.extensions.mid == "7"
    assert output.retransmitted == 1
    assert wire.sender._RTCRtpSender__packet_count == 3
    assert wire.sender._RTCRtpSender__octet_count == 2400


async def test_audio_keeps_its_level_and_a_nack_without_rtx_resends_the_packet(
    wire: Wire,
) -> None:
    output = wire.output([OPUS])
    output.send(Packetized([b"opus-frame"], 960, ntp_now(), 0x80 | 33))
    (packet,) = wire.read(1)
    assert packet.payload == b"opus-frame" and packet.marker == 1
    assert packet.extensions.audio_level == (True, 33)
    await output.retransmit(packet.sequence_number)
    wire.inbound = session(pylibsrtp.Policy.SSRC_ANY_INBOUND)  # its replay check refuses it
    (again,) = wire.read(1)
    assert (again.payload_type, again.ssrc, again.payload) == (111, SSRC, b"opus-frame")
    assert again.sequence_number == packet.sequence_number
    await output.retransmit((packet.sequence_number + 1) & 0xFFFF)  # never sent: nothing
    with pytest.raises(TimeoutError):
        wire.receiver.settimeout(0.2)
        wire.receiver.recv(2048)


def test_header_size_reads_the_extension_block() -> None:
    assert header_size(bytes((0x80, 96)) + bytes(10) + b"payload") == 12
    block = b"\xbe\xde\x00\x02" + bytes(8)
    assert header_size(bytes((0x90, 96)) + bytes(10) + block + b"payload") == 24


async def test_no_padding_without_rtx(wire: Wire) -> None:
    output = wire.output([VP8])
    output.send(Packetized([b"frame"], 3000, ntp_now()))
    wire.read(1)
    output.pad(1_000_000, 10.0)
    output.pad(1_000_000, 10.1)
    assert output.padding_packets == 0
    wire.receiver.settimeout(0.2)
    with pytest.raises(TimeoutError):
        wire.receiver.recv(2048)


async def test_padding_goes_on_the_rtx_stream_after_a_frame(wire: Wire) -> None:
    """Probing padding: padding-only packets (P bit, 255 bytes) on the RTX SSRC with the
    last frame's timestamp and abs-send-time, as many as the rate allows; none before
    the first frame."""
    output = wire.output([VP8, RTX])
    output.pad(1_000_000, 10.0)  # no frame yet: nothing to take a timestamp from
    assert output.padding_packets == 0
    output.send(Packetized([b"frame"], 6000, ntp_now()))
    (frame,) = wire.read(1)
    output.pad(1_000_000, 20.0)  # a first call pads one frame's time (1/30 s)
    output.pad(1_000_000, 20.1)  # then 0.1 s: at 1 Mbit/s ~16,700 bytes, ~60 packets
    count = output.padding_packets
    assert 55 <= count <= 62, count
    padding = [wire.inbound.unprotect(wire.receiver.recv(2048)) for _ in range(count)]
    assert {p[0] & 0x20 for p in padding} == {0x20}  # P bit
    assert {p[-1] for p in padding} == {255}
    parsed = [RtpPacket.parse(p, wire.extensions) for p in padding]
    assert {(p.payload_type, p.ssrc, p.timestamp) for p in parsed} == {
        (97, RTX_SSRC, frame.timestamp)
    }
    assert all(p.extensions.abs_send_time is not None for p in parsed)
    wire.receiver.settimeout(0.2)
    with pytest.raises(TimeoutError):
        wire.receiver.recv(2048)  # and no more than counted


async def test_after_a_layer_switch_packets_of_the_old_layer_are_not_resent(wire: Wire) -> None:
    """A NACK for a packet sent before the switch's keyframe is refused (the subscriber
    decodes from that keyframe on; resending the old layer into a congested link kept it
    full for seconds); the keyframe's own packets and later ones are resent."""
    output = wire.output([VP8, RTX])
    output.send(Packetized([b"a" * 900, b"b" * 900], 3000, ntp_now()))
    old = wire.read(2)
    switch = Packetized([b"k" * 900, b"l" * 500], 90_000, ntp_now())
    output.continue_at(switch)
    output.send(switch)
    new = wire.read(2)
    for packet in old:
        await output.retransmit(packet.sequence_number)
    assert output.retransmitted == 0 and output.resends_refused == 2
    await output.retransmit(new[0].sequence_number)
    (rtx,) = wire.read(1)
    assert rtx.ssrc == RTX_SSRC and rtx.payload[2:] == b"k" * 900
    assert output.retransmitted == 1


async def test_a_stopped_video_stream_resends_nothing_sent_before_it_stopped(wire: Wire) -> None:
    """Paused for its link or turned off by the subscriber (DirectSend.clear): it still
    NACKs what it missed before, and the resend room the pause leaves free sent all of
    it again. A packet sent after it goes on is resent as before."""
    output = wire.output([VP8, RTX])
    sending = DirectSend("video", MediaMetrics(CollectorRegistry()), output)
    output.send(Packetized([b"a" * 900, b"b" * 900], 3000, ntp_now()))
    old = wire.read(2)
    sending.clear()
    for packet in old:
        await output.retransmit(packet.sequence_number)
    assert output.retransmitted == 0 and output.resends_refused == 2
    output.send(Packetized([b"k" * 900], 90_000, ntp_now()))
    (new,) = wire.read(1)
    await output.retransmit(new.sequence_number)
    (rtx,) = wire.read(1)
    assert rtx.ssrc == RTX_SSRC and rtx.payload[2:] == b"k" * 900


class Backlog:
    """asyncio's datagram transport as the link sees it, with the bytes it holds set by
    the test: it sends through the real transport and records what went through it."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._sock = transport.get_extra_info("socket")
        self.held = 0
        self.through: list[bytes] = []

    def get_write_buffer_size(self) -> int:
        return self.held

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._sock if name == "socket" else default

    def sendto(self, data: bytes, addr: Any) -> None:
        self.through.append(data)
        self._transport.sendto(data, addr)


async def test_each_frame_goes_where_the_transport_sends_now(wire: Wire) -> None:
    """The C send path keeps its wire between frames and checks before each that it is
    still current (DTLS state, SRTP session, nominated pair, its transport, the backlog):
    every change is followed at the next frame, nothing is sent while down or stalled,
    and aiortc's counters count only what went out."""
    output = wire.output([VP8])
    sent = 0

    def frame() -> Any:
        nonlocal sent
        sent += 1
        return output.send(Packetized([b"p" * 300, b"q" * 200], 3000 * sent, ntp_now()))

    assert frame() is Delivery.SENT
    first = wire.read(2)

    wire.dtls._state = DtlsState.CLOSED  # down: nothing sent, nothing counted
    assert frame() is Delivery.DOWN
    wire.dtls._state = DtlsState.CONNECTED
    assert frame() is Delivery.SENT
    after = wire.read(2)
    assert after[0].sequence_number == (first[1].sequence_number + 1) & 0xFFFF

    # re-keyed (a DTLS restart): the next frame is protected with the new session
    rekeyed = bytes(range(1, 31))
    policy = pylibsrtp.Policy(key=rekeyed, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    wire.dtls._tx_srtp = pylibsrtp.Session(policy)
    assert frame() is Delivery.SENT
    wire.inbound = pylibsrtp.Session(
        pylibsrtp.Policy(key=rekeyed, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND)
    )
    assert [p.payload for p in wire.read(2)] == [b"p" * 300, b"q" * 200]

    # another pair nominated (the network changed): the next frame goes to its peer
    elsewhere = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    elsewhere.bind(("127.0.0.1", 0))
    elsewhere.settimeout(2)
    try:
        old_pair = wire.dtls.transport._connection._nominated[1]
        new_pair = SimpleNamespace(protocol=old_pair.protocol, remote_addr=elsewhere.getsockname())
        wire.dtls.transport._connection._nominated[1] = new_pair
        assert frame() is Delivery.SENT
        moved = [wire.inbound.unprotect(elsewhere.recv(2048)) for _ in range(2)]
        assert [m[-300:] for m in moved[:1]] == [b"p" * 300]
    finally:
        elsewhere.close()
    wire.dtls.transport._connection._nominated[1] = old_pair

    # its transport holds datagrams: the frame goes through it, behind them, in order;
    # holding more than the link allows, the frame is dropped (a stalled peer)
    backlog = Backlog(old_pair.protocol.transport)
    old_pair.protocol = SimpleNamespace(transport=backlog)
    backlog.held = 1
    assert frame() is Delivery.SENT
    assert len(backlog.through) == 2
    assert [p.payload for p in wire.read(2)] == [b"p" * 300, b"q" * 200]
    backlog.held = MAX_SOCKET_BACKLOG + 1
    assert frame() is Delivery.STALLED
    backlog.held = 0
    assert frame() is Delivery.SENT
    assert len(backlog.through) == 2  # written directly again
    assert len(wire.read(2)) == 2

    wire.receiver.settimeout(0.2)
    with pytest.raises(TimeoutError):
        wire.receiver.recv(2048)  # nothing more: the down and stalled frames never went
    went = 6  # frames that went out, of two packets each
    assert wire.sender._RTCRtpSender__packet_count == 2 * went
    assert wire.sender._RTCRtpSender__octet_count == 500 * went
    assert wire.dtls._RTCDtlsTransport__tx_packets == 2 * went
    # each packet: 12-byte header + mid and abs-send-time extensions (12 bytes) + payload
    assert wire.dtls._RTCDtlsTransport__tx_bytes == went * (500 + 2 * 24)
    assert wire.sender._RTCRtpSender__rtp_timestamp == after[0].timestamp + 3000 * (sent - 3)


async def test_two_streams_to_one_subscriber_resend_only_in_the_room_its_estimate_leaves(
    wire: Wire,
) -> None:
    """Two outputs to one subscriber share its ResendRoom: with the media over its REMB
    (a full link) every NACK is refused and nothing more goes out; once the REMB leaves
    room, NACKed packets are resent on either stream, and every byte sent counts."""
    remb = Estimate()
    room = ResendRoom(remb)
    outputs = wire.output([VP8, RTX]), wire.output([VP8, RTX], ssrcs=(3333, 4444))
    for output in outputs:
        output.room = room
    remb.observe(200_000, time.monotonic())  # 25,000 bytes a second
    sent: dict[int, list[RtpPacket]] = {0: [], 1: []}
    for _ in range(3):  # two 1,000-byte payloads per frame and stream, at once
        for n, output in enumerate(outputs):
            output.send(Packetized([b"v" * 1000, bytes([n]) * 900], 3000, ntp_now()))
            sent[n] += wire.read(2)
    packets = sent[0] + sent[1]
    # every byte sent counts: payload, RTP header and the extension block (its 4-byte
    # header, mid and abs-send-time: 6 bytes, padded to 8)
    assert room.sent == sum(len(p.payload) + 12 + 12 for p in packets)
    for n, output in enumerate(outputs):
        for packet in sent[n]:
            await output.retransmit(packet.sequence_number)
        assert output.retransmitted == 0 and output.resends_refused == len(sent[n])
    wire.receiver.settimeout(0.2)
    with pytest.raises(TimeoutError):
        wire.receiver.recv(2048)  # nothing went

    # the link has room now (10 Gbit/s: the microseconds since the last NACK are enough)
    remb.observe(10_000_000_000, time.monotonic())
    for n, output in enumerate(outputs):
        await output.retransmit(sent[n][-1].sequence_number)
    assert [o.retransmitted for o in outputs] == [1, 1]
    resent = wire.read(2)
    assert [p.ssrc for p in resent] == [RTX_SSRC, 4444]
    assert [p.payload[2:] for p in resent] == [b"\x00" * 900, b"\x01" * 900]
    assert room.sent == sum(len(p.payload) + 12 + 12 for p in packets + resent)


async def test_a_payload_too_long_to_forward_is_dropped_and_the_stream_goes_on(
    wire: Wire,
) -> None:
    """A publisher's payload over MAX_PAYLOAD (a misbehaving client: Chrome's are under
    1,200 bytes) used to raise out of Publication.push (the frame then reached no later
    subscriber, and none waited for a keyframe). Now that frame is not sent, the
    subscriber goes on from the next keyframe, which is asked for; audio goes on at once."""
    metrics = MediaMetrics(CollectorRegistry())
    asked: list[str] = []
    vp9 = forward_only.codecs({forward_only.VP9})[0]
    clock = [0.0]  # keyframe requests are limited per second: the test moves time on
    video = Publication(
        "room", "ada", "video", metrics, lambda: asked.append("key") or True, lambda: clock[0]
    )
    audio = Publication("room", "ada", "audio", metrics)
    for publication, codec, ssrcs in ((video, vp9, None), (audio, OPUS, (3333, 4444))):
        track = ForwardedTrack(publication, "bo")
        track.use(DirectSend(publication.kind, metrics, wire.output([codec], ssrcs)))
        publication.subscribe(track)
    key, delta = bytes([0x8A, 0x80, 0x01]), bytes([0xCA, 0x80, 0x02])
    assert asked == ["key"]  # for the new subscriber
    asked.clear()
    clock[0] += 5

    big = MAX_PAYLOAD + 1  # one byte over; audio's 2,000 used to raise from the C send path
    video.push(vp9, key + b"k" * big, 3000, parts=[key + b"k" * 100, b"k" * big])
    audio.push(OPUS, b"a" * 2000, 960)
    assert (video.oversized, audio.oversized) == (1, 1)
    assert asked == ["key"]  # the subscriber waits for the next one
    video.push(vp9, delta + b"d" * 50, 6000, parts=[delta + b"d" * 50])  # not from a keyframe
    wire.receiver.settimeout(0.2)
    with pytest.raises(TimeoutError):
        wire.receiver.recv(2048)  # nothing of either went

    wire.receiver.settimeout(2)
    audio.push(OPUS, b"a" * MAX_PAYLOAD, 1920)  # as long as may be: sent
    assert [p.payload for p in wire.read(1)] == [b"a" * MAX_PAYLOAD]
    video.push(vp9, key + b"k" * 200, 9000, parts=[key + b"k" * 100, b"k" * 100])
    assert [p.payload for p in wire.read(2)] == [key + b"k" * 100, b"k" * 100]


async def test_a_simulcast_switch_onto_an_oversized_keyframe_is_not_made(wire: Wire) -> None:
    """Simulcast: a subscriber moving to layer 1 whose keyframe has a payload over
    MAX_PAYLOAD stays on layer 0 (its frames keep coming), the layer's keyframe is asked
    for again, and the next one that fits moves it."""
    metrics = MediaMetrics(CollectorRegistry())
    clock = [0.0]
    asked: list[int] = []
    vp9 = forward_only.codecs({forward_only.VP9})[0]
    video = Publication("room", "ada", "video", metrics, clock=lambda: clock[0])
    video.attach(vp9, lambda: True, layers=2, request_layer=lambda i: asked.append(i) or True)
    track = ForwardedTrack(video, "bo")
    track.use(DirectSend("video", metrics, wire.output([vp9])))
    video.subscribe(track)
    key, delta = bytes([0x8A, 0x80, 0x01]), bytes([0xCA, 0x80, 0x02])

    video.push_layer(vp9, key + b"0", 3000, 0, parts=[key + b"0" * 100])
    assert track.layer == 0 and [p.payload[3] for p in wire.read(1)] == [ord("0")]
    track.target = 1
    clock[0] += 5
    asked.clear()
    big = [key + b"1" * 100, b"1" * (MAX_PAYLOAD + 1)]
    video.push_layer(vp9, key + b"1", 3000, 1, parts=big)
    assert track.layer == 0 and video.oversized == 1 and asked == [1]
    video.push_layer(vp9, delta + b"0", 6000, 0, parts=[delta + b"0" * 50])  # still layer 0
    assert [p.payload for p in wire.read(1)] == [delta + b"0" * 50]
    video.push_layer(vp9, key + b"1", 9000, 1, parts=[key + b"1" * 100])  # fits: moves
    assert track.layer == 1 and [p.payload for p in wire.read(1)] == [key + b"1" * 100]
