"""SFU metrics, declared on the application's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class MediaMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.peers = Gauge(
            "pairwise_sfu_peers", "Participants' PeerConnections with the SFU", registry=registry
        )
        self.forwarded_streams = Gauge(
            "pairwise_sfu_forwarded_streams",
            "Tracks forwarded to a subscriber (pairs)",
            registry=registry,
        )
        self.transcoded_pairs = Gauge(
            "pairwise_sfu_transcoded_pairs",
            "Forwarded tracks transcoded because publisher and subscriber share no codec",
            registry=registry,
        )
        self.forwarded_frames = Counter(
            "pairwise_sfu_forwarded_frames_total",
            "Encoded frames forwarded unchanged",
            ["kind"],
            registry=registry,
        )
        self.transcoded_frames = Counter(
            "pairwise_sfu_transcoded_frames_total",
            "Frames decoded for a transcoded pair",
            ["kind"],
            registry=registry,
        )
        self.dropped_frames = Counter(
            "pairwise_sfu_dropped_frames_total",
            "Frames dropped for a subscriber that fell behind",
            ["kind"],
            registry=registry,
        )
        self.keyframe_requests = Counter(
            "pairwise_sfu_keyframe_requests_total",
            "PLIs sent to publishers, by reason",
            ["reason"],
            registry=registry,
        )
        self.rtp_packets = Counter(
            "pairwise_sfu_rtp_packets_total",
            "RTP packets, by direction (in from publishers, out to subscribers)",
            ["direction"],
            registry=registry,
        )
        self.rtp_bytes = Counter(
            "pairwise_sfu_rtp_bytes_total",
            "RTP payload bytes, by direction",
            ["direction"],
            registry=registry,
        )
        self.retransmitted_packets = Counter(
            "pairwise_sfu_retransmitted_packets_total",
            "RTP packets sent to a subscriber again after its NACK",
            registry=registry,
        )
        self.rtcp_dropped = Counter(
            "pairwise_sfu_rtcp_dropped_total",
            "RTCP past a connection's budget: datagrams not handled, NACKed sequence numbers cut",
            ["what"],
            registry=registry,
        )
        self.link_pauses = Counter(
            "pairwise_sfu_link_pauses_total",
            "Video tracks paused to a subscriber whose link could not carry even their least",
            registry=registry,
        )
        self.mode_changes = Counter(
            "pairwise_sfu_mode_changes_total",
            "Media mode changes decided by the health monitor",
            ["reason"],
            registry=registry,
        )
