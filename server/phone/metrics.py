"""The gateway's Prometheus metrics, declared on the registry the app passes in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from server.phone.rtp import RtpStats


class PhoneMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.active_calls = Gauge(
            "pairwise_phone_active_calls",
            "Phone calls in progress (ringing to hang-up)",
            registry=registry,
        )
        self.call_attempts = Counter(
            "pairwise_phone_call_attempts",
            "INVITEs that started a call attempt, by result",
            ["result"],
            registry=registry,
        )
        self.rtp_packets_received = Counter(
            "pairwise_phone_rtp_packets_received",
            "RTP packets received from callers",
            registry=registry,
        )
        self.rtp_packets_lost = Counter(
            "pairwise_phone_rtp_packets_lost",
            "RTP packets from callers that never arrived",
            registry=registry,
        )
        self.pin_failures = Counter(
            "pairwise_phone_pin_failures",
            "Wrong PINs, by how they came (dtmf, request_uri, header)",
            ["via"],
            registry=registry,
        )
        self.pin_sources_locked = Counter(
            "pairwise_phone_pin_sources_locked",
            "Times a source address used up its wrong PINs and was locked out",
            registry=registry,
        )
        self.pin_checks_refused = Counter(
            "pairwise_phone_pin_checks_refused",
            "PINs not checked at all, by reason (source_locked, over_ceiling)",
            ["reason"],
            registry=registry,
        )
        self.trunk_registered = Gauge(
            "pairwise_phone_trunk_registered",
            "1 while the gateway is registered at the trunk (PAIRWISE_SIP_TRUNK_REGISTER)",
            registry=registry,
        )
        self.trunk_registrations = Counter(
            "pairwise_phone_trunk_registrations",
            "REGISTERs at the trunk, by result (registered, failed)",
            ["result"],
            registry=registry,
        )
        self.sip_dropped = Counter(
            "pairwise_phone_sip_dropped",
            "SIP messages dropped: malformed, or a response from where no request of ours went",
            registry=registry,
        )

    def call_finished(self, stats: RtpStats) -> None:
        self.rtp_packets_received.inc(stats.packets_received)
        self.rtp_packets_lost.inc(stats.packets_lost)
