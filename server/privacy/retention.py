"""The retention period: ended pairs' chat and transcripts are deleted after it.

A pair has ended when it is no longer active (unpublished, or rematched as "not a good
fit"). Its chat messages, read markers and session notes are deleted once its last
activity (last chat message or session end) is `PAIRWISE_RETENTION_DAYS` old; the pair,
its members, attendance and media path stay, so programme figures still add up. The job
runs every `PAIRWISE_RETENTION_INTERVAL_SECONDS` on each node (it is idempotent) and
writes one audit entry per pair it emptied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from sqlalchemy import delete, func, select

from server.pairs.model import PairStatus
from server.privacy import audit
from server.privacy.scrub import secure_delete, truncate_wal
from server.store import Database
from server.store.schema import chat_messages, chat_reads, pairs, session_notes, sessions

log = logging.getLogger("pairwise.privacy")
DAY = 86400.0
ACTOR = "retention"


@dataclass(frozen=True)
class Purged:
    pair_id: str
    messages: int
    notes: int


async def apply_retention(database: Database, days: float, now: float) -> list[Purged]:
    """Delete the chat and transcripts of pairs that ended and went quiet `days` before `now`."""
    cutoff = now - days * DAY
    last_chat = (
        select(func.max(chat_messages.c.ts)).where(chat_messages.c.room == pairs.c.room)
    ).scalar_subquery()
    last_session = (
        select(func.max(func.coalesce(sessions.c.ended_at, sessions.c.started_at))).where(
            sessions.c.pair_id == pairs.c.id
        )
    ).scalar_subquery()
    ended = select(pairs.c.id, pairs.c.room, last_chat, last_session).where(
        pairs.c.status != PairStatus.ACTIVE
    )
    purged: list[Purged] = []
    async with database.begin() as conn:
        await secure_delete(conn, database)
        for pair_id, room, chat_at, session_at in (await conn.execute(ended)).all():
            latest = max(t for t in (chat_at, session_at, 0.0) if t is not None)
            if latest >= cutoff:
                continue
            messages = (
                await conn.execute(delete(chat_messages).where(chat_messages.c.room == room))
            ).rowcount
            await conn.execute(delete(chat_reads).where(chat_reads.c.room == room))
            of_pair = select(sessions.c.id).where(sessions.c.pair_id == pair_id)
            notes = (
                await conn.execute(
                    delete(session_notes).where(session_notes.c.session_id.in_(of_pair))
                )
            ).rowcount
            if messages or notes:
                purged.append(Purged(pair_id, messages, notes))
                await audit.record(
                    conn, ACTOR, "retention", pair_id,
                    {"messages": messages, "notes": notes, "days": days}, now=now,
                )  # fmt: skip
    if purged:
        await truncate_wal(database)
    return purged


def retention_job(
    database: Database, days: float, interval: float, clock: Callable[[], float] = time.time
) -> Callable[[object], AsyncIterator[None]]:
    """A cleanup context for aiohttp: run the retention now and every `interval` seconds."""

    async def run_forever() -> None:
        while True:
            try:
                for purged in await apply_retention(database, days, clock()):
                    log.info("retention deleted chat", extra={"pair": purged.pair_id})
            except Exception:
                log.exception("the retention job failed; it runs again next interval")
            await asyncio.sleep(interval)

    async def context(_app: object) -> AsyncIterator[None]:
        task = asyncio.create_task(run_forever())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return context
