"""Liveness, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import asyncio
import logging

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


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


@routes.route(
    "GET", "/healthz", summary="Liveness", response=Health, access=Access.PUBLIC, tags=("ops",)
)
async def healthz(request: web.Request) -> web.Response:
    return json_response(Health(status="ok"))


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
        await asyncio.wait_for(request.app[DATABASE].ping(), CHECK_TIMEOUT)
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not ready", with its reason
        checks["database"] = f"failed: {type(exc).__name__}"
    redis = request.app[REDIS]
    if redis is not None:
        try:
            await asyncio.wait_for(redis.ping(), CHECK_TIMEOUT)
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
