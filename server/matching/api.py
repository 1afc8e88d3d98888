"""REST adapter for matching (programme managers): profiles, criteria, runs, results,
publish."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from server.api.access import Access, actor_of
from server.api.http import (
    RouteTable,
    describe_validation_error,
    json_response,
    read_body,
)
from server.api.keys import DATABASE, SETTINGS
from server.api.pair_access import pair_json
from server.console import activity
from server.errors import InvalidInput, NotFound
from server.matching.criteria import load_criteria, parse_criteria
from server.matching.profiles import (
    check_new_identities,
    import_profiles,
    parse_csv,
    parse_json_rows,
)
from server.matching.runs import MatchingStore
from server.signin.api import invite_members
from server.webhooks import api as webhooks
from server.webhooks.events import pair_published

routes = RouteTable()
PREFIX = "/api/v1/matching"
TAGS = ("matching",)
PAGE_SIZE = 1000
MAX_PAGE_SIZE = 10_000
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")

# Runs in flight: a reference keeps each task alive until it ends.
_running: set[asyncio.Task[None]] = set()


class FixedPair(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mentee: str = Field(min_length=1, max_length=200)
    mentor: str = Field(min_length=1, max_length=200)


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["optimal", "max-coverage", "stable"] = "optimal"
    fixed_pairs: list[FixedPair] = Field(default_factory=list)


class RunStarted(BaseModel):
    id: str
    status: str


class ImportReport(BaseModel):
    imported: int
    errors: list[str] = Field(description="Rows left out (only with allow_partial=true)")


def _store(request: web.Request) -> MatchingStore:
    return MatchingStore(request.app[DATABASE], request.app[SETTINGS].node_name)


async def _text(request: web.Request) -> str:
    """The body as text in its declared charset (UTF-8 by default). A body that is not
    text in that charset, or a charset Python does not know, is the client's mistake: a
    4xx naming it, never the 500 a bare `request.text()` gives."""
    raw = await request.read()
    charset = request.charset or "utf-8"
    try:
        return raw.decode(charset)
    except LookupError:
        raise InvalidInput(
            f"unknown charset {charset!r} in Content-Type; send UTF-8",
            code="unsupported_charset", status=415,
        ) from None  # fmt: skip
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"the body is not {charset} text (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
            code="invalid_encoding", status=400,
        ) from None  # fmt: skip


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise InvalidInput("the body is not valid JSON", code="invalid_json") from None


async def _note(
    request: web.Request, action: str, subject: str | None, detail: dict[str, Any]
) -> None:
    """An operator's matching action in the audit log (the console's Activity page)."""
    await activity.note(request.app[DATABASE], actor_of(request), action, subject, detail)


def _track(task: asyncio.Task[None]) -> None:
    _running.add(task)
    task.add_done_callback(_running.discard)


@routes.route(
    "POST", f"{PREFIX}/profiles", response=ImportReport, access=Access.MANAGER, errors=(400, 415, 422),
    tags=TAGS,
    summary="Import mentor and mentee profiles: a JSON list, or CSV with Content-Type text/csv. "
    "Nothing is imported if any row is invalid, unless ?allow_partial=true.",
)  # fmt: skip
async def import_profiles_handler(request: web.Request) -> web.Response:
    store = _store(request)
    allow_partial = request.query.get("allow_partial", "false").lower() in ("1", "true", "yes")
    text = await _text(request)
    rows = parse_csv(text) if request.content_type == "text/csv" else parse_json_rows(_json(text))
    result = import_profiles(rows, allow_partial=allow_partial)
    check_new_identities(result.profiles, await store.identities())
    criteria = await store.criteria()
    if criteria is not None:
        criteria.check_seniority((p.identity, p.seniority) for p in result.profiles)
    await store.save_profiles(result.profiles)
    return json_response(ImportReport(imported=len(result.profiles), errors=result.errors))


class ProfilePage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    after: str | None = Field(None, min_length=1, description="`next` of the page before")


@routes.route(
    "GET", f"{PREFIX}/profiles", access=Access.MANAGER, errors=(422,), tags=TAGS,
    summary="Profiles by identity, a page at a time: ?limit= (default 1000, at most 10000) "
    "and ?after= the `next` of the page before; `next` is null on the last page",
)  # fmt: skip
async def list_profiles(request: web.Request) -> web.Response:
    store = _store(request)
    try:
        page = ProfilePage.model_validate(dict(request.query))
    except ValidationError as exc:
        raise InvalidInput(describe_validation_error(exc)) from None
    profiles, after = await store.profile_page(page.after, page.limit)
    return json_response({"profiles": profiles, "next": after})


@routes.route(
    "PUT", f"{PREFIX}/criteria", access=Access.MANAGER, errors=(400, 415, 422), tags=TAGS,
    summary="Set the program's criteria: JSON, or YAML with Content-Type application/yaml",
)  # fmt: skip
async def put_criteria(request: web.Request) -> web.Response:
    store = _store(request)
    text = await _text(request)
    yaml = request.content_type in YAML_TYPES
    criteria = load_criteria(text) if yaml else parse_criteria(_json(text))
    criteria.check_seniority(await store.seniorities())
    await store.set_criteria(criteria)
    await _note(request, "criteria_update", None, {"criteria": len(criteria.criteria)})
    return json_response(criteria.to_json())


@routes.route(
    "GET", f"{PREFIX}/criteria", summary="The program's criteria", access=Access.MANAGER, errors=(404,),
    tags=TAGS,
)  # fmt: skip
async def get_criteria(request: web.Request) -> web.Response:
    criteria = await _store(request).criteria()
    if criteria is None:
        raise NotFound("no matching criteria set yet")
    return json_response(criteria.to_json())


@routes.route(
    "POST", f"{PREFIX}/runs", body=RunRequest, response=RunStarted, status=202, access=Access.MANAGER,
    errors=(409,), tags=TAGS,
    summary="Match every mentee without an active pair; runs in the background",
)  # fmt: skip
async def start_run(request: web.Request) -> web.Response:
    store = _store(request)
    body = await read_body(request, RunRequest)
    fixed = [(p.mentee, p.mentor) for p in body.fixed_pairs]
    run, task = await store.start(body.mode, fixed)
    _track(task)
    await _note(request, "matching_run", None, {"mode": body.mode, "fixed": len(fixed)})
    return json_response(RunStarted(id=run.id, status=run.status), status=202)


@routes.route(
    "GET", f"{PREFIX}/runs/{{run_id}}", summary="A run's status, progress and summary",
    access=Access.MANAGER, errors=(404,), tags=TAGS,
)  # fmt: skip
async def get_run(request: web.Request) -> web.Response:
    run = await _store(request).run(request.match_info["run_id"])
    return json_response(run.to_json())


@routes.route(
    "GET", f"{PREFIX}/runs/{{run_id}}/results", access=Access.MANAGER, errors=(404,), tags=TAGS,
    summary="Draft pairs with score, contributions, explanation and slots; unmatched mentees "
    "(each person's identity and profile name)",
)  # fmt: skip
async def get_results(request: web.Request) -> web.Response:
    store = _store(request)
    run_id = request.match_info["run_id"]
    run = await store.run(run_id)
    results = await store.results(run_id)
    names = await store.names([i for r in results for i in (r["mentee"], r["mentor"]) if i])
    payload: dict[str, Any] = {
        "run": run.to_json(),
        "pairs": [
            {**r, "mentee_name": names.get(r["mentee"], r["mentee"]),
             "mentor_name": names.get(r["mentor"], r["mentor"])}
            for r in results
            if r["mentor"] is not None
        ],
        "unmatched": [
            {"mentee": r["mentee"], "mentee_name": names.get(r["mentee"], r["mentee"]),
             "reason": r["reason"], "explanation": r["explanation"]}
            for r in results
            if r["mentor"] is None
        ],
    }  # fmt: skip
    return json_response(payload)


@routes.route(
    "POST", f"{PREFIX}/runs/{{run_id}}/publish", access=Access.MANAGER, errors=(404, 409), tags=TAGS,
    summary="Publish a run's draft pairs as mentoring pairs; each member is mailed a sign-in "
    "link to their home (/me), where Join works (`invitations`: who, and how)",
)  # fmt: skip
async def publish(request: web.Request) -> web.Response:
    pairs = await _store(request).publish(request.match_info["run_id"])
    await _note(request, "matching_publish", None, {"pairs": len(pairs)})
    await webhooks.emit(request, *(pair_published(p) for p in pairs))
    invited = await invite_members(request, pairs, "You have been paired for mentoring.")
    return json_response(
        {"pairs": [pair_json(p) for p in pairs], "invitations": [i.to_json() for i in invited]}
    )


@routes.route(
    "POST", "/api/v1/pairs/{pair_id}/rematch", status=202, access=Access.MANAGER, errors=(404, 409),
    tags=TAGS,
    summary="Not a good fit: unpublish the pair (its history stays), never propose the two "
    "again, and start a run for the mentee",
)  # fmt: skip
async def rematch(request: web.Request) -> web.Response:
    store = _store(request)
    pair, run, task = await store.rematch(request.match_info["pair_id"])
    _track(task)
    await _note(request, "pair_rematch", pair.id, {})
    return json_response(
        {"pair": pair_json(pair), "run": {"id": run.id, "status": run.status}}, status=202
    )
