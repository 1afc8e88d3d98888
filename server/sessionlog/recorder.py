"""The recorder: a bus subscriber that writes the session log of pair rooms as events arrive.

Nothing here is reconstructed afterwards. Each event becomes rows at once: a session on
the first join, an attendance interval per stretch of presence, a media segment per
stretch in one mode (with the reason it began), quality samples, and a timeline entry.
A step the participant chose (audio-only, text, closing media, camera off) is stored
with a reason starting `choice: ` (`rooms.model.CHOICE_PREFIX`), so it is never
counted as a fallback; a dead media connection the SFU closed is a `media_failed`
timeline entry with its reason, even when the mode stays the same.
Rooms that belong to no pair are not recorded.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from server.pairs.store import PairStore
from server.rooms.events import (
    MediaConnectionLost,
    MediaControlsChanged,
    MediaModeChanged,
    MediaQualitySampled,
    MediaReconnected,
    ParticipantJoined,
    ParticipantLeft,
    PresenceChanged,
    RoomEvent,
    SessionEnded,
    SessionStarted,
)
from server.rooms.model import choice_reason
from server.sessionlog.agenda import carry_over
from server.sessionlog.rows import insert_id
from server.store import Database
from server.store.schema import (
    session_attendance,
    session_media_segments,
    session_quality_samples,
    session_timeline,
    sessions,
)

log = logging.getLogger("pairwise.sessionlog")


@dataclass
class _Present:
    attendance_id: int
    segment_id: int
    mode: str


@dataclass
class _OpenSession:
    id: int
    pair_id: str
    present: dict[str, _Present] = field(default_factory=dict)
    last_left_at: float | None = None
    # Who left because the connection dropped: their next join is a reconnect.
    dropped: set[str] = field(default_factory=set)


class SessionRecorder:
    """Subscribe with `bus.subscribe(recorder, "sessionlog", kinds=recorder.KINDS)`; it
    handles one event at a time."""

    # Everything but chat: the transcript is the chat table itself.
    KINDS = (
        SessionStarted,
        ParticipantJoined,
        SessionEnded,
        ParticipantLeft,
        MediaModeChanged,
        MediaQualitySampled,
        MediaReconnected,
        MediaConnectionLost,
        MediaControlsChanged,
        PresenceChanged,
    )

    def __init__(self, database: Database, pairs: PairStore):
        self._db = database
        self._pairs = pairs
        self._open: dict[str, _OpenSession] = {}

    def open_session(self, room: str) -> int | None:
        """The id of the session in progress in `room`, if one is being recorded."""
        found = self._open.get(room)
        return found.id if found else None

    async def __call__(self, event: RoomEvent) -> None:
        if isinstance(event, SessionStarted):
            await self._start(event.room, event.ts)
            return
        current = self._open.get(event.room)
        if current is None and isinstance(event, ParticipantJoined):
            # The pair was created while its room was already in use: start from here.
            current = await self._start(event.room, event.ts)
        if current is None:
            return
        # Work on a copy and keep it only once its rows are committed: a failed write
        # leaves memory as the database is (someone present who is not, say).
        draft = copy.deepcopy(current)
        async with self._db.begin() as conn:
            await self._record(conn, draft, event)
        if isinstance(event, SessionEnded):
            del self._open[event.room]
        else:
            self._open[event.room] = draft

    async def _record(self, conn: AsyncConnection, current: _OpenSession, event: RoomEvent) -> None:
        if isinstance(event, ParticipantJoined):
            await self._join(conn, current, event)
        elif isinstance(event, SessionEnded):
            await self._end(conn, current, event)
        elif isinstance(event, ParticipantLeft):
            await self._left(conn, current, event.identity, event.ts, event.reason)
        elif isinstance(event, MediaModeChanged):
            if event.identity in current.present:
                reason = choice_reason(event.reason) if event.choice else event.reason
                await self._switch(conn, current, event.identity, event.mode, reason, event.ts)
        elif isinstance(event, MediaQualitySampled):
            await conn.execute(
                insert(session_quality_samples).values(
                    session_id=current.id,
                    identity=event.identity,
                    ts=event.ts,
                    inbound_kbps=event.inbound_kbps,
                    outbound_kbps=event.outbound_kbps,
                    loss_percent=event.loss_percent,
                    rtt_ms=event.rtt_ms,
                )
            )
        elif isinstance(event, MediaReconnected):
            await _timeline(
                conn, current.id, event.ts, "reconnected", event.identity, f"media: {event.reason}"
            )
        elif isinstance(event, MediaConnectionLost):
            await _timeline(
                conn, current.id, event.ts, "media_failed", event.identity, event.reason
            )
        elif isinstance(event, MediaControlsChanged):
            sends = (
                f"audio {'on' if event.audio else 'off'}, video {'on' if event.video else 'off'}"
            )
            await _timeline(
                conn, current.id, event.ts, "media_control", event.identity, choice_reason(sends)
            )
        elif isinstance(event, PresenceChanged):
            await _timeline(conn, current.id, event.ts, "presence", event.identity, event.presence)

    async def _start(self, room: str, ts: float) -> _OpenSession | None:
        pair = await self._pairs.by_room(room)
        if pair is None:
            return None
        async with self._db.begin() as conn:
            orphan = await conn.scalar(
                select(sessions.c.id).where(
                    and_(sessions.c.room == room, sessions.c.closed_at.is_(None))
                )
            )
            if orphan is not None:
                current = await self._continue(conn, pair.id, int(orphan), ts)
            else:
                session_id = await insert_id(
                    conn, insert(sessions).values(pair_id=pair.id, room=room, started_at=ts)
                )
                await _timeline(conn, session_id, ts, "started", None, "")
                current = _OpenSession(session_id, pair.id)
        self._open[room] = current
        return current

    async def _continue(
        self, conn: AsyncConnection, pair_id: str, session_id: int, ts: float
    ) -> _OpenSession:
        """A session still open in the database belongs to a node that died (or a process
        that was killed): carry it on here instead of splitting the meeting in two. Whoever
        was present there is closed as `node_lost` now (the moment of the crash is unknown,
        so their time present is counted up to the recovery) and their next join is a
        reconnect."""
        present = (
            (
                await conn.execute(
                    select(session_attendance.c.identity).where(
                        and_(
                            session_attendance.c.session_id == session_id,
                            session_attendance.c.left_at.is_(None),
                        )
                    )
                )
            )
            .scalars()
            .all()
        )
        await conn.execute(
            update(session_attendance)
            .where(
                and_(
                    session_attendance.c.session_id == session_id,
                    session_attendance.c.left_at.is_(None),
                )
            )
            .values(left_at=ts, leave_reason="node_lost")
        )
        await _close_segments(conn, session_media_segments.c.session_id == session_id, ts)
        await _timeline(conn, session_id, ts, "continued", None, "the room moved to another node")
        current = _OpenSession(session_id, pair_id)
        current.dropped.update(present)
        return current

    async def _join(
        self, conn: AsyncConnection, current: _OpenSession, event: ParticipantJoined
    ) -> None:
        here = current.present.get(event.identity)
        if event.rejoined and here is not None:
            await _timeline(
                conn, current.id, event.ts, "reconnected", event.identity, "connection replaced"
            )
            if here.mode != event.media_mode:
                await self._switch(
                    conn, current, event.identity, event.media_mode, "rejoined", event.ts
                )
            return
        attendance_id = await insert_id(
            conn,
            insert(session_attendance).values(
                session_id=current.id,
                identity=event.identity,
                name=event.name,
                role=event.role,
                joined_at=event.ts,
            ),
        )
        segment_id = await _open_segment(
            conn, current.id, event.identity, event.media_mode, None, "joined", event.ts
        )
        current.present[event.identity] = _Present(attendance_id, segment_id, event.media_mode)
        await _timeline(conn, current.id, event.ts, "joined", event.identity, event.media_mode)
        if event.identity in current.dropped:
            current.dropped.discard(event.identity)
            await _timeline(
                conn,
                current.id,
                event.ts,
                "reconnected",
                event.identity,
                "rejoined after disconnect",
            )

    async def _switch(
        self,
        conn: AsyncConnection,
        current: _OpenSession,
        identity: str,
        mode: str,
        reason: str,
        ts: float,
    ) -> None:
        here = current.present[identity]
        await _close_segment(conn, here.segment_id, ts)
        here.segment_id = await _open_segment(
            conn, current.id, identity, mode, here.mode, reason, ts
        )
        await _timeline(
            conn, current.id, ts, "media_mode", identity, f"{here.mode}→{mode}: {reason}"
        )
        here.mode = mode

    async def _left(
        self, conn: AsyncConnection, current: _OpenSession, identity: str, ts: float, reason: str
    ) -> None:
        here = current.present.pop(identity, None)
        if here is None:
            return
        await conn.execute(
            update(session_attendance)
            .where(session_attendance.c.id == here.attendance_id)
            .values(left_at=ts, leave_reason=reason)
        )
        await _close_segment(conn, here.segment_id, ts)
        await _timeline(conn, current.id, ts, "left", identity, reason)
        current.last_left_at = ts
        if reason == "disconnected":
            current.dropped.add(identity)

    async def _end(self, conn: AsyncConnection, current: _OpenSession, event: SessionEnded) -> None:
        # A forced close (server shutdown) still has people in the room.
        for identity in list(current.present):
            await self._left(conn, current, identity, event.ts, "room_closed")
        ended_at = current.last_left_at or event.ts
        await conn.execute(
            update(sessions)
            .where(sessions.c.id == current.id)
            .values(ended_at=ended_at, closed_at=event.ts)
        )
        await _timeline(conn, current.id, event.ts, "ended", None, "")
        await carry_over(conn, current.pair_id)


async def _open_segment(
    conn: AsyncConnection,
    session_id: int,
    identity: str,
    mode: str,
    previous: str | None,
    reason: str,
    ts: float,
) -> int:
    return await insert_id(
        conn,
        insert(session_media_segments).values(
            session_id=session_id,
            identity=identity,
            mode=mode,
            previous=previous,
            reason=reason,
            started_at=ts,
        ),
    )


async def _close_segment(conn: AsyncConnection, segment_id: int, ts: float) -> None:
    await _close_segments(conn, session_media_segments.c.id == segment_id, ts)


async def _close_segments(conn: AsyncConnection, which: ColumnElement[bool], ts: float) -> None:
    """End the media segments matching `which` that are still open."""
    await conn.execute(
        update(session_media_segments)
        .where(and_(which, session_media_segments.c.ended_at.is_(None)))
        .values(ended_at=ts)
    )


async def _timeline(
    conn: AsyncConnection, session_id: int, ts: float, kind: str, identity: str | None, detail: Any
) -> None:
    await conn.execute(
        insert(session_timeline).values(
            session_id=session_id,
            ts=ts,
            kind=kind,
            identity=identity,
            detail=str(detail)[:200],
        )
    )
