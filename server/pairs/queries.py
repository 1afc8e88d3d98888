"""Questions about pairs that other queries build on (SQLAlchemy Core selects), so each
is written once: the pair that owns a room, the pairs a person is a member of, whether a
person is a member of a pair."""

from __future__ import annotations

from sqlalchemy import Select, and_, select

from server.store.schema import pair_members, pairs


def pair_of_room(room: str) -> Select[str]:
    """The id of the pair whose room this is (no row: a room no pair owns)."""
    return select(pairs.c.id).where(pairs.c.room == room)


def pairs_of(identity: str) -> Select[str]:
    """The ids of the pairs `identity` is a member of, whatever their status."""
    return select(pair_members.c.pair_id).where(pair_members.c.identity == identity)


def membership(pair_id: str, identity: str) -> Select[str]:
    """`identity` if it is a member of the pair (no row if not)."""
    return select(pair_members.c.identity).where(
        and_(pair_members.c.pair_id == pair_id, pair_members.c.identity == identity)
    )
