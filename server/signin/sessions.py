"""Sign-in sessions: a random secret in a cookie, its hash in the database.

A session ends at the first of: its lifetime (`PAIRWISE_SESSION_DAYS`, a programme's
length), being unused for `PAIRWISE_SESSION_IDLE_DAYS`, signing out, or revocation (sign out
everywhere, an admin, or the account's deactivation).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert, select, update

from server.errors import NotFound
from server.signin.links import hashed, new_secret
from server.store import Database
from server.store.schema import signin_sessions

# `last_seen_at` is written at most this often per session, not on every request.
TOUCH_SECONDS = 300.0


@dataclass(frozen=True)
class Session:
    id: int
    account_id: int
    created_at: float
    last_seen_at: float
    expires_at: float
    user_agent: str
    address: str


class SessionStore:
    def __init__(self, database: Database, lifetime_seconds: float, idle_seconds: float):
        self._db = database
        self.lifetime_seconds = lifetime_seconds
        self.idle_seconds = idle_seconds

    async def create(
        self, account_id: int, now: float, user_agent: str = "", address: str = ""
    ) -> tuple[str, Session]:
        """A new session; its secret (the cookie's value) is returned once, never stored."""
        secret = new_secret()
        async with self._db.begin() as conn:
            await conn.execute(
                insert(signin_sessions).values(
                    token_hash=hashed(secret),
                    account_id=account_id,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=now + self.lifetime_seconds,
                    revoked_at=None,
                    user_agent=user_agent[:200],
                    address=address[:64],
                )
            )
        found = await self.verify(secret, now)
        assert found is not None
        return secret, found

    async def verify(self, secret: str, now: float) -> Session | None:
        """The live session whose cookie is `secret`, or None (unknown, ended, revoked)."""
        async with self._db.connect() as conn:
            row = (
                (
                    await conn.execute(
                        select(signin_sessions).where(
                            signin_sessions.c.token_hash == hashed(secret)
                        )
                    )
                )
                .mappings()
                .first()
            )
        if row is None or not _live(row, now, self.idle_seconds):
            return None
        if now - row["last_seen_at"] >= TOUCH_SECONDS:
            async with self._db.begin() as conn:
                await conn.execute(
                    update(signin_sessions)
                    .where(signin_sessions.c.id == row["id"])
                    .values(last_seen_at=now)
                )
        return _session(row)

    async def of_account(self, account_id: int, now: float) -> list[Session]:
        """The account's live sessions, newest first."""
        query = (
            select(signin_sessions)
            .where(signin_sessions.c.account_id == account_id)
            .order_by(signin_sessions.c.id.desc())
        )
        async with self._db.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_session(r) for r in rows if _live(r, now, self.idle_seconds)]

    async def revoke(self, session_id: int, now: float, account_id: int | None = None) -> None:
        """End one session (of `account_id`, when given: nobody ends another's by its id)."""
        where = [signin_sessions.c.id == session_id, signin_sessions.c.revoked_at.is_(None)]
        if account_id is not None:
            where.append(signin_sessions.c.account_id == account_id)
        async with self._db.begin() as conn:
            result = await conn.execute(
                update(signin_sessions).where(*where).values(revoked_at=now)
            )
        if result.rowcount == 0:
            raise NotFound(f"no live session {session_id}")

    async def revoke_all(self, account_id: int, now: float) -> int:
        """End every session of the account; how many were live."""
        async with self._db.begin() as conn:
            result = await conn.execute(
                update(signin_sessions)
                .where(
                    signin_sessions.c.account_id == account_id,
                    signin_sessions.c.revoked_at.is_(None),
                )
                .values(revoked_at=now)
            )
        return int(result.rowcount)


def _live(row: object, now: float, idle_seconds: float) -> bool:
    r = dict(row)  # type: ignore[call-overload]
    return (
        r["revoked_at"] is None and r["expires_at"] > now and now - r["last_seen_at"] < idle_seconds
    )


def _session(row: object) -> Session:
    r = dict(row)  # type: ignore[call-overload]
    return Session(
        id=r["id"],
        account_id=r["account_id"],
        created_at=r["created_at"],
        last_seen_at=r["last_seen_at"],
        expires_at=r["expires_at"],
        user_agent=r["user_agent"],
        address=r["address"],
    )
