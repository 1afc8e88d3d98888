"""What the ladder monitor knows of each connection: a snapshot for the ladder rules every
tick (`observe`), and every `SAMPLE_SECONDS` a read of the PeerConnection's stats
(`StatsSampler`: packets, bytes, loss, RTT from RTCP).

Every `QUALITY_EVENT_SECONDS` the sampler publishes a `MediaQualitySampled` event (the
session log writes each one to the database, so it is sparser than the samples the loss
rule and the stats API use).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any, Protocol

from server.media import aiortc_internals as internals
from server.media.forwarding import Publication
from server.media.ladder_rules import Feed, Observation
from server.media.metrics import MediaMetrics
from server.media.peer import Counters, Peer
from server.rooms.events import EventBus, MediaQualitySampled
from server.rooms.model import MediaMode

log = logging.getLogger("pairwise.media.health")

SAMPLE_SECONDS = 2.0
QUALITY_EVENT_SECONDS = 10.0


class SendControls(Protocol):
    """What the participant chose to send (the SFU's `Controls`)."""

    @property
    def audio(self) -> bool: ...

    @property
    def video(self) -> bool: ...


def observe(peer: Peer, controls: SendControls | None, mode: MediaMode, now: float) -> Observation:
    """The connection of a participant in `mode` at `now`, for `LadderRules.decide`.

    Only a connected connection is asked whether the far end was heard from: the question
    may send it an ICE consent check."""
    connected = peer.connected_at is not None and peer.state == "connected"
    return Observation(
        mode=mode,
        created_at=peer.created_at,
        connected_at=peer.connected_at,
        dead=peer.dead_reason(),
        connected=connected,
        sends_audio=controls is None or controls.audio,
        sends_video=controls is None or controls.video,
        audio=_feed(peer, "audio"),
        video=_feed(peer, "video"),
        quiet=peer.liveness.observe(now) if connected else 0.0,
        loss_percent=peer.quality.loss_percent,
        lossy_samples=peer.quality.lossy_samples,
    )


def _feed(peer: Peer, kind: str) -> Feed | None:
    """The publication of `kind` this connection feeds, if it publishes one."""
    for incoming in peer.incoming:
        if incoming.kind == kind and incoming.publication is not None:
            return _snapshot(incoming.publication)
    return None


def _snapshot(publication: Publication) -> Feed:
    return Feed(
        paused=publication.paused,
        last_frame_at=publication.last_frame_at,
        expected_since=publication.expected_since,
        held=publication.held,
    )


def inbound_media_packets(stats: Iterable[Any], media_ssrcs: set[int]) -> tuple[int, int]:
    """(received, lost) over the inbound-rtp streams of `media_ssrcs`; every inbound
    stream if none is known. Retransmission streams have their own SSRC and are left
    out: their sequence gaps are lost retransmissions, not lost media."""
    received = lost = 0
    for entry in stats:
        if entry.type == "inbound-rtp" and (not media_ssrcs or entry.ssrc in media_ssrcs):
            received += entry.packetsReceived
            lost += max(0, entry.packetsLost)
    return received, lost


class StatsSampler:
    """Turns each connection's getStats totals into rates and loss on `Peer.quality`."""

    def __init__(self, loss_step_down_percent: float, bus: EventBus, metrics: MediaMetrics) -> None:
        self._threshold = loss_step_down_percent
        self._bus = bus
        self._metrics = metrics

    async def sample(self, peers: Iterable[Peer], now: float) -> None:
        for peer in peers:
            if peer.connected_at is None or peer.closed:
                continue
            try:
                await self._sample(peer, now)
            except Exception:
                log.debug("stats failed", exc_info=True)

    async def _sample(self, peer: Peer, now: float) -> None:
        report = await peer.pc.getStats()
        totals = Counters(at=now)
        media_ssrcs = {
            ssrc for incoming in peer.incoming if (ssrc := peer.media_ssrc(incoming)) is not None
        }
        totals.packets_in, totals.packets_lost = inbound_media_packets(report.values(), media_ssrcs)
        rtts = []
        for stats in report.values():
            kind = stats.type
            if kind == "outbound-rtp":
                totals.packets_out += stats.packetsSent
                totals.bytes_out += stats.bytesSent
            elif kind == "remote-inbound-rtp" and stats.roundTripTime is not None:
                rtts.append(stats.roundTripTime)
            elif kind == "transport":
                totals.bytes_in += stats.bytesReceived
        totals.rtcp_dropped, totals.nack_numbers_cut = internals.rtcp_dropped(peer.pc)
        quality = peer.quality
        before = quality.counters
        # counted from the connection's start (not from its first sample)
        dropped = self._metrics.rtcp_dropped
        dropped.labels("datagrams").inc(max(0, totals.rtcp_dropped - before.rtcp_dropped))
        dropped.labels("nack_numbers").inc(
            max(0, totals.nack_numbers_cut - before.nack_numbers_cut)
        )
        if before.at:
            elapsed = max(now - before.at, 1e-3)
            received = max(0, totals.packets_in - before.packets_in)
            lost = max(0, totals.packets_lost - before.packets_lost)
            quality.inbound_kbps = max(0, totals.bytes_in - before.bytes_in) * 8 / elapsed / 1000
            quality.outbound_kbps = max(0, totals.bytes_out - before.bytes_out) * 8 / elapsed / 1000
            quality.record_loss(
                100.0 * lost / (received + lost) if received + lost else 0.0, self._threshold
            )
            self._metrics.rtp_packets.labels("in").inc(received)
            self._metrics.rtp_packets.labels("out").inc(
                max(0, totals.packets_out - before.packets_out)
            )
            self._metrics.rtp_bytes.labels("in").inc(max(0, totals.bytes_in - before.bytes_in))
            self._metrics.rtp_bytes.labels("out").inc(max(0, totals.bytes_out - before.bytes_out))
        quality.counters = totals
        quality.packets_in, quality.packets_out = totals.packets_in, totals.packets_out
        quality.bytes_in, quality.bytes_out = totals.bytes_in, totals.bytes_out
        quality.rtt_ms = 1000 * sum(rtts) / len(rtts) if rtts else None
        quality.sampled_at = time.time()
        if before.at and now - quality.event_at >= QUALITY_EVENT_SECONDS:
            quality.event_at = now
            self._bus.publish(
                MediaQualitySampled(
                    peer.room,
                    identity=peer.identity,
                    inbound_kbps=round(quality.inbound_kbps, 1),
                    outbound_kbps=round(quality.outbound_kbps, 1),
                    loss_percent=round(quality.loss_percent, 2),
                    rtt_ms=round(quality.rtt_ms, 1) if quality.rtt_ms is not None else None,
                )
            )
