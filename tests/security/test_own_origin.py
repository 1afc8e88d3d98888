"""Item 6: the server refused its own pages, and then a caller could make any origin its own.

With `PAIRWISE_CORS_ORIGINS` set, Socket.IO accepted only the listed origins, so the join
page served by the server itself hung at "Reconnecting…". Behind a TLS proxy the
same-origin check compared the page's `https://` origin with `http://` and refused
same-origin POSTs. The proxy is tests/security/proxy.py, standing in for nginx.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
import pytest
import socketio

from tests.conftest import ADMIN
from tests.security.proxy import from_address, reverse_proxy
from tests.support.participants import issue_token
from tests.support.process import ServerProcess

PARTNER = '["https://partner.example.org"]'
BODY = {"room": "r", "identity": "a", "name": "A", "role": "mentee"}


async def connect(url: str, token: str, origin: str) -> socketio.AsyncClient:
    sio = socketio.AsyncClient(serializer="msgpack", reconnection=False)
    await sio.connect(
        url,
        auth={"token": token},
        headers={"Origin": origin},
        transports=["websocket"],
        wait_timeout=10,
    )
    return sio


async def test_allow_list_set_socketio_refuses_the_servers_own_join_page(
    server_process: Callable[..., ServerProcess],
) -> None:
    server = await asyncio.to_thread(server_process, PAIRWISE_CORS_ORIGINS=PARTNER)
    token = await asyncio.to_thread(issue_token, server.url, "pair-1", "ada")
    sio = await connect(server.url, token, origin=server.url)
    try:
        assert sio.connected
    finally:
        await sio.disconnect()
    # A listed origin still connects; any other is still refused.
    sio = await connect(server.url, token, origin="https://partner.example.org")
    await sio.disconnect()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await connect(server.url, token, origin="https://evil.example.com")


async def test_same_origin_post_and_socketio_behind_a_tls_proxy_are_refused(
    server_process: Callable[..., ServerProcess],
) -> None:
    server = await asyncio.to_thread(
        server_process, PAIRWISE_TRUSTED_PROXIES='["127.0.0.1"]', PAIRWISE_CORS_ORIGINS=PARTNER
    )
    token = await asyncio.to_thread(issue_token, server.url, "pair-1", "ada")
    async with reverse_proxy(server.url, proto="https") as proxy, aiohttp.ClientSession() as http:
        page_origin = proxy.replace("http://", "https://")  # what the browser sees
        headers = {**ADMIN, "Origin": page_origin}
        async with http.post(proxy + "/api/v1/tokens", json=BODY, headers=headers) as resp:
            assert resp.status == 201, await resp.text()
        sio = await connect(proxy, token, origin=page_origin)
        await sio.disconnect()
        # The plain-http origin is not this site's any more (the proxy says https).
        headers["Origin"] = proxy
        async with http.post(proxy + "/api/v1/tokens", json=BODY, headers=headers) as resp:
            assert resp.status == 403


async def test_forged_forwarded_proto_from_an_untrusted_peer_does_not_make_an_origin_own(
    server_process: Callable[..., ServerProcess],
) -> None:
    server = await asyncio.to_thread(server_process, PAIRWISE_TRUSTED_PROXIES='["10.9.9.9"]')
    forged = server.url.replace("http://", "https://")
    headers = {**ADMIN, "Origin": forged, "X-Forwarded-Proto": "https"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(server.url + "/api/v1/tokens", json=BODY, headers=headers) as resp,
    ):
        assert resp.status == 403


async def test_with_a_public_url_a_forwarded_or_forged_host_does_not_make_an_origin_own(
    server_process: Callable[..., ServerProcess],
) -> None:
    """A proxy that passes the client's `X-Forwarded-Host` through (the nginx block did) let
    `X-Forwarded-Host: evil.example` make `Origin: https://evil.example` own; `Host` did the
    same straight to the server. With `PAIRWISE_PUBLIC_URL` set, only its origin is own."""
    public = "https://mentoring.example.org"
    server = await asyncio.to_thread(
        server_process,
        PAIRWISE_TRUSTED_PROXIES='["127.0.0.1"]',
        PAIRWISE_PUBLIC_URL=public + ":443/",  # as a browser writes it: no default port
    )
    token = await asyncio.to_thread(issue_token, server.url, "pair-1", "ada")
    forged = {"X-Forwarded-Host": "evil.example"}
    async with (
        reverse_proxy(server.url, sets_forwarded_host=False) as proxy,
        aiohttp.ClientSession() as http,
        from_address("127.0.0.2") as direct,
    ):
        headers = {**ADMIN, **forged, "Origin": "https://evil.example"}
        async with http.post(proxy + "/api/v1/tokens", json=BODY, headers=headers) as resp:
            assert resp.status == 403
        sio = socketio.AsyncClient(serializer="msgpack", reconnection=False, http_session=http)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await sio.connect(
                proxy,
                auth={"token": token},
                headers={**forged, "Origin": "https://evil.example"},
                transports=["websocket"],
                wait_timeout=10,
            )
        # DNS-rebinding shape: an untrusted peer whose Host matches its Origin.
        headers = {**ADMIN, "Host": "evil.example", "Origin": "http://evil.example"}
        async with direct.post(server.url + "/api/v1/tokens", json=BODY, headers=headers) as resp:
            assert resp.status == 403
        # The public origin is own whatever the Host.
        headers = {**ADMIN, **forged, "Origin": public}
        async with http.post(proxy + "/api/v1/tokens", json=BODY, headers=headers) as resp:
            assert resp.status == 201, await resp.text()
        sio = await connect(proxy, token, origin=public)
        await sio.disconnect()


async def test_without_a_public_url_the_documented_proxy_overwrites_a_clients_forwarded_host(
    server_process: Callable[..., ServerProcess],
) -> None:
    """Without `PAIRWISE_PUBLIC_URL` the own origin is the host the proxy reports; the
    documented nginx blocks set `X-Forwarded-Host $host`, so the client's value is gone."""
    server = await asyncio.to_thread(server_process, PAIRWISE_TRUSTED_PROXIES='["127.0.0.1"]')
    async with reverse_proxy(server.url) as proxy, aiohttp.ClientSession() as http:
        headers = {**ADMIN, "X-Forwarded-Host": "evil.example", "Origin": "https://evil.example"}
        async with http.post(proxy + "/api/v1/tokens", json=BODY, headers=headers) as resp:
            assert resp.status == 403
        headers["Origin"] = proxy.replace("http://", "https://")
        async with http.post(proxy + "/api/v1/tokens", json=BODY, headers=headers) as resp:
            assert resp.status == 201, await resp.text()
