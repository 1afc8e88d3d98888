"""The floor for chat benchmarks: a bare python-socketio server (msgpack, WebSocket, aiohttp)
that joins a room and echoes chat to it — no auth, no validation, no storage.

    python -m benchmarks.floor_server PORT
"""

from __future__ import annotations

import sys
import time
from typing import Any

import socketio
from aiohttp import web

sio = socketio.AsyncServer(async_mode="aiohttp", serializer="msgpack", transports=["websocket"])
app = web.Application()
sio.attach(app)
rooms: dict[str, str] = {}


@sio.on("connect")
async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
    rooms[sid] = auth["room"]


@sio.on("join")
async def join(sid: str, data: Any = None) -> dict[str, Any]:
    await sio.enter_room(sid, rooms[sid])
    return {"room": rooms[sid], "history": []}


@sio.on("chat")
async def chat(sid: str, data: dict[str, Any]) -> dict[str, Any]:
    ts = time.time()
    await sio.emit(
        "chat", {"text": data["text"], "client_id": data["client_id"], "ts": ts}, room=rooms[sid]
    )
    return {"id": 0, "ts": ts}


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


app.router.add_get("/healthz", healthz)

if __name__ == "__main__":
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
