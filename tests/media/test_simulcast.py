"""Simulcast: a publisher's three layers in, one layer per subscriber out.

A real aiortc publisher plays a browser's rid-based simulcast (tests/media/
simulcast_publisher.py: 160x90, 320x180 and 640x360 layers, with and without
`a=ssrc` lines); real aiortc subscribers decode what they get. The layer a
subscriber receives is read from the size of the frames it decodes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket, is_rtcp

from server.media import aiortc_internals as internals
from server.media.aiortc_internals.base import JITTER_ATTR
from tests.media.conftest import Join
from tests.media.simulcast_publisher import SimulcastPublisher, encode_layers, rids_in
from tests.media.support import (
    Encoded,
    MediaClient,
    hold_remb,
    without_abs_send_time,
)
from tests.support.parts import ServerParts
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow

ROOM = "pair-1"


@pytest.fixture(scope="module")
def layers() -> list[list[Encoded]]:
    return encode_layers()


@pytest.fixture
async def publisher(join: Join, layers: list[list[Encoded]]) -> AsyncIterator[SimulcastPublisher]:
    ada = await join("ada", role="mentor", connect=False, video=[])
    made = SimulcastPublisher(ada, layers)
    yield made
    await made.close()


class Sizes:
    """Watches one subscriber's decoded video: the size of every frame, when."""

    def __init__(self, person: MediaClient) -> None:
        self.person = person
        self.frames: list[tuple[float, int, int]] = []
        person.pc.remove_all_listeners("track")
        person.pc.on("track", self._track)

    def _track(self, track: object) -> None:
        if getattr(track, "kind", "") == "video":
            self.person._tasks.append(asyncio.create_task(self._read(track)))

    async def _read(self, track: object) -> None:
        try:
            while True:
                frame = await track.recv()  # type: ignore[attr-defined]
                self.frames.append((time.monotonic(), frame.width, frame.height))
        except MediaStreamError:
            pass

    def latest(self) -> tuple[int, int] | None:
        return self.frames[-1][1:] if self.frames else None

    def longest_gap(self, since: float) -> float:
        times = [t for t, _, _ in self.frames if t >= since]
        return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)


async def subscriber(join: Join, identity: str, **client: object) -> tuple[MediaClient, Sizes]:
    person = await join(identity, publish=False, connect=False, **client)
    sizes = Sizes(person)
    await person.connect()
    return person, sizes


@pytest.mark.parametrize("with_ssrcs", [False, True], ids=["rids", "rids+ssrcs"])
async def test_the_answer_takes_the_layers_and_a_clean_subscriber_climbs_to_the_top(
    publisher: SimulcastPublisher, join: Join, server: Any, with_ssrcs: bool
) -> None:
    await publisher.connect(with_ssrcs=with_ssrcs)
    answer = publisher.answer_lines()
    video = answer[next(i for i, line in enumerate(answer) if line.startswith("m=video")) :]
    assert rids_in(video) == ["q", "h", "f"]
    assert "a=simulcast:recv q;h;f" in video
    assert any("sdes:rtp-stream-id" in line for line in video if line.startswith("a=extmap"))

    bo, sizes = await subscriber(join, "bo")
    await eventually(lambda: sizes.latest() == (640, 360), timeout=30)
    started = time.monotonic()
    await eventually(lambda: len(sizes.frames) > 0 and time.monotonic() - started > 2)
    assert sizes.latest() == (640, 360)
    # every layer it went through came in order, and no freeze longer than 1 s
    seen = [size for _, *size in sizes.frames]
    firsts = [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s]
    assert firsts[0] == [160, 90]
    # (1.5 s: the subscriber decodes in this same process on a loaded 2-core machine)
    assert sizes.longest_gap(sizes.frames[0][0]) < 1.5
    # re-offers keep the simulcast (a browser would stop it otherwise)
    carol = await join("carol")
    await eventually(lambda: len(carol.received) >= 2, timeout=20)
    await eventually(lambda: len(publisher.client.offers) >= 1, timeout=20)
    offers = [o["sdp"] for o in publisher.client.offers]
    assert offers and all("a=simulcast:recv q;h;f" in sdp for sdp in offers)
    # the layers' losses are NACKed again while outstanding (LayerRepair)
    ada = ServerParts(server.app).sfu.peer(ROOM, "ada")
    camera = next(i for i in ada.incoming if i.kind == "video")
    assert getattr(camera.transceiver.receiver, JITTER_ATTR).repair is not None


async def test_a_subscriber_at_80_kbps_gets_the_low_layer_and_climbs_when_it_clears(
    publisher: SimulcastPublisher, join: Join
) -> None:
    await publisher.connect()
    bo, sizes = await subscriber(join, "bo", munge_answer=without_abs_send_time)
    carol, carol_sizes = await subscriber(join, "carol")

    async def hold(bitrate: int, seconds: float) -> None:
        await hold_remb(bo, bitrate, seconds)

    await eventually(lambda: sizes.latest() is not None, timeout=20)
    await hold(80_000, 6)
    assert sizes.latest() == (160, 90)
    assert {(w, h) for _, w, h in sizes.frames} == {(160, 90)}
    await eventually(lambda: carol_sizes.latest() == (640, 360), timeout=30)

    # the link clears: it climbs, on keyframes, without a freeze
    cleared = time.monotonic()
    for _ in range(100):
        await hold(5_000_000, 0.4)
        if sizes.latest() == (640, 360):
            break
    assert sizes.latest() == (640, 360)
    assert sizes.longest_gap(cleared) < 1.0

    # and back down when it is congested again
    for _ in range(60):  # generous: the decoder shares a loaded machine
        await hold(80_000, 0.4)
        if sizes.latest() == (160, 90):
            break
    assert sizes.latest() == (160, 90)


class PaddingTap:
    """Counts the padding-only packets a subscriber receives (after SRTP), by SSRC."""

    def __init__(self, person: MediaClient) -> None:
        self.seen: list[tuple[float, int, int]] = []  # (when, SSRC, padding bytes)
        transport = person.pc.getTransceivers()[0].receiver.transport
        handle = transport._handle_rtp_data

        async def tap(data: bytes, arrival_time_ms: int) -> None:
            if not is_rtcp(data):
                packet = RtpPacket.parse(data)
                if not packet.payload and packet.padding_size:
                    self.seen.append((time.monotonic(), packet.ssrc, packet.padding_size))
            await handle(data, arrival_time_ms)

        transport._handle_rtp_data = tap

    def since(self, at: float) -> int:
        return sum(1 for t, _, _ in self.seen if t >= at)


async def test_a_settled_estimate_is_probed_with_padding_and_climbs_once_it_rises(
    publisher: SimulcastPublisher, join: Join, server: Any
) -> None:
    """An estimate settled between two layers (the middle fits, the top needs 20 % more
    than its rate) never shows room for more by itself: the SFU pads bo's RTX stream
    for a few seconds; when the estimate then rises, bo climbs and the padding stops."""
    await publisher.connect()
    bo, sizes = await subscriber(join, "bo", munge_answer=without_abs_send_time)
    await bo.wait_connected(timeout=20)
    padding = PaddingTap(bo)
    video = await eventually(
        lambda: next(
            (
                o
                for o in ServerParts(server.app).sfu.peer(ROOM, "bo").outgoing.values()
                if o.track.kind == "video"
            ),
            None,
        ),
        timeout=20,
    )
    layers = video.track.publication.layers
    await eventually(lambda: all(layer.bitrate > 0 for layer in layers), timeout=20)
    middle, top = layers[1].bitrate, layers[2].bitrate
    settled = int(middle * 1.3)  # carries the middle layer; the top needs 1.2x its rate
    assert settled * 1.2 < top, [layer.bitrate for layer in layers]
    for _ in range(50):
        await hold_remb(bo, settled, 0.2)
        if padding.since(0) > 20:
            break
    assert padding.since(0) > 20, "no padding while settled below the top layer"
    assert sizes.latest() == (320, 180)
    rtx_ssrc = internals.RtpLink(video.transceiver.sender).rtx_ssrc
    assert {ssrc for _, ssrc, _ in padding.seen} == {rtx_ssrc}
    assert {size for _, _, size in padding.seen} == {255}
    assert video.track.output is not None and video.track.output.padding_packets >= 20

    # the probe shows room: the estimate rises 20 % while it runs (still short of the
    # top layer's rate: the climb is the probe's doing)
    await hold_remb(bo, int(settled * 1.2), 0.6)
    assert video.track.target == 2, video.track.choice
    climbed = time.monotonic()
    await eventually(lambda: sizes.latest() == (640, 360), timeout=10)
    await hold_remb(bo, int(top * 1.3), 1.0)
    assert padding.since(climbed + 0.2) == 0  # the probe ended with the climb


async def test_a_step_down_for_congestion_sends_nothing_more_of_the_higher_layer(
    publisher: SimulcastPublisher, join: Join, server: Any
) -> None:
    """Once the SFU steps bo down for congestion, no frame of the layer bo was on goes
    out (it would fill the link the lower layer's keyframe must cross) while it waits
    for the lower layer's next keyframe; the next frame bo gets is that keyframe."""
    await publisher.connect()
    bo, sizes = await subscriber(join, "bo", munge_answer=without_abs_send_time)
    for _ in range(100):
        await hold_remb(bo, 5_000_000, 0.4)
        if sizes.latest() == (640, 360):
            break
    assert sizes.latest() == (640, 360)
    video = next(
        o.track
        for o in ServerParts(server.app).sfu.peer(ROOM, "bo").outgoing.values()
        if o.track.kind == "video"
    )
    sent: list[tuple[int | None, int, bool]] = []  # (layer, target, stepping down) per frame
    offer = video.offer

    def recording(packet: Any, keyframe: bool, packetized: Any) -> bool:
        sent.append((video.layer, video.target, video.choice.stepping_down))
        return offer(packet, keyframe, packetized)

    video.offer = recording  # type: ignore[method-assign]
    # the lowest layer's keyframe comes only on its own schedule (every 2 s), not at
    # once on request: frames of the top layer keep coming meanwhile
    publisher.layers[0].keyframe_now = lambda: None  # type: ignore[method-assign]
    for _ in range(60):
        await hold_remb(bo, 80_000, 0.4)
        if sizes.latest() == (160, 90):
            break
    assert sizes.latest() == (160, 90)
    after = [i for i, (_, _, down) in enumerate(sent) if down]
    assert after, sent
    assert all(layer == target == 0 for layer, target, _ in sent[after[0] :]), sent[after[0] :]


async def test_keyframe_requests_reach_each_layer_right_after_the_publisher_connects(
    publisher: SimulcastPublisher, join: Join
) -> None:
    """A subscriber joining 1 s after the publisher gets its first picture within a
    second or so: the SFU asks the layer's SSRC for a keyframe at once (keyframes come
    only every 2 s by themselves here)."""
    await publisher.connect()
    await publisher.client.wait_connected(timeout=20)
    await eventually(lambda: publisher.layers[0].sent > 15, timeout=20)
    bo, sizes = await subscriber(join, "bo")
    await bo.wait_connected(timeout=20)
    connected = time.monotonic()
    await eventually(lambda: sizes.latest() is not None, timeout=20)
    assert publisher.layers[0].plis >= 1
    assert sizes.frames[0][0] - connected < 1.9


async def test_layers_nobody_is_on_are_quiet_but_counted_and_wake_for_a_subscriber(
    publisher: SimulcastPublisher, join: Join, server: Any
) -> None:
    """A publisher alone: its layers' C buffers are quiet (`LayerBuffer.quiet`): each
    hands the publication a frame each `QUIET_S` and its keyframes, not every frame, and
    the layer's frame count and bit rate still count every frame. A subscriber wakes the
    layer it is on (and its audio); steady on it, its buffer sends him each frame itself
    and hands the publication only what a quiet one would; once he leaves, quiet again."""
    await publisher.connect()
    sfu = ServerParts(server.app).sfu
    await eventually(lambda: sfu.peer(ROOM, "ada") is not None, timeout=20)
    ada = sfu.peer(ROOM, "ada")
    assert ada is not None
    await eventually(lambda: len([i for i in ada.incoming if i.publication]) == 2, timeout=20)
    camera = next(i for i in ada.incoming if i.kind == "video")
    microphone = next(i for i in ada.incoming if i.kind == "audio")
    video = camera.publication
    assert video is not None and microphone.publication is not None
    buffers = getattr(camera.transceiver.receiver, JITTER_ATTR).layers
    streams = getattr(microphone.transceiver.receiver, JITTER_ATTR).streams

    def gates() -> list[bool]:  # each layer's, lowest first, then the audio's
        layers = [buffers.get(layer.ssrc) for layer in publisher.layers]
        return [b is not None and b.quiet for b in (*layers, *streams.values())]

    await eventually(lambda: gates() == [True] * 4 and len(video.layers) == 3, timeout=20)
    handed = [0, 0, 0]
    push_layer = video.push_layer

    def counted(
        codec: Any, data: bytes, timestamp: int, index: int, parts: Any = None, sent: Any = None
    ) -> None:
        handed[index] += 1
        push_layer(codec, data, timestamp, index, parts, sent)

    video.push_layer = counted  # type: ignore[method-assign]
    sent = [layer.sent for layer in publisher.layers]
    frames = [layer.frames for layer in video.layers]
    await eventually(
        lambda: all(layer.sent >= s + 45 for layer, s in zip(publisher.layers, sent, strict=True))
    )
    sent = [layer.sent - s for layer, s in zip(publisher.layers, sent, strict=True)]
    frames = [layer.frames - f for layer, f in zip(video.layers, frames, strict=True)]
    for index in range(3):  # 15 frames a second sent, ~4 (and a keyframe) handed on
        assert handed[index] <= sent[index] / 2, (handed, sent)
        assert abs(frames[index] - sent[index]) <= 8, (frames, sent)  # a quarter second late
        assert video.layers[index].bitrate > 0 and video.layers[index].active(time.monotonic())

    bo, sizes = await subscriber(join, "bo")
    await eventually(lambda: sizes.latest() == (640, 360), timeout=30)
    await eventually(lambda: gates() == [True, True, False, False])
    top = buffers[publisher.layers[2].ssrc]
    # bo alone takes the top layer, steady on it: its buffer sends him each frame itself
    await eventually(lambda: top.forwarding)
    handed[2], decoded = 0, len(sizes.frames)
    sent_top, counted_top = publisher.layers[2].sent, video.layers[2].frames
    await eventually(lambda: publisher.layers[2].sent >= sent_top + 30)
    sent_top = publisher.layers[2].sent - sent_top
    assert handed[2] <= sent_top / 2, (handed, sent_top)  # the publication sees ~4 a second
    assert abs(video.layers[2].frames - counted_top - sent_top) <= 8  # and counts them all
    await eventually(lambda: len(sizes.frames) >= decoded + 25)  # bo decodes every one

    await bo.socket.call("leave")
    await eventually(lambda: gates() == [True] * 4 and not top.forwarding, timeout=10)
