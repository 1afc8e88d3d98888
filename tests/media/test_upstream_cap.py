"""A single-layer publisher is asked for less when a subscriber cannot take more.

Real aiortc peers: the publisher *encodes* (aiortc's VP8 encoder, whose target bit rate
its `RTCRtpSender` sets from each REMB it receives, as a browser's sender obeys one), so
what the SFU asks of it shows in what it sends. The subscriber plays a browser on a slow
link by sending REMB itself (its own estimator is off: no abs-send-time).
"""

from __future__ import annotations

import asyncio
import fractions
import time

import av
import numpy as np
import pytest
from aiortc import RTCRtpSender
from aiortc.mediastreams import VideoStreamTrack

from server.media import aiortc_internals
from server.media.publisher_cap import FLOOR
from tests.media.conftest import Join
from tests.media.support import hold_remb, without_abs_send_time
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow


class MovingNoise(VideoStreamTrack):
    """320x240 noise sliding 3 px a frame at 30 fps: the encoder spends what it is
    allowed (aiortc's VP8 encoder sends ~1.4 Mbit/s at its 1.5 Mbit/s ceiling and
    ~0.2 at its 250 kbit/s floor), unlike still noise, which no quantizer fits."""

    def __init__(self) -> None:
        super().__init__()
        self._image = np.random.default_rng(19).integers(0, 255, (240, 320, 3), dtype=np.uint8)
        self._count = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        self._count += 1
        frame = av.VideoFrame.from_ndarray(
            np.roll(self._image, self._count * 3, axis=1), format="rgb24"
        )
        frame.pts, frame.time_base = pts, fractions.Fraction(time_base)
        return frame


class Sent:
    """What the publisher's sender sent and the REMBs it received."""

    def __init__(self, sender: RTCRtpSender) -> None:
        self.sender = sender
        self.rembs: list[int] = []
        aiortc_internals.on_feedback(sender, self.rembs.append, lambda fraction, highest: None)

    async def bytes_sent(self) -> int:
        stats = await self.sender.getStats()
        return sum(s.bytesSent for s in stats.values() if s.type == "outbound-rtp")

    async def rate(self, seconds: float = 2.0) -> float:
        """Bit/s over the next `seconds`."""
        before, started = await self.bytes_sent(), time.monotonic()
        await asyncio.sleep(seconds)
        return (await self.bytes_sent() - before) * 8 / (time.monotonic() - started)


async def test_a_subscriber_at_80_kbps_caps_the_publisher_at_the_floor_and_recovery_lifts_it(
    join: Join,
) -> None:
    ada = await join("ada", role="mentor", publish=False, connect=False)
    transceiver = ada.pc.addTransceiver(MovingNoise(), direction="sendonly")
    sent = Sent(transceiver.sender)
    await ada.connect()
    bo = await join("bo", publish=False, decode=False, munge_answer=without_abs_send_time)
    await eventually(lambda: any(r.frames > 30 for r in bo.of_kind("video")), timeout=20)
    uncapped = await sent.rate()

    # bo's link carries 80 kbit/s: ada is asked for the floor, not less, and sends less
    rembs = len(sent.rembs)
    slow = asyncio.create_task(hold_remb(bo, 80_000, 60))
    try:
        await eventually(lambda: any(r <= FLOOR * 1.01 for r in sent.rembs[rembs:]), timeout=10)
        capped = [r for r in sent.rembs[rembs:] if r <= FLOOR * 1.01]
        assert min(capped) >= FLOOR * 0.99
        await sent.rate(1.0)  # the encoder's rate control settles
        low = await sent.rate()
        assert low < uncapped * 0.7, (low, uncapped)
        # while capped, every REMB the SFU sends (its own estimate too) stays capped
        since = len(sent.rembs)
        await eventually(lambda: len(sent.rembs) > since, timeout=10)
        assert max(sent.rembs[since:]) <= FLOOR * 1.01
    finally:
        slow.cancel()

    # bo's link clears: the cap lifts and ada sends what it sent before
    rembs = len(sent.rembs)
    fast = asyncio.create_task(hold_remb(bo, 5_000_000, 60))
    try:
        await eventually(lambda: any(r > FLOOR * 2 for r in sent.rembs[rembs:]), timeout=10)
        await sent.rate(1.0)
        assert await sent.rate() > low * 1.4
    finally:
        fast.cancel()
