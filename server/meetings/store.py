"""Meetings in the database."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import RowMapping, insert, select, update

from server.errors import Conflict, NotFound
from server.meetings.model import PROPOSED, Meeting
from server.pairs.model import PairStatus
from server.pairs.queries import pairs_of
from server.store import Database
from server.store.schema import meetings, pairs


def _meeting(row: RowMapping) -> Meeting:
    return Meeting(
        id=row["id"],
        pair_id=row["pair_id"],
        title=row["title"],
        status=row["status"],
        proposed_by=row["proposed_by"],
        options=tuple(json.loads(row["options"])),
        start_utc=row["start_utc"],
        minutes=row["minutes"],
        timezone=row["timezone"],
        every_weeks=row["every_weeks"],
        until=date.fromisoformat(row["until"]) if row["until"] else None,
        sequence=row["sequence"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class MeetingStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def propose(
        self,
        pair_id: str,
        title: str,
        proposed_by: str,
        options: Sequence[float],
        minutes: int,
        timezone: str,
        every_weeks: int | None,
        until: date | None,
    ) -> Meeting:
        now = time.time()
        meeting_id = uuid.uuid4().hex
        async with self._db.begin() as conn:
            await conn.execute(
                insert(meetings).values(
                    id=meeting_id,
                    pair_id=pair_id,
                    title=title,
                    status=PROPOSED,
                    proposed_by=proposed_by,
                    options=json.dumps(list(options)),
                    start_utc=None,
                    minutes=minutes,
                    timezone=timezone,
                    every_weeks=every_weeks,
                    until=until.isoformat() if until else None,
                    sequence=0,
                    created_at=now,
                    updated_at=now,
                )
            )
        return await self.get(meeting_id)

    async def get(self, meeting_id: str) -> Meeting:
        async with self._db.connect() as conn:
            row = (
                (await conn.execute(select(meetings).where(meetings.c.id == meeting_id)))
                .mappings()
                .first()
            )
        if row is None:
            raise NotFound(f"no meeting {meeting_id!r}", code="no_meeting")
        return _meeting(row)

    async def of_pair(self, pair_id: str) -> list[Meeting]:
        query = select(meetings).where(meetings.c.pair_id == pair_id)
        return await self._load(query)

    async def of_identity(self, identity: str) -> list[Meeting]:
        """Meetings of the active pairs `identity` is a member of."""
        active = select(pairs.c.id).where(
            pairs.c.status == PairStatus.ACTIVE, pairs.c.id.in_(pairs_of(identity))
        )
        return await self._load(select(meetings).where(meetings.c.pair_id.in_(active)))

    async def change(self, meeting: Meeting, **values: Any) -> Meeting:
        """Write `values` if nobody changed the meeting since it was read (else 409)."""
        async with self._db.begin() as conn:
            result = await conn.execute(
                update(meetings)
                .where(meetings.c.id == meeting.id, meetings.c.updated_at == meeting.updated_at)
                .where(meetings.c.status == meeting.status)
                .values(**values, updated_at=max(time.time(), meeting.updated_at + 1e-3))
            )
        if result.rowcount != 1:
            raise Conflict("the meeting changed meanwhile; load it again", code="meeting_changed")
        return await self.get(meeting.id)

    async def _load(self, query: Any) -> list[Meeting]:
        async with self._db.connect() as conn:
            rows = (await conn.execute(query.order_by(meetings.c.created_at))).mappings().all()
        return [_meeting(r) for r in rows]
