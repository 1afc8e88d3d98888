"""Engine.IO connections before Socket.IO: a cap per client address and a connect deadline.

An Engine.IO websocket costs the server a socket, a task and a ping timer from the
handshake on, but Socket.IO authenticates only at CONNECT. A client that answers pings and
never sends CONNECT was held forever, uncounted (500 from one address stayed open). So:
at most `PAIRWISE_CONNECTIONS_PER_ADDRESS` open Engine.IO requests per client address
(429 beyond, before the upgrade), and a socket without a Socket.IO session on `/` after
`PAIRWISE_CONNECT_TIMEOUT_SECONDS` is closed. Both show in /metrics.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import socketio
from aiohttp import web

from server.api.http import error_response
from server.signaling.metrics import SignalingMetrics
from server.tasks import BackgroundTasks


class GuardedServer(socketio.AsyncServer):
    """A Socket.IO server that closes Engine.IO sockets which never CONNECT in time.

    python-socketio has no connect timeout (the JS server's `connectTimeout`); its
    Engine.IO connect/disconnect hooks are the one place that sees every socket.
    tests/security/test_engineio_flood.py fails if these hooks stop being called.
    """

    # The python-socketio / python-engineio internals this class relies on (5.18 / 4.15).
    INTERNALS = ("_handle_eio_connect", "_handle_eio_disconnect")

    def __init__(self, connect_timeout: float, metrics: SignalingMetrics, **kwargs: Any):
        missing = [name for name in self.INTERNALS if not hasattr(socketio.AsyncServer, name)]
        if missing:
            raise RuntimeError(f"python-socketio changed: no {', '.join(missing)}; see engine.py")
        super().__init__(**kwargs)
        self.connect_timeout = connect_timeout
        self.guard_metrics = metrics
        self._deadlines: dict[str, asyncio.TimerHandle] = {}
        self._closing = BackgroundTasks()

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        result = await super()._handle_eio_connect(eio_sid, environ)
        loop = asyncio.get_running_loop()
        self._deadlines[eio_sid] = loop.call_later(self.connect_timeout, self._expire, eio_sid)
        return result

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        handle = self._deadlines.pop(eio_sid, None)
        if handle is not None:
            handle.cancel()
        await super()._handle_eio_disconnect(eio_sid, reason)

    def _expire(self, eio_sid: str) -> None:
        self._deadlines.pop(eio_sid, None)
        if self.manager.sid_from_eio_sid(eio_sid, "/") is not None:
            return
        self.guard_metrics.engine_refused.labels("connect_timeout").inc()
        self._closing.spawn(self._close(eio_sid))

    async def _close(self, eio_sid: str) -> None:
        """Disconnect, then close the websocket itself.

        `eio.disconnect` only sends the Engine.IO close packet and forgets the socket; the
        websocket stays open until the client closes it or 20 s of silence (ping interval +
        timeout) pass, and a hostile client does neither. Ending the socket's send queue
        makes its writer close the websocket now.
        """
        socket = self.eio.sockets.get(eio_sid)
        await self.eio.disconnect(eio_sid)
        if socket is not None:
            socket.queue.put_nowait(None)


class AddressCap:
    """Concurrent Engine.IO requests per client address (`request.remote`, which the
    forwarded-headers middleware has already made the client's own).

    A websocket's request handler runs as long as the websocket is open, so counting
    handlers in flight counts open connections.
    """

    def __init__(self, server: socketio.AsyncServer, limit: int, metrics: SignalingMetrics):
        self._server = server
        self._limit = limit
        self._metrics = metrics
        self._open: Counter[str] = Counter()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        address = request.remote or "unknown"
        if self._open[address] >= self._limit:
            self._metrics.engine_refused.labels("address_cap").inc()
            return error_response(
                "too_many_connections",
                f"at most {self._limit} open connections per client address",
                429,
            )
        self._open[address] += 1
        self._metrics.engine_connections.inc()
        try:
            response: web.StreamResponse = await self._server.handle_request(request)
            return response
        finally:
            self._metrics.engine_connections.dec()
            self._open[address] -= 1
            if self._open[address] <= 0:
                del self._open[address]
