"""A publication's frame to its steady subscribers in one C call (`_rtp_send.fan_out`),
and to the others through `ForwardedTrack.offer`, on real sockets and SRTP sessions
(tests/media/test_send_path.py's `Wire`: a real asyncio transport and pylibsrtp session
behind stand-ins for aiortc's sender, DTLS transport and ICE pair).

What must hold: each subscriber gets its own stream (sequence numbers, timestamps, header
extensions, the audio level) and counts, exactly as `RtpOutput.send` would give it; a
subscriber leaves the fan-out when it must not get the next frame as it is (video turned
off, waiting for a keyframe, its track stopped, its transport down or moved) and comes
back only once it may; and bad input sends nothing to anyone.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtp import RtpPacket
from prometheus_client import CollectorRegistry

from server.media import _rtp_send
from server.media._rtp_receive import LayerBuffer
from server.media.aiortc_internals import LayeredVideoBuffer, LayerFrame
from server.media.forwarding import ForwardedTrack, Publication
from server.media.metrics import MediaMetrics
from server.media.rtp_output import MAX_PAYLOAD, Packetized, ntp_now
from server.media.sending import DirectSend
from tests.media.test_send_path import OPUS, SSRC, VP8, Wire

# VP8 frames as the publisher's depayloader hands them (RFC 6386 §9.1: bit 0 of the
# first byte is 0 for a keyframe; the start code follows)
KEY = bytes([0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A, 0x80, 0x02, 0xE0, 0x01]) + b"k" * 300
DELTA = bytes([0x11, 0x02, 0x00]) + b"d" * 200

Wires = Callable[[int], list[Wire]]


@pytest.fixture
async def wires() -> AsyncIterator[Wires]:
    """`wires(n)`: n subscribers, each with its own socket, transport and SRTP session."""
    made: list[tuple[Any, socket.socket]] = []

    async def make(count: int) -> list[Wire]:
        result = []
        for _ in range(count):
            receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            receiver.bind(("127.0.0.1", 0))
            receiver.settimeout(2)
            transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
            )
            made.append((transport, receiver))
            result.append(Wire(transport, receiver))
        return result

    yield make  # type: ignore[misc]
    for transport, receiver in made:
        transport.close()
        receiver.close()


def subscribe(publication: Publication, metrics: MediaMetrics, wire: Wire) -> ForwardedTrack:
    codec = OPUS if publication.kind == "audio" else VP8
    track = ForwardedTrack(publication, "bo")
    track.use(DirectSend(publication.kind, metrics, wire.output([codec])))
    publication.subscribe(track)
    return track


def offers(track: ForwardedTrack) -> list[bool]:
    """Records each frame `offer` is called with (True: a keyframe): the frames that did
    not go through the fan-out."""
    seen: list[bool] = []
    offer = track.offer

    def spy(packet: Any, keyframe: bool, packetized: Any) -> bool:
        seen.append(keyframe)
        return offer(packet, keyframe, packetized)

    track.offer = spy  # type: ignore[method-assign]
    return seen


def nothing_more(wire: Wire) -> bool:
    wire.receiver.settimeout(0.1)
    try:
        wire.receiver.recv(2048)
    except TimeoutError:
        return True
    finally:
        wire.receiver.settimeout(2)
    return False


async def test_audio_goes_to_every_steady_subscriber_in_one_call_with_its_own_stream(
    wires: Wires,
) -> None:
    registry = CollectorRegistry()
    metrics = MediaMetrics(registry)
    audio = Publication("room", "ada", "audio", metrics)
    subscribers = await wires(3)
    tracks = [subscribe(audio, metrics, wire) for wire in subscribers]
    seen = [offers(track) for track in tracks]
    assert all(track.steady for track in tracks)
    for n in range(40):
        audio.push(OPUS, bytes([n]) * 80, 960 * n, 0x80 | 33)
    # The first frame finds no wire yet: `offer` makes it (RtpOutput.send); every later
    # one goes through the fan-out.
    assert seen == [[True], [True], [True]], "steady subscribers' frames went through offer"
    for wire, track in zip(subscribers, tracks, strict=True):
        packets = wire.read(40)
        assert [p.payload for p in packets] == [bytes([n]) * 80 for n in range(40)]
        assert {p.ssrc for p in packets} == {SSRC}
        first = packets[0]
        assert [p.sequence_number for p in packets] == [
            (first.sequence_number + n) & 0xFFFF for n in range(40)
        ]
        assert [p.timestamp for p in packets] == [
            (first.timestamp + 960 * n) & 0xFFFFFFFF for n in range(40)
        ]
        assert all(p.marker for p in packets)
        assert first.extensions.audio_level == (True, 33)
        assert first.extensions.mid == "7"
        assert first.extensions.abs_send_time is not None
        output = track.output
        assert output is not None
        assert (output.frames, output.packets, output.stream.budget) == (40, 40, 40)
        assert track.frames_out == 40
        assert wire.sender._RTCRtpSender__packet_count == 40
        assert wire.sender._RTCRtpSender__rtp_timestamp == packets[-1].timestamp
        assert nothing_more(wire)
    # each subscriber's stream is its own: random origins, not one shared header
    origins = {track.output.stream.origin for track in tracks if track.output is not None}
    assert len(origins) == 3
    audio.close()  # flushes what the fan-out counted in the forwarded-frames metric
    forwarded = registry.get_sample_value("pairwise_sfu_forwarded_frames_total", {"kind": "audio"})
    assert forwarded == 120


async def test_a_subscriber_leaves_the_fan_out_while_it_must_not_get_frames_and_comes_back(
    wires: Wires,
) -> None:
    """Video off (its choice), back on: only from a keyframe; its transport down, up
    again: only from a keyframe; its track stopped: nothing. The others keep every frame
    through the fan-out throughout."""
    metrics = MediaMetrics(CollectorRegistry())
    asked: list[str] = []
    clock = [0.0]
    video = Publication(
        "room", "ada", "video", metrics, lambda: asked.append("key") or True, lambda: clock[0]
    )
    bo_wire, carol_wire = await wires(2)
    bo, carol = subscribe(video, metrics, bo_wire), subscribe(video, metrics, carol_wire)
    bo_offers, carol_offers = offers(bo), offers(carol)
    timestamp = 0

    def push(data: bytes) -> None:
        nonlocal timestamp
        timestamp += 3000
        clock[0] += 2  # past the keyframe requests' one-per-second limit
        video.push(VP8, data, timestamp)

    push(DELTA)  # both wait for a keyframe: nothing goes
    assert not bo.steady and not carol.steady
    push(KEY)
    assert bo.steady and carol.steady
    push(DELTA)
    assert len(bo_wire.read(2)) == len(carol_wire.read(2)) == 2  # (one packet each)
    assert bo_offers == carol_offers == [False, True], "the keyframe's wait is offer's"

    bo.set_enabled(False)  # audio only: bo leaves the fan-out
    assert not bo.steady
    push(DELTA)
    assert nothing_more(bo_wire) and len(carol_wire.read(1)) == 1
    bo.set_enabled(True)
    asked.clear()
    push(DELTA)  # not from a keyframe: bo waits, and one is asked for
    assert not bo.steady and nothing_more(bo_wire) and asked == ["key"]
    push(KEY)
    assert bo.steady
    assert [p.payload[-300:] for p in bo_wire.read(1)] == [b"k" * 300]
    carol_wire.read(2)
    push(DELTA)
    assert len(bo_wire.read(1)) == len(carol_wire.read(1)) == 1
    carol_through = len(carol_offers)

    bo_wire.dtls._state = DtlsState.CLOSED  # bo's transport goes down
    push(DELTA)  # the fan-out finds bo's wire no longer current: offer says DOWN
    assert not bo.steady and nothing_more(bo_wire)
    assert len(carol_wire.read(1)) == 1
    bo_wire.dtls._state = DtlsState.CONNECTED
    push(DELTA)
    assert nothing_more(bo_wire), "a delta frame went to bo after its transport came back"
    carol_wire.read(1)
    push(KEY)
    assert bo.steady and len(bo_wire.read(1)) == 1
    carol_wire.read(1)
    assert len(carol_offers) == carol_through, "carol left the fan-out for bo's fault"

    push(DELTA)  # both in the fan-out again
    assert len(bo_wire.read(1)) == len(carol_wire.read(1)) == 1

    bo.stop()  # its track ended (the subscriber's sender stopped)
    assert not bo.steady
    push(KEY)
    push(DELTA)
    assert nothing_more(bo_wire) and len(carol_wire.read(2)) == 2


async def test_bad_input_to_the_fan_out_sends_nothing_to_anyone(wires: Wires) -> None:
    metrics = MediaMetrics(CollectorRegistry())
    audio = Publication("room", "ada", "audio", metrics)
    subscribers = await wires(2)
    tracks = [subscribe(audio, metrics, wire) for wire in subscribers]
    audio.push(OPUS, b"first", 960)
    for wire in subscribers:
        wire.read(1)
    streams = [track.output.stream for track in tracks if track.output is not None]
    before = [(s.seq, s.packets, s.frames, s.budget) for s in streams]
    good = Packetized([b"x" * 100], 1920, ntp_now())

    with pytest.raises(TypeError):
        _rtp_send.fan_out([*streams, "not a stream"], good)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="not a Packetized frame"):
        _rtp_send.fan_out(streams, "not a frame")
    with pytest.raises(ValueError, match="too long"):
        _rtp_send.fan_out(streams, Packetized([b"x" * 1800], 1920, ntp_now()))
    with pytest.raises(TypeError):
        _rtp_send.fan_out(streams, Packetized([b"x", "no"], 1920, ntp_now()))  # type: ignore[list-item]
    assert [(s.seq, s.packets, s.frames, s.budget) for s in streams] == before
    assert all(nothing_more(wire) for wire in subscribers)

    # A stream's own numbers are checked as well
    stream = streams[0]
    with pytest.raises(ValueError):
        stream.seq = 70_000
    with pytest.raises(ValueError):
        stream.budget = stream.budget + 1_000_000
    with pytest.raises(TypeError):
        stream.wire = "elsewhere"  # type: ignore[assignment]
    with pytest.raises(ValueError):
        _rtp_send.Stream(
            [None], 1, 96, 0, 0, (b"\xbe\xde\x00\x01", True, b""), (b"", False, b""), 99, 1
        )
    with pytest.raises(ValueError):
        _rtp_send.Stream(
            [None], 1, 96, 0, 0, (b"\xbe\xde\x00\x01\x10", False, b""), (b"", False, b""), 0, 1
        )
    assert [(s.seq, s.packets, s.frames, s.budget) for s in streams] == before

    # and the fan-out goes on as before: the next frame to both, numbers continuing
    _rtp_send.fan_out(streams, Packetized([b"y" * MAX_PAYLOAD], 1920, ntp_now()))
    for wire, (seq, *_) in zip(subscribers, before, strict=True):
        (packet,) = wire.read(1)
        assert packet.sequence_number == seq and packet.payload == b"y" * MAX_PAYLOAD


def layer_frames(layer: int) -> tuple[bytes, bytes]:
    """A keyframe and a delta frame of simulcast layer `layer`, told apart by their
    bytes."""
    mark = str(layer).encode()
    return KEY[:10] + mark * 300, DELTA[:3] + mark * 200


async def test_a_simulcast_layer_goes_to_the_subscribers_staying_on_it_in_one_call(
    wires: Wires,
) -> None:
    """Subscribers on a layer and staying there get its frames through the fan-out, each
    its own layer only; one whose target moves leaves it at once (a step down for
    congestion gets nothing more of its layer), moves on the target's keyframe with its
    timestamps continuing, and is back in the fan-out on its new layer."""
    metrics = MediaMetrics(CollectorRegistry())
    asked: list[int] = []
    video = Publication("room", "ada", "video", metrics, clock=lambda: 0.0)
    video.attach(VP8, lambda: True, layers=3, request_layer=lambda i: asked.append(i) or True)
    bo_wire, carol_wire, dan_wire = await wires(3)
    bo, carol, dan = (subscribe(video, metrics, w) for w in (bo_wire, carol_wire, dan_wire))
    bo.target = carol.target = 2
    seen = {name: offers(track) for name, track in (("bo", bo), ("carol", carol), ("dan", dan))}
    timestamp = 0

    def frame(key: bool = False) -> None:
        nonlocal timestamp
        timestamp += 3000
        for layer in range(3):
            video.push_layer(VP8, layer_frames(layer)[0 if key else 1], timestamp, layer)

    def marks(wire: Wire, count: int) -> list[bytes]:
        return [p.payload[-1:] for p in wire.read(count)]

    frame(key=True)
    assert bo.steady_on(2) and carol.steady_on(2) and dan.steady_on(0)
    for _ in range(5):
        frame()
    assert marks(bo_wire, 6) == marks(carol_wire, 6) == [b"2"] * 6
    assert marks(dan_wire, 6) == [b"0"] * 6
    # the keyframe made each wire (through offer); every frame after it the fan-out's
    assert {name: len(frames) for name, frames in seen.items()} == {"bo": 1, "carol": 1, "dan": 1}
    assert all(nothing_more(w) for w in (bo_wire, carol_wire, dan_wire))

    carol.choice.changed_at = carol.choice.congested_at = 1.0  # a step down for congestion
    carol.target = 1
    assert not carol.steady_on(2) and bo.steady_on(2)
    frame()  # nothing more of layer 2 for carol; layer 1 asked for a keyframe
    assert nothing_more(carol_wire) and marks(bo_wire, 1) == [b"2"]
    assert 1 in asked
    frame(key=True)  # layer 1's keyframe moves her
    moved = carol_wire.read(1)
    assert [p.payload[-1:] for p in moved] == [b"1"] and carol.layer == 1
    assert carol.steady_on(1) and not carol.steady_on(2)
    through = len(seen["carol"])
    for _ in range(3):
        frame()
    later = carol_wire.read(3)
    assert [p.payload[-1:] for p in later] == [b"1"] * 3
    assert len(seen["carol"]) == through, "carol's frames on her new layer went through offer"
    stream = moved + later
    step = [(b.timestamp - a.timestamp) & 0xFFFFFFFF for a, b in itertools.pairwise(stream)]
    assert step == [3000, 3000, 3000]  # her stream's timestamps go on across the move
    assert marks(bo_wire, 4) == [b"2"] * 4 and marks(dan_wire, 5) == [b"0"] * 5


async def test_a_layer_its_takers_are_steady_on_is_sent_from_its_c_buffer(wires: Wires) -> None:
    """Every subscriber taking a simulcast layer is steady on it: its C buffer
    (`LayerBuffer.forward`) sends each frame to their streams as the frame completes, and
    the publication is handed only keyframes and a frame each quarter second, all counted.
    A subscriber moving off the layer takes it back through the publication until it has
    moved; each subscriber's picture ids and sequence numbers run on across both ways."""
    metrics = MediaMetrics(CollectorRegistry())
    video = Publication("room", "ada", "video", metrics, clock=lambda: 0.0)
    generation = video.attach(VP8, lambda: True, layers=3, request_layer=lambda i: True)
    sink = video.layer_sink_for(generation, lambda ssrc: ssrc)
    buffers = [LayerBuffer(0.0) for _ in range(3)]
    bo_wire, carol_wire, dan_wire = await wires(3)
    bo, carol, dan = (subscribe(video, metrics, w) for w in (bo_wire, carol_wire, dan_wire))
    bo.target = carol.target = 2
    handed = [0, 0, 0]
    seqs = [0, 0, 0]  # each layer's own
    timestamp = 0
    now = 0.0

    def frame(key: bool = False, layers: tuple[int, ...] = (0, 1, 2)) -> None:
        """One frame of each layer, as the receive path takes it: into the layer's C
        buffer, and what it hands on to the publication."""
        nonlocal timestamp, now
        timestamp, now = timestamp + 3000, now + 1 / 30
        for layer in layers:
            data = layer_frames(layer)[0 if key else 1]
            seqs[layer] += 1
            out = buffers[layer].add(seqs[layer], timestamp, True, data, now)
            if out is not None and out[2] is not None:
                handed[layer] += 1
                held = (out[6], out[7])
                sink(VP8, LayerFrame(out[2], out[4], layer, gate=buffers[layer], held=held))

    def picture_ids(packets: list[Any]) -> list[int]:
        return [int.from_bytes(p.payload[2:4], "big") & 0x7FFF for p in packets]

    def running_on(packets: list[Any]) -> bool:
        ids, seqs = picture_ids(packets), [p.sequence_number for p in packets]
        return all((b - a) % 32768 == 1 for a, b in itertools.pairwise(ids)) and all(
            (b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs)
        )

    frame(key=True)  # each moves onto its layer (through the publication)
    assert bo.steady_on(2) and carol.steady_on(2) and dan.steady_on(0)
    assert [b.forwarding for b in buffers] == [True, False, True]
    handed = [0, 0, 0]
    for _ in range(30):  # a second
        frame()
    assert handed[2] <= 6 and handed[0] <= 6, handed  # a frame each quarter second
    assert video.layers[2].frames + buffers[2].held_frames == 31  # and all counted
    bo_got, carol_got = bo_wire.read(31), carol_wire.read(31)
    assert [p.payload[-1:] for p in bo_got] == [p.payload[-1:] for p in carol_got] == [b"2"] * 31
    assert running_on(bo_got) and running_on(carol_got)
    assert picture_ids(bo_got) == picture_ids(carol_got)  # packetized once for both
    assert [p.payload[-1:] for p in dan_wire.read(31)] == [b"0"] * 31
    assert video.sent_on_receipt >= 3 * 30 - 3 * 6  # most frames sent from the buffers

    # carol moves down (not for congestion: she keeps layer 2 until layer 1's keyframe)
    carol.choice.changed_at = 1.0  # a change, not for congestion (`stepping_down`)
    carol.target = 1
    assert not buffers[2].forwarding and not buffers[1].forwarding
    frame()
    assert [p.payload[-1:] for p in carol_wire.read(1)] == [b"2"]
    frame(key=True, layers=(1,))  # moves her
    assert carol.steady_on(1) and [b.forwarding for b in buffers] == [True, True, True]
    for _ in range(5):
        frame()
    moved = carol_wire.read(6)
    assert [p.payload[-1:] for p in moved] == [b"1"] * 6 and running_on(moved)
    later = bo_wire.read(6)
    assert [p.payload[-1:] for p in later] == [b"2"] * 6
    assert running_on(bo_got + later)  # bo's stream ran on across it all
    assert all(nothing_more(w) for w in (bo_wire, carol_wire))
    # nobody left: no buffer sends, none keeps a stream
    for track in (bo, carol, dan):
        video.unsubscribe(track)
    assert not any(b.forwarding for b in buffers)


async def test_a_layers_buffer_stops_sending_while_the_publication_must_decide(
    wires: Wires,
) -> None:
    """Paused, held, with a sink, detached, or its taker gone: the buffer sends nothing
    itself, and keeps no subscriber's stream."""
    metrics = MediaMetrics(CollectorRegistry())
    video = Publication("room", "ada", "video", metrics, clock=lambda: 0.0)
    generation = video.attach(VP8, lambda: True, layers=1, request_layer=lambda i: True)
    sink = video.layer_sink_for(generation, lambda ssrc: ssrc)
    buffer = LayerBuffer(0.0)
    (wire,) = await wires(1)
    bo = subscribe(video, metrics, wire)
    sink(VP8, LayerFrame(KEY, 3000, 0, gate=buffer))  # moves bo onto the layer
    assert bo.steady_on(0) and buffer.forwarding

    def steady_again() -> None:
        sink(VP8, LayerFrame(KEY, 3000, 0, gate=buffer))  # the keyframe a resume waits for

    taken: list[Any] = []

    def phone(codec: Any, packet: Any) -> None:  # the phone gateway's sink, say
        taken.append(packet)

    for stop, resume in (
        (lambda: video.set_paused(True), lambda: video.set_paused(False)),
        (lambda: video.set_held(True), lambda: video.set_held(False)),
        (lambda: video.add_sink(phone), lambda: video.remove_sink(phone)),
        (lambda: bo.set_enabled(False), lambda: bo.set_enabled(True)),
    ):
        stop()
        assert not buffer.forwarding
        resume()
        steady_again()
        assert buffer.forwarding
    video.detach(generation)
    assert not buffer.forwarding


async def test_a_frame_the_buffer_sent_goes_on_to_whom_it_missed_even_after_a_change(
    wires: Wires,
) -> None:
    """The C buffer names the streams that sent nothing by their place in the list it
    sent to: the publication offers the frame to those tracks even if its own list has
    changed since (a subscriber left, its steady list rebuilt), and to nobody it reached.
    A buffer of a layer the publication no longer knows stops sending."""
    metrics = MediaMetrics(CollectorRegistry())
    video = Publication("room", "ada", "video", metrics, clock=lambda: 0.0)
    generation = video.attach(VP8, lambda: True, layers=3, request_layer=lambda i: True)
    sink = video.layer_sink_for(generation, lambda ssrc: ssrc if ssrc < 3 else None)
    buffer = LayerBuffer(0.0)
    bo_wire, carol_wire = await wires(2)
    bo, carol = (subscribe(video, metrics, w) for w in (bo_wire, carol_wire))
    bo.target = carol.target = 2
    sink(VP8, LayerFrame(KEY, 3000, 2, gate=buffer))  # both onto layer 2
    bo_wire.read(1), carol_wire.read(1)
    assert buffer.forwarding
    _, streams, _ = video._layer_split(2)
    assert streams.tracks == [bo, carol]
    frame = Packetized(buffer.packetize(DELTA), 6000, ntp_now())
    sent = (frame, [1], streams)  # carol's stream sent nothing (her wire moved, say)
    video.unsubscribe(bo)  # the publication's list is now [carol]
    video.push_layer(VP8, DELTA, 6000, 2, None, sent)
    assert [p.payload[-5:] for p in carol_wire.read(1)] == [DELTA[-5:]]
    assert nothing_more(bo_wire) and nothing_more(carol_wire)
    # a frame of an SSRC it no longer knows (the publisher moved the layer): not looked
    # after here, so its buffer stops sending
    sink(VP8, LayerFrame(DELTA, 9000, 7, gate=buffer))
    assert not buffer.forwarding


async def test_a_single_vp8_stream_is_sent_from_its_c_buffer_with_its_timestamps_moved(
    wires: Wires,
) -> None:
    """Not simulcast (a camera under 960x540, a screen share): once every subscriber is
    steady, the stream's C buffer sends each frame itself, its timestamp moved as `push`
    moves it (aiortc's mapping, continued across receivers); each subscriber's picture ids,
    sequence numbers and timestamps run on across both ways, also over a new receiver
    (the publisher reconnected) and a new stream in the same receiver (its sender
    restarted: a new SSRC, a new buffer), every frame counted; anything the publication
    must decide stops it."""
    metrics = MediaMetrics(CollectorRegistry())
    video = Publication("room", "ada", "video", metrics, clock=lambda: 0.0)
    bo_wire, carol_wire = await wires(2)
    bo, carol = (subscribe(video, metrics, w) for w in (bo_wire, carol_wire))
    handed = fed = 0
    seq = raw = 0
    now = 0.0

    def receiver(origin: int) -> tuple[Any, LayerBuffer]:
        """A new receiver whose first RTP timestamp is `origin` (aiortc maps it to 0)."""
        nonlocal raw, seq
        raw, seq = origin - 3000, 0
        generation = video.attach(VP8, lambda: True)
        return video.sink_for(generation), LayerBuffer(0.0)

    sink, buffer = receiver(1_000_000)
    base = 1_000_000

    def frame(key: bool = False) -> None:
        nonlocal raw, seq, now, handed, fed
        raw, seq, now = (raw + 3000) & 0xFFFFFFFF, seq + 1, now + 1 / 30
        fed += 1
        out = buffer.add(seq, raw, True, KEY if key else DELTA, now)
        if out is not None and out[2] is not None:
            handed += 1
            got = LayerFrame(out[2], out[4], 1, gate=buffer, held=(out[6], out[7]))
            got.timestamp = (raw - base) & 0xFFFFFFFF  # as aiortc's timestamp mapper hands it
            sink(VP8, got)

    def picture_ids(packets: list[Any]) -> list[int]:
        return [int.from_bytes(p.payload[2:4], "big") & 0x7FFF for p in packets]

    def running_on(packets: list[Any]) -> bool:
        return all(
            (b.sequence_number - a.sequence_number) & 0xFFFF == 1
            and (b.timestamp - a.timestamp) & 0xFFFFFFFF == 3000
            and (pb - pa) % 32768 == 1
            for (a, pa), (b, pb) in itertools.pairwise(
                zip(packets, picture_ids(packets), strict=True)
            )
        )

    frame(key=True)  # through the publication: both become steady on it
    assert bo.steady and carol.steady and buffer.forwarding
    handed = 0
    for _ in range(30):
        frame()
    assert handed <= 6, handed  # a frame each quarter second, the rest sent from C
    assert video.frames + buffer.held_frames == 31  # all counted
    bo_got, carol_got = bo_wire.read(31), carol_wire.read(31)
    assert running_on(bo_got) and running_on(carol_got)
    assert picture_ids(bo_got) == picture_ids(carol_got)  # packetized once for both
    assert video.sent_on_receipt >= 2 * (30 - 6)

    # carol turns video off: the buffer sends to bo alone; on again: she waits for a
    # keyframe, so the publication sends bo's frames until it comes, then C again
    carol.set_enabled(False)
    assert buffer.forwarding
    frame()
    assert nothing_more(carol_wire)
    carol.set_enabled(True)
    assert not buffer.forwarding
    frame()
    frame(key=True)
    assert buffer.forwarding
    frame()
    more = bo_wire.read(4)
    assert running_on(bo_got + more)  # bo's stream ran on across the three ways
    assert len(carol_wire.read(2)) == 2 and nothing_more(carol_wire)

    # ada reconnects: a new receiver, timestamps from another origin, a new buffer
    sink, buffer = receiver(7_777)
    base = 7_777
    assert not bo.steady  # a new receiver starts everyone at its first keyframe
    frame(key=True)
    assert buffer.forwarding
    for _ in range(5):
        frame()
    after = bo_wire.read(6)
    step = (after[0].timestamp - more[-1].timestamp) & 0xFFFFFFFF
    assert 0 < step < 90000  # bo's clock went on forward, not back to the new origin
    assert running_on(after) and nothing_more(bo_wire)
    carol_wire.read(6)

    # ada's sender restarts in the same receiver: a new SSRC (a new buffer, its own random
    # picture ids) whose timestamps aiortc maps with the old origin (a jump): bo's stream
    # runs on from its keyframe, and what the old buffer kept back is counted
    frame()
    assert buffer.held_frames > 0 and len(carol_wire.read(1)) == 1
    after += bo_wire.read(1)
    old = buffer
    buffer, raw = LayerBuffer(0.0), 0x7000_0000
    frame()  # a delta first: not decodable after the old stream's frames
    assert not bo.steady and nothing_more(bo_wire)
    frame(key=True)
    for _ in range(3):
        frame()
    assert video.frames + buffer.held_frames == fed  # the old buffer's kept back too
    restarted = bo_wire.read(4)
    assert running_on(after) and running_on(restarted) and nothing_more(bo_wire)
    last, first = after[-1], restarted[0]
    assert (first.sequence_number - last.sequence_number) & 0xFFFF == 1
    # its picture id newer (the delta nobody got was packetized too: a gap before a
    # keyframe, which a decoder takes as a fresh start), its timestamp two frames on
    assert 0 < (picture_ids([first])[0] - picture_ids([last])[0]) % 32768 <= 2
    assert (first.timestamp - last.timestamp) & 0xFFFFFFFF == 6000
    assert old.take_held() == (0, 0)

    for track in (bo, carol):
        video.unsubscribe(track)
    assert not buffer.forwarding


async def test_lost_frames_said_by_a_padding_frame_stop_the_buffer_until_a_keyframe(
    wires: Wires,
) -> None:
    """The frame after frames lost for good may be padding only (a sender probing its
    link): the subscribers still wait for a keyframe, which is asked for, and the buffer
    sends none of the deltas that follow."""
    metrics = MediaMetrics(CollectorRegistry())
    asked: list[str] = []
    clock = [0.0]
    video = Publication("room", "ada", "video", metrics, clock=lambda: clock[0])
    generation = video.attach(VP8, lambda: asked.append("key") or True)
    sink = video.sink_for(generation)
    buffer = LayerBuffer(0.0)
    (wire,) = await wires(1)
    bo = subscribe(video, metrics, wire)
    sink(VP8, LayerFrame(KEY, 3000, 1, gate=buffer))
    assert bo.steady and buffer.forwarding and len(wire.read(1)) == 1
    asked.clear()
    clock[0] = 5.0  # past the limit on keyframe requests
    sink(VP8, LayerFrame(b"", 6000, 1, after_gap=True, gate=buffer))
    assert not bo.steady and not buffer.forwarding and asked == ["key"]
    sink(VP8, LayerFrame(DELTA, 9000, 1, gate=buffer))
    assert nothing_more(wire)
    sink(VP8, LayerFrame(KEY, 12000, 1, gate=buffer))
    assert bo.steady and buffer.forwarding and len(wire.read(1)) == 1


def test_another_codec_on_a_streams_ssrc_stops_its_buffer_sending() -> None:
    """A packet of another payload type on a forwarding stream's SSRC: the buffer sends
    nothing more as VP8 (the publication decides again when the frame tells it the
    codec); the same payload type does not stop it."""
    video = LayeredVideoBuffer(lambda ssrc, lost: None, 1, replace=True)

    def packet(seq: int, payload_type: int) -> RtpPacket:
        made = RtpPacket(payload_type, 1, seq, seq * 3000, 1234)
        made._data = DELTA
        return made

    video.add(packet(1, 96))
    (layer,) = video.layers.values()
    layer.forward([], lambda streams, frame: [], Packetized)
    video.add(packet(2, 96))
    assert layer.forwarding
    video.add(packet(3, 102))
    assert not layer.forwarding
