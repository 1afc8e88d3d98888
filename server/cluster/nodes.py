"""Node heartbeats: each node says every few seconds that it is alive and how loaded it is.

A node whose heartbeat key has expired is dead; its rooms are placed elsewhere.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import psutil
from redis.asyncio import Redis
from redis.exceptions import RedisError

from server.cluster.keys import Keys

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
    def media_load(self) -> float:
        """Load beyond the rooms placed on the node, in rooms: 20 forwarded streams weigh as
        much as one more room, and so does each 25 % of a core above half a core. The rooms
        themselves are counted by the directory as it places them (a heartbeat's count lags
        behind a burst of placements). Below half a core a node's CPU is noise against its
        rooms (start-up, a collection): counted from zero, it put a burst of 20 rooms on two
        fresh nodes 12/8."""
        return self.streams / 20 + max(0.0, self.cpu_percent - 50) / 25


class NodeRegistry:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        name: str,
        url: str,
        ttl: float,
        load: Callable[[], tuple[int, int, int]],
    ):
        self._redis = redis
        self._keys = keys
        self.name = name
        self.url = url
        self._ttl = ttl
        self._load = load  # → (rooms, participants, forwarded streams)
        self._process = psutil.Process()
        self._measuring = False  # has the CPU baseline been set (by the first beat)?
        self.healthy = False  # did the last heartbeat reach Redis?
        self._announced = False  # has a heartbeat of this process ever reached Redis?

    async def forget(self) -> None:
        """Say this node is gone (a clean stop), so no one waits for its TTL."""
        with contextlib.suppress(RedisError, OSError):
            await self._redis.delete(self._keys.node(self.name))

    async def beat(self) -> bool:
        """Report this node's load; whether Redis took it."""
        rooms, participants, streams = self._load()
        # The first call only sets the baseline (the server's start-up is not its load).
        cpu = self._process.cpu_percent() if self._measuring else 0.0
        if not self._measuring:
            self._process.cpu_percent()
            self._measuring = True
        me = NodeLoad(self.name, self.url, rooms, participants, streams, cpu, time.time())
        try:
            ttl_ms = int(self._ttl * 1000)
            before = await self._redis.set(
                self._keys.node(self.name), json.dumps(asdict(me)), px=ttl_ms, get=True
            )
            if before is None and self._announced:
                # Our heartbeat was gone before it expired: Redis restarted empty (or we
                # were away past our TTL). Other live nodes may not have announced their
                # rooms yet; a lookup now would place one of them a second time.
                await self._redis.set(self._keys.settling, self.name, px=ttl_ms)
                log.warning(
                    "redis lost this node's heartbeat; new placements wait one node TTL",
                    extra={"node": self.name},
                )
            self._announced = True
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
        return self.healthy

    async def live(self) -> list[NodeLoad]:
        nodes = []
        async for key in self._redis.scan_iter(match=self._keys.node_prefix + "*", count=100):
            raw = await self._redis.get(key)
            if raw is not None:
                nodes.append(NodeLoad(**json.loads(raw)))
        return sorted(nodes, key=lambda n: n.name)
