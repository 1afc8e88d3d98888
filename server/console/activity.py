"""Operators' console actions in the audit log (`privacy_audit`, read by
GET /api/v1/privacy/audit): who ended which pair, imported how many people, and so on.

A participant is named only in `subject` (an erasure turns it into their pseudonym), never
in `detail`, so the log outlives an erasure without naming the person.
"""

from __future__ import annotations

from typing import Any

from server.privacy.audit import record
from server.store import Database


async def note(
    database: Database, actor: str, action: str, subject: str | None, detail: dict[str, Any]
) -> None:
    """Record one console action by `actor` (the operator's label)."""
    async with database.begin() as conn:
        await record(conn, actor, action, subject, detail)
