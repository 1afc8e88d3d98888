"""Bad actors and bad input: removed participants, oversized input, foreign origins, floods."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
import socketio

from server.app import create_app
from server.auth import Role, TokenIssuer
from server.config import Settings
from server.jobs.clock import ManualClock
from tests.conftest import ADMIN
from tests.support.participants import SocketParticipant, issue_token
from tests.support.parts import ServerParts
from tests.support.process import SECRET_KEY


async def serve(
    aiohttp_server: Any, make_settings: Callable[..., Settings], **overrides: Any
) -> str:
    server = await aiohttp_server(create_app(make_settings(**overrides)))
    return str(server.make_url("")).rstrip("/")


async def test_removed_participant_is_disconnected_and_cannot_rejoin_with_that_token(
    aiohttp_server: Any, make_settings: Callable[..., Settings]
) -> None:
    server = await aiohttp_server(create_app(make_settings()))
    url = str(server.make_url("")).rstrip("/")
    # Mallory's token and her removal happen ten seconds ago: a token `iat` has one-second
    # precision and one issued in the second of a removal is refused too, so the token an
    # operator issues now is the first that may let her back in.
    past = ManualClock(time.time() - 10)
    ServerParts(server.app).removals.clock = past
    token, _ = TokenIssuer(SECRET_KEY, 3600, clock=past).issue(
        "pair-1", "mallory", "Mallory", Role.MENTEE
    )
    mallory = await SocketParticipant(url, token).connect()
    await mallory.join()
    ada = await SocketParticipant(
        url, await asyncio.to_thread(issue_token, url, "pair-1", "ada")
    ).connect()
    await ada.join()

    async with aiohttp.ClientSession() as http:
        async with http.delete(url + "/api/v1/rooms/pair-1/participants/mallory") as resp:
            assert resp.status == 401
        async with http.delete(
            url + "/api/v1/rooms/pair-1/participants/mallory", headers=ADMIN
        ) as resp:
            assert resp.status == 200 and (await resp.json())["disconnected"] is True
    assert (await mallory.wait_for("error", {"code": "removed"}))["message"]
    assert (await ada.wait_for("participant_left", {"identity": "mallory"}))["reason"] == "removed"
    await asyncio.wait_for(mallory.sio.wait(), 10)  # returns once the server has closed it
    assert not mallory.sio.connected

    again = socketio.AsyncClient(serializer="msgpack", reconnection=False)
    errors: list[Any] = []
    again.on("connect_error", errors.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await again.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=5)
    assert errors[0]["data"]["code"] == "token_revoked"

    fresh = await asyncio.to_thread(issue_token, url, "pair-1", "mallory")
    forgiven = await SocketParticipant(url, fresh).connect()
    assert "room" in await forgiven.join()
    for person in (ada, forgiven):
        await person.close()


async def test_oversized_http_body_is_refused(
    aiohttp_server: Any, make_settings: Callable[..., Settings]
) -> None:
    url = await serve(aiohttp_server, make_settings, max_request_bytes=2048)
    async with aiohttp.ClientSession() as http:
        body = {"room": "r", "identity": "a", "name": "x" * 5000, "role": "mentee"}
        async with http.post(url + "/api/v1/tokens", json=body, headers=ADMIN) as resp:
            assert resp.status == 413
            assert (await resp.json())["error"]["code"] == "too_large"
        async with http.get(url + "/healthz") as resp:
            assert resp.status == 200


async def test_oversized_socket_message_closes_only_that_connection(
    aiohttp_server: Any, make_settings: Callable[..., Settings]
) -> None:
    url = await serve(aiohttp_server, make_settings, max_message_bytes=4096)
    big = await SocketParticipant(
        url, await asyncio.to_thread(issue_token, url, "r", "big")
    ).connect()
    ok = await SocketParticipant(
        url, await asyncio.to_thread(issue_token, url, "r", "ok")
    ).connect()
    await big.join()
    await ok.join()
    with pytest.raises((socketio.exceptions.TimeoutError, socketio.exceptions.BadNamespaceError)):
        await big.call("chat", {"text": "x" * 10_000, "client_id": "huge"}, timeout=3)
    assert "id" in await ok.chat("still fine", "fine")
    history = (await ok.call("history", {}))["messages"]
    assert [m["client_id"] for m in history] == ["fine"]
    await ok.close()
    await big.close()


async def test_cors_allows_listed_origins_and_refuses_others(
    aiohttp_server: Any, make_settings: Callable[..., Settings]
) -> None:
    url = await serve(aiohttp_server, make_settings, cors_origins=["https://mentoring.example.org"])
    body = {"room": "r", "identity": "a", "name": "A", "role": "mentee"}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            url + "/api/v1/tokens",
            json=body,
            headers={**ADMIN, "Origin": "https://evil.example.com"},
        ) as resp:
            assert resp.status == 403
            assert (await resp.json())["error"]["code"] == "origin_not_allowed"
        async with http.options(
            url + "/api/v1/tokens",
            headers={
                "Origin": "https://mentoring.example.org",
                "Access-Control-Request-Method": "POST",
            },
        ) as resp:
            assert resp.status == 204
            assert resp.headers["Access-Control-Allow-Origin"] == "https://mentoring.example.org"
        async with http.post(
            url + "/api/v1/tokens",
            json=body,
            headers={**ADMIN, "Origin": "https://mentoring.example.org"},
        ) as resp:
            assert resp.status == 201
            assert resp.headers["Access-Control-Allow-Origin"] == "https://mentoring.example.org"
    # Socket.IO refuses a foreign origin too.
    token = await asyncio.to_thread(issue_token, url, "r", "a")
    foreign = socketio.AsyncClient(serializer="msgpack", reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await foreign.connect(
            url,
            auth={"token": token},
            transports=["websocket"],
            headers={"Origin": "https://evil.example.com"},
            wait_timeout=5,
        )


async def test_guessing_the_admin_key_and_flooding_tokens_are_throttled(
    aiohttp_server: Any, make_settings: Callable[..., Settings]
) -> None:
    url = await serve(
        aiohttp_server, make_settings, auth_failures_per_minute=5, tokens_per_minute=10
    )
    body = {"room": "r", "identity": "a", "name": "A", "role": "mentee"}
    async with aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(8):
            async with http.post(
                url + "/api/v1/tokens", json=body, headers={"Authorization": "Bearer guess"}
            ) as resp:
                statuses.append(resp.status)
        assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
        # Even the right key waits out the lock-out from this address.
        async with http.post(url + "/api/v1/tokens", json=body, headers=ADMIN) as resp:
            assert resp.status == 429

    url = await serve(aiohttp_server, make_settings, tokens_per_minute=10)
    async with aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(12):
            async with http.post(url + "/api/v1/tokens", json=body, headers=ADMIN) as resp:
                statuses.append(resp.status)
        assert statuses.count(201) == 10 and statuses[10:] == [429, 429]


async def test_pages_carry_security_headers(
    aiohttp_server: Any, make_settings: Callable[..., Settings]
) -> None:
    url = await serve(aiohttp_server, make_settings)
    async with aiohttp.ClientSession() as http:
        for path in ("/healthz", "/api/openapi.json", "/join"):
            async with http.get(url + path) as resp:
                csp = resp.headers["Content-Security-Policy"]
                assert "script-src 'self'" in csp and "unsafe-inline" not in csp
                assert "unsafe-eval" not in csp and "frame-ancestors 'none'" in csp
                assert resp.headers["X-Content-Type-Options"] == "nosniff"
