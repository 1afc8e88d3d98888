"""Which node holds a room: the first lookup places it on the least-loaded live node, and it
stays there while that node lives. A dead node's rooms are placed again on the next lookup.

Placing is one Redis script: it reads each candidate's placed rooms, picks the least
loaded, records the owner and counts the room on it in one step. Reading a heartbeat's room
count instead placed 20 back-to-back rooms 20/0 on two nodes (the count lags the burst).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from redis.asyncio import Redis

from server.cluster.keys import Keys
from server.cluster.nodes import NodeLoad, NodeRegistry
from server.errors import PairwiseError

log = logging.getLogger("pairwise.cluster")

# KEYS[1] the room's owner, KEYS[2] the settling key; ARGV: room, node prefix, placed
# prefix, then (name, media load) for each candidate. → {owner, moved}, {'', SETTLING}
# while the directory settles, or false when no candidate is alive.
PLACE = """
local room, nodes, placed = ARGV[1], ARGV[2], ARGV[3]
local owner = redis.call('GET', KEYS[1])
if owner and redis.call('EXISTS', nodes .. owner) == 1 then
  redis.call('SADD', placed .. owner, room)
  return {owner, 0}
end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'', -1} end
local best, best_score
for i = 4, #ARGV, 2 do
  local name = ARGV[i]
  if redis.call('EXISTS', nodes .. name) == 1 then
    local score = redis.call('SCARD', placed .. name) + tonumber(ARGV[i + 1])
    if best == nil or score < best_score or (score == best_score and name < best) then
      best, best_score = name, score
    end
  end
end
if best == nil then return false end
redis.call('SET', KEYS[1], best)
redis.call('SADD', placed .. best, room)
if owner then redis.call('SREM', placed .. owner, room) end
return {best, owner and 1 or 0}
"""

# Re-announce the rooms a node holds (after Redis lost them, or any gap). KEYS: the rooms'
# owner keys; ARGV: node, node prefix, placed prefix, then the rooms. A room that another
# live node holds stays there. → the rooms this node no longer holds.
CLAIM = """
local me, nodes, placed = ARGV[1], ARGV[2], ARGV[3]
local lost = {}
for i, key in ipairs(KEYS) do
  local room = ARGV[i + 3]
  local owner = redis.call('GET', key)
  if owner == false or owner == me or redis.call('EXISTS', nodes .. owner) == 0 then
    redis.call('SET', key, me)
    redis.call('SADD', placed .. me, room)
    if owner and owner ~= me then redis.call('SREM', placed .. owner, room) end
  else
    table.insert(lost, room)
  end
end
return lost
"""

# KEYS[1] the room's owner; ARGV: room, node, placed prefix.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[2] then redis.call('DEL', KEYS[1]) end
redis.call('SREM', ARGV[3] .. ARGV[2], ARGV[1])
"""


SETTLING = -1
SETTLE_POLL_S = 0.1  # how often a lookup looks again while the directory settles
SETTLE_MAX_S = 60.0  # the settling key expires after one node TTL; this only bounds a bug


class NoLiveNode(PairwiseError):
    code = "no_live_node"
    status = 503


@dataclass(frozen=True)
class Placement:
    room: str
    node: str
    url: str
    moved: bool  # placed again because its node had died


class RoomDirectory:
    def __init__(self, redis: Redis, keys: Keys, nodes: NodeRegistry):
        self._redis = redis
        self._keys = keys
        self._nodes = nodes
        self._place = redis.register_script(PLACE)
        self._claim = redis.register_script(CLAIM)
        self._release = redis.register_script(RELEASE)

    async def node_for(self, room: str) -> Placement:
        """The room's live holder, or the least-loaded live node it is placed on now.

        After Redis lost its state the directory settles for one node TTL (`Keys.settling`):
        a room without a live holder then waits for its node to announce it again, and is
        placed anew only when the settling is over (its node did not come back)."""
        retries = 1  # a node that started since `live()` read the heartbeats: once more
        waiting_since: float | None = None
        while True:
            live = {n.name: n for n in await self._nodes.live()}
            if not live:
                break
            args: list[str | float] = [room, self._keys.node_prefix, self._keys.placed_prefix]
            for candidate in live.values():
                args += [candidate.name, candidate.media_load]
            keys = [self._keys.room_node(room), self._keys.settling]
            placed = await self._place(keys=keys, args=args)
            if not placed:
                break
            name, outcome = _text(placed[0]), int(placed[1])
            if outcome == SETTLING:
                now = time.monotonic()
                if waiting_since is None:
                    waiting_since = now
                    log.info(
                        "placement waits for the room directory to settle", extra={"room": room}
                    )
                if now - waiting_since > SETTLE_MAX_S:
                    break
                await asyncio.sleep(SETTLE_POLL_S)
                continue
            node: NodeLoad | None = live.get(name)
            if node is not None:
                return Placement(room, node.name, node.url, moved=bool(outcome))
            if not retries:
                break
            retries -= 1
        raise NoLiveNode("no node of this deployment is alive")

    async def claim(self, node: str, rooms: list[str]) -> list[str]:
        """Record `node` as the holder of `rooms` unless another live node holds one; the
        rooms it does not hold (any more) are returned."""
        if not rooms:
            return []
        lost = await self._claim(
            keys=[self._keys.room_node(room) for room in rooms],
            args=[node, self._keys.node_prefix, self._keys.placed_prefix, *rooms],
        )
        return [_text(room) for room in lost]

    async def release(self, room: str, node: str) -> None:
        """Forget the room's placement if `node` still holds it (the room closed there)."""
        await self._release(
            keys=[self._keys.room_node(room)], args=[room, node, self._keys.placed_prefix]
        )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
