"""The loss rule (server/media/ladder_rules.py, measured by stats_sampler.py): noisy single
samples and the retransmission stream never step anyone down on their own."""

from __future__ import annotations

import datetime

from aiortc.stats import RTCInboundRtpStreamStats

from server.media.ladder_rules import LOSSY_SAMPLES
from server.media.peer import LinkQuality
from server.media.stats_sampler import inbound_media_packets

THRESHOLD = 20.0


def inbound(ssrc: int, received: int, lost: int) -> RTCInboundRtpStreamStats:
    return RTCInboundRtpStreamStats(
        timestamp=datetime.datetime.now(datetime.UTC),
        type="inbound-rtp",
        id=f"inbound-rtp_{ssrc}",
        transportId="transport_1",
        ssrc=ssrc,
        kind="video",
        packetsReceived=received,
        packetsLost=lost,
        jitter=0,
    )


def streak(samples: list[float]) -> int:
    quality = LinkQuality()
    for loss in samples:
        quality.record_loss(loss, THRESHOLD)
    return quality.lossy_samples


def test_one_noisy_sample_over_the_threshold_is_not_enough() -> None:
    # 10 % loss each way measures up to ~19 %, sometimes just over 20 % in one sample.
    assert LOSSY_SAMPLES == 2
    assert streak([12.0, 21.0, 9.0, 22.0, 15.0]) < LOSSY_SAMPLES
    assert streak([12.0, 21.0, 9.0, 22.0]) < LOSSY_SAMPLES


def test_consecutive_samples_over_the_threshold_step_down() -> None:
    assert streak([5.0, 25.0, 30.0]) >= LOSSY_SAMPLES
    assert streak([25.0, 30.0, 5.0]) == 0  # a clean sample resets it


def test_retransmissions_are_not_counted_as_media_loss() -> None:
    media, rtx = 1111, 2222
    stats = [inbound(media, received=900, lost=100), inbound(rtx, received=60, lost=40)]
    assert inbound_media_packets(stats, {media}) == (900, 100)
    # No media SSRC known yet (no a=ssrc lines): every inbound stream counts.
    assert inbound_media_packets(stats, set()) == (960, 140)
