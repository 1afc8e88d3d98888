"""The rules that pause a video track to a subscriber whose link cannot carry even the
smallest video (server/media/downlink_pause.py), on an injected clock; and the SFU
applying them to a real aiortc subscriber of a real simulcast publisher."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest
from aiortc.rtp import RtpPacket, is_rtcp

from server.media import aiortc_internals as internals
from server.media.downlink_pause import (
    HOLD_SECONDS,
    MAX_HOLD_SECONDS,
    PAUSE_AFTER,
    Changes,
    DownlinkPause,
    Video,
)
from server.media.peer import Peer
from tests.media.conftest import Join
from tests.media.simulcast_publisher import SimulcastPublisher, encode_layers
from tests.media.support import Encoded, MediaClient, hold_remb, without_abs_send_time
from tests.media.test_simulcast import ROOM, Sizes
from tests.support.parts import ServerParts
from tests.support.waiting import eventually

ADA = Video("ada", at_floor=True, loss=0.3, rate=150_000, publisher="ada")
CAROL = Video("carol", at_floor=True, loss=0.3, rate=150_000, publisher="carol")
FULL_LINK = 280_000.0  # what a 300 kbit/s link's REMB says under 300 kbit/s of video


def run(
    pause: DownlinkPause,
    videos: list[Video],
    estimate: float | None,
    start: float,
    seconds: float,
    rising: bool = False,
    first: bool = False,
) -> list[tuple[float, Changes]]:
    """Readings once a second from `start` for `seconds` (or to the `first` change):
    the changes made, and when."""
    made = []
    for step in range(int(seconds) + 1):
        now = start + step
        current = [replace(v, rate=0.0) if v.key in pause.paused else v for v in videos]
        changes = pause.update(current, estimate, rising, now)
        if changes.pause or changes.resume:
            made.append((now, changes))
            if first:
                break
    return made


def test_a_full_lossy_link_at_the_floor_pauses_the_least_wanted_track_after_a_while() -> None:
    pause = DownlinkPause()
    made = run(pause, [ADA, CAROL], FULL_LINK, 0.0, PAUSE_AFTER + 1)
    assert made == [(PAUSE_AFTER, Changes(pause=["carol"]))]  # one, the later name
    # one paused: the other stays while the link carries it
    clean = replace(ADA, loss=0.0)
    assert run(pause, [clean, CAROL], 200_000, PAUSE_AFTER + 1, HOLD_SECONDS - 2) == []


def test_the_least_wanted_is_a_camera_before_a_share_then_the_smaller_tile() -> None:
    share = replace(CAROL, key="share", screen=True, area=1280 * 720)
    small = replace(ADA, area=320 * 180)
    big = replace(CAROL, area=640 * 360)
    assert run(DownlinkPause(), [share, small], FULL_LINK, 0, 3)[0][1].pause == ["ada"]
    assert run(DownlinkPause(), [small, big], FULL_LINK, 0, 3)[0][1].pause == ["ada"]
    assert run(DownlinkPause(), [big, replace(ADA, area=None)], FULL_LINK, 0, 3)[0][1].pause == [
        "carol"  # a tile whose size is not known counts as large
    ]


def test_nothing_is_paused_short_of_a_full_lossy_link_at_the_floor() -> None:
    cases = {
        "random loss: the estimate has room": ([ADA, CAROL], 450_000.0, False),
        "the estimate is rising": ([ADA, CAROL], FULL_LINK, True),
        "no estimate yet": ([ADA, CAROL], None, False),
        "no loss": ([replace(ADA, loss=0.05), replace(CAROL, loss=0.0)], FULL_LINK, False),
        "a smaller layer is left": ([ADA, replace(CAROL, at_floor=False)], FULL_LINK, False),
    }
    for name, (videos, estimate, rising) in cases.items():
        assert run(DownlinkPause(), videos, estimate, 0.0, 30, rising) == [], name


def test_a_track_that_carries_nothing_does_not_hold_a_pause_back() -> None:
    """Carol's camera off: her track to bo sends nothing and has no layer to be at the
    floor of; bo losing ada's lowest layer is paused all the same."""
    idle = replace(CAROL, at_floor=False, loss=0.0, rate=0.0)
    made = run(DownlinkPause(), [ADA, idle], 100_000, 0.0, PAUSE_AFTER + 1)
    assert made == [(PAUSE_AFTER, Changes(pause=["ada"]))]


def test_congestion_must_last_without_a_break() -> None:
    pause = DownlinkPause()
    made = []
    for now in range(10):  # a clean reading every third second
        videos = [replace(ADA, loss=0.0 if now % 3 == 2 else 0.3)]
        changes = pause.update(videos, 100_000, False, float(now))
        made += changes.pause
    assert made == []


def test_a_paused_track_is_tried_again_after_its_hold_which_doubles_while_it_fails() -> None:
    pause = DownlinkPause()
    holds = []
    now = 0.0
    for _ in range(5):
        [(paused_at, changes)] = run(pause, [ADA], 100_000, now, 60, first=True)
        assert changes.pause == ["ada"]
        [(back_at, changes)] = run(pause, [ADA], 100_000, paused_at + 1, 200, first=True)
        assert changes.resume == ["ada"]
        holds.append(back_at - paused_at)
        now = back_at
    assert holds == [HOLD_SECONDS, 2 * HOLD_SECONDS, 4 * HOLD_SECONDS, 8 * HOLD_SECONDS,
                     MAX_HOLD_SECONDS]  # fmt: skip
    # back for twice its hold on a clear link: the next pause holds HOLD_SECONDS again
    clear = replace(ADA, loss=0.0)
    assert run(pause, [clear], 400_000, now, 2 * MAX_HOLD_SECONDS) == []
    later = now + 2 * MAX_HOLD_SECONDS + 1
    (paused_at, _), (back_at, _), *_ = run(pause, [ADA], 100_000, later, 20)
    assert back_at - paused_at == HOLD_SECONDS


def test_when_the_next_trial_is_and_what_is_forgotten() -> None:
    pause = DownlinkPause()
    assert pause.next_resume() is None
    [(paused_at, _)] = run(pause, [ADA, CAROL], FULL_LINK, 0.0, 10, first=True)
    assert pause.next_resume() == paused_at + HOLD_SECONDS
    # the paused track goes (its publisher left): nothing is held for it
    assert pause.update([ADA], FULL_LINK, False, paused_at + 1) == Changes()
    assert pause.paused == {} and pause.next_resume() is None


# -- the SFU applying them to a real subscriber ----------------------------------------


@pytest.fixture(scope="module")
def layer_frames() -> list[list[Encoded]]:
    return encode_layers()


class Lossy:
    """Drops every third RTP packet a subscriber receives (while `on`), before SRTP: its
    receiver reports a third lost, as on a link the SFU overfills. Counts the ones it
    lets through, by SSRC. (aiortc's jitter buffer waits for a lost packet until 128 more have
    come, so the subscriber decodes little meanwhile: what it is sent is read here.)"""

    def __init__(self, person: MediaClient) -> None:
        self.on = True
        self.count = 0
        self.delivered: Counter[int] = Counter()  # by SSRC
        transport = person.pc.getTransceivers()[0].receiver.transport
        handle = transport._handle_rtp_data

        async def tap(data: bytes, arrival_time_ms: int) -> None:
            if not is_rtcp(data):
                self.count += 1
                if self.on and self.count % 3 == 0:
                    return
                self.delivered[RtpPacket.parse(data).ssrc] += 1
            await handle(data, arrival_time_ms)

        transport._handle_rtp_data = tap


def output_ssrc(peer: Peer, kind: str) -> int:
    """The SSRC of the SFU's stream of `kind` to this subscriber."""
    for outgoing in peer.outgoing.values():
        if outgoing.track.kind == kind:
            return internals.RtpLink(outgoing.transceiver.sender).ssrc
    raise AssertionError(f"no {kind} stream")


@pytest.mark.slow
async def test_a_subscriber_losing_even_the_lowest_layer_is_paused_then_tried_again(
    join: Join, server: Any, layer_frames: list[list[Encoded]]
) -> None:
    """Bo loses a third of ada's lowest layer and its estimate is under it: the SFU stops
    ada's video to bo alone (carol still gets it) and tells bo; after the hold it sends
    it again (bo decodes frames again); lossy again, it is paused with a doubled hold."""
    ada = await join("ada", role="mentor", connect=False, video=[])
    publisher = SimulcastPublisher(ada, layer_frames)
    try:
        await publisher.connect()
        bo = await join("bo", publish=False, connect=False, munge_answer=without_abs_send_time)
        bo_sizes = Sizes(bo)
        await bo.connect()
        carol = await join("carol", publish=False, connect=False)
        carol_sizes = Sizes(carol)
        await carol.connect()
        await eventually(lambda: bo_sizes.latest() is not None, timeout=20)
        sfu = ServerParts(server.app).sfu
        peer = sfu.peer(ROOM, "bo")
        assert peer is not None
        track = next(o.track for o in peer.outgoing.values() if o.track.kind == "video")
        lossy = Lossy(bo)
        paused = asyncio.ensure_future(
            bo.socket.wait_for("media_paused", {"paused": True}, timeout=40)
        )
        while not paused.done():
            await hold_remb(bo, 30_000, 0.4)
        event = paused.result()
        assert event == {
            "identity": "ada",
            "source": "camera",
            "paused": True,
            "reason": "bandwidth",
        }
        assert track.link_paused and not track.enabled and track.layer == track.target == 0
        assert peer.downlink.paused[track].hold == HOLD_SECONDS
        video, audio = (output_ssrc(peer, kind) for kind in ("video", "audio"))
        before, carol_frames = dict(lossy.delivered), len(carol_sizes.frames)
        await asyncio.sleep(2)  # a stretch of time to read the streams over, not a wait
        assert lossy.delivered[video] <= before[video] + 2  # (packets already on the way)
        assert lossy.delivered[audio] > before[audio] + 50  # ada's voice goes on
        assert len(carol_sizes.frames) > carol_frames + 20  # carol is not paused

        # the link clears: after the hold it comes back, from a keyframe
        lossy.on = False
        back = await bo.socket.wait_for("media_paused", {"paused": False}, timeout=HOLD_SECONDS + 5)
        assert back["identity"] == "ada" and not track.link_paused
        resumed = lossy.delivered[video]
        await eventually(lambda: lossy.delivered[video] > resumed + 10, timeout=10)

        # lossy again within twice the hold: paused again, held twice as long
        lossy.on = True
        bo.socket.events["media_paused"].clear()
        paused = asyncio.ensure_future(
            bo.socket.wait_for("media_paused", {"paused": True}, timeout=40)
        )
        while not paused.done():
            await hold_remb(bo, 30_000, 0.4)
        assert peer.downlink.paused[track].hold == 2 * HOLD_SECONDS

        # bo turns video off itself meanwhile: the pause goes with its choice (bo is told),
        # and video turned back on comes at once, not at the end of a hold the rules forgot
        bo.socket.events["media_paused"].clear()
        ack = await bo.socket.call("media_control", {"receive_video": False})
        assert ack["receive_video"] is False, ack
        assert not track.link_paused and not track.enabled and not peer.downlink.paused
        await bo.socket.wait_for("media_paused", {"identity": "ada", "paused": False})
        lossy.on = False
        await bo.socket.call("media_control", {"receive_video": True})
        assert track.enabled
        resumed = lossy.delivered[video]
        await eventually(lambda: lossy.delivered[video] > resumed + 10, timeout=10)
        registry = ServerParts(server.app).registry
        assert registry.get_sample_value("pairwise_sfu_link_pauses_total") == 2
    finally:
        await publisher.close()
