"""Chat: a message is stored before anyone hears of it, and stored once per client_id."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import and_, insert, select, update
from sqlalchemy.exc import IntegrityError

from server.errors import InvalidInput
from server.rooms.events import ChatPosted, EventBus
from server.store import Database
from server.store.schema import chat_messages, chat_reads


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


class ChatStore:
    def __init__(self, database: Database):
        self._db = database

    async def append(self, room: str, identity: str, name: str, text: str,
                     client_id: str) -> tuple[ChatMessage, bool]:
        """Store a message; if this sender already sent `client_id` here, return that one.

        The second value says whether the message is new.
        """
        existing = await self._find(room, identity, client_id)
        if existing is not None:
            return existing, False
        ts = time.time()
        try:
            async with self._db.begin() as conn:
                result = await conn.execute(
                    insert(chat_messages)
                    .values(room=room, identity=identity, name=name, client_id=client_id,
                            text=text, ts=ts)
                    .returning(chat_messages.c.id)
                )
                message_id = int(result.scalar_one())
        except IntegrityError:
            # The same client_id raced in from a second connection: the first one won.
            raced = await self._find(room, identity, client_id)
            assert raced is not None
            return raced, False
        return ChatMessage(message_id, room, identity, name, text, client_id, ts), True

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
        from sqlalchemy import func

        async with self._db.connect() as conn:
            return int(await conn.scalar(
                select(func.count()).select_from(chat_messages).where(chat_messages.c.room == room)
            ) or 0)

    async def mark_read(self, room: str, identity: str, message_id: int) -> int:
        """Move the read marker forward (never back); returns the marker now stored."""
        async with self._db.begin() as conn:
            current = await conn.scalar(select(chat_reads.c.message_id).where(and_(
                chat_reads.c.room == room, chat_reads.c.identity == identity)))
            if current is None:
                try:
                    async with conn.begin_nested():
                        await conn.execute(insert(chat_reads).values(
                            room=room, identity=identity, message_id=message_id))
                    return message_id
                except IntegrityError:
                    current = 0
            if message_id > current:
                await conn.execute(update(chat_reads).where(and_(
                    chat_reads.c.room == room, chat_reads.c.identity == identity,
                    chat_reads.c.message_id < message_id)).values(message_id=message_id))
                return message_id
            return int(current)

    async def read_markers(self, room: str) -> dict[str, int]:
        async with self._db.connect() as conn:
            rows = await conn.execute(select(chat_reads.c.identity, chat_reads.c.message_id)
                                      .where(chat_reads.c.room == room))
            return {identity: int(mid) for identity, mid in rows}

    async def _find(self, room: str, identity: str, client_id: str) -> ChatMessage | None:
        query = select(chat_messages).where(and_(
            chat_messages.c.room == room,
            chat_messages.c.identity == identity,
            chat_messages.c.client_id == client_id,
        ))
        async with self._db.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return _message(row) if row else None


def _message(row: Any) -> ChatMessage:
    return ChatMessage(row["id"], row["room"], row["identity"], row["name"], row["text"],
                       row["client_id"], row["ts"])


class ChatService:
    def __init__(self, store: ChatStore, bus: EventBus, max_chars: int):
        self.store = store
        self._bus = bus
        self._max_chars = max_chars

    async def post(self, room: str, identity: str, name: str, text: str,
                   client_id: str) -> ChatMessage:
        text = text.strip()
        if not text:
            raise InvalidInput("a chat message needs some text")
        if len(text) > self._max_chars:
            raise InvalidInput(f"a chat message has at most {self._max_chars} characters",
                               code="too_long")
        message, new = await self.store.append(room, identity, name, text, client_id)
        if new:
            fields = asdict(message)
            self._bus.publish(ChatPosted(
                room, id=message.id, identity=identity, name=name, text=message.text,
                client_id=client_id, posted_at=fields["ts"],
            ))
        return message
