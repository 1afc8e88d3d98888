"""Participants publish and receive through the SFU: real aiortc peers over loopback."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any

import aioice.ice
import av
import pytest
from aiortc.codecs import h264, opus, vpx

from server.media import aiortc_internals as internals
from server.media.aiortc_internals.base import ESTIMATOR_ATTR, JITTER_ATTR
from tests.media.conftest import Join
from tests.media.support import DecodeErrors
from tests.support.parts import ServerParts
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow


@pytest.fixture
def decode_errors() -> Iterator[DecodeErrors]:
    handler = DecodeErrors()
    logger = logging.getLogger("aiortc.rtcrtpreceiver")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


@pytest.fixture
def encoder_calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts every real encode in this process (a spy: each call goes through)."""
    calls = {"count": 0}
    for cls in (vpx.Vp8Encoder, opus.OpusEncoder, h264.H264Encoder):
        original = cls.encode

        def counting(self, frame, force_keyframe=False, _original=original):  # type: ignore[no-untyped-def]
            calls["count"] += 1
            return _original(self, frame, force_keyframe)

        monkeypatch.setattr(cls, "encode", counting)
    return calls


@pytest.fixture
def tried_as_stun(monkeypatch: pytest.MonkeyPatch) -> Counter[int]:
    """RTP and RTCP datagrams each aioice protocol (by id) tried as STUN first: a spy on
    its method, each call going through."""
    tried: Counter[int] = Counter()
    original = aioice.ice.StunProtocol.datagram_received

    def spy(self: Any, data: bytes, addr: Any) -> None:
        if data and 127 < data[0] < 192:
            tried[id(self)] += 1
        original(self, data, addr)

    monkeypatch.setattr(aioice.ice.StunProtocol, "datagram_received", spy)
    return tried


async def test_two_participants_receive_and_decode_each_other(
    join: Join, decode_errors: DecodeErrors
) -> None:
    ada = await join("ada", role="mentor")
    bo = await join("bo")
    for person in (ada, bo):
        await eventually(
            lambda p=person: len(p.received) == 2 and all(r.frames > 20 for r in p.received),
            timeout=20,
        )
    for person in (ada, bo):
        kinds = sorted(r.kind for r in person.received)
        assert kinds == ["audio", "video"]
        video = person.of_kind("video")[0]
        assert video.first_size == (160, 120)
    assert decode_errors.count == 0


async def test_forwarding_is_pass_through(
    join: Join, server: Any, encoder_calls: dict[str, int], tried_as_stun: Counter[int]
) -> None:
    ada = await join("ada")
    bo = await join("bo", publish=False, decode=False)
    await eventually(
        lambda: len(bo.received) == 2 and all(r.frames > 30 for r in bo.received), timeout=20
    )
    assert encoder_calls["count"] == 0
    # ada's packets were handled directly (direct_receive.py), not through aiortc's queue.
    peer = ServerParts(server.app).sfu.peer("pair-1", "ada")
    receive = {
        id(t.receiver.transport): t.receiver.transport.transport._connection.data_received
        for t in peer.pc.getTransceivers()
    }
    assert all(isinstance(r, internals.DirectReceive) for r in receive.values()), receive
    # ...her camera (one stream) into a layer buffer, its lost retransmissions NACKed
    # again, and (no transport-cc from aiortc) her REMB estimator kept (tap_video)
    camera = next(t.receiver for t in peer.pc.getTransceivers() if t.kind == "video")
    buffer = getattr(camera, JITTER_ATTR)
    assert isinstance(buffer, internals.LayeredVideoBuffer) and buffer.repair is not None
    assert len(buffer.layers) == 1 and getattr(camera, ESTIMATOR_ATTR) is not None
    frames = sum(r.frames for r in bo.received)
    assert sum(r.handled for r in receive.values()) >= frames
    # ...each straight from the socket's protocol, not tried as STUN first (RtpDemux)
    assert all(r.demuxed >= 1 for r in receive.values())
    protocols = [p for r in receive.values() for p in r._connection._protocols]
    assert all(isinstance(p.datagram_received, internals.RtpDemux) for p in protocols)
    # (and the event loop calls it: none of the packets since went through aioice's method)
    tried = [tried_as_stun[id(p)] for p in protocols]
    await eventually(lambda: sum(r.frames for r in bo.received) > frames + 30)
    assert [tried_as_stun[id(p)] for p in protocols] == tried
    # ...and stamped with the kernel's arrival times (arrival.py), all but the first.
    assert sum(r.arrival.stamped for r in receive.values()) >= frames - len(receive)
    for received in bo.received:
        sent = set(ada.tracks[received.kind].sent)
        assert set(received.encoded) <= sent, f"{received.kind} bytes changed on the way"
    video = bo.of_kind("video")[0]
    assert video.first_is_key
    decoder = av.CodecContext.create("libvpx", "r")
    decoded = sum(len(decoder.decode(av.Packet(data))) for data in video.encoded)
    assert decoded == len(video.encoded)


async def test_a_publisher_nobody_watches_is_quiet_but_counted_until_someone_subscribes(
    join: Join, server: Any
) -> None:
    """Alone in the room, ada's camera (one stream) and microphone reach the publication a
    frame each quarter second and their keyframes (`LayerBuffer.quiet`), every frame still
    counted; a subscriber gets every frame (sent from the buffer once it is steady:
    `LayerBuffer.forward`); when it leaves, quiet again."""
    await join("ada")
    sfu = ServerParts(server.app).sfu
    await eventually(lambda: sfu.peer("pair-1", "ada") is not None)
    peer = sfu.peer("pair-1", "ada")
    assert peer is not None
    await eventually(lambda: len([i for i in peer.incoming if i.publication]) == 2, timeout=20)
    camera = next(i for i in peer.incoming if i.kind == "video")
    microphone = next(i for i in peer.incoming if i.kind == "audio")
    video, audio = camera.publication, microphone.publication
    assert video is not None and audio is not None
    buffers = (
        getattr(camera.transceiver.receiver, JITTER_ATTR).layers,
        getattr(microphone.transceiver.receiver, JITTER_ATTR).streams,
    )

    def quiet() -> list[bool]:
        return [b.quiet for each in buffers for b in each.values()]

    await eventually(lambda: quiet() == [True, True], timeout=20)
    pushed: Counter[str] = Counter()
    for publication in (video, audio):

        def counting(
            *args: Any, push: Any = publication.push, kind: str = publication.kind
        ) -> None:
            pushed[kind] += 1
            push(*args)

        publication.push = counting  # type: ignore[method-assign]
    frames = {p.kind: p.frames for p in (video, audio)}
    await eventually(lambda: video.frames >= frames["video"] + 60, timeout=10)
    counted = {p.kind: p.frames - frames[p.kind] for p in (video, audio)}
    assert counted["audio"] >= 60  # every 20 ms packet counted (ada's video is 30 fps)
    for kind in ("video", "audio"):
        assert pushed[kind] <= counted[kind] / 3, (pushed, counted)
    assert video.meter.bitrate > 0

    bo = await join("bo", publish=False)
    await eventually(lambda: quiet() == [False, False], timeout=10)
    await eventually(lambda: any(r.kind == "video" and r.frames > 20 for r in bo.received))
    pushed.clear()
    got = next(r for r in bo.received if r.kind == "video")
    frames = {p.kind: p.frames for p in (video, audio)}
    received, on_receipt = got.frames, video.sent_on_receipt
    await eventually(lambda: video.frames >= frames["video"] + 30, timeout=10)
    await eventually(lambda: got.frames >= received + video.frames - frames["video"] - 2)
    # every frame went to bo, most sent by the stream's buffer itself (bo steady on it):
    # the publication is handed keyframes and one a quarter second, all counted
    assert video.sent_on_receipt - on_receipt >= (video.frames - frames["video"]) / 2
    assert pushed["video"] <= (video.frames - frames["video"]) / 3, pushed

    await bo.socket.call("leave")
    await eventually(lambda: quiet() == [True, True], timeout=10)


async def test_late_joiner_gets_a_keyframe_first_and_leaving_ends_tracks(join: Join) -> None:
    ada = await join("ada")
    bo = await join("bo")
    await eventually(lambda: any(r.kind == "video" and r.frames > 20 for r in bo.received))
    # Keyframes come every 3 s; the SFU gates the newcomer and asks ada for one.
    requests_before = ada.tracks["video"].keyframe_requests
    carol = await join("carol", publish=False, decode=False)
    await eventually(
        lambda: len(carol.received) == 4 and all(r.frames > 5 for r in carol.received), timeout=20
    )
    for video in carol.of_kind("video"):
        assert video.first_is_key, "a subscriber's first video frame must be a keyframe"
    assert ada.tracks["video"].keyframe_requests > requests_before

    await bo.socket.call("leave")
    from_bo = [r for r in ada.received]
    await eventually(lambda: all(r.ended.is_set() for r in from_bo), timeout=10)
    # Carol keeps ada's tracks and loses bo's; ada still hears nothing odd.
    await eventually(lambda: sum(r.ended.is_set() for r in carol.received) == 2)
    still = [r for r in carol.received if not r.ended.is_set()]
    counts = [r.frames for r in still]
    await eventually(lambda: all(r.frames > c + 5 for r, c in zip(still, counts, strict=True)))
    await eventually(lambda: carol.renegotiations >= 2)
    assert all("error" not in ack for ack in carol.answer_acks)


async def test_audio_to_steady_subscribers_goes_from_the_c_path_each_packet_once(
    join: Join, server: Any
) -> None:
    """ada's microphone with bo and carol steady on it: its C buffer sends each packet
    to both itself (`LayerBuffer.forward`), the publication sees a few a second; each
    gets every packet ada sends once (none twice, whichever way it went), with its
    audio level; when carol leaves, bo still gets them; when bo leaves, it stops."""
    ada = await join("ada")
    bo = await join("bo", publish=False, decode=False)
    carol = await join("carol", publish=False, decode=False)
    sfu = ServerParts(server.app).sfu
    audio = sfu.rooms["pair-1"].publications[("ada", "audio")]
    await eventually(
        lambda: len(audio.subscribers) == 2 and all(t.steady for t in audio.subscribers)
    )
    gate = audio._gates[-1]
    await eventually(lambda: gate.forwarding)

    def heard(person: Any) -> int:
        return sum(r.frames for r in person.received if r.kind == "audio")

    start = [len(ada.tracks["audio"].sent), heard(bo), heard(carol), audio.sent_on_receipt]
    await eventually(lambda: len(ada.tracks["audio"].sent) >= start[0] + 150)  # 3 s
    await eventually(lambda: heard(bo) >= start[1] + 150 and heard(carol) >= start[2] + 150)
    sent = len(ada.tracks["audio"].sent) - start[0]
    for got in (heard(bo) - start[1], heard(carol) - start[2]):
        assert sent - 5 <= got <= sent + 5, (sent, got)  # in flight at either end; none twice
    assert audio.sent_on_receipt - start[3] >= 2 * (sent - 30)  # nearly all from C
    await carol.socket.call("leave")
    await eventually(lambda: len(audio.subscribers) == 1 and gate.forwarding)
    before = heard(bo), len(ada.tracks["audio"].sent)
    await eventually(lambda: len(ada.tracks["audio"].sent) >= before[1] + 100)
    await eventually(lambda: heard(bo) >= before[0] + 95)
    await bo.socket.call("leave")
    await eventually(lambda: not audio.subscribers and not gate.forwarding)
