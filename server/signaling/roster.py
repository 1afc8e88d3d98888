"""Who is in a room across all nodes: each node mirrors its own participants into Redis.

Socket.IO's Redis manager already carries room events between nodes; this mirror lets a
participant joining on one node see, in the join ack, people connected to another.
"""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

from server.rooms.events import (
    MediaModeChanged,
    ParticipantJoined,
    ParticipantLeft,
    PresenceChanged,
    RoomEvent,
)
from server.rooms.registry import RoomRegistry


class RedisRoster:
    KINDS = (ParticipantJoined, PresenceChanged, MediaModeChanged, ParticipantLeft)

    def __init__(self, redis: Redis, cluster: str, node: str, registry: RoomRegistry):
        self._redis = redis
        self._cluster = cluster
        self._node = node
        self._registry = registry

    def _key(self, room: str) -> str:
        return f"{self._cluster}:room:{room}:people"

    async def __call__(self, event: RoomEvent) -> None:
        """Bus subscriber: keep this node's part of each room's roster current."""
        match event:
            case ParticipantJoined() | PresenceChanged() | MediaModeChanged():
                participant = self._registry.participant(event.room, event.identity)
                if participant is not None:
                    entry = {
                        **participant.public(),
                        "node": self._node,
                        "sid": participant.connection,
                    }
                    await self._redis.hset(self._key(event.room), event.identity, json.dumps(entry))
            case ParticipantLeft():
                raw = await self._redis.hget(self._key(event.room), event.identity)
                # Someone who moved to another node meanwhile is that node's to remove.
                if raw is not None and json.loads(raw).get("node") == self._node:
                    await self._redis.hdel(self._key(event.room), event.identity)

    async def locate(self, room: str, identity: str) -> str | None:
        """The connection id (Socket.IO sid) of `identity` in `room`, on whichever node."""
        raw = await self._redis.hget(self._key(room), identity)
        return json.loads(raw).get("sid") if raw is not None else None

    async def elsewhere(self, room: str) -> list[tuple[str, str]]:
        """(identity, role) of each participant of `room` connected to another node."""
        entries = await self._redis.hgetall(self._key(room))
        people = [json.loads(raw) for raw in entries.values()]
        return [(p["identity"], p["role"]) for p in people if p.get("node") != self._node]

    async def participants(self, room: str) -> list[dict[str, Any]]:
        entries = await self._redis.hgetall(self._key(room))
        people = [json.loads(raw) for raw in entries.values()]
        for person in people:
            person.pop("node", None)
            person.pop("sid", None)
        return sorted(people, key=lambda p: p["joined_at"])
