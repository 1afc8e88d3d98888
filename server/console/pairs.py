"""The console's view of the pairs: each pair with its last meeting and last message, and
ending a pair (its room closes: `PairStore.require_open_room` refuses every way in)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from server.errors import Conflict
from server.pairs.model import Pair, PairStatus
from server.pairs.store import PairStore
from server.store import Database
from server.store.schema import chat_messages, sessions


async def overview(database: Database, pairs: PairStore) -> list[dict[str, Any]]:
    """Every pair, newest first, with status, members, flag, last meeting and last message
    (timestamps; None when there was none). Three queries, whatever the number of pairs."""
    found = await pairs.list()
    async with database.connect() as conn:
        met = {
            pair_id: (last, count)
            for pair_id, last, count in await conn.execute(
                select(sessions.c.pair_id, func.max(sessions.c.started_at), func.count()).group_by(
                    sessions.c.pair_id
                )
            )
        }
        wrote = dict(
            (
                await conn.execute(
                    select(chat_messages.c.room, func.max(chat_messages.c.ts)).group_by(
                        chat_messages.c.room
                    )
                )
            ).all()
        )
    rows = []
    for pair in reversed(found):
        last_meeting, meetings = met.get(pair.id, (None, 0))
        rows.append(
            {
                "id": pair.id,
                "room": pair.room,
                "title": pair.title,
                "status": pair.status,
                "source": pair.source,
                "flagged": pair.flagged,
                "flag_reason": pair.flag_reason,
                "created_at": pair.created_at,
                "members": [
                    {"identity": m.identity, "name": m.name, "role": m.role} for m in pair.members
                ],
                "meetings": meetings,
                "last_meeting": last_meeting,
                "last_message": wrote.get(pair.room),
            }
        )
    return rows


async def end(pairs: PairStore, pair_id: str) -> Pair:
    """End a pair's mentoring: its room closes (no joins, chat and agenda read-only); the
    pair, its room name and its log stay. Ending twice is a conflict, not a second end."""
    pair = await pairs.get(pair_id)
    if pair.status != PairStatus.ACTIVE:
        raise Conflict(f"pair {pair_id!r} is already {pair.status}", code="pair_not_active")
    return await pairs.set_status(pair_id, PairStatus.UNPUBLISHED)
