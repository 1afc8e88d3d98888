"""REST for web push: a signed-in participant saves or drops a browser's push subscription
and chooses their channels; the service worker and the web app manifest, served from the
root so the worker's scope is the whole site (`/me` included).

Every route is the participant's own (`Access.PARTICIPANT`, a session cookie): whose
subscriptions and channels are read or changed is the caller's identity, never a parameter,
so no one can reach another person's.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from server.api.access import Access, participant_of
from server.api.http import RouteTable, json_response, read_body
from server.api.keys import SETTINGS
from server.errors import InvalidInput
from server.push.service import Push, check_endpoint
from server.push.store import TOPICS, Channels

routes = RouteTable()
PREFIX = "/api/v1/home"
TAGS = ("push",)
PUSH = web.AppKey("push", Push)
WEB = Path(__file__).resolve().parents[2] / "web"


def _b64url(value: str, size: int, name: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise ValueError(f"{name} is not base64url") from None
    if len(raw) != size or (name == "p256dh" and raw[0] != 4):
        raise ValueError(f"{name} is not a {'P-256 public key' if size == 65 else 'secret'}")
    return value


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KeysIn(Body):
    p256dh: str = Field(max_length=120, description="the browser's P-256 key, base64url")
    auth: str = Field(max_length=40, description="the 16-byte auth secret, base64url")

    @field_validator("p256dh")
    @classmethod
    def _p256dh(cls, value: str) -> str:
        return _b64url(value, 65, "p256dh")

    @field_validator("auth")
    @classmethod
    def _auth(cls, value: str) -> str:
        return _b64url(value, 16, "auth")


class SubscriptionIn(Body):
    """A browser's `PushSubscription.toJSON()` (its `expirationTime` is ignored)."""

    model_config = ConfigDict(extra="ignore")
    endpoint: str = Field(min_length=8, max_length=2000)
    keys: KeysIn


class EndpointIn(Body):
    endpoint: str = Field(min_length=8, max_length=2000)


class ChannelsIn(Body):
    email: bool
    push: bool


class ChoicesIn(Body):
    reminders: ChannelsIn | None = None
    messages: ChannelsIn | None = None


def _push(request: web.Request) -> Push:
    return request.app[PUSH]


async def _state(push: Push, identity: str) -> dict[str, Any]:
    chosen = await push.store.channels(identity)
    return {
        "public_key": push.public_key,
        "subscriptions": await push.store.count(identity),
        "channels": {t: {"email": chosen[t].email, "push": chosen[t].push} for t in TOPICS},
    }


@routes.route(
    "GET",
    f"{PREFIX}/notifications",
    summary="The caller's channels, how many browsers they subscribed, and the VAPID key",
    access=Access.PARTICIPANT,
    errors=(401, 403),
    tags=TAGS,
)
async def notifications(request: web.Request) -> web.Response:
    return json_response(await _state(_push(request), participant_of(request)))


@routes.route(
    "PUT",
    f"{PREFIX}/notifications/channels",
    summary="Choose email and/or push for reminders and for new messages",
    body=ChoicesIn,
    access=Access.PARTICIPANT,
    errors=(401, 403, 422),
    tags=TAGS,
)
async def choose_channels(request: web.Request) -> web.Response:
    identity, push = participant_of(request), _push(request)
    body = await read_body(request, ChoicesIn)
    for topic in TOPICS:
        chosen = getattr(body, topic)
        if chosen is not None:
            await push.store.choose(identity, topic, Channels(chosen.email, chosen.push))
    return json_response(await _state(push, identity))


@routes.route(
    "POST",
    f"{PREFIX}/push/subscriptions",
    summary="Save this browser's push subscription (PushSubscription.toJSON())",
    body=SubscriptionIn,
    status=201,
    access=Access.PARTICIPANT,
    errors=(401, 403, 422),
    tags=TAGS,
)
async def subscribe(request: web.Request) -> web.Response:
    identity, push = participant_of(request), _push(request)
    body = await read_body(request, SubscriptionIn)
    settings = request.app[SETTINGS]
    try:
        check_endpoint(body.endpoint, allow_insecure=settings.push_allow_insecure)
    except ValueError as exc:
        raise InvalidInput(str(exc), code="bad_endpoint") from None
    await push.store.subscribe(
        identity,
        body.endpoint,
        body.keys.p256dh,
        body.keys.auth,
        limit=settings.push_max_subscriptions,
    )
    return json_response(await _state(push, identity), status=201)


@routes.route(
    "DELETE",
    f"{PREFIX}/push/subscriptions",
    summary="Drop this browser's push subscription (by its endpoint)",
    body=EndpointIn,
    access=Access.PARTICIPANT,
    errors=(401, 403, 422),
    tags=TAGS,
)
async def unsubscribe(request: web.Request) -> web.Response:
    identity, push = participant_of(request), _push(request)
    body = await read_body(request, EndpointIn)
    removed = await push.store.unsubscribe(identity, body.endpoint)
    return json_response({"removed": removed, **(await _state(push, identity))})


def install(app: web.Application, push: Push) -> None:
    """The push service for the routes, and the installable app's two root files."""
    app[PUSH] = push
    app.router.add_get("/sw.js", _file(WEB / "sw.js", "text/javascript"))
    app.router.add_get(
        "/manifest.webmanifest", _file(WEB / "manifest.webmanifest", "application/manifest+json")
    )


def _file(path: Path, content_type: str) -> Any:
    async def serve(request: web.Request) -> web.StreamResponse:
        # no-cache: browsers check the worker for updates; a stale one would keep old code.
        return web.FileResponse(
            path, headers={"Cache-Control": "no-cache", "Content-Type": content_type}
        )

    return serve
