"""Jobs in the database: scheduled, claimed under a lease, finished or retried.

Claiming is the one delicate part. On PostgreSQL a node selects due jobs `FOR UPDATE SKIP
LOCKED` and leases them in the same transaction, so two nodes polling at once each get
different jobs and neither waits for the other. SQLite has no row locks; there a node
leases each candidate with a compare-and-set (`UPDATE ... WHERE status and lease are still
what I read`), and only the node whose update changed the row owns it.

A job is leased for `lease_seconds`. If its node dies while running it, the lease runs out
and another node takes it again: a job is run once unless a node dies mid-job, and then
at most once more (the handlers are written so a repeat is harmless).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import RowMapping, and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from server.store import Database
from server.store.schema import jobs

PENDING, RUNNING, DONE, FAILED, CANCELLED = "pending", "running", "done", "failed", "cancelled"


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    key: str | None
    payload: dict[str, Any]
    run_at: float
    status: str
    attempts: int
    lease_owner: str | None
    last_error: str | None

    @classmethod
    def from_row(cls, row: RowMapping) -> Job:
        return cls(
            id=row["id"],
            kind=row["kind"],
            key=row["key"],
            payload=json.loads(row["payload"]),
            run_at=row["run_at"],
            status=row["status"],
            attempts=row["attempts"],
            lease_owner=row["lease_owner"],
            last_error=row["last_error"],
        )


class JobStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def schedule(
        self, kind: str, payload: Mapping[str, Any], run_at: float, *, key: str | None = None
    ) -> bool:
        """Add a job due at `run_at`. With a `key`, a job of that key already scheduled (or
        run) is kept and nothing is added: returns False."""
        row = {
            "kind": kind,
            "key": key,
            "payload": json.dumps(dict(payload)),
            "run_at": run_at,
            "status": PENDING,
            "attempts": 0,
            "created_at": time.time(),
        }
        try:
            async with self._db.begin() as conn:
                await conn.execute(insert(jobs).values(**row))
        except IntegrityError:
            return False
        return True

    async def cancel(self, key_prefix: str) -> int:
        """Cancel the pending jobs whose key starts with `key_prefix`; how many."""
        async with self._db.begin() as conn:
            result = await conn.execute(
                update(jobs)
                .where(jobs.c.status == PENDING, jobs.c.key.startswith(key_prefix, autoescape=True))
                .values(status=CANCELLED, finished_at=time.time())
            )
        return int(result.rowcount)

    async def claim(self, owner: str, now: float, lease_seconds: float, limit: int) -> list[Job]:
        """Lease up to `limit` due jobs (pending and due, or running with a lapsed lease)."""
        due = or_(
            and_(jobs.c.status == PENDING, jobs.c.run_at <= now),
            and_(jobs.c.status == RUNNING, jobs.c.lease_until < now),
        )
        lease = {
            "status": RUNNING,
            "lease_owner": owner,
            "lease_until": now + lease_seconds,
            "attempts": jobs.c.attempts + 1,
        }
        if not self._db.is_sqlite:
            async with self._db.begin() as conn:
                ids = (
                    (
                        await conn.execute(
                            select(jobs.c.id)
                            .where(due)
                            .order_by(jobs.c.run_at, jobs.c.id)
                            .limit(limit)
                            .with_for_update(skip_locked=True)
                        )
                    )
                    .scalars()
                    .all()
                )
                if not ids:
                    return []
                await conn.execute(update(jobs).where(jobs.c.id.in_(ids)).values(**lease))
                rows = await conn.execute(select(jobs).where(jobs.c.id.in_(ids)))
                return sorted((Job.from_row(r) for r in rows.mappings()), key=_order)
        async with self._db.connect() as conn:
            seen = (
                await conn.execute(
                    select(jobs.c.id, jobs.c.status, jobs.c.attempts)
                    .where(due)
                    .order_by(jobs.c.run_at, jobs.c.id)
                    .limit(limit)
                )
            ).all()
        claimed: list[int] = []
        for job_id, status, attempts in seen:
            async with self._db.begin() as conn:
                # Compare and set: only if no other node leased it since it was read.
                result = await conn.execute(
                    update(jobs)
                    .where(jobs.c.id == job_id, jobs.c.status == status)
                    .where(jobs.c.attempts == attempts, due)
                    .values(**lease)
                )
            if result.rowcount == 1:
                claimed.append(job_id)
        return await self._get(claimed)

    async def finish(self, job: Job, owner: str, now: float) -> bool:
        """Mark a job this owner leased done; False if its lease was taken meanwhile."""
        return await self._settle(job, owner, status=DONE, finished_at=now, last_error=None)

    async def retry(self, job: Job, owner: str, error: str, run_at: float | None) -> bool:
        """After a failure: due again at `run_at`, or failed for good with None."""
        if run_at is None:
            return await self._settle(job, owner, status=FAILED, last_error=error[:2000])
        return await self._settle(
            job, owner, status=PENDING, run_at=run_at, last_error=error[:2000], lease_until=None
        )

    async def _settle(self, job: Job, owner: str, **values: Any) -> bool:
        async with self._db.begin() as conn:
            result = await conn.execute(
                update(jobs)
                .where(jobs.c.id == job.id, jobs.c.status == RUNNING)
                .where(jobs.c.lease_owner == owner, jobs.c.attempts == job.attempts)
                .values(**values)
            )
        return int(result.rowcount) == 1

    async def recent(self, kind: str | None = None, limit: int = 100) -> list[Job]:
        query = select(jobs).order_by(jobs.c.id.desc()).limit(limit)
        if kind is not None:
            query = query.where(jobs.c.kind == kind)
        async with self._db.connect() as conn:
            return [Job.from_row(r) for r in (await conn.execute(query)).mappings()]

    async def _get(self, ids: Sequence[int]) -> list[Job]:
        if not ids:
            return []
        async with self._db.connect() as conn:
            rows = await conn.execute(select(jobs).where(jobs.c.id.in_(ids)))
            return sorted((Job.from_row(r) for r in rows.mappings()), key=_order)


def _order(job: Job) -> tuple[float, int]:
    return (job.run_at, job.id)
