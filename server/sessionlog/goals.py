"""Goals and milestones of a pair: title, due date, progress 0–100, status."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update

from server.errors import InvalidInput
from server.sessionlog.rows import fetch_all, fetch_of_pair, insert_id
from server.store import Database
from server.store.schema import goals

STATUSES = ("open", "done", "dropped")
TITLE_MAX_CHARS = 200


@dataclass(frozen=True)
class Goal:
    id: int
    pair_id: str
    title: str
    due_date: str | None  # ISO date
    progress: int
    status: str
    created_by: str
    created_at: float
    updated_at: float


def _checked(**values: Any) -> dict[str, Any]:
    """Validate the given goal fields (None means "not given") and return those given."""
    given = {k: v for k, v in values.items() if v is not None}
    if "title" in given:
        given["title"] = given["title"].strip()
        if not given["title"] or len(given["title"]) > TITLE_MAX_CHARS:
            raise InvalidInput(f"a goal's title has 1 to {TITLE_MAX_CHARS} characters")
    if "progress" in given and not 0 <= given["progress"] <= 100:
        raise InvalidInput("progress is a percentage from 0 to 100")
    if "status" in given and given["status"] not in STATUSES:
        raise InvalidInput(f"status is one of {', '.join(STATUSES)}")
    if "due_date" in given:
        try:
            given["due_date"] = dt.date.fromisoformat(given["due_date"]).isoformat()
        except ValueError:
            raise InvalidInput("due_date is a date like 2025-03-31") from None
    return given


class Goals:
    def __init__(self, database: Database):
        self._db = database

    async def add(
        self,
        pair_id: str,
        title: str,
        created_by: str,
        due_date: str | None = None,
        progress: int = 0,
        status: str = "open",
    ) -> Goal:
        fields = _checked(title=title, due_date=due_date, progress=progress, status=status)
        now = time.time()
        async with self._db.begin() as conn:
            goal_id = await insert_id(
                conn,
                insert(goals).values(
                    pair_id=pair_id,
                    created_by=created_by,
                    created_at=now,
                    updated_at=now,
                    **{"due_date": None, **fields},
                ),
            )
        return await self.get(pair_id, goal_id)

    async def get(self, pair_id: str, goal_id: int) -> Goal:
        return Goal(**dict(await fetch_of_pair(self._db, goals, goal_id, pair_id, "goal")))

    async def of_pair(self, pair_id: str) -> list[Goal]:
        rows = await fetch_all(
            self._db, select(goals).where(goals.c.pair_id == pair_id).order_by(goals.c.id)
        )
        return [Goal(**dict(r)) for r in rows]

    async def update(
        self,
        pair_id: str,
        goal_id: int,
        *,
        title: str | None = None,
        due_date: str | None = None,
        progress: int | None = None,
        status: str | None = None,
    ) -> Goal:
        await self.get(pair_id, goal_id)
        fields = _checked(title=title, due_date=due_date, progress=progress, status=status)
        if fields:
            async with self._db.begin() as conn:
                await conn.execute(
                    update(goals)
                    .where(goals.c.id == goal_id)
                    .values(updated_at=time.time(), **fields)
                )
        return await self.get(pair_id, goal_id)
