"""The privacy audit log and participants' erasure requests."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from server.store import Database
from server.store.schema import erasure_requests, privacy_audit


@dataclass(frozen=True)
class AuditEntry:
    id: int
    ts: float
    actor: str
    action: str
    subject: str | None
    detail: dict[str, Any]


@dataclass(frozen=True)
class ErasureRequest:
    id: int
    identity: str
    requested_at: float
    status: str
    done_at: float | None


async def record(
    conn: AsyncConnection,
    actor: str,
    action: str,
    subject: str | None,
    detail: dict[str, Any],
    now: float | None = None,
) -> None:
    """One audit entry, written in the caller's transaction (with the change it records)."""
    await conn.execute(
        insert(privacy_audit).values(
            ts=time.time() if now is None else now,
            actor=actor,
            action=action,
            subject=subject,
            detail=json.dumps(detail, sort_keys=True),
        )
    )


class PrivacyLog:
    def __init__(self, database: Database):
        self.database = database

    async def entries(self, limit: int = 200) -> list[AuditEntry]:
        query = select(privacy_audit).order_by(privacy_audit.c.id.desc()).limit(limit)
        async with self.database.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [
            AuditEntry(
                r["id"], r["ts"], r["actor"], r["action"], r["subject"], json.loads(r["detail"])
            )
            for r in rows
        ]

    async def request_erasure(self, identity: str) -> ErasureRequest:
        """Record a participant's request; an open one is returned instead of a second."""
        async with self.database.begin() as conn:
            open_ = (
                (
                    await conn.execute(
                        select(erasure_requests).where(
                            erasure_requests.c.identity == identity,
                            erasure_requests.c.status == "open",
                        )
                    )
                )
                .mappings()
                .first()
            )
            if open_ is not None:
                return _request(open_)
            now = time.time()
            result = await conn.execute(
                insert(erasure_requests)
                .values(identity=identity, requested_at=now, status="open")
                .returning(erasure_requests.c.id)
            )
            request_id = int(result.scalar_one())
            await record(conn, identity, "erasure_requested", identity, {"request": request_id})
        return ErasureRequest(request_id, identity, now, "open", None)

    async def requests(self, status: str | None = "open") -> list[ErasureRequest]:
        query = select(erasure_requests).order_by(erasure_requests.c.id)
        if status is not None:
            query = query.where(erasure_requests.c.status == status)
        async with self.database.connect() as conn:
            return [_request(r) for r in (await conn.execute(query)).mappings().all()]

    @staticmethod
    async def close_requests(conn: AsyncConnection, pseudonym: str, now: float) -> None:
        """Mark the (already pseudonymised) person's requests done."""
        await conn.execute(
            update(erasure_requests)
            .where(erasure_requests.c.identity == pseudonym)
            .values(status="done", done_at=now)
        )


def _request(row: Any) -> ErasureRequest:
    return ErasureRequest(
        row["id"], row["identity"], row["requested_at"], row["status"], row["done_at"]
    )
