"""REST for webhooks: an admin or a programme manager registers, lists and deletes them and
reads each delivery's outcome. And `emit`, which the handlers that change things call."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from server.api.access import Access, actor_of
from server.api.http import RouteTable, describe_validation_error, json_response, read_body
from server.errors import InvalidInput
from server.webhooks.events import Event, EventType
from server.webhooks.formats import Format
from server.webhooks.service import Webhooks

routes = RouteTable()
WEBHOOKS = web.AppKey("webhooks", Webhooks)
PREFIX = "/api/v1/webhooks"
TAGS = ("webhooks",)
MAX_DELIVERIES = 500


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000, description="http(s) URL that receives")
    events: list[EventType] = Field(min_length=1, max_length=len(EventType))
    format: Format = Field(
        Format.JSON, description="json (signed JSON), slack or teams (their incoming webhooks)"
    )

    @field_validator("events")
    @classmethod
    def _distinct(cls, value: list[EventType]) -> list[EventType]:
        if len(set(value)) != len(value):
            raise ValueError("each event once")
        return value


class DeliveriesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(100, ge=1, le=MAX_DELIVERIES)


def webhooks_of(request: web.Request) -> Webhooks:
    return request.app[WEBHOOKS]


async def emit(request: web.Request, *events: Event) -> None:
    """Tell the webhooks that take them what this request did (never raises)."""
    await webhooks_of(request).emit(*events)


@routes.route(
    "POST",
    PREFIX,
    summary="Register a webhook for some events; its signing secret is in this answer only",
    body=WebhookIn,
    status=201,
    access=Access.MANAGER,
    errors=(401, 403, 409, 422),
    tags=TAGS,
)
async def create_webhook(request: web.Request) -> web.Response:
    body = await read_body(request, WebhookIn)
    hook, secret = await webhooks_of(request).create(
        body.url, tuple(body.events), body.format, actor_of(request)
    )
    return json_response({**hook.to_json(), "secret": secret}, status=201)


@routes.route(
    "GET",
    PREFIX,
    summary="The webhooks (without their secrets)",
    access=Access.MANAGER,
    errors=(401, 403),
    tags=TAGS,
)
async def list_webhooks(request: web.Request) -> web.Response:
    hooks = await webhooks_of(request).store.all()
    return json_response({"webhooks": [hook.to_json() for hook in hooks]})


@routes.route(
    "DELETE",
    f"{PREFIX}/{{webhook_id}}",
    summary="Delete a webhook, its deliveries and their retries still due",
    status=204,
    access=Access.MANAGER,
    errors=(401, 403, 404),
    tags=TAGS,
)
async def delete_webhook(request: web.Request) -> web.Response:
    await webhooks_of(request).delete(request.match_info["webhook_id"], actor_of(request))
    return web.Response(status=204)


@routes.route(
    "GET",
    f"{PREFIX}/{{webhook_id}}/deliveries",
    summary="A webhook's deliveries, newest first (?limit=, default 100, at most 500): "
    "status, attempts, status code, last error",
    access=Access.MANAGER,
    errors=(401, 403, 404, 422),
    tags=TAGS,
)
async def list_deliveries(request: web.Request) -> web.Response:
    try:
        query = DeliveriesQuery.model_validate(dict(request.query))
    except ValidationError as exc:
        raise InvalidInput(describe_validation_error(exc)) from None
    service = webhooks_of(request)
    hook = await service.store.get(request.match_info["webhook_id"])
    found = await service.store.deliveries(hook.id, query.limit)
    return json_response({"webhook": hook.to_json(), "deliveries": [d.to_json() for d in found]})
