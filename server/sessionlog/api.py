"""REST for the session log: pairs, sessions and their timelines, agenda, goals, feedback,
exports and program health.

Operators authenticate with the admin key; members with their join token for the pair's
room (`Authorization: Bearer <join token>`), which says who they are. Who may call each
route is declared on it (`access=`) and checked by `server.api.access` before the handler;
`server.api.pair_access` narrows it to the path's pair, and what a caller then sees of a
pair is decided in `server.sessionlog.privacy`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from server.api.access import Access
from server.api.http import RouteTable, json_response, path_id, read_body
from server.api.pair_access import pair_json, pair_seen, pair_written, viewer_of
from server.errors import Forbidden, InvalidInput
from server.pairs.model import Member, Pair, PairStatus
from server.rooms.chat import ChatMessage
from server.rooms.ids import IDENTITY_PATTERN, ROOM_PATTERN
from server.sessionlog import export
from server.sessionlog.privacy import (
    Viewer,
    is_pair_member,
    sees_feedback,
)
from server.sessionlog.program_health import DEFAULT_QUIET_DAYS, program_health
from server.sessionlog.service import SessionLogService
from server.sessionlog.sessions import Session, SessionDetail
from server.webhooks import api as webhooks
from server.webhooks.events import feedback_flagged, pair_published

routes = RouteTable()
SESSIONLOG = web.AppKey("sessionlog", SessionLogService)
M = TypeVar("M", bound=BaseModel)

PREFIX = "/api/v1"
TAGS = ("sessionlog",)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MemberIn(Body):
    identity: str = Field(pattern=IDENTITY_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    role: Literal["mentor", "mentee"]


class PairIn(Body):
    members: list[MemberIn] = Field(min_length=2, max_length=8)
    room: str | None = Field(None, pattern=ROOM_PATTERN)
    title: str | None = Field(None, min_length=1, max_length=200)


class AgendaIn(Body):
    text: str = Field(min_length=1, max_length=1000)


class AgendaPatch(Body):
    done: bool


class GoalIn(Body):
    title: str = Field(min_length=1, max_length=200)
    due_date: str | None = Field(None, description="ISO date, e.g. 2025-03-31")
    progress: int = Field(0, ge=0, le=100)
    status: Literal["open", "done", "dropped"] = "open"


class GoalPatch(Body):
    title: str | None = Field(None, min_length=1, max_length=200)
    due_date: str | None = None
    progress: int | None = Field(None, ge=0, le=100)
    status: Literal["open", "done", "dropped"] | None = None


class NoteIn(Body):
    text: str = Field(min_length=1, max_length=4000)


class FeedbackIn(Body):
    rating: int = Field(ge=1, le=5, description="1 (poor) to 5 (great)")
    comment: str | None = Field(None, max_length=4000)
    good_fit: bool = Field(True, description="false: 'not a good fit' flags the pair")


class SettingsIn(Body):
    operators_read_chat: bool


def _log(request: web.Request) -> SessionLogService:
    return request.app[SESSIONLOG]


async def _member_write(request: web.Request, model: type[M]) -> tuple[Viewer, Pair, M]:
    """A write to a pair's log: who (a member of the pair), which pair, the validated body."""
    viewer, pair = await pair_written(request, _log(request).pairs)
    return viewer, pair, await read_body(request, model)


async def _transcript(
    log: SessionLogService, viewer: Viewer, pair: Pair, session: Session, purpose: str
) -> list[ChatMessage] | None:
    """The session's chat, or None if the viewer may not read it. Operator reads go to the
    audit log, and so do refusals when the transcript itself was asked for."""
    allowed = await log.privacy.may_read_chat(viewer, pair)
    if not allowed and purpose != "transcript":
        return None  # a session detail without its chat: nothing was read or refused
    messages = await log.sessions.transcript(session) if allowed else []
    await log.privacy.audit(
        viewer,
        purpose=purpose,
        granted=allowed,
        messages=len(messages),
        pair_id=pair.id,
        session_id=session.id,
    )
    return messages if allowed else None


def _data(value: Any) -> Any:
    return dataclasses.asdict(value)


def session_json(session: Session) -> dict[str, Any]:
    return {
        **_data(session),
        "duration_seconds": session.duration_seconds,
        "in_progress": session.in_progress,
    }


def detail_json(detail: SessionDetail) -> dict[str, Any]:
    return {
        "session": session_json(detail.session),
        "attendance": [_data(a) for a in detail.attendance],
        "media_path": {k: [_data(s) for s in v] for k, v in detail.media_path.items()},
        "quality": [_data(q) for q in detail.quality],
        "timeline": [_data(t) for t in detail.timeline],
        "notes": [_data(n) for n in detail.notes],
        "agenda_done": list(detail.agenda_done),
        "fallback_steps": list(detail.fallback_steps),
    }


# --- pairs ---------------------------------------------------------------------------------


@routes.route(
    "POST",
    f"{PREFIX}/pairs",
    summary="Create a mentoring pair (operator)",
    body=PairIn,
    status=201,
    access=Access.MANAGER,
    errors=(409,),
    tags=TAGS,
)
async def create_pair(request: web.Request) -> web.Response:
    body = await read_body(request, PairIn)
    pair = await _log(request).pairs.create(
        [Member(m.identity, m.name, m.role) for m in body.members], room=body.room, title=body.title
    )
    await webhooks.emit(request, pair_published(pair))
    return json_response(pair_json(pair), status=201)


@routes.route(
    "GET",
    f"{PREFIX}/pairs",
    summary="List mentoring pairs (operator)",
    access=Access.MANAGER,
    tags=TAGS,
)
async def list_pairs(request: web.Request) -> web.Response:
    wanted = request.query.get("status")
    try:
        status = PairStatus(wanted) if wanted else None
    except ValueError:
        known = ", ".join(PairStatus)
        raise InvalidInput(f"status must be one of {known}, not {wanted!r}") from None
    return json_response({"pairs": [pair_json(p) for p in await _log(request).pairs.list(status)]})


@routes.route(
    "GET",
    f"{PREFIX}/me/pairs",
    summary="The pairs the join token's holder is in",
    errors=(401, 422),
    access=Access.MEMBER,
    tags=TAGS,
)
async def my_pairs(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    found = await _log(request).pairs.of_identity(viewer.identity)
    mine = [pair_json(p, viewer) for p in found if is_pair_member(viewer, p)]
    return json_response({"identity": viewer.identity, "pairs": mine})


@routes.route(
    "GET",
    f"{PREFIX}/pairs/{{pair_id}}",
    summary="One pair",
    errors=(401, 403, 404),
    access=Access.PAIR,
    tags=TAGS,
)
async def get_pair(request: web.Request) -> web.Response:
    viewer, pair = await pair_seen(request, _log(request).pairs)
    current = await _log(request).sessions.current(pair.id)
    return json_response(
        {**pair_json(pair, viewer), "current_session": session_json(current) if current else None}
    )


# --- sessions ------------------------------------------------------------------------------


@routes.route(
    "GET",
    f"{PREFIX}/pairs/{{pair_id}}/sessions",
    summary="A pair's sessions",
    errors=(401, 403, 404),
    access=Access.PAIR,
    tags=TAGS,
)
async def list_sessions(request: web.Request) -> web.Response:
    _, pair = await pair_seen(request, _log(request).pairs)
    found = await _log(request).sessions.of_pair(pair.id)
    return json_response(
        {
            "sessions": [
                {
                    **session_json(s.session),
                    "participants": list(s.participants),
                    "fallback_steps": list(s.fallback_steps),
                }
                for s in found
            ]
        }
    )


@routes.route(
    "GET",
    f"{PREFIX}/pairs/{{pair_id}}/sessions/{{session_id}}",
    summary="A session's log: attendance, media path, quality, timeline, transcript",
    errors=(401, 403, 404),
    access=Access.PAIR,
    tags=TAGS,
)
async def session_detail(request: web.Request) -> web.Response:
    viewer, pair = await pair_seen(request, _log(request).pairs)
    log = _log(request)
    detail = await log.sessions.detail(pair.id, path_id(request, "session_id"))
    payload = detail_json(detail)
    payload["chat_messages"] = await log.sessions.message_count(detail.session)
    messages = await _transcript(log, viewer, pair, detail.session, "session_detail")
    payload["transcript"] = None if messages is None else [m.to_wire() for m in messages]
    return json_response(payload)


@routes.route(
    "GET",
    f"{PREFIX}/pairs/{{pair_id}}/sessions/{{session_id}}/transcript",
    summary="A session's chat transcript (operators only if the program allows it)",
    errors=(401, 403, 404),
    access=Access.PAIR,
    tags=TAGS,
)
async def session_transcript(request: web.Request) -> web.Response:
    viewer, pair = await pair_seen(request, _log(request).pairs)
    log = _log(request)
    session = await log.sessions.get(pair.id, path_id(request, "session_id"))
    messages = await _transcript(log, viewer, pair, session, "transcript")
    if messages is None:
        raise Forbidden("the program does not let operators read chat", code="chat_private")
    return json_response({"messages": [m.to_wire() for m in messages]})


@routes.route(
    "POST",
    f"{PREFIX}/pairs/{{pair_id}}/sessions/{{session_id}}/notes",
    summary="Add a note to a session (members)",
    body=NoteIn,
    status=201,
    errors=(401, 403, 404),
    access=Access.MEMBER,
    tags=TAGS,
)
async def add_note(request: web.Request) -> web.Response:
    viewer, pair, body = await _member_write(request, NoteIn)
    note = await _log(request).sessions.add_note(
        pair.id, path_id(request, "session_id"), viewer.identity, body.text
    )
    return json_response(_data(note), status=201)


@routes.route(
    "POST",
    f"{PREFIX}/pairs/{{pair_id}}/sessions/{{session_id}}/feedback",
    summary="Rate a session 1–5, once per member",
    body=FeedbackIn,
    status=201,
    errors=(401, 403, 404, 409),
    access=Access.MEMBER,
    tags=TAGS,
)
async def give_feedback(request: web.Request) -> web.Response:
    viewer, pair, body = await _member_write(request, FeedbackIn)
    feedback = await _log(request).feedback.submit(
        pair,
        path_id(request, "session_id"),
        viewer.identity,
        body.rating,
        body.comment,
        body.good_fit,
    )
    if not feedback.good_fit:
        await webhooks.emit(request, feedback_flagged(pair, feedback.id, feedback.created_at))
    return json_response(_data(feedback), status=201)


@routes.route(
    "GET",
    f"{PREFIX}/pairs/{{pair_id}}/feedback",
    summary="Feedback on a pair's sessions (members see their own)",
    errors=(401, 403, 404),
    access=Access.PAIR,
    tags=TAGS,
)
async def list_feedback(request: web.Request) -> web.Response:
    viewer, pair = await pair_seen(request, _log(request).pairs)
    found = await _log(request).feedback.of_pair(pair.id)
    return json_response(
        {"feedback": [_data(f) for f in found if sees_feedback(viewer, f.identity)]}
    )


# --- agenda and goals ----------------------------------------------------------------------


@routes.route(
    "GET",
    f"{PREFIX}/pairs/{{pair_id}}/agenda",
    summary="The agenda: open items (carried over ones included); ?all=1 adds done",
    errors=(401, 403, 404),
    access=Access.PAIR,
    tags=TAGS,
)
async def list_agenda(request: web.Request) -> web.Response:
    _, pair = await pair_seen(request, _log(request).pairs)
    include_done = request.query.get("all") in ("1", "true")
    items = await _log(request).agenda.items(pair.id, include_done)
    return json_response({"items": [{**_data(i), "done": i.done} for i in items]})


@routes.route(
    "POST",
    f"{PREFIX}/pairs/{{pair_id}}/agenda",
    summary="Add an agenda item",
    body=AgendaIn,
    status=201,
    errors=(401, 403, 404),
    access=Access.MEMBER,
    tags=TAGS,
)
async def add_agenda(request: web.Request) -> web.Response:
    viewer, pair, body = await _member_write(request, AgendaIn)
    await _log(request).pairs.require_open_room(pair.room)  # an ended pair's agenda is read-only
    item = await _log(request).agenda.add(pair.id, body.text, viewer.identity)
    return json_response({**_data(item), "done": item.done}, status=201)


@routes.route(
    "PATCH",
    f"{PREFIX}/pairs/{{pair_id}}/agenda/{{item_id}}",
    summary="Tick an agenda item off (in the session in progress) or reopen it",
    body=AgendaPatch,
    errors=(401, 403, 404),
    access=Access.MEMBER,
    tags=TAGS,
)
async def tick_agenda(request: web.Request) -> web.Response:
    viewer, pair, body = await _member_write(request, AgendaPatch)
    log = _log(request)
    await log.pairs.require_open_room(pair.room)
    current = await log.sessions.current(pair.id)
    item = await log.agenda.tick(
        pair.id,
        path_id(request, "item_id"),
        viewer.identity,
        body.done,
        current.id if current else None,
    )
    return json_response({**_data(item), "done": item.done})


@routes.route(
    "GET",
    f"{PREFIX}/pairs/{{pair_id}}/goals",
    summary="A pair's goals",
    errors=(401, 403, 404),
    access=Access.PAIR,
    tags=TAGS,
)
async def list_goals(request: web.Request) -> web.Response:
    _, pair = await pair_seen(request, _log(request).pairs)
    return json_response({"goals": [_data(g) for g in await _log(request).goals.of_pair(pair.id)]})


@routes.route(
    "POST",
    f"{PREFIX}/pairs/{{pair_id}}/goals",
    summary="Add a goal or milestone",
    body=GoalIn,
    status=201,
    errors=(401, 403, 404),
    access=Access.MEMBER,
    tags=TAGS,
)
async def add_goal(request: web.Request) -> web.Response:
    viewer, pair, body = await _member_write(request, GoalIn)
    goal = await _log(request).goals.add(
        pair.id, body.title, viewer.identity, body.due_date, body.progress, body.status
    )
    return json_response(_data(goal), status=201)


@routes.route(
    "PATCH",
    f"{PREFIX}/pairs/{{pair_id}}/goals/{{goal_id}}",
    summary="Update a goal's title, due date, progress or status",
    body=GoalPatch,
    errors=(401, 403, 404),
    access=Access.MEMBER,
    tags=TAGS,
)
async def update_goal(request: web.Request) -> web.Response:
    viewer, pair, body = await _member_write(request, GoalPatch)
    goal = await _log(request).goals.update(
        pair.id, path_id(request, "goal_id"), **body.model_dump(exclude_none=True)
    )
    return json_response(_data(goal))


# --- exports, health, program settings ----------------------------------------------------


def _export_response(request: web.Request, tables: export.Tables, stem: str) -> web.Response:
    fmt = request.query.get("format", "json")
    if fmt == "json":
        text, content_type = export.to_json(tables), "application/json"
    elif fmt == "csv":
        text, content_type = export.to_csv(tables), "text/csv"
    else:
        raise InvalidInput("format is json or csv")
    return web.Response(
        text=text,
        content_type=content_type,
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{stem}.{fmt}"'},
    )


async def _with_transcript(request: web.Request, viewer: Viewer, pair: Pair | None) -> bool:
    log = _log(request)
    if pair is not None:
        return await log.privacy.may_read_chat(viewer, pair)
    return await log.privacy.operators_read_chat()


@routes.route(
    "GET",
    f"{PREFIX}/pairs/{{pair_id}}/export",
    summary="A pair's whole log as JSON or CSV (?format=json|csv)",
    errors=(401, 403, 404, 422),
    access=Access.PAIR,
    tags=TAGS,
)
async def export_pair(request: web.Request) -> web.Response:
    viewer, pair = await pair_seen(request, _log(request).pairs)
    allowed = await _with_transcript(request, viewer, pair)
    tables = await export.collect(_log(request).database, [pair.id], allowed, viewer)
    if allowed:
        await _log(request).privacy.audit(
            viewer,
            purpose="export",
            granted=True,
            messages=len(tables["transcript"]),
            pair_id=pair.id,
        )
    return _export_response(request, tables, f"pair-{pair.id}")


@routes.route(
    "GET",
    f"{PREFIX}/program/export",
    summary="The whole program's log as JSON or CSV (operator)",
    access=Access.VIEWER,
    errors=(422,),
    tags=TAGS,
)
async def export_program(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    allowed = await _with_transcript(request, viewer, None)
    tables = await export.collect(_log(request).database, None, allowed, viewer)
    if allowed:
        await _log(request).privacy.audit(
            viewer, purpose="program_export", granted=True, messages=len(tables["transcript"])
        )
    return _export_response(request, tables, "program")


@routes.route(
    "GET",
    f"{PREFIX}/program/health",
    summary="Program health (?quiet_days=N for the going-quiet alert)",
    access=Access.VIEWER,
    tags=TAGS,
)
async def health(request: web.Request) -> web.Response:
    raw = request.query.get("quiet_days", str(DEFAULT_QUIET_DAYS))
    if not raw.isdigit() or not 1 <= int(raw) <= 365:
        raise InvalidInput("quiet_days is a whole number of days from 1 to 365")
    report = await program_health(_log(request).database, quiet_days=int(raw))
    payload = _data(report)
    payload["weeks"] = [{**_data(w), "fallback_rate": w.fallback_rate} for w in report.weeks]
    return json_response(payload)


@routes.route(
    "GET",
    f"{PREFIX}/program/settings",
    summary="Session-log program settings",
    access=Access.ADMIN,
    tags=TAGS,
)
async def get_settings(request: web.Request) -> web.Response:
    allowed = await _log(request).privacy.operators_read_chat()
    return json_response({"operators_read_chat": allowed})


@routes.route(
    "PUT",
    f"{PREFIX}/program/settings",
    summary="Change session-log program settings",
    body=SettingsIn,
    access=Access.ADMIN,
    tags=TAGS,
)
async def put_settings(request: web.Request) -> web.Response:
    body = await read_body(request, SettingsIn)
    await _log(request).privacy.set_operators_read_chat(body.operators_read_chat)
    return json_response({"operators_read_chat": body.operators_read_chat})


@routes.route(
    "GET",
    f"{PREFIX}/program/transcript-reads",
    summary="The audit log of operator transcript reads",
    access=Access.ADMIN,
    tags=TAGS,
)
async def transcript_reads(request: web.Request) -> web.Response:
    reads = await _log(request).privacy.reads()
    return json_response({"reads": [_data(r) for r in reads]})
