"""A reverse proxy that stands in for the documented nginx (docs/operations.md).

nginx is not installed here; this aiohttp app does what that config does to a request:
forwards it to one upstream, keeps `Host`, appends the peer address to `X-Forwarded-For`
(`$proxy_add_x_forwarded_for`), sets `X-Forwarded-Host` to the `Host` it was sent (`$host`)
and, as the TLS terminator, sets `X-Forwarded-Proto: https`. `sets_forwarded_host=False`
is the nginx block that did not set `X-Forwarded-Host` and so passed the client's through.
WebSocket upgrades are proxied frame by frame, like `location /socket.io/`.

`forwarded_for="line"` stands in for HAProxy's `option forwardfor` instead: the client's
own `X-Forwarded-For` lines pass through untouched and the proxy adds one more line with
the peer address, which RFC 9110 §5.3 says means the same as appending to one list.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

Socket = aiohttp.ClientWebSocketResponse | web.WebSocketResponse
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "upgrade",
    "transfer-encoding",
    "content-length",
    "content-encoding",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-accept",
}


@asynccontextmanager
async def reverse_proxy(
    upstream: str,
    proto: str = "https",
    forwarded_for: Literal["join", "line"] = "join",
    sets_forwarded_host: bool = True,
) -> AsyncIterator[str]:
    """Serve the proxy on 127.0.0.1 (any port) and yield its URL."""
    session = aiohttp.ClientSession(auto_decompress=False)

    def forwarded_headers(request: web.Request) -> CIMultiDict[str]:
        headers = CIMultiDict(
            (k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP
        )
        peer = request.remote or ""
        if forwarded_for == "line":
            headers.add("X-Forwarded-For", peer)
        else:
            earlier = ", ".join(headers.popall("X-Forwarded-For", ()))
            headers["X-Forwarded-For"] = f"{earlier}, {peer}" if earlier else peer
        headers["X-Forwarded-Proto"] = proto
        if sets_forwarded_host:
            headers["X-Forwarded-Host"] = request.host
        return headers

    async def websocket(request: web.Request) -> web.StreamResponse:
        # Upstream first, as nginx does: a refused upgrade reaches the client as its status.
        async with session.ws_connect(
            upstream + request.path_qs, headers=forwarded_headers(request)
        ) as server:
            client = web.WebSocketResponse()
            await client.prepare(request)

            async def pump(src: Socket, dst: Socket) -> None:
                async for msg in src:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        await dst.send_str(msg.data)
                    elif msg.type == aiohttp.WSMsgType.BINARY:
                        await dst.send_bytes(msg.data)
                await dst.close()

            await asyncio.gather(pump(client, server), pump(server, client))
        return client

    async def forward(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            try:
                return await websocket(request)
            except aiohttp.WSServerHandshakeError as exc:
                return web.Response(status=exc.status)
        async with session.request(
            request.method,
            upstream + request.path_qs,
            headers=forwarded_headers(request),
            data=await request.read(),
            allow_redirects=False,
        ) as upstream_response:
            body = await upstream_response.read()
            headers = {
                k: v for k, v in upstream_response.headers.items() if k.lower() not in HOP_BY_HOP
            }
            return web.Response(status=upstream_response.status, body=body, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
        await session.close()


def from_address(address: str) -> aiohttp.ClientSession:
    """A client whose connections come from `address` (any of 127.0.0.0/8 works on lo)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)))
