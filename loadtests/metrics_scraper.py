"""Server CPU and memory over time, read from the server's own `GET /metrics`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

# The server's ProcessCollector and signaling gauges (server/metrics.py, server/signaling).
WANTED = {
    "process_cpu_seconds_total": "cpu_seconds",
    "process_resident_memory_bytes": "rss_bytes",
    "pairwise_sockets_connected": "sockets",
    "pairwise_participants": "participants",
    "pairwise_rooms": "rooms",
}


@dataclass
class ServerSample:
    t: float
    cpu_percent: float | None
    memory_mb: float | None
    sockets: float | None
    participants: float | None
    rooms: float | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# The server's time to handle each client event (server/signaling/metrics.py), cumulative.
HANDLING = "pairwise_event_seconds_bucket"
Buckets = dict[str, dict[float, float]]  # event → upper bound (s) → cumulative count


def parse(text: str) -> dict[str, float]:
    """The wanted values from Prometheus text (label-free series; counters by sample name)."""
    return parse_all(text)[0]


def parse_all(text: str) -> tuple[dict[str, float], Buckets]:
    values: dict[str, float] = {}
    buckets: Buckets = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = WANTED.get(sample.name)
            if key is not None and not sample.labels:
                values[key] = float(sample.value)
            elif sample.name == HANDLING and "event" in sample.labels:
                bound = float(sample.labels["le"])
                buckets.setdefault(sample.labels["event"], {})[bound] = float(sample.value)
    return values, buckets


def handling_during(first: Buckets, last: Buckets) -> dict[str, dict[str, float | None]]:
    """Per event, the server's own handling time over the run, from the histogram's change:
    count, the bucket bound the 50th/99th percentile falls under, and the share over 100 ms
    and over 1 s. Tells server-side waits apart from network and load-tool time."""
    out: dict[str, dict[str, float | None]] = {}
    for event, counts in last.items():
        before = first.get(event, {})
        bounds = sorted(counts)
        delta = [counts[b] - before.get(b, 0.0) for b in bounds]
        total = delta[-1] if delta else 0.0
        if total <= 0:
            continue

        def quantile(
            q: float, bounds: list[float] = bounds, delta: list[float] = delta, total: float = total
        ) -> float | None:
            for bound, count in zip(bounds, delta, strict=True):
                if count >= q * total:
                    return None if bound == float("inf") else bound * 1000
            return None

        def over(
            seconds: float,
            bounds: list[float] = bounds,
            delta: list[float] = delta,
            total: float = total,
        ) -> float:
            under = max(
                (c for b, c in zip(bounds, delta, strict=True) if b <= seconds), default=0.0
            )
            return round(1 - under / total, 4)

        out[event] = {
            "count": total,
            "p50_ms_at_most": quantile(0.5),
            "p99_ms_at_most": quantile(0.99),
            "share_over_100ms": over(0.1),
            "share_over_1s": over(1.0),
        }
    return out


class MetricsScraper:
    """Reads `/metrics` every `interval` seconds while the run lasts.

    A server that does not expose metrics (404, 401 from a proxy) is noted once and the
    scraper stops; a server that stops answering is an error of kind `metrics_unreachable`.
    """

    def __init__(
        self, url: str, session: aiohttp.ClientSession, interval: float, clock: Any, on_error: Any
    ):
        self.url = url.rstrip("/") + "/metrics"
        self.session = session
        self.interval = interval
        self.clock = clock
        self.on_error = on_error
        self.samples: list[ServerSample] = []
        self.unavailable: str | None = None
        self._last: tuple[float, float] | None = None  # (wall time, cpu seconds)
        self.first_buckets: Buckets | None = None
        self.last_buckets: Buckets = {}

    async def scrape(self) -> ServerSample | None:
        try:
            async with self.session.get(self.url, timeout=aiohttp.ClientTimeout(total=5)) as r:
                if r.status != 200:
                    self.unavailable = f"GET /metrics answered HTTP {r.status}"
                    return None
                text = await r.text()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self.on_error("metrics_unreachable", f"{type(exc).__name__}: {exc}")
            return None
        wall = time.monotonic()
        values, buckets = parse_all(text)
        if self.first_buckets is None:
            self.first_buckets = buckets
        self.last_buckets = buckets
        cpu_percent = None
        cpu = values.get("cpu_seconds")
        if cpu is not None:
            # A counter that went down is another process (a restart, or a balancer
            # alternating between nodes): no rate, rather than a negative one.
            if self._last is not None and wall > self._last[0] and cpu >= self._last[1]:
                cpu_percent = round(100 * (cpu - self._last[1]) / (wall - self._last[0]), 1)
            self._last = (wall, cpu)
        rss = values.get("rss_bytes")
        sample = ServerSample(
            t=round(self.clock(), 3),
            cpu_percent=cpu_percent,
            memory_mb=round(rss / 2**20, 1) if rss is not None else None,
            sockets=values.get("sockets"),
            participants=values.get("participants"),
            rooms=values.get("rooms"),
        )
        self.samples.append(sample)
        return sample

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set() and self.unavailable is None:
            await self.scrape()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)

    def handling(self) -> dict[str, dict[str, float | None]]:
        return handling_during(self.first_buckets or {}, self.last_buckets)

    def latest(self) -> ServerSample | None:
        return self.samples[-1] if self.samples else None


def _total(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(sum(present), 1) if present else None


class NodesScraper:
    """Reads every node's `/metrics` (cluster mode) and adds them up per round.

    Behind a balancer one URL answers from whichever node it picks, so its CPU counter jumps
    between processes (a report once showed negative server CPU and passed); scraping each
    node by its own URL keeps every counter on one process. Same interface as
    `MetricsScraper`; `per_node` keeps each node's own samples.
    """

    def __init__(
        self,
        urls: list[str],
        session: aiohttp.ClientSession,
        interval: float,
        clock: Any,
        on_error: Any,
    ):
        self.per_node = {
            url: MetricsScraper(url, session, interval, clock, on_error) for url in urls
        }
        self.interval = interval
        self.clock = clock
        self.samples: list[ServerSample] = []

    @property
    def unavailable(self) -> str | None:
        reasons = [s.unavailable for s in self.per_node.values()]
        return reasons[0] if all(reasons) else None

    async def scrape(self) -> ServerSample | None:
        answered = [
            s
            for s in await asyncio.gather(
                *(n.scrape() for n in self.per_node.values() if n.unavailable is None)
            )
            if s is not None
        ]
        if not answered:
            return None
        sample = ServerSample(
            t=round(self.clock(), 3),
            cpu_percent=_total([s.cpu_percent for s in answered]),
            memory_mb=_total([s.memory_mb for s in answered]),
            sockets=_total([s.sockets for s in answered]),
            participants=_total([s.participants for s in answered]),
            rooms=_total([s.rooms for s in answered]),
        )
        self.samples.append(sample)
        return sample

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set() and self.unavailable is None:
            await self.scrape()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)

    def handling(self) -> dict[str, dict[str, float | None]]:
        first: Buckets = {}
        last: Buckets = {}
        for node in self.per_node.values():
            for into, buckets in ((first, node.first_buckets or {}), (last, node.last_buckets)):
                for event, counts in buckets.items():
                    merged = into.setdefault(event, {})
                    for bound, count in counts.items():
                        merged[bound] = merged.get(bound, 0.0) + count
        return handling_during(first, last)

    def latest(self) -> ServerSample | None:
        return self.samples[-1] if self.samples else None

    def nodes(self) -> dict[str, dict[str, Any]]:
        """Per node: samples read, and its own CPU and memory peaks."""
        out: dict[str, dict[str, Any]] = {}
        for url, node in self.per_node.items():
            cpu = [s.cpu_percent for s in node.samples if s.cpu_percent is not None]
            memory = [s.memory_mb for s in node.samples if s.memory_mb is not None]
            out[url] = {
                "samples": len(node.samples),
                "max_cpu_percent": max(cpu) if cpu else None,
                "max_memory_mb": max(memory) if memory else None,
                "max_participants": max(
                    (s.participants for s in node.samples if s.participants is not None),
                    default=None,
                ),
            }
        return out
