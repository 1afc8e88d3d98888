"""Item 7: Engine.IO sockets that never send a Socket.IO CONNECT were held forever.

500 raw Engine.IO websockets from one address stayed open, uncounted. Now each client
address may hold `PAIRWISE_CONNECTIONS_PER_ADDRESS` of them (429 beyond, before the
upgrade), one that has not CONNECTed after `PAIRWISE_CONNECT_TIMEOUT_SECONDS` is closed,
and /metrics counts both. Clients come from distinct loopback addresses.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import aiohttp
import pytest
import socketio

from tests.security.proxy import from_address, reverse_proxy
from tests.support.participants import issue_token
from tests.support.process import ServerProcess
from tests.support.waiting import eventually

HANDSHAKE = "/socket.io/?EIO=4&transport=websocket"


async def engineio_open(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> aiohttp.ClientWebSocketResponse:
    """An Engine.IO websocket that got its open packet and will never CONNECT."""
    ws = await http.ws_connect(url.replace("http://", "ws://") + HANDSHAKE, headers=headers)
    first = await ws.receive(timeout=10)
    assert first.type == aiohttp.WSMsgType.TEXT and first.data.startswith("0{"), first
    return ws


async def metric(http: aiohttp.ClientSession, url: str, name: str) -> float:
    async with http.get(url + "/metrics") as resp:
        text = await resp.text()
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def test_one_address_opening_more_engineio_sockets_than_the_cap_is_refused(
    server_process: Callable[..., ServerProcess],
) -> None:
    server = await asyncio.to_thread(
        server_process,
        PAIRWISE_CONNECTIONS_PER_ADDRESS="5",
        PAIRWISE_CONNECT_TIMEOUT_SECONDS="60",
    )
    token = await asyncio.to_thread(issue_token, server.url, "pair-1", "ada")
    async with from_address("127.0.0.2") as flooder, aiohttp.ClientSession() as observer:
        held = [await engineio_open(flooder, server.url) for _ in range(5)]
        for _ in range(3):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await flooder.ws_connect(server.url.replace("http://", "ws://") + HANDSHAKE)
            assert refused.value.status == 429
        assert await metric(observer, server.url, "pairwise_engineio_connections") == 5
        assert (
            await metric(
                observer, server.url, 'pairwise_engineio_refused_total{reason="address_cap"}'
            )
            == 3
        )
        # Another client address still connects, with a real Socket.IO client.
        other = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=("127.0.0.3", 0)))
        sio = socketio.AsyncClient(serializer="msgpack", reconnection=False, http_session=other)
        try:
            await sio.connect(
                server.url, auth={"token": token}, transports=["websocket"], wait_timeout=10
            )
            assert sio.connected
        finally:
            await sio.disconnect()
            await other.close()
        # A slot freed by closing one is usable again.
        await held.pop().close()

        async def released() -> bool:
            return await metric(observer, server.url, "pairwise_engineio_connections") <= 4

        await eventually(released, timeout=10, what="the closed socket released")
        held.append(await engineio_open(flooder, server.url))
        for ws in held:
            await ws.close()


async def test_engineio_socket_that_never_sends_connect_is_closed(
    server_process: Callable[..., ServerProcess],
) -> None:
    server = await asyncio.to_thread(server_process, PAIRWISE_CONNECT_TIMEOUT_SECONDS="1")
    token = await asyncio.to_thread(issue_token, server.url, "pair-1", "ada")
    sio = socketio.AsyncClient(serializer="msgpack", reconnection=False)
    await sio.connect(server.url, auth={"token": token}, transports=["websocket"], wait_timeout=10)
    async with aiohttp.ClientSession() as http:
        idle = await engineio_open(http, server.url)
        # Answer every ping (as the attacker did): only the connect deadline can close it.
        # The server pings every 10 s and gives up 10 s later, so closing within 8 s is
        # the deadline's doing.
        said_close = False  # the Engine.IO close packet, "1", comes before the socket closes
        async with asyncio.timeout(8):
            while True:
                msg = await idle.receive()
                if msg.type == aiohttp.WSMsgType.TEXT and msg.data == "2":
                    await idle.send_str("3")
                elif msg.type == aiohttp.WSMsgType.TEXT and msg.data == "1":
                    said_close = True
                else:
                    break
        assert said_close and msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg

        async def released() -> bool:
            return await metric(http, server.url, "pairwise_engineio_connections") <= 1

        await eventually(released, timeout=5, what="the idle socket released")
        assert (
            await metric(
                http, server.url, 'pairwise_engineio_refused_total{reason="connect_timeout"}'
            )
            == 1
        )
    # The client that did CONNECT is untouched by the deadline it outlived.
    assert sio.connected
    assert "error" in await sio.call("no-such-event", {}, timeout=10)
    await sio.disconnect()


async def test_behind_the_proxy_one_flooding_client_does_not_use_up_everyones_connections(
    server_process: Callable[..., ServerProcess],
) -> None:
    """Behind a trusted proxy the cap counts the client (X-Forwarded-For), not the proxy:
    the flooder is refused and another client of the same proxy still connects."""
    server = await asyncio.to_thread(
        server_process,
        PAIRWISE_TRUSTED_PROXIES='["127.0.0.1"]',
        PAIRWISE_CONNECTIONS_PER_ADDRESS="3",
        PAIRWISE_CONNECT_TIMEOUT_SECONDS="60",
    )
    token = await asyncio.to_thread(issue_token, server.url, "pair-1", "ada")
    async with reverse_proxy(server.url) as proxy, from_address("127.0.0.2") as flooder:
        held = [await engineio_open(flooder, proxy) for _ in range(3)]
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await flooder.ws_connect(proxy.replace("http://", "ws://") + HANDSHAKE)
        assert refused.value.status == 429
        other = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=("127.0.0.3", 0)))
        sio = socketio.AsyncClient(serializer="msgpack", reconnection=False, http_session=other)
        try:
            await sio.connect(
                proxy, auth={"token": token}, transports=["websocket"], wait_timeout=10
            )
            assert sio.connected
        finally:
            await sio.disconnect()
            await other.close()
        for ws in held:
            await ws.close()


async def test_behind_a_proxy_that_adds_its_own_header_line_the_client_cannot_dodge_the_cap(
    server_process: Callable[..., ServerProcess],
) -> None:
    """With HAProxy's `option forwardfor` the client's own `X-Forwarded-For` line comes
    first; a new address in it for each socket went past the cap when only that line
    was read."""
    server = await asyncio.to_thread(
        server_process,
        PAIRWISE_TRUSTED_PROXIES='["127.0.0.1"]',
        PAIRWISE_CONNECTIONS_PER_ADDRESS="3",
        PAIRWISE_CONNECT_TIMEOUT_SECONDS="60",
    )
    async with (
        reverse_proxy(server.url, forwarded_for="line") as proxy,
        from_address("127.0.0.2") as flooder,
    ):
        held = [
            await engineio_open(flooder, proxy, headers={"X-Forwarded-For": f"192.0.2.{n}"})
            for n in range(3)
        ]
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await flooder.ws_connect(
                proxy.replace("http://", "ws://") + HANDSHAKE,
                headers={"X-Forwarded-For": "192.0.2.99"},
            )
        assert refused.value.status == 429
        for ws in held:
            await ws.close()
