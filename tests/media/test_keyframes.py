"""Keyframe requests reach a publisher at most once a second, however many subscribers
ask (server/media/keyframes.py), and none is lost: those held back go as one."""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiortc import RTCRtpReceiver
from prometheus_client import CollectorRegistry

from server.media import aiortc_internals
from server.media.forwarding import ForwardedTrack, Publication
from server.media.keyframes import KEYFRAME_INTERVAL_SECONDS, KeyframeLimiter
from server.media.metrics import MediaMetrics
from tests.media.conftest import Join
from tests.media.support import Received
from tests.media.test_fan_out import DELTA, KEY
from tests.media.test_send_path import VP8
from tests.support.waiting import eventually


def test_the_first_request_goes_at_once() -> None:
    limiter = KeyframeLimiter(interval=1.0)
    assert limiter.allows(now=5.0)
    limiter.sent(5.0)
    assert limiter.retry_at() is None


def test_requests_within_the_interval_are_held_back_as_one() -> None:
    limiter = KeyframeLimiter(interval=1.0)
    limiter.sent(10.0)
    assert not limiter.allows(10.1)
    assert not limiter.allows(10.5)
    assert not limiter.allows(10.99)
    assert limiter.retry_at() == 11.0  # one request for all three, when the second ends
    assert limiter.allows(11.0)
    limiter.sent(11.0)
    assert limiter.retry_at() is None


def test_a_keyframe_answers_the_requests_held_back() -> None:
    limiter = KeyframeLimiter(interval=1.0)
    limiter.sent(0.0)
    assert not limiter.allows(0.3)
    limiter.keyframe()
    assert limiter.retry_at() is None


def test_a_flood_costs_one_request_per_interval() -> None:
    limiter = KeyframeLimiter(interval=1.0)
    sent = []
    now = 0.0
    for _ in range(600):  # 60 requests a second for 10 s
        if limiter.allows(now):
            limiter.sent(now)
            sent.append(now)
        now += 1 / 60
    assert 9 <= len(sent) <= 11
    assert all(b - a >= 1.0 - 1e-9 for a, b in zip(sent, sent[1:], strict=False))


async def test_a_simulcast_layer_losing_frames_again_and_again_is_asked_once_a_second() -> None:
    """A layer's frame after a gap given up (`after_gap`: its buffer skipped a stall,
    which sends no PLI itself) makes its subscribers wait for its keyframe, asked for
    through the layer's limiter; a layer nobody is on or moving to is not asked."""
    now = 0.0
    registry = CollectorRegistry()
    asked: list[tuple[int, float]] = []
    video = Publication("room", "ada", "video", MediaMetrics(registry), clock=lambda: now)
    generation = video.attach(
        VP8, lambda: True, layers=3, request_layer=lambda i: asked.append((i, now)) or True
    )
    bo = ForwardedTrack(video, "bo")
    video.subscribe(bo)
    bo.target = 2
    deliver = video.layer_sink_for(generation, {10: 0, 11: 1, 12: 2}.get)
    for ssrc in (10, 11, 12):
        deliver(VP8, aiortc_internals.LayerFrame(KEY, 3000, ssrc))
    assert bo.layer == 2
    asked.clear()
    try:
        for step in range(10):  # layers 2 and 0 skip a gap every half second
            now = step * 0.5
            for ssrc in (12, 10):
                deliver(VP8, aiortc_internals.LayerFrame(DELTA, 6000 + step, ssrc, True))
        assert asked == [(2, 0.0), (2, 1.0), (2, 2.0), (2, 3.0), (2, 4.0)]
        stalls = registry.get_sample_value(
            "pairwise_sfu_keyframe_requests_total", {"reason": "stall"}
        )
        assert stalls == 5
        assert bo.layer == 2 and not bo.steady_on(2)  # still waiting for layer 2's keyframe
    finally:
        for layer in video.layers:  # the held-back request's timer
            if layer.retry is not None:
                layer.retry.cancel()


@pytest.mark.slow
async def test_a_subscriber_asking_on_every_frame_costs_the_publisher_one_a_second(
    join: Join,
) -> None:
    # Carol cannot decode bo's video (as with E2EE without the key): like a browser she
    # sends a PLI for every frame she gets. Bo is asked for a keyframe once a second.
    bo = await join("bo")
    carol = await join("carol", publish=False, decode=False)
    plis = 0

    def cannot_decode(received: Received, receiver: RTCRtpReceiver, frame: Any) -> None:
        nonlocal plis
        sources = receiver.getSynchronizationSources()
        if received.kind == "video" and sources:
            aiortc_internals.send_pli(receiver, sources[0].source)
            plis += 1

    carol.on_frame = cannot_decode
    await eventually(lambda: plis > 0, timeout=20)
    video = bo.tracks["video"]
    start, asked_before = time.monotonic(), video.keyframe_requests
    await eventually(lambda: plis >= 120, timeout=40)  # 8 s of frames at 15 fps
    elapsed = time.monotonic() - start
    asked = video.keyframe_requests - asked_before
    assert asked >= 1  # held back, never dropped
    # One a second, plus one for the window's edges (a request on its way at the start).
    assert asked <= int(elapsed / KEYFRAME_INTERVAL_SECONDS) + 2, (asked, elapsed, plis)
