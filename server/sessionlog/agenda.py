"""The agenda of a pair: either member adds topics before a session (a mentee in another
time zone queues them), they are ticked off in a session, and open items carry over."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from server.sessionlog.rows import clean_text, fetch_all, fetch_of_pair, insert_id
from server.store import Database
from server.store.schema import agenda_items

AGENDA_MAX_CHARS = 1000


@dataclass(frozen=True)
class AgendaItem:
    id: int
    pair_id: str
    text: str
    added_by: str
    added_at: float
    done_at: float | None
    done_by: str | None
    done_session_id: int | None
    carried_over: int  # how many sessions ended with this item still open

    @property
    def done(self) -> bool:
        return self.done_at is not None


def _item(row: Any) -> AgendaItem:
    return AgendaItem(**dict(row))


async def carry_over(conn: AsyncConnection, pair_id: str) -> None:
    """A session of the pair ended: every open item carries over to the next one."""
    await conn.execute(
        update(agenda_items)
        .where(
            and_(
                agenda_items.c.pair_id == pair_id,
                agenda_items.c.done_at.is_(None),
            )
        )
        .values(carried_over=agenda_items.c.carried_over + 1)
    )


class Agenda:
    def __init__(self, database: Database):
        self._db = database

    async def add(self, pair_id: str, text: str, added_by: str) -> AgendaItem:
        text = clean_text(text, "an agenda item", AGENDA_MAX_CHARS)
        async with self._db.begin() as conn:
            item_id = await insert_id(
                conn,
                insert(agenda_items).values(
                    pair_id=pair_id,
                    text=text,
                    added_by=added_by,
                    added_at=time.time(),
                    carried_over=0,
                ),
            )
        return await self.get(pair_id, item_id)

    async def get(self, pair_id: str, item_id: int) -> AgendaItem:
        return _item(await fetch_of_pair(self._db, agenda_items, item_id, pair_id, "agenda item"))

    async def items(self, pair_id: str, include_done: bool = False) -> list[AgendaItem]:
        """Open items first, in the order they were added; then done ones if asked."""
        query = select(agenda_items).where(agenda_items.c.pair_id == pair_id)
        if not include_done:
            query = query.where(agenda_items.c.done_at.is_(None))
        rows = await fetch_all(self._db, query.order_by(agenda_items.c.id))
        items = [_item(r) for r in rows]
        return sorted(items, key=lambda i: i.done)

    async def tick(
        self, pair_id: str, item_id: int, identity: str, done: bool, session_id: int | None
    ) -> AgendaItem:
        """Tick an item off (in the session in progress, if any) or reopen it."""
        item = await self.get(pair_id, item_id)
        if done == item.done:
            return item
        values: dict[str, Any] = (
            {"done_at": time.time(), "done_by": identity, "done_session_id": session_id}
            if done
            else {"done_at": None, "done_by": None, "done_session_id": None}
        )
        async with self._db.begin() as conn:
            await conn.execute(
                update(agenda_items).where(agenda_items.c.id == item.id).values(**values)
            )
        return await self.get(pair_id, item_id)
