"""REST for data rights.

Participants, with their join token: download everything held about them, ask for
erasure. Operators, with the admin key: read erasure requests and the privacy audit,
erase or anonymise a person, run the retention job now.
"""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from server.api.access import Access, actor_of, member_of
from server.api.http import RouteTable, json_response, read_body
from server.api.keys import BUS, DATABASE, REMOVALS, SETTINGS
from server.errors import Conflict, InvalidInput
from server.privacy.audit import PrivacyLog
from server.privacy.erasure import forget
from server.privacy.export import personal_data, rooms_of
from server.privacy.retention import apply_retention
from server.rooms.ids import IDENTITY_PATTERN
from server.signaling.server import SIGNALING

routes = RouteTable()
PREFIX = "/api/v1"
TAGS = ("privacy",)


class ForgetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["erase", "anonymise"]


def _log(request: web.Request) -> PrivacyLog:
    return PrivacyLog(request.app[DATABASE])


@routes.route(
    "GET",
    f"{PREFIX}/me/data",
    summary="Everything held about the token's holder (JSON download)",
    access=Access.MEMBER,
    errors=(401, 403),
    tags=TAGS,
)
async def my_data(request: web.Request) -> web.Response:
    token = member_of(request)
    data = await personal_data(request.app[DATABASE], token.identity)
    response = json_response(data)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Disposition"] = 'attachment; filename="pairwise-my-data.json"'
    return response


@routes.route(
    "POST",
    f"{PREFIX}/me/erasure-request",
    summary="Ask the operator to erase everything held about the token's holder",
    status=201,
    access=Access.MEMBER,
    errors=(401, 403),
    tags=TAGS,
)
async def request_erasure(request: web.Request) -> web.Response:
    token = member_of(request)
    found = await _log(request).request_erasure(token.identity)
    return json_response(dataclasses.asdict(found), status=201)


@routes.route(
    "GET",
    f"{PREFIX}/privacy/erasure-requests",
    summary="Participants' erasure requests (?status=open|done|all, default open)",
    access=Access.ADMIN,
    errors=(401, 422),
    tags=TAGS,
)
async def erasure_requests(request: web.Request) -> web.Response:
    status = request.query.get("status", "open")
    if status not in ("open", "done", "all"):
        raise InvalidInput("status must be open, done or all")
    found = await _log(request).requests(None if status == "all" else status)
    return json_response({"requests": [dataclasses.asdict(r) for r in found]})


@routes.route(
    "POST",
    f"{PREFIX}/privacy/people/{{identity}}/forget",
    summary="Erase (what they wrote becomes 'removed') or anonymise (unlinked) a person",
    body=ForgetIn,
    access=Access.ADMIN,
    errors=(401, 404, 422),
    tags=TAGS,
)
async def forget_person(request: web.Request) -> web.Response:
    actor = actor_of(request)
    identity = request.match_info["identity"]
    if not re.fullmatch(IDENTITY_PATTERN, identity):
        raise InvalidInput("that is not an identity")
    body = await read_body(request, ForgetIn)
    app = request.app
    # Refuse the join tokens they still hold (they would let them back in as who they
    # were), then cut their live connections, so nothing they send lands after the erasure.
    rooms = await rooms_of(app[DATABASE], identity)
    for room in rooms:
        await app[REMOVALS].remove_erased(room, identity)
        await app[SIGNALING].remove(room, identity)
    await app[BUS].drain()  # the session log has written their leaving
    outcome = await forget(app[DATABASE], identity, body.mode, actor)
    return json_response(dataclasses.asdict(outcome))


@routes.route(
    "GET",
    f"{PREFIX}/privacy/audit",
    summary="Who erased, anonymised or purged what, and when",
    access=Access.ADMIN,
    errors=(401,),
    tags=TAGS,
)
async def privacy_audit(request: web.Request) -> web.Response:
    entries = await _log(request).entries()
    return json_response({"entries": [dataclasses.asdict(e) for e in entries]})


@routes.route(
    "POST",
    f"{PREFIX}/privacy/retention",
    summary="Run the retention job now (PAIRWISE_RETENTION_DAYS must be set)",
    access=Access.ADMIN,
    errors=(401, 409),
    tags=TAGS,
)
async def run_retention(request: web.Request) -> web.Response:
    days = request.app[SETTINGS].retention_days
    if days is None:
        raise Conflict("no retention period is set (PAIRWISE_RETENTION_DAYS)", code="retention_off")
    purged = await apply_retention(request.app[DATABASE], days, time.time())
    return json_response({"purged": [dataclasses.asdict(p) for p in purged]})
