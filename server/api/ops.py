"""Liveness, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry
from pydantic import BaseModel
from redis.asyncio import Redis

from server.api.access import Access
from server.api.http import RouteTable, json_response
from server.api.keys import DATABASE
from server.metrics import CONTENT_TYPE, render

log = logging.getLogger("pairwise.health")
routes = RouteTable()

CHECK_TIMEOUT = 2.0
REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)
REDIS: web.AppKey[Redis | None] = web.AppKey("redis")  # None: one node, no Redis
# The media workers' trouble, if any (MediaService.health): None while all is well.
MEDIA_HEALTH: web.AppKey[Callable[[], dict[str, Any] | None]] = web.AppKey("media_health")


class Health(BaseModel):
    status: str
    # Present only when a media worker keeps dying (restarts back off meanwhile): this
    # process still serves, so it is no reason to restart it.
    media_workers: dict[str, Any] | None = None


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


@routes.route(
    "GET", "/healthz", summary="Liveness", response=Health, access=Access.PUBLIC, tags=("ops",)
)
async def healthz(request: web.Request) -> web.Response:
    media = request.app.get(MEDIA_HEALTH)
    health = Health(status="ok", media_workers=media() if media is not None else None)
    return json_response(health.model_dump(exclude_none=True))


@routes.route(
    "GET",
    "/readyz",
    summary="Readiness: database (and Redis when configured)",
    response=Readiness,
    access=Access.PUBLIC,
    errors=(503,),
    tags=("ops",),
)
async def readyz(request: web.Request) -> web.Response:
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await request.app[DATABASE].ping()
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not ready", with its reason
        checks["database"] = f"failed: {type(exc).__name__}"
    redis = request.app[REDIS]
    if redis is not None:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                await redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"failed: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return json_response(
        Readiness(status="ok" if ready else "unavailable", checks=checks),
        status=200 if ready else 503,
    )


@routes.route("GET", "/metrics", summary="Prometheus metrics", access=Access.PUBLIC, tags=("ops",))
async def metrics(request: web.Request) -> web.Response:
    body = render(request.app[REGISTRY])
    return web.Response(body=body, content_type=CONTENT_TYPE, charset="utf-8")
