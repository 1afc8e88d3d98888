"""POST /api/v1/tokens: an operator issues a participant's join token."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

from aiohttp import web
from pydantic import BaseModel, Field, field_validator

from server.api.access import Access, actor_of
from server.api.http import RouteTable, json_response, read_body
from server.api.keys import DATABASE, SETTINGS, TOKENS
from server.auth import Role
from server.pairs.store import PairStore
from server.privacy import audit
from server.rooms.ids import IDENTITY_PATTERN, ROOM_PATTERN

routes = RouteTable()

MAX_TTL = 30 * 24 * 3600


class TokenRequest(BaseModel):
    room: str = Field(pattern=ROOM_PATTERN, description="Room name")
    identity: str = Field(pattern=IDENTITY_PATTERN, description="Stable participant id")
    name: str = Field(min_length=1, max_length=200, description="Display name")
    role: Role
    ttl_seconds: int | None = Field(None, gt=0, le=MAX_TTL)

    @field_validator("name")
    @classmethod
    def _no_nul(cls, name: str) -> str:
        # The HTTP edge refuses NULs already; this covers `python -m server token`.
        if "\x00" in name:
            raise ValueError("contains a NUL character (U+0000)")
        return name


class TokenResponse(BaseModel):
    token: str
    join_url: str
    expires_at: datetime


def join_url(base_url: str, token: str) -> str:
    # The token rides in the fragment: browsers never send it to servers or proxies' logs.
    return f"{base_url}/join#token={quote(token)}"


@routes.route(
    "POST",
    "/api/v1/tokens",
    summary="Issue a join token",
    body=TokenRequest,
    response=TokenResponse,
    status=201,
    access=Access.ADMIN,
    errors=(403,),
    tags=("tokens",),
)
async def create_token(request: web.Request) -> web.Response:
    database = request.app[DATABASE]
    body = await read_body(request, TokenRequest)
    await PairStore(database).require_open_room(body.room)
    token, claims = request.app[TOKENS].issue(
        body.room, body.identity, body.name, body.role, body.ttl_seconds
    )
    async with database.begin() as conn:  # who let whom in (never the token)
        detail = {"room": body.room, "role": str(body.role), "ttl_seconds": body.ttl_seconds}
        await audit.record(conn, actor_of(request), "token_issue", body.identity, detail)
    response = TokenResponse(
        token=token,
        join_url=join_url(request.app[SETTINGS].base_url, token),
        expires_at=datetime.fromtimestamp(claims.expires_at, UTC),
    )
    return json_response(response, status=201)
