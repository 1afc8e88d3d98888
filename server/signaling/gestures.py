"""Reactions and raised hands: small signals from one participant, shown to everyone.

`reaction {reaction}` is broadcast as `reaction {identity, name, reaction}`; `hand
{raised}` as `hand {identity, name, raised}`. Raised hands are room state (`hands` answers
with them: whoever joins later sees them, and so does the raiser's own page after a
reconnect), lowered when the person leaves: at once when they leave on purpose or are
removed, at the end of the room's grace period when their connection dropped and they did
not come back. A hand used to go down on every disconnect, so a three-second network drop
lowered it for everyone, the raiser's own button included.

Each person may send a few of each a second: a reaction storm costs everyone's screen, so
past `GESTURE_BURST` they get `rate_limited` and nothing is broadcast. Reactions and hands
have an allowance each: a few hearts must not stop a hand from going up.
"""

from __future__ import annotations

import asyncio
import logging

from server.errors import RateLimited
from server.signaling.ratelimit import TokenBucket
from server.signaling.schemas import Empty, HandIn, ReactionIn
from server.signaling.server import Ack, Connection, Signaling

log = logging.getLogger("pairwise.signaling")

# A person clicking as fast as they can: a handful, then one a second (for each kind).
GESTURE_RATE_PER_SECOND = 1.0
GESTURE_BURST = 5
REFUSED = {
    "reaction": "too many reactions; wait a moment",
    "hand": "too many changes at once; wait a moment",
}


class GestureHandlers:
    def __init__(self, signaling: Signaling):
        self.signaling = signaling
        self.registry = signaling.registry
        self._buckets: dict[tuple[str, str, str], TokenBucket] = {}  # (room, identity, kind)
        self._hands: dict[str, dict[str, float]] = {}  # room → identity → raised at (seq)
        self._seq = 0.0
        # (room, identity) → the wait, after a dropped connection, before their hand goes down.
        self._held: dict[tuple[str, str], asyncio.Task[None]] = {}
        on = signaling.on
        on("reaction", ReactionIn)(self.reaction)
        on("hand", HandIn)(self.hand)
        on("hands", Empty)(self.hands)
        signaling.on_join(self.joined)
        signaling.on_disconnect(self.disconnected)

    def _spend(self, conn: Connection, kind: str) -> None:
        key = (conn.room, conn.identity, kind)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(GESTURE_RATE_PER_SECOND, GESTURE_BURST)
        if not bucket.take():
            raise RateLimited(REFUSED[kind])

    def _forget_allowances(self, room: str, identity: str) -> None:
        for kind in REFUSED:
            self._buckets.pop((room, identity, kind), None)

    async def reaction(self, conn: Connection, payload: ReactionIn) -> Ack:
        self._spend(conn, "reaction")
        await self.signaling.emit_room(
            conn.room,
            "reaction",
            {"identity": conn.identity, "name": conn.token.name, "reaction": payload.reaction},
        )
        return {"ok": True}

    async def hand(self, conn: Connection, payload: HandIn) -> Ack:
        self._spend(conn, "hand")
        hands = self._hands.setdefault(conn.room, {})
        if payload.raised:
            self._seq += 1
            hands.setdefault(conn.identity, self._seq)
        else:
            hands.pop(conn.identity, None)
        await self._announce(conn.room, conn.identity, conn.token.name, payload.raised)
        return {"raised": payload.raised}

    async def hands(self, conn: Connection, payload: Empty) -> Ack:
        """Raised hands in the order they went up."""
        hands = self._hands.get(conn.room, {})
        return {"hands": sorted(hands, key=hands.__getitem__)}

    async def joined(self, conn: Connection) -> None:
        held = self._held.pop((conn.room, conn.identity), None)
        if held is not None:
            held.cancel()  # back within the grace period: the hand stays up

    async def disconnected(self, conn: Connection) -> None:
        key = (conn.room, conn.identity)
        if self.registry.participant(conn.room, conn.identity) is not None:
            return  # still in the room on another connection (this one was replaced)
        if key in self._held:
            return  # away since an earlier drop; this connection never joined
        if conn.identity not in self._hands.get(conn.room, {}):
            self._forget_allowances(conn.room, conn.identity)
            return  # no hand up: nothing to hold or lower
        if conn.joined and not conn.said_goodbye:
            # A drop: the room holds their place for its grace period, and so do we.
            grace = self.signaling.settings.room_grace_seconds
            wait = asyncio.create_task(self._lower_later(conn, grace))
            self._held[key] = wait
            wait.add_done_callback(lambda done: self._forget_wait(key, done))
            return
        await self._lower(conn)

    async def _lower_later(self, conn: Connection, grace: float) -> None:
        await asyncio.sleep(grace)
        try:
            await self._lower(conn)
        except Exception:
            log.exception("a held hand was not lowered")

    def _forget_wait(self, key: tuple[str, str], done: asyncio.Task[None]) -> None:
        if self._held.get(key) is done:
            del self._held[key]

    async def _lower(self, conn: Connection) -> None:
        hands = self._hands.get(conn.room)
        if hands and hands.pop(conn.identity, None) is not None:
            await self._announce(conn.room, conn.identity, conn.token.name, False)
        if hands == {}:
            self._hands.pop(conn.room, None)
        self._forget_allowances(conn.room, conn.identity)

    async def _announce(self, room: str, identity: str, name: str, raised: bool) -> None:
        await self.signaling.emit_room(
            room, "hand", {"identity": identity, "name": name, "raised": raised}
        )
