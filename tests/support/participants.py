"""A real Socket.IO participant (msgpack, WebSocket) for tests and load tools."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections import defaultdict
from typing import Any

import socketio

from tests.support.process import ADMIN_KEY


def issue_token(
    base_url: str,
    room: str,
    identity: str,
    name: str | None = None,
    role: str = "mentee",
    ttl_seconds: int | None = None,
) -> str:
    body: dict[str, Any] = {
        "room": room,
        "identity": identity,
        "name": name or identity.title(),
        "role": role,
    }
    if ttl_seconds is not None:
        body["ttl_seconds"] = ttl_seconds
    request = urllib.request.Request(
        base_url.rstrip("/") + "/api/v1/tokens",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return str(json.loads(resp.read())["token"])


def set_operators_read_chat(base_url: str, allowed: bool) -> None:
    """The program setting that also lets observers read a room's chat."""
    request = urllib.request.Request(
        base_url.rstrip("/") + "/api/v1/program/settings",
        data=json.dumps({"operators_read_chat": allowed}).encode(),
        method="PUT",
        headers={"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200


class SocketParticipant:
    """Connects with a token, records every server event, answers with acks."""

    def __init__(self, base_url: str, token: str):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.sio = socketio.AsyncClient(serializer="msgpack", reconnection=False)
        self.events: dict[str, list[Any]] = defaultdict(list)
        self._arrived = asyncio.Event()
        self.sio.on("*", self._record)

    async def _record(self, event: str, data: Any = None) -> None:
        self.events[event].append(data)
        self._arrived.set()

    async def connect(self) -> SocketParticipant:
        await self.sio.connect(
            self.base_url,
            auth={"token": self.token},
            transports=["websocket"],
            socketio_path="socket.io",
            wait_timeout=10,
        )
        return self

    async def call(self, event: str, data: Any = None, timeout: float = 10) -> Any:
        return await self.sio.call(event, data, timeout=timeout)

    async def join(self, **payload: Any) -> dict[str, Any]:
        ack = await self.call("join", payload or None)
        assert "error" not in ack, ack
        return dict(ack)

    async def chat(self, text: str, client_id: str) -> dict[str, Any]:
        return dict(await self.call("chat", {"text": text, "client_id": client_id}))

    async def wait_for(self, event: str, match: Any = None, timeout: float = 10) -> Any:
        """The first recorded `event` whose payload matches (a dict of expected fields or a
        predicate), waiting for it if needed."""

        def matches(data: Any) -> bool:
            if match is None:
                return True
            if callable(match):
                return bool(match(data))
            return all(data.get(k) == v for k, v in match.items())

        async def seek() -> Any:
            while True:
                for data in self.events[event]:
                    if matches(data):
                        return data
                self._arrived.clear()
                await self._arrived.wait()

        return await asyncio.wait_for(seek(), timeout)

    async def close(self) -> None:
        """Say goodbye and disconnect, as a page being closed does (web/client/socket.js):
        the server takes it as a leave."""
        if self.sio.connected:
            # `disconnect()` queues the DISCONNECT packet and closes the WebSocket without
            # waiting for it to go out, so the server mostly saw a dropped transport.
            goodbye = self.sio.packet_class(socketio.packet.DISCONNECT, namespace="/")
            await self.sio._send_packet(goodbye)
            sent = asyncio.ensure_future(self.sio.eio.queue.join())
            writer = self.sio.eio.write_loop_task  # ends if the server is gone
            await asyncio.wait(
                [t for t in (sent, writer) if t], timeout=10, return_when=asyncio.FIRST_COMPLETED
            )
            sent.cancel()
            await self.sio.disconnect()

    async def drop(self) -> None:
        """Lose the connection as a network fault would: the WebSocket closes with no
        goodbye (no Socket.IO or Engine.IO disconnect packet) and nothing reconnects."""
        await self.sio.eio.ws.close()
        await asyncio.wait_for(self.sio.eio.wait(), 10)
