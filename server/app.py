"""Build the aiohttp Application: wiring only, no logic."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import socketio
from aiohttp import web
from redis.asyncio import Redis

from server.api import health, pages, tokens
from server.api.http import RouteTable, error_middleware
from server.api.openapi import build_openapi
from server.auth import TokenIssuer
from server.config import Settings
from server.metrics import new_registry
from server.rooms.chat import ChatService, ChatStore
from server.rooms.events import EventBus
from server.rooms.registry import RoomRegistry
from server.services import SERVICES, Services
from server.signaling.broadcast import Broadcaster
from server.signaling.handlers import RoomHandlers
from server.signaling.metrics import SignalingMetrics
from server.signaling.server import Signaling
from server.store import Database
from server.store.migrate import migrate

log = logging.getLogger("pairwise.app")

VERSION = "0.1.0"
ROUTE_TABLES: list[RouteTable] = [health.routes, tokens.routes]


def create_app(settings: Settings) -> web.Application:
    """An application for `settings`, whose secrets must already be filled in."""
    if settings.admin_key is None or settings.secret_key is None:
        raise ValueError("create_app needs settings from config.with_secrets()")
    app = web.Application(
        middlewares=[pages.security_headers, error_middleware], client_max_size=settings.max_request_bytes
    )
    database = Database(settings.effective_database_url)
    tokens = TokenIssuer(settings.secret_key, settings.token_ttl_seconds)
    registry = new_registry()
    bus = EventBus()
    rooms = RoomRegistry(bus, settings.room_capacity, settings.room_grace_seconds)
    chat = ChatService(ChatStore(database), bus, settings.chat_max_chars)
    manager = socketio.AsyncRedisManager(settings.redis_url) if settings.redis_url else None
    signaling = Signaling(settings, tokens, rooms, SignalingMetrics(registry), manager)
    RoomHandlers(signaling, chat)
    signaling.attach(app)
    services = Services(
        settings=settings,
        database=database,
        tokens=tokens,
        registry=registry,
        bus=bus,
        rooms=rooms,
        chat=chat,
        signaling=signaling,
        redis=Redis.from_url(settings.redis_url) if settings.redis_url else None,
    )
    app[SERVICES] = services
    for table in ROUTE_TABLES:
        table.install(app)
    openapi = build_openapi(_all_routes(), VERSION)

    async def openapi_json(request: web.Request) -> web.Response:
        return web.json_response(openapi)

    app.router.add_get("/api/openapi.json", openapi_json)
    pages.install(app)
    app.cleanup_ctx.append(_lifecycle)
    return app


def _all_routes() -> RouteTable:
    merged = RouteTable()
    for table in ROUTE_TABLES:
        merged.endpoints.extend(table.endpoints)
    return merged


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    services = app[SERVICES]
    await migrate(services.database)
    log.info("database ready", extra={"url": _redacted(services.database.url)})
    services.bus.subscribe(Broadcaster(services.signaling), "broadcast")
    yield
    await services.signaling.sio.shutdown()
    services.rooms.close_all()
    await services.bus.close()
    if services.redis is not None:
        await services.redis.aclose()
    await services.database.close()
    log.info("stopped")


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
