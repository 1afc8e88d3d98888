"""Whom the programme has reached: when each participant was last invited (a sign-in link
mailed or handed to an operator, from the audit log) and when they last signed in (their
newest session), so the console shows who was invited, when, and who has signed in."""

from __future__ import annotations

from sqlalchemy import func, select

from server.store import Database
from server.store.schema import accounts, privacy_audit, signin_sessions

# The audit actions that put a sign-in link on its way to a participant.
INVITING = ("invite", "signin_link")


async def by_identity(database: Database) -> dict[str, dict[str, float | None]]:
    """{identity: {"invited_at": ts | None, "signed_in_at": ts | None}} for every
    participant who was invited or has signed in. Two grouped queries, whatever the cohort."""
    async with database.connect() as conn:
        invited = dict(
            (
                await conn.execute(
                    select(privacy_audit.c.subject, func.max(privacy_audit.c.ts))
                    .where(privacy_audit.c.action.in_(INVITING))
                    .group_by(privacy_audit.c.subject)
                )
            ).all()
        )
        signed_in = dict(
            (
                await conn.execute(
                    select(accounts.c.identity, func.max(signin_sessions.c.created_at))
                    .join(signin_sessions, signin_sessions.c.account_id == accounts.c.id)
                    .where(accounts.c.identity.is_not(None))
                    .group_by(accounts.c.identity)
                )
            ).all()
        )
    return {
        identity: {"invited_at": invited.get(identity), "signed_in_at": signed_in.get(identity)}
        for identity in set(invited) | set(signed_in)
        if identity is not None
    }
