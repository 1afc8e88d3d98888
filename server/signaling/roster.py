"""Who is in a room across all nodes: each node mirrors its own participants into Redis.

Socket.IO's Redis manager already carries room events between nodes; this mirror lets a
participant joining on one node see, in the join ack, people connected to another.

Presence belongs to live nodes. Every heartbeat interval a node writes its participants
again (so a Redis restarted empty is refilled) and sweeps the entries of nodes whose
heartbeat has expired: those participants leave every roster, and their rooms hear
`participant_left` with reason `disconnected`. A node killed with `kill -9` left its
participants listed as online for as long as anyone looked before this.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from server.cluster.keys import Keys
from server.rooms.events import (
    EventBus,
    MediaModeChanged,
    ParticipantJoined,
    ParticipantLeft,
    PresenceChanged,
    RoomEvent,
)
from server.rooms.model import Participant
from server.rooms.registry import RoomRegistry

log = logging.getLogger("pairwise.roster")

# ARGV: node, people key, its present key, room, identity, entry. Someone another node
# holds now (they reconnected there) is that node's to write.
WRITE = """
local raw = redis.call('HGET', ARGV[2], ARGV[5])
if raw and cjson.decode(raw).node ~= ARGV[1] then return 0 end
redis.call('HSET', ARGV[2], ARGV[5], ARGV[6])
redis.call('SADD', ARGV[3], ARGV[4])
return 1
"""

# ARGV: node, people key, identity.
FORGET = """
local raw = redis.call('HGET', ARGV[2], ARGV[3])
if raw and cjson.decode(raw).node == ARGV[1] then redis.call('HDEL', ARGV[2], ARGV[3]) end
"""

# ARGV: node, its present key, people prefix, people suffix, {room: {identity: entry}}.
# This node's entries become exactly `mine`.
REFRESH = """
local me, present, prefix, suffix = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local mine = cjson.decode(ARGV[5])
for _, room in ipairs(redis.call('SMEMBERS', present)) do
  local key = prefix .. room .. suffix
  local entries = redis.call('HGETALL', key)
  for i = 1, #entries, 2 do
    local id = entries[i]
    if cjson.decode(entries[i + 1]).node == me and (mine[room] == nil or mine[room][id] == nil) then
      redis.call('HDEL', key, id)
    end
  end
  if mine[room] == nil then redis.call('SREM', present, room) end
end
for room, people in pairs(mine) do
  local key = prefix .. room .. suffix
  for id, entry in pairs(people) do
    local raw = redis.call('HGET', key, id)
    if not raw or cjson.decode(raw).node == me then redis.call('HSET', key, id, entry) end
  end
  redis.call('SADD', present, room)
end
"""

# ARGV: dead node, its heartbeat key, its present key, people prefix, people suffix.
# Nothing if the node is alive after all. → {room, identity, room, identity, ...} removed.
SWEEP = """
local dead, heartbeat, present, prefix, suffix = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if redis.call('EXISTS', heartbeat) == 1 then return {} end
local gone = {}
for _, room in ipairs(redis.call('SMEMBERS', present)) do
  local key = prefix .. room .. suffix
  local entries = redis.call('HGETALL', key)
  for i = 1, #entries, 2 do
    if cjson.decode(entries[i + 1]).node == dead then
      redis.call('HDEL', key, entries[i])
      table.insert(gone, room)
      table.insert(gone, entries[i])
    end
  end
end
redis.call('DEL', present)
return gone
"""


class RedisRoster:
    KINDS = (ParticipantJoined, PresenceChanged, MediaModeChanged, ParticipantLeft)

    def __init__(
        self,
        redis: Redis,
        cluster: str,
        node: str,
        registry: RoomRegistry,
        bus: EventBus,
        interval: float,
    ):
        self._redis = redis
        self._keys = Keys(cluster)
        self._node = node
        self._registry = registry
        self._bus = bus
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self._write = redis.register_script(WRITE)
        self._forget = redis.register_script(FORGET)
        self._refresh = redis.register_script(REFRESH)
        self._sweep = redis.register_script(SWEEP)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def __call__(self, event: RoomEvent) -> None:
        """Bus subscriber: keep this node's part of each room's roster current."""
        match event:
            case ParticipantJoined() | PresenceChanged() | MediaModeChanged():
                entry = self._entry(event.room, event.identity)
                if entry is not None:
                    await self._write(
                        args=[
                            self._node,
                            self._keys.people(event.room),
                            self._keys.present(self._node),
                            event.room,
                            event.identity,
                            entry,
                        ]
                    )
            case ParticipantLeft():
                await self._forget(args=[self._node, self._keys.people(event.room), event.identity])

    def _entry(self, room: str, identity: str) -> str | None:
        participant = self._registry.participant(room, identity)
        return self._entry_of(participant) if participant is not None else None

    def _entry_of(self, participant: Participant) -> str:
        return json.dumps(
            {**participant.public(), "node": self._node, "sid": participant.connection}
        )

    async def tick(self) -> None:
        """Write this node's participants again, then sweep those of dead nodes."""
        mine = {
            room.name: {identity: self._entry_of(p) for identity, p in room.participants.items()}
            for room in self._registry.rooms()
            if room.participants
        }
        await self._refresh(
            args=[
                self._node,
                self._keys.present(self._node),
                self._keys.people_prefix,
                self._keys.people_suffix,
                json.dumps(mine) if mine else "{}",
            ]
        )
        prefix = self._keys.present_prefix
        async for key in self._redis.scan_iter(match=prefix + "*", count=100):
            node = (key.decode() if isinstance(key, bytes) else key).removeprefix(prefix)
            if node != self._node:
                await self._sweep_node(node)

    async def _sweep_node(self, node: str) -> None:
        gone = await self._sweep(
            args=[
                node,
                self._keys.node(node),
                self._keys.present(node),
                self._keys.people_prefix,
                self._keys.people_suffix,
            ]
        )
        for i in range(0, len(gone), 2):
            room, identity = gone[i].decode(), gone[i + 1].decode()
            if self._registry.participant(room, identity) is None:  # not back here already
                log.info("participant of a dead node left", extra={"room": room, "node": node})
                self._bus.publish(ParticipantLeft(room, identity=identity, reason="disconnected"))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.tick()
            except (RedisError, OSError) as exc:
                log.warning("roster not refreshed", extra={"error": str(exc)})

    async def locate(self, room: str, identity: str) -> str | None:
        """The connection id (Socket.IO sid) of `identity` in `room`, on whichever node."""
        raw = await self._redis.hget(self._keys.people(room), identity)
        return json.loads(raw).get("sid") if raw is not None else None

    async def elsewhere(self, room: str) -> list[tuple[str, str]]:
        """(identity, role) of each participant of `room` connected to another node."""
        entries = await self._redis.hgetall(self._keys.people(room))
        people = [json.loads(raw) for raw in entries.values()]
        return [(p["identity"], p["role"]) for p in people if p.get("node") != self._node]

    async def participants(self, room: str) -> list[dict[str, Any]]:
        entries = await self._redis.hgetall(self._keys.people(room))
        people = [json.loads(raw) for raw in entries.values()]
        for person in people:
            person.pop("node", None)
            person.pop("sid", None)
        return sorted(people, key=lambda p: p["joined_at"])
