"""Prometheus metrics: one registry per application, so several apps in one process stay apart.

Each part declares its own metrics on the registry it is given.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import ProcessCollector as _ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST.split(";")[0]


def new_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    # process_cpu_seconds_total and process_resident_memory_bytes: load tests read them.
    _ProcessCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
