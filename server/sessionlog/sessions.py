"""Reading the session log: a pair's sessions, one session's detail and timeline, and the
quality summary per participant."""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, insert, select

from server.rooms.chat import ChatMessage
from server.rooms.model import is_choice, is_step_down
from server.sessionlog.rows import clean_text, fetch_all, fetch_of_pair, fetch_one, insert_id
from server.store import Database
from server.store.schema import (
    agenda_items,
    chat_messages,
    session_attendance,
    session_media_segments,
    session_notes,
    session_quality_samples,
    session_timeline,
    sessions,
)

NOTE_MAX_CHARS = 4000


def is_fallback(previous: str | None, mode: str, reason: str | None = None) -> bool:
    """A step down the ladder (`rooms.model.FALLBACK_ORDER`) the participant did not choose."""
    return previous is not None and not is_choice(reason) and is_step_down(previous, mode)


def step_name(previous: str, mode: str) -> str:
    return f"{previous}→{mode}"


@dataclass(frozen=True)
class Session:
    id: int
    pair_id: str
    room: str
    started_at: float
    ended_at: float | None  # when the last participant left
    closed_at: float | None  # when the room closed, after the grace period

    @property
    def duration_seconds(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.started_at

    @property
    def in_progress(self) -> bool:
        return self.closed_at is None


@dataclass(frozen=True)
class Interval:
    joined_at: float
    left_at: float | None
    leave_reason: str | None


@dataclass(frozen=True)
class Attendance:
    identity: str
    name: str
    role: str
    intervals: tuple[Interval, ...]
    seconds_present: float


@dataclass(frozen=True)
class Segment:
    identity: str
    mode: str
    previous: str | None
    reason: str
    started_at: float
    ended_at: float | None


@dataclass(frozen=True)
class Quality:
    identity: str
    samples: int
    median_inbound_kbps: float | None
    median_outbound_kbps: float | None
    median_loss_percent: float | None
    median_rtt_ms: float | None
    reconnects: int


@dataclass(frozen=True)
class TimelineEntry:
    ts: float
    kind: str
    identity: str | None
    detail: str


@dataclass(frozen=True)
class Note:
    id: int
    session_id: int
    author: str
    text: str
    created_at: float


@dataclass(frozen=True)
class SessionSummary:
    session: Session
    participants: tuple[str, ...]
    fallback_steps: tuple[str, ...]


@dataclass(frozen=True)
class SessionDetail:
    session: Session
    attendance: tuple[Attendance, ...]
    media_path: dict[str, tuple[Segment, ...]]
    quality: tuple[Quality, ...]
    timeline: tuple[TimelineEntry, ...]
    notes: tuple[Note, ...]
    agenda_done: tuple[str, ...]
    fallback_steps: tuple[str, ...] = field(default=())


def fallback_steps(segments: Iterable[Segment]) -> tuple[str, ...]:
    """The fallback steps taken, in order, as "from→to"."""
    return tuple(
        step_name(s.previous, s.mode)
        for s in segments
        if s.previous is not None and is_fallback(s.previous, s.mode, s.reason)
    )


def _session(row: Any) -> Session:
    return Session(
        row["id"], row["pair_id"], row["room"], row["started_at"], row["ended_at"], row["closed_at"]
    )


def _segment(row: Any) -> Segment:
    return Segment(
        row["identity"],
        row["mode"],
        row["previous"],
        row["reason"],
        row["started_at"],
        row["ended_at"],
    )


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def attendance_of(rows: Iterable[Any], now: float) -> tuple[Attendance, ...]:
    """Group attendance rows (in join order) by participant; an open interval counts to now."""
    grouped: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        grouped[row["identity"]].append(row)
    result = []
    for identity, intervals in grouped.items():
        first = intervals[0]
        present = sum((r["left_at"] or now) - r["joined_at"] for r in intervals)
        result.append(
            Attendance(
                identity,
                first["name"],
                first["role"],
                tuple(Interval(r["joined_at"], r["left_at"], r["leave_reason"]) for r in intervals),
                present,
            )
        )
    return tuple(result)


def _chat_window(session: Session) -> Any:
    """Chat messages of the session's room posted while the session was open."""
    until = session.closed_at if session.closed_at is not None else time.time()
    return and_(
        chat_messages.c.room == session.room,
        chat_messages.c.ts >= session.started_at,
        chat_messages.c.ts <= until,
    )


class SessionLog:
    def __init__(self, database: Database):
        self._db = database

    async def of_pair(self, pair_id: str) -> list[SessionSummary]:
        """The pair's sessions, newest first."""
        rows = await fetch_all(
            self._db,
            select(sessions)
            .where(sessions.c.pair_id == pair_id)
            .order_by(sessions.c.started_at.desc()),
        )
        found = [_session(r) for r in rows]
        ids = [s.id for s in found]
        people: dict[int, list[str]] = defaultdict(list)
        steps: dict[int, list[Segment]] = defaultdict(list)
        if ids:
            for r in await fetch_all(
                self._db,
                select(session_attendance.c.session_id, session_attendance.c.identity)
                .where(session_attendance.c.session_id.in_(ids))
                .order_by(session_attendance.c.id),
            ):
                if r["identity"] not in people[r["session_id"]]:
                    people[r["session_id"]].append(r["identity"])
            for r in await fetch_all(
                self._db,
                select(session_media_segments)
                .where(session_media_segments.c.session_id.in_(ids))
                .order_by(session_media_segments.c.id),
            ):
                steps[r["session_id"]].append(_segment(r))
        return [SessionSummary(s, tuple(people[s.id]), fallback_steps(steps[s.id])) for s in found]

    async def get(self, pair_id: str, session_id: int) -> Session:
        return _session(await fetch_of_pair(self._db, sessions, session_id, pair_id, "session"))

    async def current(self, pair_id: str) -> Session | None:
        """The session in progress in the pair's room, if any."""
        row = await fetch_one(
            self._db,
            select(sessions)
            .where(
                and_(
                    sessions.c.pair_id == pair_id,
                    sessions.c.closed_at.is_(None),
                )
            )
            .order_by(sessions.c.started_at.desc())
            .limit(1),
        )
        return _session(row) if row else None

    async def detail(self, pair_id: str, session_id: int) -> SessionDetail:
        session = await self.get(pair_id, session_id)
        now = time.time()

        def of(table: Any) -> Any:
            return select(table).where(table.c.session_id == session_id).order_by(table.c.id)

        attendance = attendance_of(await fetch_all(self._db, of(session_attendance)), now)
        segments = [_segment(r) for r in await fetch_all(self._db, of(session_media_segments))]
        samples = await fetch_all(self._db, of(session_quality_samples))
        timeline = [
            TimelineEntry(r["ts"], r["kind"], r["identity"], r["detail"])
            for r in await fetch_all(self._db, of(session_timeline))
        ]
        notes = [
            Note(r["id"], r["session_id"], r["author"], r["text"], r["created_at"])
            for r in await fetch_all(self._db, of(session_notes))
        ]
        done = await fetch_all(
            self._db,
            select(agenda_items.c.text)
            .where(agenda_items.c.done_session_id == session_id)
            .order_by(agenda_items.c.done_at),
        )
        media_path: dict[str, list[Segment]] = defaultdict(list)
        for segment in segments:
            media_path[segment.identity].append(segment)
        reconnects: dict[str, int] = defaultdict(int)
        for entry in timeline:
            if entry.kind == "reconnected" and entry.identity:
                reconnects[entry.identity] += 1
        by_person: dict[str, list[Any]] = defaultdict(list)
        for sample in samples:
            by_person[sample["identity"]].append(sample)
        quality = tuple(
            Quality(
                a.identity,
                len(by_person[a.identity]),
                _median([s["inbound_kbps"] for s in by_person[a.identity]]),
                _median([s["outbound_kbps"] for s in by_person[a.identity]]),
                _median([s["loss_percent"] for s in by_person[a.identity]]),
                _median([s["rtt_ms"] for s in by_person[a.identity]]),
                reconnects[a.identity],
            )
            for a in attendance
        )
        return SessionDetail(
            session,
            attendance,
            {k: tuple(v) for k, v in media_path.items()},
            quality,
            tuple(timeline),
            tuple(notes),
            tuple(r["text"] for r in done),
            fallback_steps(segments),
        )

    async def transcript(self, session: Session) -> list[ChatMessage]:
        """The chat of the session's room while it was open, in order."""
        rows = await fetch_all(
            self._db,
            select(chat_messages).where(_chat_window(session)).order_by(chat_messages.c.id),
        )
        return [
            ChatMessage(
                r["id"], r["room"], r["identity"], r["name"], r["text"], r["client_id"], r["ts"]
            )
            for r in rows
        ]

    async def message_count(self, session: Session) -> int:
        async with self._db.connect() as conn:
            return int(
                await conn.scalar(
                    select(func.count()).select_from(chat_messages).where(_chat_window(session))
                )
                or 0
            )

    async def add_note(self, pair_id: str, session_id: int, author: str, text: str) -> Note:
        session = await self.get(pair_id, session_id)
        text = clean_text(text, "a note", NOTE_MAX_CHARS)
        now = time.time()
        async with self._db.begin() as conn:
            note_id = await insert_id(
                conn,
                insert(session_notes).values(
                    session_id=session.id, author=author, text=text, created_at=now
                ),
            )
        return Note(note_id, session.id, author, text, now)
