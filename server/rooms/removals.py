"""Participants an operator removed from a room.

A removal refuses every token issued to that person for that room up to the moment of
removal (JWT `iat` has one-second precision, so a token issued in the same second is
refused too); a token an operator issues afterwards lets them back in, but their home's
Join (server/signin) mints them none (`removed`).

An erased person (`privacy.erasure`) is removed from each of their rooms too, so the join
tokens they already hold stop working at once instead of at expiry. The erasure has just
replaced their identity everywhere, so that removal is kept under a keyed hash of it
(HMAC-SHA256 with the server's secret key): it matches their old tokens and names nobody.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Callable

from sqlalchemy import and_, delete, func, insert, select

from server.auth import JoinToken
from server.store import Database
from server.store.schema import removals


class RemovalStore:
    def __init__(
        self,
        database: Database,
        secret: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = database
        self._secret = secret
        self.clock = clock  # when a removal happens (a test moves it)

    def _erased_key(self, identity: str) -> str | None:
        if self._secret is None:
            return None
        digest = hmac.new(self._secret.encode(), identity.encode(), hashlib.sha256).hexdigest()
        return f"erased:{digest}"

    async def remove_erased(self, room: str, identity: str) -> float:
        """Refuse every token issued so far to `identity` for `room`, storing only a keyed
        hash of the identity (they were just erased)."""
        key = self._erased_key(identity)
        if key is None:
            raise RuntimeError("erased removals need the server's secret key")
        return await self.remove(room, key)

    async def remove(self, room: str, identity: str, at: float | None = None) -> float:
        """Refuse every token issued to `identity` for `room` up to `at` (now by default:
        deactivation passes the account's `deactivated_at`, which marks its removals)."""
        now = self.clock() if at is None else at
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

    async def removed(self, room: str, identity: str) -> bool:
        """Whether an operator removed `identity` from `room` (at any time): what a person
        mints for themself (their home's Join) must not undo it; an operator's new token
        still may."""
        return await self.removed_at(room, identity) is not None

    async def removed_at(self, room: str, identity: str) -> float | None:
        """When an operator last removed `identity` from `room`, or None."""
        async with self._db.connect() as conn:
            found = await conn.scalar(
                select(removals.c.removed_at).where(
                    and_(removals.c.room == room, removals.c.identity == identity)
                )
            )
        return None if found is None else float(found)

    async def refuses(self, token: JoinToken) -> bool:
        names = [token.identity]
        if (key := self._erased_key(token.identity)) is not None:
            names.append(key)
        async with self._db.connect() as conn:
            removed_at = await conn.scalar(
                select(func.max(removals.c.removed_at)).where(
                    and_(removals.c.room == token.room, removals.c.identity.in_(names))
                )
            )
        return removed_at is not None and token.issued_at <= math.floor(removed_at)
