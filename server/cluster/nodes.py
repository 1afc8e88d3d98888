"""Node heartbeats: each node says every few seconds that it is alive and how loaded it is.

A node whose heartbeat key has expired is dead; its rooms are placed elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import psutil
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("pairwise.cluster")


@dataclass(frozen=True)
class NodeLoad:
    name: str
    url: str
    rooms: int
    participants: int
    streams: int
    cpu_percent: float
    ts: float

    @property
    def score(self) -> float:
        """Lower is less loaded: rooms first, then forwarded streams, then CPU."""
        return self.rooms + self.streams / 20 + self.cpu_percent / 25


class NodeRegistry:
    def __init__(
        self,
        redis: Redis,
        cluster: str,
        name: str,
        url: str,
        interval: float,
        ttl: float,
        load: Callable[[], tuple[int, int, int]],
    ):
        self._redis = redis
        self._prefix = f"{cluster}:node:"
        self.name = name
        self.url = url
        self._interval = interval
        self._ttl = ttl
        self._load = load  # → (rooms, participants, forwarded streams)
        self._process = psutil.Process()
        self._task: asyncio.Task[None] | None = None
        self.healthy = False  # did the last heartbeat reach Redis?

    async def start(self) -> None:
        self._process.cpu_percent()  # the first call only sets the baseline
        await self.beat()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        with contextlib.suppress(RedisError):
            await self._redis.delete(self._prefix + self.name)

    async def beat(self) -> None:
        rooms, participants, streams = self._load()
        me = NodeLoad(
            self.name,
            self.url,
            rooms,
            participants,
            streams,
            self._process.cpu_percent(),
            time.time(),
        )
        try:
            await self._redis.set(
                self._prefix + self.name, json.dumps(asdict(me)), px=int(self._ttl * 1000)
            )
            if not self.healthy:
                log.info("heartbeat reaches redis", extra={"node": self.name})
            self.healthy = True
        except (RedisError, OSError) as exc:
            if self.healthy:
                log.warning(
                    "heartbeat failed; serving local rooms only",
                    extra={"node": self.name, "error": str(exc)},
                )
            self.healthy = False

    async def live(self) -> list[NodeLoad]:
        nodes = []
        async for key in self._redis.scan_iter(match=self._prefix + "*", count=100):
            raw = await self._redis.get(key)
            if raw is not None:
                nodes.append(NodeLoad(**json.loads(raw)))
        return sorted(nodes, key=lambda n: n.name)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.beat()
