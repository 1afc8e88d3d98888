"""A connection's RTP router learns at most `MAX_SSRCS` SSRCs (simulcast_receive.py's
`_mid_router`, which `route_by_mid` puts on every transport of a participant): past
that, a new SSRC is dropped until an SSRC not heard for `STALE_SSRC_S` is forgotten,
with all its receiver keeps of it. A simulcast layer keeps one SSRC and one RTX
stream (simulcast.Layers). The attack these stop, in the real server:
tests/security/sfu/test_sfu_abuse.py."""

from __future__ import annotations

import datetime
from typing import Any

from aiortc import clock
from aiortc.rate import RemoteBitrateEstimator
from aiortc.rtcdtlstransport import RtpRouter
from aiortc.rtp import RtpPacket

from server.media.aiortc_internals.rtcp import _CappedEstimator
from server.media.aiortc_internals.simulcast_receive import MAX_SSRCS, STALE_SSRC_S, _mid_router
from server.media.simulcast import Layers, SimulcastSection


class Receiver:
    """What the router touches of an `RTCRtpReceiver`: its per-SSRC entries, which its
    packet handling fills as each SSRC is heard."""

    def __init__(self) -> None:
        self._RTCRtpReceiver__active_ssrc: dict[int, datetime.datetime] = {}
        self._RTCRtpReceiver__remote_streams: dict[int, object] = {}
        self._RTCRtpReceiver__lsr: dict[int, int] = {}
        self._RTCRtpReceiver__lsr_time: dict[int, float] = {}
        self.estimator = RemoteBitrateEstimator()
        # as a publisher without transport-cc has it: capped (rtcp.py)
        self._RTCRtpReceiver__remote_bitrate_estimator = _CappedEstimator(self.estimator)

    def heard(self, ssrc: int, seconds_ago: float = 0.0) -> None:
        when = clock.current_datetime() - datetime.timedelta(seconds=seconds_ago)
        self._RTCRtpReceiver__active_ssrc[ssrc] = when
        self._RTCRtpReceiver__remote_streams[ssrc] = object()
        self._RTCRtpReceiver__lsr[ssrc] = self._RTCRtpReceiver__lsr_time[ssrc] = 1
        self.estimator.ssrcs[ssrc] = 0

    def keeps(self, ssrc: int) -> list[str]:
        kept = [
            name
            for name in ("active_ssrc", "remote_streams", "lsr", "lsr_time")
            if ssrc in getattr(self, f"_RTCRtpReceiver__{name}")
        ]
        return kept + (["estimator"] if ssrc in self.estimator.ssrcs else [])


def packet(ssrc: int, payload_type: int = 96) -> RtpPacket:
    return RtpPacket(payload_type=payload_type, ssrc=ssrc)


def test_new_ssrcs_stop_at_the_limit_and_stale_ones_make_room() -> None:
    now = 100.0
    router = RtpRouter()
    receiver: Any = Receiver()
    router.register_receiver(receiver, ssrcs=[1], payload_types=[96])
    route = _mid_router(router, clock=lambda: now)
    receiver.heard(1)
    for ssrc in range(2, MAX_SSRCS + 1):  # learned by payload type, each heard
        assert route(packet(ssrc)) is receiver
        receiver.heard(ssrc)
    assert len(router.ssrc_table) == MAX_SSRCS
    assert route(packet(1000)) is None  # full, none stale: dropped, not learned
    assert 1000 not in router.ssrc_table
    assert route(packet(1)) is receiver  # the known ones go on
    assert route(packet(5, payload_type=97)) is None  # a payload type not its own: as before

    for ssrc in (2, 3):  # two streams gone quiet (a sender restarted, a layer stopped)
        receiver.heard(ssrc, seconds_ago=STALE_SSRC_S + 1)
    now += 0.5
    assert route(packet(1001)) is None  # the table is looked through once a second at most
    now += 0.5
    assert route(packet(1001)) is receiver  # the stale two forgotten: room for new ones
    assert route(packet(1002)) is receiver
    assert route(packet(1003)) is None
    assert 2 not in router.ssrc_table and 3 not in router.ssrc_table
    assert receiver.keeps(2) == receiver.keeps(3) == []
    assert len(receiver.keeps(4)) == 5  # one heard lately: kept
    assert len(router.ssrc_table) == MAX_SSRCS
    receiver.heard(1001)
    receiver.heard(1002)
    # a forgotten SSRC heard again is learned again when there is room, like any new one
    now += 1.0
    assert route(packet(2)) is None
    receiver.heard(1002, seconds_ago=STALE_SSRC_S + 1)
    now += 1.0
    assert route(packet(2)) is receiver


def test_a_simulcast_layer_keeps_one_ssrc_and_one_rtx_stream() -> None:
    """A layer's RID under a new SSRC (its encoder restarted, or a participant rotating
    SSRCs) replaces the layer's SSRC, and its RTX stream; nothing of the old stays."""
    layers = Layers(SimulcastSection(mid="0", rids=["q", "h", "f"], ssrcs=[]))
    for n in range(1000):
        media, rtx = 2 * n + 1000, 2 * n + 1001
        layers.learn(media, "q", None)
        layers.learn(rtx, None, "q")
        assert layers.index_of(media) == 0 and layers.ssrc_of(0) == media
        assert layers.rtx == {rtx: media}
    assert layers.index_of(1000) is None  # the first, long replaced
    layers.learn(7, "h", None)
    layers.learn(8, None, "h")
    assert layers.rtx == {rtx: media, 8: 7}
    assert len(layers._index) == 2
