"""The cluster as the rest of the server sees it: where a room lives, which nodes are alive.

Without Redis there is one node, this one, and every room is here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from server.cluster.keys import Keys
from server.cluster.nodes import NodeLoad, NodeRegistry
from server.cluster.placement import Placement, RoomDirectory
from server.config import Settings
from server.rooms.events import RoomEvent, SessionEnded
from server.rooms.registry import RoomRegistry

log = logging.getLogger("pairwise.cluster")


class Cluster:
    KINDS = (SessionEnded,)  # the bus events `__call__` handles

    def __init__(
        self,
        settings: Settings,
        redis: Redis | None,
        rooms: RoomRegistry,
        streams: Callable[[], int] = lambda: 0,
    ):
        self.name = settings.node_name
        self.url = settings.base_url
        self._rooms = rooms
        self._streams = streams  # forwarded streams on this node (the SFU's count)
        self._interval = settings.heartbeat_seconds
        self._grace = settings.room_grace_seconds
        self._task: asyncio.Task[None] | None = None
        # The rooms the directory placed here (→ when, monotonic), announced again with every
        # heartbeat: after Redis restarts (empty) or any gap, the directory is rebuilt before
        # a lookup could place a live room on another node. A room nobody joined here within
        # the room grace period is given back, so it does not count as load for ever.
        self.held: dict[str, float] = {}
        self.nodes: NodeRegistry | None = None
        self.directory: RoomDirectory | None = None
        if redis is not None:
            keys = Keys(settings.cluster)
            self.nodes = NodeRegistry(
                redis, keys, self.name, self.url, settings.node_ttl_seconds, self._load
            )
            self.directory = RoomDirectory(redis, keys, self.nodes)

    def _load(self) -> tuple[int, int, int]:
        rooms = self._rooms.rooms()
        return len(rooms), sum(len(r.participants) for r in rooms), self._streams()

    async def start(self) -> None:
        if self.nodes is not None:
            await self.beat()
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.nodes is not None:
            await self.nodes.forget()

    async def beat(self) -> None:
        """Heartbeat, then re-announce the rooms held here."""
        if self.nodes is None or self.directory is None or not await self.nodes.beat():
            return
        unused = time.monotonic() - self._grace
        for room in [r for r, at in self.held.items() if at < unused]:
            if self._rooms.get(room) is None:
                with contextlib.suppress(RedisError, OSError):
                    await self.directory.release(room, self.name)
                    del self.held[room]
        try:
            lost = await self.directory.claim(self.name, sorted(self.held))
        except (RedisError, OSError) as exc:
            log.warning("could not announce held rooms", extra={"error": str(exc)})
            return
        for room in lost:
            # Placed elsewhere while this node could not say it held the room.
            log.warning("room held by another node", extra={"room": room, "node": self.name})
            self.held.pop(room, None)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.beat()

    async def node_for(self, room: str) -> Placement:
        """Where `room` lives. If Redis cannot be reached, this node serves it."""
        if self.directory is None:
            return Placement(room, self.name, self.url, moved=False)
        try:
            placement = await self.directory.node_for(room)
        except (RedisError, OSError) as exc:
            log.warning(
                "room directory unavailable; serving locally",
                extra={"room": room, "error": str(exc)},
            )
            return Placement(room, self.name, self.url, moved=False)
        if placement.node == self.name:
            self.held[room] = time.monotonic()
        else:
            self.held.pop(room, None)
        return placement

    async def live_nodes(self) -> list[NodeLoad]:
        if self.nodes is None:
            rooms, participants, streams = self._load()
            return [NodeLoad(self.name, self.url, rooms, participants, streams, 0.0, 0.0)]
        return await self.nodes.live()

    async def __call__(self, event: RoomEvent) -> None:
        """Bus subscriber: a room that closed here is free to be placed anywhere."""
        if isinstance(event, SessionEnded) and self.directory is not None:
            self.held.pop(event.room, None)
            # On failure the placement outlives us only until our heartbeat expires.
            with contextlib.suppress(RedisError, OSError):
                await self.directory.release(event.room, self.name)
