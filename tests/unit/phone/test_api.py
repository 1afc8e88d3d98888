"""The PIN endpoints on a tiny app: only the admin key (settings) and dial-in are set on it."""

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from server.api.http import error_middleware
from server.api.keys import SETTINGS
from server.config import load_settings
from server.phone import api
from server.phone.dial_in import DialIn
from tests.conftest import ADMIN
from tests.support.process import ADMIN_KEY
from tests.unit.phone.test_pins import store


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path) -> Any:
    app = web.Application(middlewares=[error_middleware])
    dial_in = DialIn(await store(tmp_path), "+49 30 1234 5678")
    app[SETTINGS] = load_settings(admin_key=ADMIN_KEY)
    app[api.DIAL_IN] = dial_in
    api.routes.install(app)
    return await aiohttp_client(app)


async def test_room_pin_is_created_once_then_read(client: Any) -> None:
    missing = await client.get("/api/v1/rooms/r1/pin", headers=ADMIN)
    assert missing.status == 404 and (await missing.json())["error"]["code"] == "no_pin"
    created = await (await client.post("/api/v1/rooms/r1/pin", headers=ADMIN)).json()
    again = await (await client.post("/api/v1/rooms/r1/pin", headers=ADMIN)).json()
    read = await (await client.get("/api/v1/rooms/r1/pin", headers=ADMIN)).json()
    assert created == again == read
    assert created["dial_in_number"] == "+49 30 1234 5678" and created["pin"].isdigit()


async def test_participant_pin(client: Any) -> None:
    response = await client.post(
        "/api/v1/rooms/r1/participant-pins",
        headers=ADMIN,
        json={"identity": "maya", "name": "Maya", "role": "mentee"},
    )
    assert response.status == 201
    body = await response.json()
    assert body["identity"] == "maya" and len(body["pin"]) == 6


async def test_errors(client: Any) -> None:
    assert (await client.post("/api/v1/rooms/r1/pin")).status == 401
    bad = await client.post(
        "/api/v1/rooms/r1/participant-pins",
        headers=ADMIN,
        json={"identity": "maya", "name": "Maya", "role": "boss"},
    )
    assert bad.status == 422
    assert (await client.get("/api/v1/rooms/-bad/pin", headers=ADMIN)).status == 422


async def test_no_pin_is_issued_for_a_closed_room(aiohttp_client: Any, tmp_path: Path) -> None:
    from server.errors import Forbidden

    async def require_open_room(room: str) -> None:
        if room == "closed":
            raise Forbidden("closed", code="room_closed")

    app = web.Application(middlewares=[error_middleware])
    dial_in = DialIn(await store(tmp_path), "+1", require_open_room)
    app[SETTINGS] = load_settings(admin_key=ADMIN_KEY)
    app[api.DIAL_IN] = dial_in
    api.routes.install(app)
    client = await aiohttp_client(app)
    person = {"identity": "maya", "name": "Maya", "role": "mentee"}
    for path, body in (("/pin", None), ("/participant-pins", person)):
        refused = await client.post(f"/api/v1/rooms/closed{path}", headers=ADMIN, json=body)
        assert refused.status == 403, path
        assert (await refused.json())["error"]["code"] == "room_closed"
        assert (await client.post(f"/api/v1/rooms/open{path}", headers=ADMIN, json=body)).ok
