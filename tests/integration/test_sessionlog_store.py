"""The session log's domain on SQLite and PostgreSQL: the recorder fed room events, feedback,
privacy settings, exports, program health; and `python -m server report`."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from server.errors import Conflict, Forbidden, InvalidInput, NotFound
from server.pairs.model import Member, Pair
from server.rooms.events import (
    MediaModeChanged,
    MediaQualitySampled,
    MediaReconnected,
    ParticipantJoined,
    ParticipantLeft,
    PresenceChanged,
    SessionEnded,
    SessionStarted,
)
from server.sessionlog import export
from server.sessionlog.privacy import Viewer
from server.sessionlog.program_health import DAY, program_health
from server.sessionlog.service import SessionLogService
from server.store import Database
from server.store.migrate import migrate
from tests.support.process import ROOT

T0 = 1_700_000_000.0  # 2023-11-14, a Tuesday


@pytest.fixture
async def log(database_url: str) -> AsyncIterator[SessionLogService]:
    database = Database(database_url)
    await migrate(database)
    yield SessionLogService.create(database)
    await database.close()


async def a_pair(log: SessionLogService, mentor: str = "ada", mentee: str = "bo") -> Pair:
    return await log.pairs.create(
        [Member(mentor, mentor.title(), "mentor"), Member(mentee, mentee.title(), "mentee")],
        room=f"room-{mentor}",
    )


def joined(
    room: str, identity: str, ts: float, mode: str = "video", rejoined: bool = False
) -> ParticipantJoined:
    return ParticipantJoined(
        room,
        identity=identity,
        name=identity.title(),
        role="mentee",
        media_mode=mode,
        rejoined=rejoined,
        ts=ts,
    )


async def a_session(
    log: SessionLogService, pair: Pair, start: float, fallback: bool = False
) -> int:
    """Record a 30-minute session of both members, with one video→audio step if asked."""
    record = log.recorder
    room = pair.room
    await record(SessionStarted(room, ts=start))
    await record(joined(room, "ada", start))
    await record(joined(room, "bo", start + 60))
    if fallback:
        await record(
            MediaModeChanged(
                room,
                identity="bo",
                mode="audio",
                previous="video",
                reason="high_loss",
                ts=start + 300,
            )
        )
    await record(ParticipantLeft(room, identity="bo", reason="left", ts=start + 1700))
    await record(ParticipantLeft(room, identity="ada", reason="left", ts=start + 1800))
    await record(SessionEnded(room, started_at=start, ts=start + 1830))
    [newest, *_] = await log.sessions.of_pair(pair.id)
    return newest.session.id


async def test_the_recorder_writes_each_event_as_it_comes(log: SessionLogService) -> None:
    pair = await a_pair(log)
    room, record = pair.room, log.recorder
    await record(SessionStarted(room, ts=T0))
    await record(joined(room, "ada", T0 + 1))
    open_session = await log.sessions.current(pair.id)
    assert open_session is not None and open_session.in_progress
    assert (await log.sessions.detail(pair.id, open_session.id)).attendance[0].identity == "ada"

    await record(joined(room, "bo", T0 + 2, mode="audio"))
    await record(PresenceChanged(room, identity="bo", presence="away", ts=T0 + 3))
    await record(
        MediaQualitySampled(
            room,
            identity="bo",
            inbound_kbps=64.0,
            outbound_kbps=32.0,
            loss_percent=0.5,
            rtt_ms=120.0,
            ts=T0 + 4,
        )
    )
    await record(MediaReconnected(room, identity="bo", reason="ice_restart", ts=T0 + 5))
    await record(
        MediaModeChanged(
            room, identity="bo", mode="text", previous="audio", reason="no_rtp", ts=T0 + 6
        )
    )
    await record(ParticipantLeft(room, identity="bo", reason="disconnected", ts=T0 + 10))
    await record(joined(room, "bo", T0 + 12, mode="text"))
    await record(joined(room, "bo", T0 + 13, mode="phone", rejoined=True))  # dialled in
    # Shutdown closes the room with people still in it.
    await record(SessionEnded(room, started_at=T0, ts=T0 + 20))

    detail = await log.sessions.detail(pair.id, open_session.id)
    assert detail.session.ended_at == T0 + 20 and detail.session.closed_at == T0 + 20
    assert detail.session.duration_seconds == 20
    people = {a.identity: a for a in detail.attendance}
    assert [(i.joined_at, i.left_at, i.leave_reason) for i in people["bo"].intervals] == [
        (T0 + 2, T0 + 10, "disconnected"),
        (T0 + 12, T0 + 20, "room_closed"),
    ]
    assert people["bo"].seconds_present == 16 and people["ada"].seconds_present == 19
    assert [
        (s.mode, s.previous, s.reason, s.started_at, s.ended_at) for s in detail.media_path["bo"]
    ] == [
        ("audio", None, "joined", T0 + 2, T0 + 6),
        ("text", "audio", "no_rtp", T0 + 6, T0 + 10),
        ("text", None, "joined", T0 + 12, T0 + 13),
        ("phone", "text", "rejoined", T0 + 13, T0 + 20),
    ]
    assert detail.fallback_steps == ("audio→text", "text→phone")
    quality = {q.identity: q for q in detail.quality}
    assert quality["bo"].reconnects == 3  # media restart, rejoin after drop, replaced by phone
    assert (quality["bo"].median_inbound_kbps, quality["bo"].median_rtt_ms) == (64.0, 120.0)
    assert quality["ada"].samples == 0 and quality["ada"].median_inbound_kbps is None
    assert ("presence", "bo", "away") in [(t.kind, t.identity, t.detail) for t in detail.timeline]
    assert await log.sessions.current(pair.id) is None


async def test_a_write_that_fails_changes_nothing_the_recorder_remembers(
    log: SessionLogService,
) -> None:
    """A join whose timeline row cannot be written is rolled back, and the recorder does
    not take the person as present either: their later leave records nothing. Before,
    memory changed before the commit, so a leave was logged for someone never there."""
    pair = await a_pair(log)
    room, record = pair.room, log.recorder
    await record(SessionStarted(room, ts=T0))
    async with log.database.begin() as conn:  # the timeline table goes away for a moment
        await conn.execute(text("ALTER TABLE session_timeline RENAME TO timeline_away"))
    with pytest.raises(DBAPIError):
        await record(joined(room, "ada", T0 + 1))
    async with log.database.begin() as conn:
        await conn.execute(text("ALTER TABLE timeline_away RENAME TO session_timeline"))
    await record(ParticipantLeft(room, identity="ada", reason="left", ts=T0 + 2))
    await record(joined(room, "bo", T0 + 3))
    await record(SessionEnded(room, started_at=T0, ts=T0 + 4))

    [summary] = await log.sessions.of_pair(pair.id)
    detail = await log.sessions.detail(pair.id, summary.session.id)
    assert [(t.kind, t.identity) for t in detail.timeline] == [
        ("started", None),
        ("joined", "bo"),
        ("left", "bo"),
        ("ended", None),
    ]
    assert [a.identity for a in detail.attendance] == ["bo"]


async def test_rooms_of_no_pair_are_not_logged_and_late_pairs_start_at_a_join(
    log: SessionLogService,
) -> None:
    record = log.recorder
    await record(SessionStarted("lobby", ts=T0))
    await record(joined("lobby", "zed", T0))
    await record(SessionEnded("lobby", started_at=T0, ts=T0 + 5))
    await record(SessionStarted("room-ada", ts=T0))  # no pair owns the room yet
    pair = await a_pair(log)
    await record(joined(pair.room, "bo", T0 + 30))
    await record(ParticipantLeft(pair.room, identity="bo", reason="left", ts=T0 + 90))
    await record(SessionEnded(pair.room, started_at=T0, ts=T0 + 95))
    [summary] = await log.sessions.of_pair(pair.id)
    assert (summary.session.started_at, summary.session.duration_seconds) == (T0 + 30, 60)
    assert summary.participants == ("bo",)
    assert (await export.collect(log.database, None, False, Viewer.admin()))["sessions"] == [
        {
            "id": summary.session.id,
            "pair_id": pair.id,
            "room": pair.room,
            "started_at": T0 + 30,
            "ended_at": T0 + 90,
            "closed_at": T0 + 95,
        }
    ]


async def test_feedback_is_stored_once_and_checked(log: SessionLogService) -> None:
    pair = await a_pair(log)
    sid = await a_session(log, pair, T0)
    await log.feedback.submit(pair, sid, "ada", 4, "  good  ")
    with pytest.raises(Conflict):
        await log.feedback.submit(pair, sid, "ada", 5)
    for rating in (0, 6):
        with pytest.raises(InvalidInput):
            await log.feedback.submit(pair, sid, "bo", rating)
    with pytest.raises(Forbidden):
        await log.feedback.submit(pair, sid, "mallory", 5)
    with pytest.raises(NotFound):
        await log.feedback.submit(pair, sid + 100, "bo", 5)
    [stored] = await log.feedback.of_pair(pair.id)
    assert (stored.identity, stored.rating, stored.comment) == ("ada", 4, "good")
    assert not (await log.pairs.get(pair.id)).flagged
    await log.feedback.submit(pair, sid, "bo", 1, good_fit=False)
    assert (await log.pairs.get(pair.id)).flagged


async def test_operator_chat_setting_and_audit(log: SessionLogService) -> None:
    pair = await a_pair(log)
    operator, member, outsider = (
        Viewer.admin("olga"),
        Viewer.member("bo", pair.room),
        Viewer.member("eve", pair.room),
    )
    assert await log.privacy.may_read_chat(member, pair)
    assert not await log.privacy.may_read_chat(operator, pair)
    with pytest.raises(Forbidden):
        await log.privacy.may_read_chat(outsider, pair)
    await log.privacy.set_operators_read_chat(True)
    assert await log.privacy.may_read_chat(operator, pair)
    await log.privacy.set_operators_read_chat(False)
    assert not await log.privacy.operators_read_chat()
    await log.privacy.audit(
        operator, purpose="transcript", granted=False, messages=0, pair_id=pair.id
    )
    await log.privacy.audit(member, purpose="transcript", granted=True, messages=3)
    [read] = await log.privacy.reads()
    assert (read.actor, read.granted, read.pair_id) == ("olga", False, pair.id)


async def test_export_round_trip_keeps_types(log: SessionLogService) -> None:
    pair = await a_pair(log)
    sid = await a_session(log, pair, T0 + 0.123456789, fallback=True)
    await log.goals.add(pair.id, "Mock interview", "bo", due_date="2024-01-31", progress=30)
    await log.agenda.add(pair.id, 'Salary, "bands", and\nnegotiation', "bo")
    await log.feedback.submit(pair, sid, "bo", 5, good_fit=True)
    await log.sessions.add_note(pair.id, sid, "ada", "Homework: STAR stories")
    tables = await export.collect(log.database, [pair.id], True, Viewer.admin())
    assert export.from_csv(export.to_csv(tables)) == tables
    assert export.from_json(export.to_json(tables)) == tables
    assert tables["sessions"][0]["started_at"] == T0 + 0.123456789
    assert tables["feedback"][0]["good_fit"] is True
    assert [s["previous"] for s in tables["media_path"]] == [None, None, "video"]
    assert tables["transcript"] == []
    with pytest.raises(InvalidInput):
        export.from_csv("table,id\nnot_a_table,1\n")
    with pytest.raises(InvalidInput):
        export.from_json('{"format": "something else"}')


async def test_program_health(log: SessionLogService) -> None:
    busy = await a_pair(log, "ada", "bo")
    quiet = await a_pair(log, "cy", "di")
    await log.pairs.flag(quiet.id, "not a good fit")
    await a_session(log, busy, T0, fallback=True)
    await a_session(log, busy, T0 + 7 * DAY)
    await a_session(log, busy, T0 + 8 * DAY)
    [s1, *_] = [s.session.id for s in await log.sessions.of_pair(busy.id)]
    await log.feedback.submit(busy, s1, "ada", 5)
    await log.feedback.submit(busy, s1, "bo", 4)

    now = T0 + 9 * DAY
    health = await program_health(log.database, quiet_days=14, weeks=4, now=now)
    assert (health.pairs_total, health.pairs_active, health.sessions_total) == (2, 2, 3)
    assert health.median_duration_seconds == 1800
    assert health.sessions_with_fallback == 1 and health.fallback_share == pytest.approx(1 / 3)
    assert health.fallback_steps == {"video→audio": 1}
    assert health.average_rating == 4.5 and health.rating_distribution[5] == 1
    assert [(w.week, w.sessions, w.with_fallback) for w in health.weeks] == [
        ("2023-10-30", 0, 0),
        ("2023-11-06", 0, 0),
        ("2023-11-13", 1, 1),
        ("2023-11-20", 2, 0),
    ]
    [month] = health.months
    # Both pairs were created (in real time) after November 2023; the busy one met in it.
    assert (month.month, month.sessions, month.pairs, month.per_pair) == ("2023-11", 3, 1, 3.0)
    assert [f.pair_id for f in health.flagged] == [quiet.id]
    # The pair that never met is listed as not met yet from the start, the busy one never.
    assert [(n.pair_id, n.title) for n in health.not_met] == [(quiet.id, quiet.title)]
    # The pairs were created now-ish (in real time), long after T0: nobody is quiet yet ...
    assert health.going_quiet == []
    # ... but three weeks on, the pair that never met and the one that stopped both are.
    later = await program_health(
        log.database, quiet_days=14, now=max(busy.created_at, quiet.created_at) + 21 * DAY
    )
    assert {q.pair_id for q in later.going_quiet} == {busy.id, quiet.id}
    never = next(q for q in later.going_quiet if q.pair_id == quiet.id)
    assert never.last_activity is None and never.days_quiet == pytest.approx(21, abs=0.01)
    [waiting] = later.not_met
    assert waiting.pair_id == quiet.id
    assert waiting.days_since_matched == pytest.approx(21, abs=0.01)
    # Once they meet, they are no longer waiting for a first meeting.
    await a_session(log, quiet, quiet.created_at + 22 * DAY)
    after = await program_health(log.database, now=quiet.created_at + 23 * DAY)
    assert after.not_met == []


def test_the_report_command_writes_self_contained_html(tmp_path: Path) -> None:
    import asyncio

    data_dir = tmp_path / "data"

    async def seed() -> None:
        database = Database(f"sqlite+aiosqlite:///{data_dir / 'pairwise.db'}")
        await migrate(database)
        log = SessionLogService.create(database)
        pair = await a_pair(log, "ada", "bo")
        sid = await a_session(log, pair, T0, fallback=True)
        await log.feedback.submit(pair, sid, "bo", 3, good_fit=False)
        await database.close()

    asyncio.run(seed())
    out = tmp_path / "out" / "health.html"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "server",
            "report",
            "--data-dir",
            str(data_dir),
            "--out",
            str(out),
            "--quiet-days",
            "7",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    html = out.read_text()
    assert html.startswith("<!doctype html>") and html.count("<svg") == 3
    assert "video→audio" in html and "Ada &amp; Bo" in html  # the flagged pair, escaped
    assert (
        "<script" not in html
        and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
        and "https://" not in html
    )
    bad = subprocess.run(
        [sys.executable, "-m", "server", "report", "--quiet-days", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "quiet-days" in bad.stderr
