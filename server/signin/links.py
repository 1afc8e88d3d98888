"""One-time sign-in links: single use, short-lived, stored only as a SHA-256 hash.

A link opens nothing by itself: the page it leads to asks the person to confirm, and only
that confirmation (`consume`) uses it up and starts a session (see service.py).
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import insert, select, update

from server.errors import Unauthorized
from server.store import Database
from server.store.schema import signin_links


def new_secret() -> str:
    """256 random bits, URL-safe: a link or a session cookie."""
    return secrets.token_urlsafe(32)


def hashed(secret: str) -> str:
    """What the database keeps of a link or a session: a copy of it opens nothing."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


class LinkRefused(Unauthorized):
    """A link that is unknown, used already, or expired: one answer for all three."""

    def __init__(self) -> None:
        super().__init__(
            "this sign-in link is used up or has expired: ask for a new one",
            code="link_invalid",
        )


class LinkStore:
    def __init__(self, database: Database, lifetime_seconds: float):
        self._db = database
        self.lifetime_seconds = lifetime_seconds

    async def issue(self, account_id: int, now: float) -> str:
        """A new link for the account; the secret is returned once and never stored."""
        secret = new_secret()
        async with self._db.begin() as conn:
            await conn.execute(
                insert(signin_links).values(
                    token_hash=hashed(secret),
                    account_id=account_id,
                    created_at=now,
                    expires_at=now + self.lifetime_seconds,
                    used_at=None,
                )
            )
        return secret

    async def peek(self, secret: str, now: float) -> int:
        """The account a usable link is for, without using it up; LinkRefused otherwise."""
        async with self._db.connect() as conn:
            row = (
                (
                    await conn.execute(
                        select(signin_links).where(signin_links.c.token_hash == hashed(secret))
                    )
                )
                .mappings()
                .first()
            )
        if row is None or row["used_at"] is not None or row["expires_at"] <= now:
            raise LinkRefused()
        return int(row["account_id"])

    async def consume(self, secret: str, now: float) -> int:
        """Use the link up (once: of two confirmations at the same time one wins) and return
        its account; LinkRefused if it was unknown, used or expired."""
        async with self._db.begin() as conn:
            result = await conn.execute(
                update(signin_links)
                .where(
                    signin_links.c.token_hash == hashed(secret),
                    signin_links.c.used_at.is_(None),
                    signin_links.c.expires_at > now,
                )
                .values(used_at=now)
                .returning(signin_links.c.account_id)
            )
            account_id = result.scalar()
        if account_id is None:
            raise LinkRefused()
        return int(account_id)
