"""Which of a publication's C buffers are quiet (`LayerBuffer.quiet`: nobody takes their
frames, so they hand on a frame each `QUIET_S` and their keyframes, with the count of
the frames kept back), as the publication's subscribers, their layers and its sinks
change; and what it counts of the frames kept back.

tests/media/test_layer_buffer.py and test_fast_receive.py check what a quiet buffer
hands on; test_simulcast.py and test_forwarding.py the whole way, with real peers.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from server.media._rtp_receive import LayerBuffer
from server.media.aiortc_internals import LayerFrame, LeveledFrame
from server.media.forwarding import LAYER_IDLE_SECONDS, ForwardedTrack, Publication
from server.media.metrics import MediaMetrics
from tests.media.test_send_path import OPUS, VP8

H264 = VP8.__class__(mimeType="video/H264", clockRate=90000, payloadType=102)
DELTA = bytes([0x11, 0x02, 0x00]) + b"d" * 97  # VP8: bit 0 set, not a keyframe


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """time.monotonic, held: `clock[0]`."""
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    return now


def simulcast() -> tuple[Publication, Callable[[LayerFrame], None], list[LayerBuffer]]:
    """A video publication of three layers (SSRC i is layer i), what its receiver's
    tap delivers to, and a C buffer per layer, each registered by a first frame."""
    publication = Publication("room", "ada", "video", MediaMetrics(CollectorRegistry()))
    generation = publication.attach(VP8, lambda: False, layers=3, request_layer=lambda i: True)
    sink = publication.layer_sink_for(generation, lambda ssrc: ssrc)
    buffers = [LayerBuffer(0.0) for _ in range(3)]
    for index, buffer in enumerate(buffers):
        sink(VP8, LayerFrame(DELTA, 0, index, gate=buffer))
    return publication, lambda frame: sink(VP8, frame), buffers


def subscribe(publication: Publication, target: int, layer: int | None = None) -> ForwardedTrack:
    track = ForwardedTrack(publication, "bo")
    publication.subscribe(track)
    track.target = target
    track.layer = layer
    return track


async def test_only_the_layers_a_subscriber_is_on_or_moving_to_hand_on_every_frame() -> None:
    publication, _, buffers = simulcast()
    assert [b.quiet for b in buffers] == [True, True, True]  # nobody
    bo = subscribe(publication, target=0)  # waiting for layer 0's first keyframe
    assert [b.quiet for b in buffers] == [False, True, True]
    bo.layer = 0
    bo.target = 2  # moving up: layer 2's keyframe moves him
    assert [b.quiet for b in buffers] == [False, True, False]
    bo.layer = 2
    assert [b.quiet for b in buffers] == [True, True, False]
    carol = subscribe(publication, target=1, layer=1)
    assert [b.quiet for b in buffers] == [True, False, False]
    publication.unsubscribe(bo)
    assert [b.quiet for b in buffers] == [True, False, True]
    publication.unsubscribe(carol)
    assert [b.quiet for b in buffers] == [True, True, True]


async def test_a_sink_takes_every_frame_and_a_new_buffer_is_told_at_once() -> None:
    publication, deliver, buffers = simulcast()
    taken: list[object] = []  # what the sink (the phone gateway's, say) gets

    def sink(codec: object, packet: object) -> None:
        taken.append(packet)

    publication.add_sink(sink)
    assert [b.quiet for b in buffers] == [False, False, False]
    publication.remove_sink(sink)
    assert [b.quiet for b in buffers] == [True, True, True]
    restarted = LayerBuffer(0.0)  # the publisher restarted layer 1's stream
    deliver(LayerFrame(DELTA, 3000, 1, gate=restarted))
    assert restarted.quiet
    subscribe(publication, target=1, layer=1)
    assert not restarted.quiet and buffers[1].quiet  # the old one is no longer told


async def test_a_single_stream_and_audio_are_quiet_without_subscribers() -> None:
    metrics = MediaMetrics(CollectorRegistry())
    for kind, codec, frame in (
        ("video", VP8, LayerFrame(DELTA, 0, 7)),
        ("audio", OPUS, LeveledFrame(b"\x01" * 60, 0, None)),
    ):
        publication = Publication("room", "ada", kind, metrics)
        sink = publication.sink_for(publication.attach(codec, lambda: False))
        frame.gate = gate = LayerBuffer(0.0)  # type: ignore[attr-defined]
        sink(codec, frame)
        assert gate.quiet, kind
        track = subscribe(publication, target=0)
        assert not gate.quiet, kind
        publication.unsubscribe(track)
        assert gate.quiet, kind


async def test_a_codec_whose_keyframes_the_buffer_does_not_know_is_never_quiet() -> None:
    publication = Publication("room", "ada", "video", MediaMetrics(CollectorRegistry()))
    sink = publication.sink_for(publication.attach(H264, lambda: False))
    gate = LayerBuffer(0.0)
    sink(H264, LayerFrame(b"\x00\x00\x00\x01\x41" + b"x" * 50, 0, 7, gate=gate))
    assert not gate.quiet  # nobody subscribes, but it hands on every frame


async def test_frames_kept_back_are_counted_and_a_layer_back_from_a_pause_starts_again(
    clock: list[float],
) -> None:
    publication, deliver, buffers = simulcast()
    started: list[float] = []
    publication.on_layers = lambda: started.append(clock[0])
    layer = publication.layers[1]
    frames, size = layer.frames, publication.bytes
    clock[0] += 0.25
    deliver(LayerFrame(DELTA, 3000, 1, gate=buffers[1], held=(7, 700)))
    assert (layer.frames, publication.bytes) == (frames + 8, size + 700 + len(DELTA))
    assert layer.last_frame_at == clock[0] and started == []
    clock[0] += 1.0
    deliver(LayerFrame(b"", 6000, 1, gate=buffers[1], held=(29, 2900)))  # padding carries it
    assert (layer.frames, publication.bytes) == (frames + 37, size + 3600 + len(DELTA))
    assert layer.bitrate > 0 and started == []
    # the layer stops (the browser paused it), then comes back: the frames kept back
    # before the pause are counted, and the layer is one starting again (on_layers)
    clock[0] += LAYER_IDLE_SECONDS + 1
    bitrate = layer.bitrate
    deliver(LayerFrame(DELTA, 9000, 1, gate=buffers[1], held=(3, 300)))
    assert started == [clock[0]]
    assert layer.frames == frames + 41
    assert layer.bitrate == bitrate  # those bytes are not in the new second's rate
