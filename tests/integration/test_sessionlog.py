"""The session log through a real server, real Socket.IO participants and the REST API."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import aiohttp
import pytest

from server.config import Settings
from server.rooms.events import MediaQualitySampled
from server.sessionlog import export
from server.sessionlog.privacy import Viewer
from tests.conftest import ADMIN
from tests.support.participants import SocketParticipant
from tests.support.parts import ServerParts
from tests.support.waiting import eventually

GRACE = 0.5


@dataclass
class Program:
    """A running server, an HTTP session to it, and the participants a test connected."""

    url: str
    services: ServerParts
    http: aiohttp.ClientSession
    people: list[SocketParticipant] = field(default_factory=list)

    def token(self, room: str, identity: str, role: str = "mentee") -> str:
        return self.services.tokens.issue(room, identity, identity.title(), role)[0]  # type: ignore[arg-type]

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def call(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: Any = None
    ) -> tuple[int, Any]:
        async with self.http.request(method, self.url + path, headers=headers, json=body) as resp:
            if resp.content_type == "application/json":
                return resp.status, await resp.json()
            return resp.status, await resp.text()

    async def ok(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: Any = None,
        status: int = 200,
    ) -> Any:
        got, payload = await self.call(method, path, headers, body)
        assert got == status, payload
        return payload

    async def pair(self, mentor: str, mentee: str) -> dict[str, Any]:
        return await self.ok(
            "POST",
            "/api/v1/pairs",
            ADMIN,
            {
                "members": [
                    {"identity": mentor, "name": mentor.title(), "role": "mentor"},
                    {"identity": mentee, "name": mentee.title(), "role": "mentee"},
                ],
                "room": f"room-{mentor}-{mentee}",
            },
            status=201,
        )

    async def connect(
        self,
        room: str,
        identity: str,
        role: str = "mentee",
        join: bool = True,
        media_mode: str = "video",
    ) -> SocketParticipant:
        person = await SocketParticipant(self.url, self.token(room, identity, role)).connect()
        self.people.append(person)
        if join:
            await person.join(media_mode=media_mode)
        return person

    async def until_sessions(self, pair_id: str, count: int) -> list[dict[str, Any]]:
        """Wait until the pair's log lists `count` sessions (the bus is asynchronous)."""

        async def listed() -> list[dict[str, Any]] | None:
            found = (await self.ok("GET", f"/api/v1/pairs/{pair_id}/sessions", ADMIN))["sessions"]
            return list(found) if len(found) >= count else None

        return await eventually(listed, what=f"pair {pair_id} having {count} sessions")

    async def text(self, path: str, headers: dict[str, str]) -> str:
        async with self.http.get(self.url + path, headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.text()

    async def sessions(self, pair_id: str, token: str) -> list[dict[str, Any]]:
        payload = await self.ok("GET", f"/api/v1/pairs/{pair_id}/sessions", self.auth(token))
        return list(payload["sessions"])

    async def until_closed(self, pair_id: str, count: int) -> list[dict[str, Any]]:
        """Wait until the pair has `count` sessions and none is in progress."""

        async def closed() -> list[dict[str, Any]] | None:
            found = (await self.ok("GET", f"/api/v1/pairs/{pair_id}/sessions", ADMIN))["sessions"]
            done = len(found) == count and not any(s["in_progress"] for s in found)
            return list(found) if done else None

        return await eventually(closed, what=f"pair {pair_id}'s {count} sessions closed")


@pytest.fixture
async def program(
    aiohttp_server: Any, make_settings: Callable[..., Settings]
) -> AsyncIterator[Program]:
    from server.app import create_app

    server = await aiohttp_server(create_app(make_settings(room_grace_seconds=GRACE)))
    async with aiohttp.ClientSession() as http:
        running = Program(str(server.make_url("")).rstrip("/"), ServerParts(server.app), http)
        yield running
        for person in running.people:
            await person.close()


async def test_a_scripted_session_is_logged_as_it_happened(program: Program) -> None:
    pair = await program.pair("ada", "bo")
    room = pair["room"]
    ada_token = program.token(room, "ada", "mentor")

    t_ada_in = time.time()
    ada = await program.connect(room, "ada", "mentor")
    t_ada_joined = time.time()
    bo = await program.connect(room, "bo")
    t_bo_joined = time.time()
    await ada.chat("Welcome! What shall we work on?", "a1")
    await bo.chat("Interview practice, please", "b1")
    assert (await bo.call("media_mode", {"mode": "audio", "reason": "camera_denied"})) == {
        "mode": "audio"
    }
    assert (await bo.call("media_mode", {"mode": "text", "reason": "ice_failed"})) == {
        "mode": "text"
    }
    bus = program.services.bus
    for kbps, loss, rtt in ((800.0, 1.0, 40.0), (1200.0, 3.0, 60.0), (1000.0, 2.0, None)):
        bus.publish(
            MediaQualitySampled(
                room,
                identity="ada",
                inbound_kbps=kbps,
                outbound_kbps=kbps / 2,
                loss_percent=loss,
                rtt_ms=rtt,
            )
        )
    await bo.chat("Typing from here on", "b2")

    t_bo_leave = time.time()
    await bo.call("leave")
    t_bo_left = time.time()
    t_ada_leave = time.time()
    await ada.call("leave")
    t_ada_left = time.time()

    [summary] = await program.until_closed(pair["id"], 1)
    assert summary["participants"] == ["ada", "bo"]
    assert summary["fallback_steps"] == ["video→audio", "audio→text"]
    detail = await program.ok(
        "GET", f"/api/v1/pairs/{pair['id']}/sessions/{summary['id']}", program.auth(ada_token)
    )
    session = detail["session"]
    assert t_ada_in <= session["started_at"] <= t_ada_joined
    assert t_ada_leave <= session["ended_at"] <= t_ada_left
    assert session["closed_at"] >= session["ended_at"] + GRACE - 0.05
    assert session["duration_seconds"] == pytest.approx(t_ada_left - t_ada_in, abs=1.0)

    attendance = {a["identity"]: a for a in detail["attendance"]}
    assert set(attendance) == {"ada", "bo"}
    assert attendance["ada"]["role"] == "mentor" and attendance["bo"]["role"] == "mentee"
    [bo_stay] = attendance["bo"]["intervals"]
    assert t_ada_joined <= bo_stay["joined_at"] <= t_bo_joined
    assert t_bo_leave <= bo_stay["left_at"] <= t_bo_left and bo_stay["leave_reason"] == "left"
    assert attendance["bo"]["seconds_present"] == pytest.approx(t_bo_left - t_ada_joined, abs=1.0)
    assert attendance["ada"]["seconds_present"] == pytest.approx(
        session["duration_seconds"], abs=0.01
    )

    path = [(s["mode"], s["previous"], s["reason"]) for s in detail["media_path"]["bo"]]
    assert path == [
        ("video", None, "joined"),
        ("audio", "video", "camera_denied"),
        ("text", "audio", "ice_failed"),
    ]
    segments = detail["media_path"]["bo"]
    assert all(a["ended_at"] == b["started_at"] for a, b in pairwise(segments))
    assert segments[-1]["ended_at"] == bo_stay["left_at"]
    assert [(s["mode"], s["reason"]) for s in detail["media_path"]["ada"]] == [("video", "joined")]

    quality = {q["identity"]: q for q in detail["quality"]}
    assert quality["ada"]["samples"] == 3
    assert quality["ada"]["median_inbound_kbps"] == 1000.0
    assert quality["ada"]["median_outbound_kbps"] == 500.0
    assert quality["ada"]["median_loss_percent"] == 2.0
    assert quality["ada"]["median_rtt_ms"] == 50.0
    assert quality["bo"]["samples"] == 0 and quality["bo"]["reconnects"] == 0

    assert [(m["from"]["identity"], m["text"]) for m in detail["transcript"]] == [
        ("ada", "Welcome! What shall we work on?"),
        ("bo", "Interview practice, please"),
        ("bo", "Typing from here on"),
    ]
    assert detail["chat_messages"] == 3
    kinds = [(t["kind"], t["identity"]) for t in detail["timeline"]]
    assert kinds == [
        ("started", None),
        ("joined", "ada"),
        ("joined", "bo"),
        ("media_mode", "bo"),
        ("media_mode", "bo"),
        ("left", "bo"),
        ("left", "ada"),
        ("ended", None),
    ]
    assert detail["timeline"][3]["detail"] == "video→audio: camera_denied"


async def test_a_reconnect_inside_the_grace_period_keeps_the_session(program: Program) -> None:
    pair = await program.pair("cy", "di")
    room = pair["room"]
    first = await program.connect(room, "cy", "mentor")
    standby = await program.connect(room, "cy", "mentor", join=False)
    await first.drop()  # the connection drops; the room is empty, the grace period runs
    await standby.join(media_mode="audio")
    # The same person on a second device replaces the connection: still one stay.
    replacement = await program.connect(room, "cy", "mentor", media_mode="audio")
    await replacement.call("leave")

    [session] = await program.until_closed(pair["id"], 1)
    detail = await program.ok("GET", f"/api/v1/pairs/{pair['id']}/sessions/{session['id']}", ADMIN)
    [cy] = detail["attendance"]
    assert [i["leave_reason"] for i in cy["intervals"]] == ["disconnected", "left"]
    assert [t["detail"] for t in detail["timeline"] if t["kind"] == "reconnected"] == [
        "rejoined after disconnect",
        "connection replaced",
    ]
    assert detail["quality"][0]["reconnects"] == 2
    assert [(s["mode"], s["reason"]) for s in detail["media_path"]["cy"]] == [
        ("video", "joined"),
        ("audio", "joined"),
    ]

    # After the grace period the room closed: the next join is a new session.
    again = await program.connect(room, "di")
    await again.call("leave")
    sessions = await program.until_closed(pair["id"], 2)
    assert [s["participants"] for s in sessions] == [["di"], ["cy"]]  # newest first
    assert sessions[0]["started_at"] > sessions[1]["closed_at"]


async def test_agenda_items_carry_over_until_ticked_off(program: Program) -> None:
    pair = await program.pair("ed", "flo")
    pid, room = pair["id"], pair["room"]
    ed, flo = (
        program.auth(program.token(room, "ed", "mentor")),
        program.auth(program.token(room, "flo")),
    )
    first = await program.ok(
        "POST",
        f"/api/v1/pairs/{pid}/agenda",
        flo,
        {"text": "How do I ask for a raise?"},
        status=201,
    )
    second = await program.ok(
        "POST", f"/api/v1/pairs/{pid}/agenda", flo, {"text": "Reading list"}, status=201
    )
    assert first["added_by"] == "flo" and first["done"] is False

    person = await program.connect(room, "ed", "mentor")
    await program.until_sessions(pid, 1)  # the recorder has opened the session
    ticked = await program.ok(
        "PATCH", f"/api/v1/pairs/{pid}/agenda/{first['id']}", ed, {"done": True}
    )
    await person.call("leave")
    [s1] = await program.until_closed(pid, 1)
    assert ticked["done"] is True and ticked["done_session_id"] == s1["id"]

    agenda = await program.ok("GET", f"/api/v1/pairs/{pid}/agenda", flo)
    assert [(i["text"], i["carried_over"]) for i in agenda["items"]] == [("Reading list", 1)]
    everything = await program.ok("GET", f"/api/v1/pairs/{pid}/agenda?all=1", flo)
    assert [i["text"] for i in everything["items"]] == ["Reading list", "How do I ask for a raise?"]
    detail = await program.ok("GET", f"/api/v1/pairs/{pid}/sessions/{s1['id']}", ed)
    assert detail["agenda_done"] == ["How do I ask for a raise?"]

    person = await program.connect(room, "flo")
    await program.until_sessions(pid, 2)
    await program.ok("PATCH", f"/api/v1/pairs/{pid}/agenda/{second['id']}", flo, {"done": True})
    await person.call("leave")
    s2, _ = await program.until_closed(pid, 2)
    assert (await program.ok("GET", f"/api/v1/pairs/{pid}/agenda", flo))["items"] == []
    detail = await program.ok("GET", f"/api/v1/pairs/{pid}/sessions/{s2['id']}", ed)
    assert detail["agenda_done"] == ["Reading list"]


async def _one_session(program: Program, pair: dict[str, Any], identity: str) -> int:
    person = await program.connect(pair["room"], identity)
    await person.chat("a private word", f"{identity}-1")
    await person.call("leave")
    found = await program.until_closed(pair["id"], 1)
    return int(found[0]["id"])


async def test_feedback_once_per_member_and_a_bad_fit_flags_the_pair(program: Program) -> None:
    pair = await program.pair("gus", "hal")
    pid = pair["id"]
    sid = await _one_session(program, pair, "hal")
    gus = program.auth(program.token(pair["room"], "gus", "mentor"))
    hal = program.auth(program.token(pair["room"], "hal"))
    path = f"/api/v1/pairs/{pid}/sessions/{sid}/feedback"

    given = await program.ok("POST", path, gus, {"rating": 5, "comment": "Great start"}, status=201)
    assert given["rating"] == 5 and given["good_fit"] is True
    status, error = await program.call("POST", path, gus, {"rating": 4})
    assert status == 409 and error["error"]["code"] == "duplicate_feedback"
    for bad in ({"rating": 6}, {"rating": 0}, {"rating": "five"}, {"comment": "no rating"}):
        status, error = await program.call("POST", path, hal, bad)
        assert status == 422 and error["error"]["message"], bad
    assert (await program.ok("GET", f"/api/v1/pairs/{pid}", ADMIN))["flagged"] is False

    await program.ok("POST", path, hal, {"rating": 2, "good_fit": False}, status=201)
    flagged = await program.ok("GET", f"/api/v1/pairs/{pid}", ADMIN)
    assert flagged["flagged"] is True and "hal" in flagged["flag_reason"]

    everything = await program.ok("GET", f"/api/v1/pairs/{pid}/feedback", ADMIN)
    assert sorted((f["identity"], f["rating"]) for f in everything["feedback"]) == [
        ("gus", 5),
        ("hal", 2),
    ]
    own = await program.ok("GET", f"/api/v1/pairs/{pid}/feedback", hal)
    assert [f["identity"] for f in own["feedback"]] == ["hal"]

    health = await program.ok("GET", "/api/v1/program/health", ADMIN)
    assert health["rating_distribution"] == {"1": 0, "2": 1, "3": 0, "4": 0, "5": 1}
    assert health["average_rating"] == 3.5
    assert [f["pair_id"] for f in health["flagged"]] == [pid]


async def test_bad_input_gets_clear_errors_and_stores_nothing(program: Program) -> None:
    pair = await program.pair("ida", "jo")
    pid = pair["id"]
    ida = program.auth(program.token(pair["room"], "ida", "mentor"))
    cases: list[tuple[str, str, Any, int]] = [
        ("GET", "/api/v1/pairs/no-such-pair/sessions", None, 404),
        ("POST", "/api/v1/pairs/no-such-pair/agenda", {"text": "x"}, 404),
        ("GET", f"/api/v1/pairs/{pid}/sessions/999", None, 404),
        ("GET", f"/api/v1/pairs/{pid}/sessions/abc", None, 404),
        ("POST", f"/api/v1/pairs/{pid}/sessions/999/feedback", {"rating": 3}, 404),
        ("POST", f"/api/v1/pairs/{pid}/agenda", {"text": ""}, 422),
        ("POST", f"/api/v1/pairs/{pid}/agenda", {"text": "   "}, 422),
        ("PATCH", f"/api/v1/pairs/{pid}/agenda/77", {"done": True}, 404),
        ("POST", f"/api/v1/pairs/{pid}/goals", {"title": "Ship", "progress": 101}, 422),
        ("POST", f"/api/v1/pairs/{pid}/goals", {"title": "Ship", "due_date": "soon"}, 422),
        ("POST", f"/api/v1/pairs/{pid}/goals", {"title": "Ship", "status": "maybe"}, 422),
    ]
    for method, path, body, expected in cases:
        status, payload = await program.call(method, path, ida, body)
        assert status == expected, (method, path, payload)
        assert payload["error"]["code"] and payload["error"]["message"]
    status, _ = await program.call(
        "POST",
        "/api/v1/pairs",
        ADMIN,
        {"members": [{"identity": "ida", "name": "Ida", "role": "mentor"}]},
    )
    assert status == 422
    status, _ = await program.call(
        "POST",
        "/api/v1/pairs",
        ADMIN,
        {
            "members": [
                {"identity": "x", "name": "X", "role": "mentor"},
                {"identity": "y", "name": "Y", "role": "mentee"},
            ],
            "room": pair["room"],
        },
    )
    assert status == 409
    assert (await program.ok("GET", f"/api/v1/pairs/{pid}/agenda?all=1", ida))["items"] == []
    assert (await program.ok("GET", f"/api/v1/pairs/{pid}/goals", ida))["goals"] == []
    assert len((await program.ok("GET", "/api/v1/pairs", ADMIN))["pairs"]) == 1
    # A status filter names a status that exists; an unknown one is refused, not "no pairs".
    status, payload = await program.call("GET", "/api/v1/pairs?status=ended", ADMIN)
    assert status == 422 and "active, unpublished" in payload["error"]["message"], payload
    active = (await program.ok("GET", "/api/v1/pairs?status=active", ADMIN))["pairs"]
    assert [p["id"] for p in active] == [pid]
    assert (await program.ok("GET", "/api/v1/pairs?status=unpublished", ADMIN))["pairs"] == []

    goal = await program.ok(
        "POST",
        f"/api/v1/pairs/{pid}/goals",
        ida,
        {"title": "Ship a side project", "due_date": "2030-06-30"},
        status=201,
    )
    moved = await program.ok(
        "PATCH", f"/api/v1/pairs/{pid}/goals/{goal['id']}", ida, {"progress": 40}
    )
    assert (moved["progress"], moved["status"], moved["due_date"]) == (40, "open", "2030-06-30")
    status, _ = await program.call(
        "PATCH", f"/api/v1/pairs/{pid}/goals/{goal['id']}", ida, {"progress": -1}
    )
    assert status == 422
    assert (await program.ok("GET", f"/api/v1/pairs/{pid}/goals", ida))["goals"] == [moved]


async def test_privacy_members_operators_and_the_audit_log(program: Program) -> None:
    mine = await program.pair("kim", "lu")
    other = await program.pair("max", "ned")
    sid = await _one_session(program, mine, "lu")
    lu = program.auth(program.token(mine["room"], "lu"))
    stranger = program.auth(program.token(other["room"], "max", "mentor"))
    base = f"/api/v1/pairs/{mine['id']}"
    for method, path, body in [
        ("GET", base, None),
        ("GET", f"{base}/sessions", None),
        ("GET", f"{base}/sessions/{sid}", None),
        ("GET", f"{base}/sessions/{sid}/transcript", None),
        ("GET", f"{base}/agenda", None),
        ("POST", f"{base}/agenda", {"text": "snoop"}),
        ("GET", f"{base}/goals", None),
        ("GET", f"{base}/export", None),
        ("POST", f"{base}/sessions/{sid}/feedback", {"rating": 1}),
    ]:
        status, payload = await program.call(method, path, stranger, body)
        assert status == 403 and payload["error"]["code"] == "forbidden", (method, path)
    assert (await program.call("GET", f"{base}/sessions", None))[0] == 401
    assert (await program.call("GET", f"{base}/sessions", program.auth("garbage")))[0] == 401
    assert (await program.call("GET", "/api/v1/pairs", lu))[0] == 403
    assert (await program.call("GET", "/api/v1/program/health", stranger))[0] == 403
    mine_listed = await program.ok("GET", "/api/v1/me/pairs", stranger)
    assert [p["id"] for p in mine_listed["pairs"]] == [other["id"]]

    # The member reads the chat; that is their own conversation, not audited.
    member_view = await program.ok("GET", f"{base}/sessions/{sid}", lu)
    assert [m["text"] for m in member_view["transcript"]] == ["a private word"]
    # The operator sees the log and metrics but no chat text while the setting is off.
    assert (await program.ok("GET", "/api/v1/program/settings", ADMIN)) == {
        "operators_read_chat": False
    }
    operator_view = await program.ok("GET", f"{base}/sessions/{sid}", ADMIN)
    assert operator_view["transcript"] is None and operator_view["chat_messages"] == 1
    assert operator_view["attendance"][0]["identity"] == "lu"
    status, refused = await program.call(
        "GET", f"{base}/sessions/{sid}/transcript", {**ADMIN, "X-Pairwise-Operator": "olga"}
    )
    assert status == 403 and refused["error"]["code"] == "chat_private"
    operator_export = await program.text(f"{base}/export?format=csv", ADMIN)
    assert "transcript" not in export.from_csv(operator_export)
    assert "a private word" not in operator_export

    await program.ok("PUT", "/api/v1/program/settings", ADMIN, {"operators_read_chat": True})
    allowed = await program.ok(
        "GET", f"{base}/sessions/{sid}/transcript", {**ADMIN, "X-Pairwise-Operator": "olga"}
    )
    assert [m["text"] for m in allowed["messages"]] == ["a private word"]
    reads = (await program.ok("GET", "/api/v1/program/transcript-reads", ADMIN))["reads"]
    assert [
        (r["actor"], r["purpose"], r["granted"], r["messages"], r["session_id"])
        for r in reversed(reads)
    ] == [("olga", "transcript", False, 0, sid), ("olga", "transcript", True, 1, sid)]
    # With the setting on, the session detail carries the chat too, and that read is logged.
    shown = await program.ok("GET", f"{base}/sessions/{sid}", ADMIN)
    assert [m["text"] for m in shown["transcript"]] == ["a private word"]
    exported = await program.text(f"{base}/export?format=csv", ADMIN)
    assert "a private word" in exported
    reads = (await program.ok("GET", "/api/v1/program/transcript-reads", ADMIN))["reads"]
    assert [(r["actor"], r["purpose"], r["granted"]) for r in reads[:2]] == [
        ("admin-key", "export", True),
        ("admin-key", "session_detail", True),
    ]


async def test_exports_parse_back_to_the_same_data(program: Program) -> None:
    pair = await program.pair("oz", "pia")
    sid = await _one_session(program, pair, "pia")
    pia = program.auth(program.token(pair["room"], "pia"))
    pid = pair["id"]
    await program.ok(
        "POST", f"/api/v1/pairs/{pid}/agenda", pia, {"text": "Next: CV, review"}, status=201
    )
    await program.ok(
        "POST",
        f"/api/v1/pairs/{pid}/goals",
        pia,
        {"title": 'First "real" talk', "progress": 10},
        status=201,
    )
    await program.ok(
        "POST",
        f"/api/v1/pairs/{pid}/sessions/{sid}/notes",
        pia,
        {"text": "Line one\nline two, with a comma"},
        status=201,
    )
    await program.ok(
        "POST",
        f"/api/v1/pairs/{pid}/sessions/{sid}/feedback",
        pia,
        {"rating": 4, "comment": "Useful; thanks"},
        status=201,
    )

    from_json = export.from_json(await program.text(f"/api/v1/pairs/{pid}/export", pia))
    from_csv = export.from_csv(await program.text(f"/api/v1/pairs/{pid}/export?format=csv", pia))
    assert from_json == from_csv
    pia_view = Viewer.member("pia", pair["room"])
    assert from_json == await export.collect(program.services.database, [pid], True, pia_view)
    stored = await export.collect(program.services.database, [pid], True, Viewer.admin())
    assert export.from_csv(export.to_csv(stored)) == stored
    assert [s["id"] for s in from_csv["sessions"]] == [sid]
    assert [a["identity"] for a in from_csv["attendance"]] == ["pia"]
    assert from_csv["notes"][0]["text"] == "Line one\nline two, with a comma"
    assert from_csv["goals"][0]["title"] == 'First "real" talk'
    assert [m["text"] for m in from_csv["transcript"]] == ["a private word"]
    assert from_csv["quality_samples"] == [] and "quality_samples" in from_csv

    program_tables = export.from_csv(await program.text("/api/v1/program/export?format=csv", ADMIN))
    assert "transcript" not in program_tables
    assert [p["id"] for p in program_tables["pairs"]] == [pid]
    assert program_tables["feedback"] == stored["feedback"]
    status, error = await program.call("GET", f"/api/v1/pairs/{pid}/export?format=xml", pia)
    assert status == 422 and "csv" in error["error"]["message"]
