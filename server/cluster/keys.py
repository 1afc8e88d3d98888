"""Every Redis key the cluster keeps, named in one place.

The Lua scripts build per-node and per-room keys from these prefixes, so they assume one
Redis server (not Redis Cluster, whose scripts may only touch the keys they are given).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    cluster: str

    @property
    def node_prefix(self) -> str:
        """`<prefix><node>`: the node's heartbeat (its load as JSON), expiring with its TTL."""
        return f"{self.cluster}:node:"

    @property
    def placed_prefix(self) -> str:
        """`<prefix><node>`: the set of rooms the directory places on that node."""
        return f"{self.cluster}:placed:"

    @property
    def room_node_prefix(self) -> str:
        """`<prefix><room>`: the name of the node that holds the room."""
        return f"{self.cluster}:roomnode:"

    @property
    def present_prefix(self) -> str:
        """`<prefix><node>`: the rooms in which that node has participants in the roster."""
        return f"{self.cluster}:present:"

    @property
    def people_prefix(self) -> str:
        return f"{self.cluster}:room:"

    people_suffix = ":people"

    @property
    def settling(self) -> str:
        """Present (for one node TTL) after Redis lost the cluster's state: until every live
        node has beaten and announced its rooms again, no room is placed anew."""
        return f"{self.cluster}:settling"

    def node(self, name: str) -> str:
        return self.node_prefix + name

    def placed(self, name: str) -> str:
        return self.placed_prefix + name

    def room_node(self, room: str) -> str:
        return self.room_node_prefix + room

    def present(self, name: str) -> str:
        return self.present_prefix + name

    def people(self, room: str) -> str:
        """A hash: identity → the participant as JSON, with the node that holds them."""
        return self.people_prefix + room + self.people_suffix
