"""Signaling metrics, declared on the application's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class SignalingMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.sockets = Gauge(
            "pairwise_sockets_connected", "Connected Socket.IO clients", registry=registry
        )
        self.engine_connections = Gauge(
            "pairwise_engineio_connections",
            "Open Engine.IO connections, with or without a Socket.IO CONNECT",
            registry=registry,
        )
        self.engine_refused = Counter(
            "pairwise_engineio_refused_total",
            "Engine.IO connections refused (address_cap) or closed (connect_timeout)",
            ["reason"],
            registry=registry,
        )
        self.rooms = Gauge("pairwise_rooms", "Open rooms on this node", registry=registry)
        self.participants = Gauge(
            "pairwise_participants", "Participants in rooms on this node", registry=registry
        )
        self.chat_messages = Counter(
            "pairwise_chat_messages_total", "Chat messages stored", registry=registry
        )
        self.rejected = Counter(
            "pairwise_events_rejected_total",
            "Events refused, by reason",
            ["reason"],
            registry=registry,
        )
        self.latency = Histogram(
            "pairwise_event_seconds",
            "Time to handle a client event",
            ["event"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=registry,
        )
