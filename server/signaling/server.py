"""The Socket.IO server: connect with a join token, then events with acks.

Every client event goes through one path (`Signaling.on`): rate limit, payload
validation, grant check, handler, metrics; any failure becomes an error ack and
changes nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import socketio
from aiohttp import web
from pydantic import ValidationError

from server.api.cors import OriginPolicy
from server.api.http import describe_validation_error
from server.auth import Grant, JoinToken, TokenIssuer
from server.config import Settings
from server.errors import InvalidInput, PairwiseError, RateLimited, Unauthorized, wire_error
from server.rooms.registry import RoomRegistry
from server.signaling.engine import AddressCap, GuardedServer
from server.signaling.metrics import SignalingMetrics
from server.signaling.ratelimit import TokenBucket
from server.signaling.roster import RedisRoster
from server.signaling.schemas import Payload

log = logging.getLogger("pairwise.signaling")

P = TypeVar("P", bound=Payload)
Ack = dict[str, Any]
EventHandler = Callable[["Connection", Any], Awaitable[Ack]]


@dataclass
class Connection:
    sid: str
    token: JoinToken
    bucket: TokenBucket
    joined: bool = False
    # The live chat channel it is in: the members' (`chat:{room}`) or the operator's side's.
    chat_channel: str | None = None
    connected_at: float = field(default_factory=time.time)
    # Why the socket closed (python-socketio's reason), set before the disconnect callbacks.
    closed_because: str | None = None

    @property
    def said_goodbye(self) -> bool:
        """The client closed the socket itself (`socket.disconnect()`: the person left, or
        their page went away): nothing will come back, so it is a leave. A transport that
        closed or stopped answering pings may be a network drop, which the room's grace
        period is for."""
        return self.closed_because == socketio.AsyncServer.reason.CLIENT_DISCONNECT

    @property
    def room(self) -> str:
        return self.token.room

    @property
    def identity(self) -> str:
        return self.token.identity


def room_channel(room: str) -> str:
    return f"room:{room}"


def person_channel(room: str, identity: str) -> str:
    return f"person:{room}:{identity}"


class Signaling:
    def __init__(
        self,
        settings: Settings,
        tokens: TokenIssuer,
        registry: RoomRegistry,
        metrics: SignalingMetrics,
        client_manager: socketio.AsyncManager | None = None,
        is_removed: Callable[[JoinToken], Awaitable[bool]] | None = None,
        roster: RedisRoster | None = None,
    ):
        self.roster = roster
        self.settings = settings
        self.tokens = tokens
        self.registry = registry
        self.metrics = metrics
        self._is_removed = is_removed
        self.connections: dict[str, Connection] = {}
        self.origins = OriginPolicy(settings.public_url, settings.cors_origins)
        self.sio = GuardedServer(
            settings.connect_timeout_seconds,
            metrics,
            async_mode="aiohttp",
            serializer="msgpack",
            transports=["websocket"],
            client_manager=client_manager,
            cors_allowed_origins=self.origins.for_socketio,
            max_http_buffer_size=settings.max_message_bytes,
            ping_interval=10,
            ping_timeout=10,
            logger=False,
            engineio_logger=False,
        )
        self.sio.on("connect", self._connect)
        self.sio.on("disconnect", self._disconnect)
        self.sio.on("*", self._unknown)
        self._on_disconnect: list[Callable[[Connection], Awaitable[None]]] = []
        self._on_join: list[Callable[[Connection], Awaitable[None]]] = []

    def attach(self, app: web.Application) -> None:
        """Serve Socket.IO at `/socket.io/`, each client address capped (signaling/engine.py)."""
        cap = AddressCap(self.sio, self.settings.connections_per_address, self.metrics)
        app.router.add_get("/socket.io/", cap.handle)
        app.router.add_post("/socket.io/", cap.handle)

    def on(
        self, event: str, model: type[P], *, grant: Grant | None = None, needs_join: bool = True
    ) -> Callable[[Callable[[Connection, P], Awaitable[Ack]]], None]:
        """Register a client event: `handler(connection, payload) -> ack`."""

        def register(handler: Callable[[Connection, P], Awaitable[Ack]]) -> None:
            observe = self.metrics.latency.labels(event).observe

            async def dispatch(sid: str, data: Any = None) -> Ack:
                started = time.perf_counter()
                try:
                    conn = self._connection(sid)
                    if not conn.bucket.take():
                        raise RateLimited("too many events; slow down")
                    payload = self._validate(model, data)
                    if grant is not None:
                        conn.token.require(grant)
                    if needs_join and not conn.joined:
                        raise PairwiseError("join the room first", code="not_joined", status=409)
                    return await handler(conn, payload)
                except PairwiseError as exc:
                    self.metrics.rejected.labels(exc.code).inc()
                    return exc.to_wire()
                except Exception:
                    log.exception("event handler failed", extra={"event": event})
                    self.metrics.rejected.labels("internal").inc()
                    return wire_error("internal", "internal error; nothing was changed")
                finally:
                    observe(time.perf_counter() - started)

            self.sio.on(event, dispatch)

        return register

    def on_disconnect(self, callback: Callable[[Connection], Awaitable[None]]) -> None:
        self._on_disconnect.append(callback)

    def on_join(self, callback: Callable[[Connection], Awaitable[None]]) -> None:
        """Run `callback(connection)` once the connection has joined its room."""
        self._on_join.append(callback)

    async def joined(self, conn: Connection) -> None:
        for callback in self._on_join:
            await callback(conn)

    async def emit_room(
        self, room: str, event: str, data: Any, skip_sid: str | None = None
    ) -> None:
        await self.sio.emit(event, data, room=room_channel(room), skip_sid=skip_sid)

    async def emit_to(self, sid: str, event: str, data: Any) -> None:
        await self.sio.emit(event, data, to=sid)

    async def remove(self, room: str, identity: str) -> bool:
        """Disconnect `identity` from `room` (on whichever node holds the connection)."""
        conn = self.connection_of(room, identity)
        if conn is None:
            return await self._remove_elsewhere(room, identity)
        await self.emit_to(
            conn.sid,
            "error",
            {"code": "removed", "message": "an operator removed you from this room"},
        )
        self.registry.leave(room, identity, connection=conn.sid, reason="removed")
        conn.joined = False
        await self.sio.disconnect(conn.sid)
        return True

    async def _remove_elsewhere(self, room: str, identity: str) -> bool:
        if self.roster is None:
            return False
        sid = await self.roster.locate(room, identity)
        if sid is None:
            return False
        # Through the Redis manager both reach the node that holds the connection.
        await self.sio.emit(
            "error",
            {"code": "removed", "message": "an operator removed you from this room"},
            room=person_channel(room, identity),
        )
        await self.sio.disconnect(sid)
        return True

    def connection_of(self, room: str, identity: str) -> Connection | None:
        participant = self.registry.participant(room, identity)
        return self.connections.get(participant.connection) if participant else None

    @staticmethod
    def _validate(model: type[P], data: Any) -> P:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise InvalidInput("the payload must be a map")
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise InvalidInput(describe_validation_error(exc)) from None

    def _connection(self, sid: str) -> Connection:
        conn = self.connections.get(sid)
        if conn is None:
            raise Unauthorized("this connection is not authenticated")
        return conn

    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        # A JS client that sends no auth sends `undefined`, which arrives as a msgpack ExtType.
        token = auth.get("token") if isinstance(auth, dict) else None
        try:
            claims = self.tokens.verify(token)
            if self._is_removed is not None and await self._is_removed(claims):
                raise Unauthorized("an operator removed you from this room", code="token_revoked")
        except PairwiseError as exc:
            self.metrics.rejected.labels(exc.code).inc()
            # Clients see connect_error {"message", "data": {"code", "message"}}.
            raise socketio.exceptions.ConnectionRefusedError(
                exc.message, exc.to_wire()["error"]
            ) from None
        bucket = TokenBucket(self.settings.events_rate_per_second, self.settings.events_burst)
        self.connections[sid] = Connection(sid=sid, token=claims, bucket=bucket)
        self.metrics.sockets.inc()

    async def _disconnect(self, sid: str, reason: Any = None) -> None:
        conn = self.connections.pop(sid, None)
        if conn is None:
            return
        self.metrics.sockets.dec()
        conn.closed_because = str(reason) if reason is not None else None
        for callback in self._on_disconnect:
            try:
                await callback(conn)
            except Exception:
                log.exception("disconnect callback failed")

    async def _unknown(self, event: str, sid: str, data: Any = None) -> Ack:
        self.metrics.rejected.labels("unknown_event").inc()
        return wire_error("unknown_event", f"there is no event {event!r}")


SIGNALING = web.AppKey("signaling", Signaling)
