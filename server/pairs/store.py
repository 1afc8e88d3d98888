"""Where pairs are kept: creating them, reading them, ending them (which closes their room)."""

from __future__ import annotations

import builtins
import logging
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy import delete, insert, select, update

from server.errors import Conflict, Forbidden, InvalidInput, NotFound
from server.pairs.model import Member, Pair, PairStatus
from server.pairs.queries import pair_of_room, pairs_of
from server.store import Database
from server.store.schema import pair_members, pairs, phone_participant_pins, phone_room_pins

log = logging.getLogger("pairwise.pairs")

PairEnded = Callable[[Pair], Awaitable[None]]
# What runs when a pair of a database ends (active -> unpublished), whichever PairStore
# ended it: meetings cancel the pair's meetings to come.
_ended_hooks: weakref.WeakKeyDictionary[Database, builtins.list[PairEnded]] = (
    weakref.WeakKeyDictionary()
)


def on_pair_ended(database: Database, hook: PairEnded) -> None:
    _ended_hooks.setdefault(database, []).append(hook)


class PairStore:
    def __init__(self, database: Database):
        self._db = database

    async def create(
        self,
        members: Sequence[Member],
        *,
        room: str | None = None,
        title: str | None = None,
        source: str = "operator",
    ) -> Pair:
        if len(members) < 2:
            raise InvalidInput("a pair needs at least two members")
        if len({m.identity for m in members}) != len(members):
            raise InvalidInput("a pair's members must be different people")
        pair_id = uuid.uuid4().hex
        room = room or f"pair-{pair_id[:12]}"
        title = title or " & ".join(m.name for m in members)
        async with self._db.begin() as conn:
            taken = await conn.scalar(pair_of_room(room))
            if taken is not None:
                raise Conflict(f"room {room!r} already belongs to a pair")
            await conn.execute(
                insert(pairs).values(
                    id=pair_id,
                    room=room,
                    title=title,
                    status=PairStatus.ACTIVE,
                    source=source,
                    flagged=False,
                    flag_reason=None,
                    created_at=time.time(),
                )
            )
            await conn.execute(
                insert(pair_members),
                [
                    {"pair_id": pair_id, "identity": m.identity, "name": m.name, "role": m.role}
                    for m in members
                ],
            )
        return await self.get(pair_id)

    async def get(self, pair_id: str) -> Pair:
        found = await self._load(pairs.c.id == pair_id)
        if not found:
            raise NotFound(f"no pair {pair_id!r}")
        return found[0]

    async def by_room(self, room: str) -> Pair | None:
        found = await self._load(pairs.c.room == room)
        return found[0] if found else None

    async def require_open_room(self, room: str) -> None:
        """A room whose pair was ended or rematched (status `unpublished`) is closed: no new
        joins, phone callers, meetings or chat; its log is kept. Rooms no pair owns (ad-hoc
        rooms an operator made) stay open. Every way into a room asks here (issue 15)."""
        # One indexed read (rooms are unique): it runs on every chat message.
        async with self._db.connect() as conn:
            status = await conn.scalar(select(pairs.c.status).where(pairs.c.room == room))
        if status is not None and status != PairStatus.ACTIVE:
            raise Forbidden(
                "this pair's mentoring has ended, so its room is closed; its log stays readable",
                code="room_closed",
            )

    async def title_of_room(self, room: str) -> str | None:
        """The title of the pair whose room this is (None: a room no pair owns), for the
        room's header; one indexed read, on each join."""
        async with self._db.connect() as conn:
            return await conn.scalar(select(pairs.c.title).where(pairs.c.room == room))

    async def list(self, status: PairStatus | None = None) -> builtins.list[Pair]:
        return await self._load(pairs.c.status == status if status else None)

    async def of_identity(self, identity: str) -> builtins.list[Pair]:
        return await self._load(pairs.c.id.in_(pairs_of(identity)))

    async def set_status(self, pair_id: str, status: PairStatus) -> Pair:
        status = PairStatus(status)  # a bare string that names no status raises here
        before = await self.get(pair_id)
        await self._update(pair_id, status=status)
        pair = await self.get(pair_id)
        if before.status == PairStatus.ACTIVE and status == PairStatus.UNPUBLISHED:
            await self._drop_dial_in_pins(pair.room)
            for hook in _ended_hooks.get(self._db, ()):
                try:
                    await hook(pair)
                except Exception:  # the pair has ended either way; the hook logs its failure
                    log.exception("a pair-ended hook failed", extra={"pair": pair_id})
        return pair

    async def _drop_dial_in_pins(self, room: str) -> None:
        """The ended pair's room takes no phone callers: its dial-in PINs (the room's and
        every personal one) stop existing, so a caller who knows one gets "wrong PIN"
        (the gateway also asks `require_open_room`, for a PIN read before this ran)."""
        async with self._db.begin() as conn:
            await conn.execute(delete(phone_room_pins).where(phone_room_pins.c.room == room))
            await conn.execute(
                delete(phone_participant_pins).where(phone_participant_pins.c.room == room)
            )

    async def flag(self, pair_id: str, reason: str) -> Pair:
        await self._update(pair_id, flagged=True, flag_reason=reason)
        return await self.get(pair_id)

    async def _update(self, pair_id: str, **values: object) -> None:
        async with self._db.begin() as conn:
            result = await conn.execute(update(pairs).where(pairs.c.id == pair_id).values(**values))
            if result.rowcount == 0:
                raise NotFound(f"no pair {pair_id!r}")

    async def _load(self, where: object) -> builtins.list[Pair]:
        query = select(pairs).order_by(pairs.c.created_at)
        if where is not None:
            query = query.where(where)  # type: ignore[arg-type]
        async with self._db.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
            ids = [r["id"] for r in rows]
            members: dict[str, builtins.list[Member]] = {i: [] for i in ids}
            if ids:
                for m in (
                    await conn.execute(
                        select(pair_members)
                        .where(pair_members.c.pair_id.in_(ids))
                        .order_by(pair_members.c.role, pair_members.c.identity)
                    )
                ).mappings():
                    members[m["pair_id"]].append(Member(m["identity"], m["name"], m["role"]))
        return [
            Pair(**{**r, "status": PairStatus(r["status"])}, members=tuple(members[r["id"]]))
            for r in rows
        ]
