"""Participants an operator removed from a room.

A removal refuses every token issued to that person for that room up to the moment of
removal (JWT `iat` has one-second precision, so a token issued in the same second is
refused too); a token issued afterwards lets them back in.
"""

from __future__ import annotations

import math
import time

from sqlalchemy import and_, delete, insert, select

from server.auth import JoinToken
from server.store import Database
from server.store.schema import removals


class RemovalStore:
    def __init__(self, database: Database):
        self._db = database

    async def remove(self, room: str, identity: str) -> float:
        now = time.time()
        async with self._db.begin() as conn:
            await conn.execute(
                delete(removals).where(
                    and_(removals.c.room == room, removals.c.identity == identity)
                )
            )
            await conn.execute(
                insert(removals).values(room=room, identity=identity, removed_at=now)
            )
        return now

    async def refuses(self, token: JoinToken) -> bool:
        async with self._db.connect() as conn:
            removed_at = await conn.scalar(
                select(removals.c.removed_at).where(
                    and_(removals.c.room == token.room, removals.c.identity == token.identity)
                )
            )
        return removed_at is not None and token.issued_at <= math.floor(removed_at)
