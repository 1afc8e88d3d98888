"""Which node holds a room: the first lookup places it on the least-loaded live node, and it
stays there while that node lives. A dead node's rooms are placed again on the next lookup."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import WatchError

from server.cluster.nodes import NodeRegistry
from server.errors import PairwiseError


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
    def __init__(self, redis: Redis, cluster: str, nodes: NodeRegistry):
        self._redis = redis
        self._prefix = f"{cluster}:roomnode:"
        self._nodes = nodes

    async def node_for(self, room: str) -> Placement:
        live = {n.name: n for n in await self._nodes.live()}
        if not live:
            raise NoLiveNode("no node of this deployment is alive")
        key = self._prefix + room
        owner = await self._redis.get(key)
        owner_name = owner.decode() if isinstance(owner, bytes) else owner
        if owner_name in live:
            node = live[owner_name]
            return Placement(room, node.name, node.url, moved=False)
        choice = min(live.values(), key=lambda n: (n.score, n.name))
        # Compare-and-set: two nodes placing the same room at once agree on one owner.
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    current = await pipe.get(key)
                    current_name = current.decode() if isinstance(current, bytes) else current
                    if current_name in live and current_name != owner_name:
                        node = live[current_name]
                        return Placement(room, node.name, node.url, moved=False)
                    pipe.multi()
                    pipe.set(key, choice.name)
                    await pipe.execute()
                    break
                except WatchError:  # someone else placed it meanwhile: look again
                    continue
        return Placement(room, choice.name, choice.url, moved=owner_name is not None)

    async def release(self, room: str, node: str) -> None:
        """Forget the room's placement if `node` still holds it (the room closed there)."""
        key = self._prefix + room
        owner = await self._redis.get(key)
        if owner is not None and (owner.decode() if isinstance(owner, bytes) else owner) == node:
            await self._redis.delete(key)
