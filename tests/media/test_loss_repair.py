"""Video keeps reaching the SFU after a lost retransmission (server/media/loss_repair.py).

A publisher and an SFU-side receiver, both aiortc, over loopback, the receiver tapped as
the SFU taps a single-stream video (`tap_video`, with the SFU's `RENACK_SECONDS`); the
publisher's transport drops chosen video packets and chosen copies of their
retransmissions (RTX), and nothing else, so no later gap makes the receiver NACK again.
Without the repair aiortc's jitter buffer waited for 512 newer packets (tens of seconds
at these small one-packet frames) and no frame reached the publication.
"""

from __future__ import annotations

import asyncio
import os
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiortc import RTCPeerConnection, RTCRtpSender
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtp import RtpPacket, is_rtcp
from prometheus_client import CollectorRegistry

from server.media import aiortc_internals as internals
from server.media.aiortc_internals.base import JITTER_ATTR
from server.media.forwarding import Publication
from server.media.keyframes import KEYFRAME_INTERVAL_SECONDS
from server.media.loss_repair import RENACK_SECONDS
from server.media.metrics import MediaMetrics
from tests.media.support import EncodedTrack, client_configuration, encode_video
from tests.media.test_fan_out import DELTA, KEY
from tests.media.test_fast_receive import SSRCS, Side, Stream, vp8
from tests.media.test_send_path import OPUS, VP8
from tests.support.waiting import eventually

FPS = 15
FLOWING = 30  # frames after the loss that show video flows again (2 s of video)
DEADLINE = 10.0  # well under the ~34 s aiortc's buffer would wait at 1 packet a frame


@dataclass
class Dropper:
    """Drops video packet number `nth` (counted from when armed) and the first
    `retransmissions` RTX copies of it, on the publisher's way out; with `every`, also
    every `every`-th packet after it, and all of their copies."""

    sender: RTCRtpSender
    retransmissions: int
    nth: int = 20
    every: int | None = None
    armed: bool = False
    target: int | None = None
    seen: int = 0
    dropped_rtx: int = 0
    passed_rtx: int = 0
    gone: set[int] = field(default_factory=set)  # the `every` packets, none let through

    def keep(self, data: bytes) -> bool:
        if not self.armed or is_rtcp(data):
            return True
        packet = RtpPacket.parse(data)
        if packet.ssrc == self.sender._ssrc:
            self.seen += 1
            if self.seen == self.nth:
                self.target = packet.sequence_number
                return False
            if self.every and self.seen > self.nth and (self.seen - self.nth) % self.every == 0:
                self.gone.add(packet.sequence_number)
                return False
        elif packet.ssrc == self.sender._rtx_ssrc and self.target is not None:
            (original,) = struct.unpack("!H", packet.payload[:2])
            if original in self.gone:
                return False
            if original == self.target:
                if self.dropped_rtx < self.retransmissions:
                    self.dropped_rtx += 1
                    return False
                self.passed_rtx += 1
        return True


@dataclass
class Link:
    track: EncodedTrack
    publication: Publication
    dropper: Dropper
    delivered: list[bytes]
    registry: CollectorRegistry
    gaps: list[float] = field(default_factory=list)  # when a frame came after a gap given up

    def stall_requests(self) -> float:
        """Keyframes the publication asked for because frames were lost for good."""
        value = self.registry.get_sample_value(
            "pairwise_sfu_keyframe_requests_total", {"reason": "stall"}
        )
        return value or 0.0


@pytest.fixture
async def link(request: pytest.FixtureRequest) -> AsyncIterator[Link]:
    """`request.param`: the RTX copies of the lost packet dropped, or (those, `every`)."""
    retransmissions, every = (
        request.param if isinstance(request.param, tuple) else (request.param, None)
    )
    video = encode_video(60, fps=FPS, keyint=30)
    publisher = RTCPeerConnection(client_configuration())
    sfu = RTCPeerConnection(client_configuration())
    track = EncodedTrack("video", video, FPS)
    sending = publisher.addTransceiver(track, direction="sendonly")
    internals.on_keyframe_request(sending.sender, track.request_keyframe)
    registry = CollectorRegistry()
    publication = Publication("room", "ada", "video", MediaMetrics(registry))
    delivered: list[bytes] = []
    publication.add_sink(lambda codec, packet: delivered.append(bytes(packet)))
    dropper = Dropper(sending.sender, retransmissions, every=every)
    gaps: list[float] = []

    def on_track(remote: MediaStreamTrack) -> None:
        receiving = next(t for t in sfu.getTransceivers() if t.receiver.track is remote)
        receiver = receiving.receiver
        generation = publication.attach(
            internals.negotiated_codec(receiving), lambda: _pli(receiver)
        )
        deliver = publication.sink_for(generation)

        def sink(codec: Any, frame: Any) -> None:
            if frame.after_gap:
                gaps.append(time.monotonic())
            deliver(codec, frame)

        internals.tap_video(receiver, sink, RENACK_SECONDS)

    sfu.on("track", on_track)
    await publisher.setLocalDescription(await publisher.createOffer())
    await sfu.setRemoteDescription(publisher.localDescription)
    await sfu.setLocalDescription(await sfu.createAnswer())
    await publisher.setRemoteDescription(sfu.localDescription)
    transport = sending.sender.transport
    send_rtp = transport._send_rtp

    async def lossy_send(data: bytes) -> None:
        if dropper.keep(data):
            await send_rtp(data)

    transport._send_rtp = lossy_send  # type: ignore[method-assign]
    try:
        yield Link(track, publication, dropper, delivered, registry, gaps)
    finally:
        await publisher.close()
        await sfu.close()


def _ssrc(receiver: object) -> int | None:
    sources = receiver.getSynchronizationSources()  # type: ignore[attr-defined]
    return sources[0].source if sources else None


def _pli(receiver: object) -> bool:
    ssrc = _ssrc(receiver)
    if ssrc is not None:
        internals.send_pli(receiver, ssrc)  # type: ignore[arg-type]
    return ssrc is not None


async def frames_after_loss(link: Link) -> int:
    """Arm the dropper once video flows; wait until FLOWING frames arrive after the
    dropped packet was sent. Returns the frames pushed before the loss."""
    await eventually(lambda: link.publication.frames >= 10, DEADLINE)
    link.dropper.armed = True
    await eventually(lambda: link.dropper.target is not None, DEADLINE)
    before = link.publication.frames
    sent_before = len(link.track.sent)
    try:
        await eventually(lambda: link.publication.frames >= before + FLOWING, DEADLINE)
    except AssertionError:
        raise AssertionError(
            f"video stalled after the loss: {link.publication.frames - before} frames in "
            f"{DEADLINE} s while {len(link.track.sent) - sent_before} were sent"
        ) from None
    return before


@pytest.mark.parametrize("link", [1], indirect=True)
async def test_a_lost_retransmission_is_asked_for_again(link: Link) -> None:
    await frames_after_loss(link)
    # The first retransmission was dropped and nothing else was lost: only a NACK
    # repeated on the timer brings the packet, and no frame is skipped.
    assert link.dropper.dropped_rtx == 1 and link.dropper.passed_rtx >= 1
    assert link.stall_requests() == 0
    sent = link.track.sent
    start = sent.index(link.delivered[0])
    assert link.delivered == sent[start : start + len(link.delivered)]


@pytest.mark.parametrize("link", [10_000], indirect=True)
async def test_a_packet_that_never_arrives_is_skipped_to_a_keyframe(link: Link) -> None:
    before = await frames_after_loss(link)
    # Every copy was dropped: the frame is given up, video flows on from the next
    # whole frame, and the publisher is asked for a keyframe for the subscribers.
    assert link.dropper.dropped_rtx >= 1 and link.dropper.passed_rtx == 0
    assert link.track.keyframe_requests >= 1
    # the frame after the gap tells the publication: its subscribers wait for a keyframe
    assert link.stall_requests() >= 1
    after = link.delivered[before:]
    assert len(after) >= FLOWING
    sent = link.track.sent
    start = sent.index(link.delivered[0])
    assert link.delivered != sent[start : start + len(link.delivered)], "nothing was skipped"


@pytest.mark.parametrize("link", [(10_000, 4)], indirect=True)
async def test_a_stream_stalling_again_and_again_costs_the_publisher_one_keyframe_a_second(
    link: Link,
) -> None:
    """Every fourth packet and all its retransmissions lost: the stream stalls and is
    skipped about twice a second (as under a cap its video cannot fit). The buffer sends
    no PLI of its own; the publication asks, at most once a second (keyframes.py)."""
    await eventually(lambda: link.publication.frames >= 10, DEADLINE)
    link.dropper.armed = True
    await eventually(lambda: len(link.gaps) >= 1, DEADLINE)
    start, asked_before = link.gaps[0], link.track.keyframe_requests
    await eventually(lambda: len(link.gaps) >= 9, 3 * DEADLINE)
    elapsed = time.monotonic() - start
    asked = link.track.keyframe_requests - asked_before
    gaps = len(link.gaps) - 1
    assert asked >= 1  # asked, held back, never dropped
    # One a second, plus one for the window's edges (a request on its way at the start).
    assert asked <= int(elapsed / KEYFRAME_INTERVAL_SECONDS) + 2, (asked, gaps, elapsed)
    assert asked < gaps, (asked, gaps, elapsed)  # the buffer's own PLI went once a stall


async def test_a_simulcast_layers_lost_retransmission_is_asked_for_again() -> None:
    """A layer's NACKs go once, when a packet opens a gap (its buffer, in C): its tap's
    `LayerRepair` asks again for what is still missing at its next check, per layer,
    while packets come, and stops once the retransmission is in (or packets stop).
    Real aiortc receiver, tapped as the SFU taps a simulcast camera, fed SRTP through
    the C entry (tests/media/test_fast_receive.py); the checks are called here, the
    interval (an hour) never passing."""
    key = os.urandom(30)
    side = Side(key, fast=True, renack_seconds=3600)
    repair = getattr(side.receiver, JITTER_ATTR).repair
    stream = Stream(key)
    lost: int | None = None

    def frame(number: int) -> None:
        nonlocal lost
        for layer, ssrc in enumerate(SSRCS):
            rid = "qhf"[layer] if number < 3 else None
            packet = stream.packet(ssrc, 1000 + number * 3000, True, vp8(number, True), rid)
            data = stream.protect(packet)
            if number == 6 and ssrc == SSRCS[2]:
                lost = packet.sequence_number  # lost, and its first retransmission too
                continue
            side.feed(data)

    try:
        for number in range(6):
            frame(number)
        assert not repair.pending  # no loss, no timer
        for number in range(6, 12):
            frame(number)
        assert lost is not None
        assert side.nacks == [(SSRCS[2], [lost])]  # once, when the gap opened
        assert repair.pending  # a check is due
        assert repair.check() == 0  # the first notes what is missing
        frame(12)
        assert repair.check() == 1 and repair.pending  # still missing: asked for again
        await asyncio.sleep(0)  # the NACK's send (spawned) runs
        assert side.nacks[-1] == (SSRCS[2], [lost])
        assert repair.check() == 1  # and again; but no packet came since: no more checks
        assert not repair.pending
        frames = len(side.frames)
        side.feed(stream.retransmission(SSRCS[2], lost))  # this one arrives
        assert len(side.frames) > frames  # the top layer's held frames come out
        assert repair.check() == 0 and not repair.pending
        await asyncio.sleep(0)
        assert len(side.nacks) == 3 and repair.asked == 2
    finally:
        await side.close()


async def test_a_replaced_streams_losses_are_forgotten() -> None:
    """A single stream's new SSRC replaces the old one's buffer (the sender restarted);
    what the re-NACK check still held of the old one goes with it. A participant
    rotating SSRCs, each with a loss kept open, grew the check's memory by ~12 KB a
    SSRC before."""
    key = os.urandom(30)
    side = Side(key, fast=True, renack_seconds=3600, single=True)
    repair = getattr(side.receiver, JITTER_ATTR).repair
    stream = Stream(key)
    try:
        for ssrc in SSRCS[:2]:
            for number in range(8):
                packet = stream.packet(ssrc, number * 3000, True, vp8(number, True))
                if number != 3:  # lost for good: the check keeps asking for it
                    side.feed(stream.protect(packet))
            repair.check()
            assert list(repair._outstanding) == [ssrc]
    finally:
        await side.close()


def test_after_frames_lost_for_good_video_counts_again_only_from_a_keyframe() -> None:
    """Frames after a gap given up cannot be decoded before the next keyframe: they are
    counted as received, but the health monitor's evidence of video (`last_frame_at`)
    waits for the keyframe (a publisher whose every frame is broken, as under a cap its
    video cannot fit, steps down for `no_video_rtp` instead of counting as video)."""
    metrics = MediaMetrics(CollectorRegistry())
    asked: list[str] = []
    video = Publication("room", "ada", "video", metrics)
    video.attach(VP8, lambda: asked.append("key") or True)
    video.push(VP8, KEY, 3000)
    seen = video.last_frame_at
    assert seen is not None
    video.frames_lost()
    assert asked == ["key"]
    for n in range(3):
        video.push(VP8, DELTA, 6000 + 3000 * n)
    assert video.frames == 4 and video.last_frame_at == seen
    video.push(VP8, KEY, 15000)
    assert video.last_frame_at is not None and video.last_frame_at > seen
    video.push(VP8, DELTA, 18000)  # and on from there
    assert video.last_frame_at > seen
    audio = Publication("room", "ada", "audio", metrics)
    audio.push(OPUS, b"\x01" * 40, 960)
    heard = audio.last_frame_at
    audio.frames_lost()  # audio has no keyframes: every packet stands alone
    audio.push(OPUS, b"\x02" * 40, 1920)
    assert audio.last_frame_at is not None and heard is not None and audio.last_frame_at > heard
