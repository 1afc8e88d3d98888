"""Private calendar feeds: one secret URL per participant, rotated or revoked at will.

Only the secret's SHA-256 is stored, so a database dump opens no feed. A new secret
replaces the old one (the old URL stops at once); revoking deletes it.
"""

from __future__ import annotations

import hashlib
import secrets
import time

from sqlalchemy import delete, insert, select

from server.store import Database
from server.store.schema import calendar_feeds


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class CalendarFeeds:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def rotate(self, identity: str) -> str:
        """A new secret for `identity`'s feed; any earlier one stops working."""
        secret = secrets.token_urlsafe(32)
        async with self._db.begin() as conn:
            await conn.execute(delete(calendar_feeds).where(calendar_feeds.c.identity == identity))
            await conn.execute(
                insert(calendar_feeds).values(
                    identity=identity, secret_hash=_hash(secret), created_at=time.time()
                )
            )
        return secret

    async def revoke(self, identity: str) -> bool:
        async with self._db.begin() as conn:
            result = await conn.execute(
                delete(calendar_feeds).where(calendar_feeds.c.identity == identity)
            )
        return bool(result.rowcount)

    async def identity_of(self, secret: str) -> str | None:
        if not 20 <= len(secret) <= 100:
            return None
        async with self._db.connect() as conn:
            found = await conn.scalar(
                select(calendar_feeds.c.identity).where(
                    calendar_feeds.c.secret_hash == _hash(secret)
                )
            )
        return str(found) if found is not None else None
