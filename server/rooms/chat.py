"""Chat: a message is stored before anyone hears of it, and stored once per client_id."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import Select, and_, bindparam, exists, func, insert, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from server.errors import InvalidInput
from server.rooms.chat_privacy import ChatPrivacy
from server.rooms.events import ChatPosted, EventBus
from server.store import Database
from server.store.schema import accounts, chat_messages, chat_reads, removals


def unread_messages(room: str, identity: str) -> Select[Any]:
    """The room's chat `identity` has not read: messages from anyone else after their read
    marker (the newest message id their room page told the server it showed). The one
    definition of "unread", used by /me's counts and the chat digest (which narrows it
    further to what no digest carried yet).

    Nothing posted after an operator removed `identity` from the room counts: they stay
    one of the pair's members, but the room is no longer theirs to read, and its count
    on /me or its text in a digest told them what the others said after the removal. A
    removal that reactivating their account lifted (the deactivation's own, as
    `signin.service.lifted_by_reactivation` says) does not stop the count."""
    lifted = exists().where(
        accounts.c.identity == identity,
        accounts.c.active.is_(True),
        accounts.c.deactivated_at == removals.c.removed_at,
    )
    removed_before = exists().where(
        removals.c.room == room,
        removals.c.identity == identity,
        removals.c.removed_at < chat_messages.c.ts,
        ~lifted,
    )
    floor = func.coalesce(
        select(func.max(chat_reads.c.message_id))
        .where(chat_reads.c.room == room, chat_reads.c.identity == identity)
        .scalar_subquery(),
        0,
    )
    return (
        select(chat_messages.c.id, chat_messages.c.name, chat_messages.c.text, chat_messages.c.ts)
        .where(chat_messages.c.room == room)
        .where(chat_messages.c.identity != identity)
        .where(chat_messages.c.id > floor)
        .where(~removed_before)
    )


@dataclass(frozen=True)
class ChatMessage:
    id: int
    room: str
    identity: str
    name: str
    text: str
    client_id: str
    ts: float

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "room": self.room,
            "from": {"identity": self.identity, "name": self.name},
            "text": self.text,
            "ts": self.ts,
            "client_id": self.client_id,
        }


@dataclass
class _Pending:
    room: str
    identity: str
    name: str
    text: str
    client_id: str
    ts: float
    done: asyncio.Future[tuple[ChatMessage, bool]]

    COLUMNS: ClassVar[tuple[str, ...]] = ("room", "identity", "name", "text", "client_id", "ts")

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.room, self.identity, self.client_id)


class ChatStore:
    """Chat messages in the database.

    Writes are group-committed: messages that arrive while a write is in flight are
    written together in the next one (one INSERT, of up to MAX_BATCH of them), and each
    sender's `append` returns only after the statement holding its message has committed.
    """

    MAX_BATCH = 64

    def __init__(self, database: Database):
        self._db = database
        self.database = database
        self._queue: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None
        self._inserts: dict[int, tuple[str, Sequence[str]]] = {}

    async def append(
        self, room: str, identity: str, name: str, text: str, client_id: str
    ) -> tuple[ChatMessage, bool]:
        """Store a message; if this sender already sent `client_id` here, return that one.

        The second value says whether the message is new.
        """
        done: asyncio.Future[tuple[ChatMessage, bool]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(room, identity, name, text, client_id, time.time(), done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all())
        return await done

    async def _write_all(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self.MAX_BATCH], self._queue[self.MAX_BATCH :]
            try:
                results = await self._write(batch)
            except Exception as exc:
                for pending in batch:
                    if not pending.done.done():
                        pending.done.set_exception(exc)
                continue
            for pending, result in zip(batch, results, strict=True):
                if not pending.done.done():
                    pending.done.set_result(result)

    async def _write(self, batch: list[_Pending]) -> list[tuple[ChatMessage, bool]]:
        first: dict[tuple[str, str, str], _Pending] = {}
        for p in batch:
            first.setdefault(p.key, p)
        sql, names = self._insert(len(first))
        values = {
            f"{column}_{i}": getattr(p, column)
            for i, p in enumerate(first.values())
            for column in _Pending.COLUMNS
        }
        # One round trip in the common case, committed as it completes: new rows come back
        # with their ids; a client_id sent before (a resend, or a race with another node)
        # comes back as nothing and is looked up.
        returned = await self._db.write_returning(sql, [values[name] for name in names])
        stored: dict[tuple[str, str, str], ChatMessage] = {}
        for message_id, room, identity, client_id in returned:
            p = first[(room, identity, client_id)]
            stored[p.key] = ChatMessage(
                int(message_id), p.room, p.identity, p.name, p.text, p.client_id, p.ts
            )
        new = set(stored)
        if len(new) < len(first):
            columns = (chat_messages.c.room, chat_messages.c.identity, chat_messages.c.client_id)
            query = select(chat_messages).where(tuple_(*columns).in_(set(first) - new))
            async with self._db.connect() as conn:
                for row in (await conn.execute(query)).mappings():
                    message = _message(row)
                    stored[(message.room, message.identity, message.client_id)] = message
        return [(stored[p.key], p.key in new and first[p.key] is p) for p in batch]

    def _insert(self, rows: int) -> tuple[str, Sequence[str]]:
        """The INSERT of `rows` messages for this database, and the names of its parameters
        in order; compiled once for each number of rows (up to MAX_BATCH)."""
        found = self._inserts.get(rows)
        if found is None:
            dialect_insert = sqlite_insert if self._db.is_sqlite else postgresql_insert
            statement = (
                dialect_insert(chat_messages)
                .values([{c: bindparam(f"{c}_{i}") for c in _Pending.COLUMNS} for i in range(rows)])
                .on_conflict_do_nothing(index_elements=["room", "identity", "client_id"])
                .returning(
                    chat_messages.c.id,
                    chat_messages.c.room,
                    chat_messages.c.identity,
                    chat_messages.c.client_id,
                )
            )
            compiled = statement.compile(dialect=self._db.engine.dialect)
            found = self._inserts[rows] = compiled.string, compiled.positiontup or []
        return found

    async def history(self, room: str, limit: int, before: int | None = None) -> list[ChatMessage]:
        """The latest `limit` messages of the room (older than `before`), oldest first."""
        query = select(chat_messages).where(chat_messages.c.room == room)
        if before is not None:
            query = query.where(chat_messages.c.id < before)
        query = query.order_by(chat_messages.c.id.desc()).limit(limit)
        async with self._db.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_message(row) for row in reversed(rows)]

    async def count(self, room: str) -> int:
        async with self._db.connect() as conn:
            return int(
                await conn.scalar(
                    select(func.count())
                    .select_from(chat_messages)
                    .where(chat_messages.c.room == room)
                )
                or 0
            )

    async def unread(self, rooms: Sequence[str], identity: str) -> dict[str, int]:
        """How many messages `identity` has not read in each of `rooms` (see
        `unread_messages`); one query per room, as /me shows a person's few pairs."""
        counts = {}
        async with self._db.connect() as conn:
            for room in rooms:
                unread = unread_messages(room, identity).subquery()
                counts[room] = int(await conn.scalar(select(func.count()).select_from(unread)) or 0)
        return counts

    async def mark_read(self, room: str, identity: str, message_id: int) -> int:
        """Move the read marker forward (never back); returns the marker now stored, which
        is higher than `message_id` when another call stored a later one first."""
        mine = and_(chat_reads.c.room == room, chat_reads.c.identity == identity)
        async with self._db.begin() as conn:
            current = await conn.scalar(select(chat_reads.c.message_id).where(mine))
            if current is None:
                try:
                    async with conn.begin_nested():
                        await conn.execute(
                            insert(chat_reads).values(
                                room=room, identity=identity, message_id=message_id
                            )
                        )
                    return message_id
                except IntegrityError:
                    pass  # another call stored a marker meanwhile: move that one forward
            elif message_id <= current:
                return int(current)
            await conn.execute(
                update(chat_reads)
                .where(and_(mine, chat_reads.c.message_id < message_id))
                .values(message_id=message_id)
            )
            stored = await conn.scalar(select(chat_reads.c.message_id).where(mine))
            return 0 if stored is None else int(stored)  # None: erased meanwhile

    async def read_markers(self, room: str) -> dict[str, int]:
        async with self._db.connect() as conn:
            rows = await conn.execute(
                select(chat_reads.c.identity, chat_reads.c.message_id).where(
                    chat_reads.c.room == room
                )
            )
            return {identity: int(mid) for identity, mid in rows}


def _message(row: Any) -> ChatMessage:
    return ChatMessage(
        row["id"],
        row["room"],
        row["identity"],
        row["name"],
        row["text"],
        row["client_id"],
        row["ts"],
    )


class ChatService:
    def __init__(self, store: ChatStore, bus: EventBus, max_chars: int):
        self.store = store
        self.privacy = ChatPrivacy(store.database)
        self._bus = bus
        self._max_chars = max_chars

    async def post(
        self, room: str, identity: str, name: str, text: str, client_id: str
    ) -> ChatMessage:
        text = text.strip()
        if not text:
            raise InvalidInput("a chat message needs some text")
        if "\x00" in text or "\x00" in client_id:
            raise InvalidInput("a chat message contains a NUL character (U+0000)")
        # A name comes from a signed token; one issued before NULs were refused still chats.
        name = name.replace("\x00", "\ufffd")
        if len(text) > self._max_chars:
            raise InvalidInput(
                f"a chat message has at most {self._max_chars} characters", code="too_long"
            )
        message, new = await self.store.append(room, identity, name, text, client_id)
        if new:
            # Returning only once the message has gone out paces a flooding sender to
            # what the room can receive (the bus's paced subscribers: the fan-out).
            await self._bus.publish(
                ChatPosted(
                    room,
                    id=message.id,
                    identity=identity,
                    name=name,
                    text=message.text,
                    client_id=client_id,
                    posted_at=message.ts,
                )
            )
        return message
