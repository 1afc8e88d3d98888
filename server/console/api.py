"""REST for the programme console (web/console/): what the console needs beyond the
matching, session-log, rooms and phone routes it calls as they are.

Programme managers run the cohort and its pairs (Access.MANAGER); a viewer reads health and
exports only, so of these routes only `me` (Access.VIEWER). A participant's sign-in link is
never handed to a manager (`access.may_copy_participant_links`).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError

from server.api.access import Access, actor_of, caller_of, may_copy_participant_links
from server.api.http import RouteTable, json_response, read_body
from server.api.keys import DATABASE, ROOMS, SETTINGS, SIGNIN
from server.console import activity, reach
from server.console.pairs import end, overview
from server.console.participants import Participants, rows_from_csv, rows_from_json
from server.errors import InvalidInput
from server.matching.runs import MatchingStore
from server.pairs.store import PairStore
from server.signaling.roster import RedisRoster
from server.signin.api import deactivate_participant, invite_members

routes = RouteTable()
ROSTER: web.AppKey[RedisRoster | None] = web.AppKey("roster")  # None: one node, no Redis
PREFIX = "/api/v1/console"
TAGS = ("console",)
MAX_TEXT = 10_000_000


class RowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    row: int = Field(ge=1, le=10_000_000, description="The row's number in the first import")
    fields: dict[str, Any] = Field(description="The row's columns, `email` included")


class ImportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["csv", "json", "rows"]
    text: str | None = Field(None, max_length=MAX_TEXT, description="csv or json: the file")
    rows: list[RowIn] | None = Field(None, description="rows: rows fixed in place")


class ProfileEdit(BaseModel):
    model_config = ConfigDict(extra="allow")  # a profile's fields, checked by the matching parser


def _participants(app: web.Application) -> Participants:
    database = app[DATABASE]
    return Participants(
        database, MatchingStore(database, app[SETTINGS].node_name), app[SIGNIN].accounts
    )


def _pairs(app: web.Application) -> PairStore:
    return PairStore(app[DATABASE])


@routes.route(
    "GET", f"{PREFIX}/me", access=Access.VIEWER, tags=TAGS,
    summary="Who the console's caller is: their label and operator role (admin, manager, viewer)",
)  # fmt: skip
async def whoami(request: web.Request) -> web.Response:
    caller = caller_of(request)
    role = caller.account.role if caller.account is not None else "admin"  # the admin key
    mail = request.app[SETTINGS].smtp_host is not None
    return json_response({"label": caller.label, "role": str(role), "mail": mail})


@routes.route(
    "GET", f"{PREFIX}/participants", access=Access.MANAGER, tags=TAGS,
    summary="Every participant's profile, active or deactivated, with when they were last "
    "invited and last signed in (null: never)",
)  # fmt: skip
async def list_participants(request: web.Request) -> web.Response:
    app = request.app
    people = await _participants(app).everyone()
    reached = await reach.by_identity(app[DATABASE])
    none: dict[str, float | None] = {"invited_at": None, "signed_in_at": None}
    return json_response(
        {"participants": [{**p, **reached.get(str(p.get("identity")), none)} for p in people]}
    )


@routes.route(
    "POST", f"{PREFIX}/participants/import", body=ImportIn, access=Access.MANAGER,
    errors=(400, 422), tags=TAGS,
    summary="Import profiles (CSV or JSON text, or rows fixed in place); good rows are stored, "
    "each bad row comes back with its error. An `email` column is kept for sign-in.",
)  # fmt: skip
async def import_participants(request: web.Request) -> web.Response:
    app = request.app
    body = await read_body(request, ImportIn)
    if body.format == "rows":
        if body.rows is None:
            raise InvalidInput("format rows needs `rows`")
        rows = [(r.row, r.fields) for r in body.rows]
    elif body.text is None:
        raise InvalidInput(f"format {body.format} needs `text`")
    elif body.format == "csv":
        rows = rows_from_csv(body.text)
    else:
        try:
            data = json.loads(body.text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"the JSON file is not valid JSON: {exc}", code="invalid_json"
            ) from None
        rows = rows_from_json(data)
    outcome = await _participants(app).import_rows(
        rows, may_change_email=may_copy_participant_links(caller_of(request))
    )
    await activity.note(
        app[DATABASE], actor_of(request), "console_import", None,
        {"imported": outcome.imported, "errors": outcome.errors},
    )  # fmt: skip
    return json_response(
        {"imported": outcome.imported, "errors": outcome.errors,
         "rows": [r.to_json() for r in outcome.rows]}
    )  # fmt: skip


@routes.route(
    "PUT", f"{PREFIX}/participants/{{identity}}", body=ProfileEdit, access=Access.MANAGER,
    errors=(404, 422), tags=TAGS, summary="Edit an active participant's profile",
)  # fmt: skip
async def edit_participant(request: web.Request) -> web.Response:
    app = request.app
    body = await read_body(request, ProfileEdit)
    identity = request.match_info["identity"]
    profile = await _participants(app).update(identity, body.model_dump())
    await activity.note(app[DATABASE], actor_of(request), "console_edit", identity, {})
    return json_response(profile.to_json())


@routes.route(
    "POST", f"{PREFIX}/participants/{{identity}}/deactivate", access=Access.MANAGER,
    errors=(404, 409), tags=TAGS,
    summary="Deactivate a participant: out of the matching pool, removed from every room "
    "they are in (disconnected; their tokens and PINs refused), signed out everywhere",
)  # fmt: skip
async def deactivate(request: web.Request) -> web.Response:
    return await _set_active(request, False)


@routes.route(
    "POST", f"{PREFIX}/participants/{{identity}}/reactivate", access=Access.MANAGER,
    errors=(404,), tags=TAGS,
    summary="Reactivate a participant: back in the matching pool and able to sign in again "
    "(the tokens they held stay refused)",
)  # fmt: skip
async def reactivate(request: web.Request) -> web.Response:
    return await _set_active(request, True)


async def _set_active(request: web.Request, active: bool) -> web.Response:
    app = request.app
    identity = request.match_info["identity"]
    people = _participants(app)
    done: dict[str, Any] = {}
    if active:
        await people.reactivate(identity)
        accounts = app[SIGNIN].accounts
        found = await accounts.by_identity(identity)
        if found is not None and not found.active:
            await accounts.set_active(found.id, True)  # sign-in again; old tokens stay refused
            done["signin"] = True
    else:
        await people.deactivate(identity)
        done = await deactivate_participant(request, identity)
    action = "console_reactivate" if active else "console_deactivate"
    await activity.note(
        app[DATABASE], actor_of(request), action, identity,
        {k: len(v) if isinstance(v, list) else v for k, v in done.items()},
    )  # fmt: skip
    return json_response({"identity": identity, "active": active, **done})


@routes.route(
    "GET", f"{PREFIX}/pairs", access=Access.MANAGER, tags=TAGS,
    summary="Every pair, newest first: status, members, flag, last meeting, last message",
)  # fmt: skip
async def list_pairs(request: web.Request) -> web.Response:
    app = request.app
    return json_response({"pairs": await overview(app[DATABASE], _pairs(app))})


@routes.route(
    "POST", f"{PREFIX}/pairs/{{pair_id}}/end", access=Access.MANAGER, errors=(404, 409),
    tags=TAGS,
    summary="End a pair: its room closes (no joins, chat and agenda read-only); its log stays",
)  # fmt: skip
async def end_pair(request: web.Request) -> web.Response:
    app = request.app
    pair = await end(_pairs(app), request.match_info["pair_id"])
    await activity.note(app[DATABASE], actor_of(request), "pair_end", pair.id, {"room": pair.room})
    return json_response({"id": pair.id, "room": pair.room, "status": pair.status})


@routes.route(
    "POST", f"{PREFIX}/pairs/{{pair_id}}/invitations", access=Access.MANAGER,
    errors=(403, 404, 409), tags=TAGS,
    summary="Invite a pair's members again: each is mailed a sign-in link to their home (/me), "
    "where Join works. With mail off, an admin gets the links to copy; a manager gets none",
)  # fmt: skip
async def invite(request: web.Request) -> web.Response:
    app = request.app
    pairs = _pairs(app)
    pair = await pairs.get(request.match_info["pair_id"])
    await pairs.require_open_room(pair.room)
    invitations = await invite_members(request, [pair], "Your mentoring pair is waiting for you.")
    await activity.note(
        app[DATABASE], actor_of(request), "pair_invite", pair.id,
        {"members": len(invitations)},
    )  # fmt: skip
    return json_response(
        {"pair": pair.id, "mail": app[SETTINGS].smtp_host is not None,
         "invitations": [i.to_json() for i in invitations]}
    )  # fmt: skip


@routes.route(
    "GET", f"{PREFIX}/rooms/{{room}}", access=Access.MANAGER, tags=TAGS,
    summary="Who is in a room now on every node (phone callers included), and its pair",
)  # fmt: skip
async def room_now(request: web.Request) -> web.Response:
    app = request.app
    name = request.match_info["room"]
    room = app[ROOMS].get(name)
    people = [p.public() for p in room.participants.values()] if room is not None else []
    partial = False
    roster = app[ROSTER]
    if roster is not None:
        here = {p["identity"] for p in people}
        try:
            people += [p for p in await roster.participants(name) if p["identity"] not in here]
        except (RedisError, OSError):
            partial = True  # Redis is away: this node's people only
    people.sort(key=lambda p: p["joined_at"])
    pair = await _pairs(app).by_room(name)
    return json_response({
        "room": name, "participants": people, "partial": partial,
        "pair": None if pair is None else {"id": pair.id, "title": pair.title, "status": pair.status},
    })  # fmt: skip
