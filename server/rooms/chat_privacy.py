"""Who outside a pair may read its chat: the program setting `operators_read_chat`, and the
audit log of every read by the operator's side.

Chat is the members' conversation. The operator's side reads it only while the setting is
on (off unless an operator turns it on), and each such read, granted or refused, is written
to `transcript_reads`. The operator's side is the admin key, and any join token an
operator could issue to themselves: an observer's or operator's token, or, in a room that
belongs to a pair, a token whose identity is not one of the pair's members. The session log's REST API and the
room's Socket.IO events both ask this one place.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from server.pairs.queries import membership, pair_of_room
from server.store import Database
from server.store.schema import sessionlog_settings, transcript_reads

OPERATORS_READ_CHAT = "operators_read_chat"
# Names the live chat channel of the operator's side; a new one at each switch-off, so a
# connection that joined before never receives live chat again (it joins again to).
OPERATORS_READ_CHAT_EPOCH = "operators_read_chat_epoch"
# Join-token roles on the operator's side of the programme (members are mentor and mentee).
OPERATOR_SIDE_ROLES = frozenset({"observer", "operator"})


@dataclass(frozen=True)
class TranscriptRead:
    id: int
    ts: float
    actor: str
    pair_id: str | None
    session_id: int | None
    purpose: str
    granted: bool
    messages: int


class ChatPrivacy:
    def __init__(self, database: Database):
        self._db = database

    async def operators_read_chat(self) -> bool:
        return await self.live_epoch() is not None

    async def live_epoch(self) -> str | None:
        """The epoch of the operator's side's live chat channels, or None while the setting
        is off (see `signaling.broadcast.operator_chat_channel`)."""
        keys = (OPERATORS_READ_CHAT, OPERATORS_READ_CHAT_EPOCH)
        async with self._db.connect() as conn:
            rows = await conn.execute(
                select(sessionlog_settings.c.key, sessionlog_settings.c.value).where(
                    sessionlog_settings.c.key.in_(keys)
                )
            )
            values = {key: value for key, value in rows}
        if values.get(OPERATORS_READ_CHAT) != "true":
            return None
        return values.get(OPERATORS_READ_CHAT_EPOCH, "0")

    async def set_operators_read_chat(self, allowed: bool) -> None:
        async with self._db.begin() as conn:
            await self._put(conn, OPERATORS_READ_CHAT, "true" if allowed else "false")
            if not allowed:
                await self._put(conn, OPERATORS_READ_CHAT_EPOCH, uuid.uuid4().hex)

    @staticmethod
    async def _put(conn: AsyncConnection, key: str, value: str) -> None:
        where = sessionlog_settings.c.key == key
        changed = await conn.execute(update(sessionlog_settings).where(where).values(value=value))
        if changed.rowcount == 0:
            try:
                async with conn.begin_nested():
                    await conn.execute(insert(sessionlog_settings).values(key=key, value=value))
            except IntegrityError:  # set at the same moment elsewhere: write ours
                await conn.execute(update(sessionlog_settings).where(where).values(value=value))

    async def operator_side(self, room: str, identity: str, role: str) -> bool:
        """Whether a join token for `room` reads its chat from the operator's side."""
        if role in OPERATOR_SIDE_ROLES:
            return True
        async with self._db.connect() as conn:
            pair_id = await conn.scalar(pair_of_room(room))
            if pair_id is None:
                return False  # a room of no pair: whoever was invited to it
            member = await conn.scalar(membership(pair_id, identity))
        return member is None

    async def audit(
        self,
        actor: str,
        *,
        purpose: str,
        granted: bool,
        messages: int,
        pair_id: str | None = None,
        session_id: int | None = None,
        room: str | None = None,
    ) -> None:
        """Log a read of chat by the operator's side (`room`: find the pair that owns it)."""
        async with self._db.begin() as conn:
            if pair_id is None and room is not None:
                pair_id = await conn.scalar(pair_of_room(room))
            await conn.execute(
                insert(transcript_reads).values(
                    ts=time.time(),
                    actor=actor[:200],
                    pair_id=pair_id,
                    session_id=session_id,
                    purpose=purpose,
                    granted=granted,
                    messages=messages,
                )
            )

    async def reads(self, limit: int = 200) -> list[TranscriptRead]:
        async with self._db.connect() as conn:
            rows = (
                (
                    await conn.execute(
                        select(transcript_reads).order_by(transcript_reads.c.id.desc()).limit(limit)
                    )
                )
                .mappings()
                .all()
            )
        return [TranscriptRead(**dict(r)) for r in rows]
