"""Deactivating a participant takes away everything they hold, live, and says who did it:
they are disconnected from the room they are in, every token they hold for any of their
pairs' rooms is refused (REST and Socket.IO), their sessions end, and sign-in refuses them.
Reactivating lets them sign in and join again with new tokens; the old ones stay refused.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import aiohttp
import pytest
import socketio

from server.phone.pins import PinStore
from tests.conftest import ADMIN
from tests.signin.conftest import SignInServer
from tests.signin.conftest import mailbox as mailbox  # noqa: F401 - the fixture
from tests.signin.conftest import make_server as make_server  # noqa: F401 - the fixture
from tests.signin.conftest import server as server  # noqa: F401 - the fixture
from tests.support.participants import SocketParticipant

CSV = """identity,name,role,timezone,availability,skills,email
ada,Ada,mentee,Europe/London,Mon 09:00-17:00,python,ada@example.org
grace,Grace,mentor,Europe/London,Mon 09:00-17:00,python,grace@example.org
lin,Lin,mentor,Europe/Berlin,Mon 09:00-17:00,python,lin@example.org
"""


async def _pair(server: SignInServer, mentor: str, room: str) -> dict[str, Any]:
    members = [
        {"identity": mentor, "name": mentor.title(), "role": "mentor"},
        {"identity": "ada", "name": "Ada", "role": "mentee"},
    ]
    return dict(await server.admin("POST", "/api/v1/pairs", {"members": members, "room": room}))


async def _node(server: SignInServer, room: str, token: str) -> int:
    """The status of a room route called with `token` (401 once it is refused)."""
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{server.url}/api/v1/rooms/{room}/node", headers=headers) as resp,
    ):
        return resp.status


async def _next_second() -> None:
    """A token's `iat` has one-second precision, and one issued in the same second as a
    removal is refused by design (server/rooms/removals.py): wait for the clock, not for
    any part of the server, to pass into the next second."""
    now = time.time()
    await asyncio.sleep(math.floor(now) + 1 - now + 0.01)
    assert math.floor(time.time()) > math.floor(now)


async def _connected(server: SignInServer, token: str) -> SocketParticipant:
    person = await SocketParticipant(server.url, token).connect()
    gone = asyncio.Event()
    person.sio.on("disconnect", lambda *_: gone.set())
    person.gone = gone  # type: ignore[attr-defined]
    return person


async def test_deactivating_a_participant_takes_everything_back(server: SignInServer) -> None:
    await server.admin(
        "POST", "/api/v1/console/participants/import", {"format": "csv", "text": CSV}
    )
    first = await _pair(server, "grace", "room-ada")
    second = await _pair(server, "lin", "room-ada-2")
    await server.admin(
        "POST", "/api/v1/accounts/operators", {"email": "mo@example.org", "role": "manager"}
    )
    manager = await server.signed_in("mo@example.org")
    ada = await server.signed_in("ada@example.org")
    grace = await server.signed_in("grace@example.org")
    tokens = {}
    for pair in (first, second):
        status, minted = await ada.call("POST", f"/api/v1/home/pairs/{pair['id']}/join")
        assert status == 201, minted
        tokens[pair["room"]] = minted["token"]
    status, minted = await grace.call("POST", f"/api/v1/home/pairs/{first['id']}/join")
    grace_token = minted["token"]
    # Her personal dial-in PIN (phone is off in this app: the gateway asks the same store).
    pins = PinStore(server.services.database)
    pin = await pins.participant_pin("room-ada", "ada", "Ada", "mentee")
    match = await pins.resolve(pin)
    assert match is not None and not match.removed
    inside = await _connected(server, tokens["room-ada"])
    await inside.join(media_mode="text")
    partner = await _connected(server, grace_token)
    await partner.join(media_mode="text")

    status, done = await manager.call("POST", "/api/v1/console/participants/ada/deactivate")
    assert status == 200, done
    assert done["rooms"] == ["room-ada", "room-ada-2"]
    assert done["disconnected"] == ["room-ada"] and done["signed_out"] == 1

    # Live: Ada was told and disconnected; Grace sees her leave and stays.
    assert (await inside.wait_for("error"))["code"] == "removed"
    await asyncio.wait_for(inside.gone.wait(), 10)  # type: ignore[attr-defined]
    await partner.wait_for("participant_left", {"identity": "ada"})
    assert partner.sio.connected
    # Every token Ada held is refused, in both rooms, and Socket.IO refuses it at connect.
    for room, token in tokens.items():
        assert await _node(server, room, token) == 401, room
    refused = SocketParticipant(server.url, tokens["room-ada"])
    with pytest.raises(socketio.exceptions.ConnectionError):
        await refused.connect()
    assert await _node(server, "room-ada", grace_token) == 200
    match = await pins.resolve(pin)
    assert match is not None and match.removed, "her PIN still lets her in"
    # Her session ended; sign-in refuses her and makes no link for her.
    assert (await ada.call("GET", "/api/v1/signin/session"))[0] == 401
    account = await server.signin.accounts.by_identity("ada")
    assert account is not None and not account.active
    status, _ = await manager.call("POST", f"/api/v1/accounts/participants/{account.id}/link", {})
    assert status == 403
    # Who did it, in the audit log.
    entries = (await server.admin("GET", "/api/v1/privacy/audit"))["entries"]
    by_manager = [(e["action"], e["subject"]) for e in entries if e["actor"] == "mo@example.org"]
    for entry in (
        ("console_deactivate", "ada"),
        ("account_deactivate", "ada"),
        ("participant_remove", "ada"),
    ):
        assert entry in by_manager, by_manager
    assert by_manager.count(("participant_remove", "ada")) == 2

    # Reactivated: she signs in again and joins with a new token; the old ones stay refused.
    await _next_second()
    status, back = await manager.call("POST", "/api/v1/console/participants/ada/reactivate")
    assert (status, back["signin"]) == (200, True), back
    again = await server.signed_in("ada@example.org")
    status, minted = await again.call("POST", f"/api/v1/home/pairs/{first['id']}/join")
    assert status == 201, minted
    assert await _node(server, "room-ada", minted["token"]) == 200
    returned = await SocketParticipant(server.url, minted["token"]).connect()
    await returned.join(media_mode="text")
    for room, token in tokens.items():
        assert await _node(server, room, token) == 401, room
    match = await pins.resolve(pin)
    assert match is not None and match.removed, "reactivation revived her old PIN"
    # An operator's removal after the reactivation holds against her home's Join.
    await server.admin("DELETE", "/api/v1/rooms/room-ada/participants/ada")
    status, refused_join = await again.call("POST", f"/api/v1/home/pairs/{first['id']}/join")
    assert (status, refused_join["error"]["code"]) == (403, "removed")
    assert (await again.call("POST", f"/api/v1/home/pairs/{second['id']}/join"))[0] == 201
    for person in (inside, partner, returned):
        await person.close()
    for browser in (manager, ada, grace, again):
        await browser.close()


async def test_deactivating_an_account_does_the_same(server: SignInServer) -> None:
    """`PATCH /api/v1/accounts/participants/{id}` with `active: false` is the same act."""
    ada = await server.participant("ada", "ada@example.org", "Ada")
    await _pair(server, "grace", "room-ada")
    browser = await server.signed_in("ada@example.org")
    pairs = await server.admin("GET", "/api/v1/pairs")
    status, minted = await browser.call(
        "POST", f"/api/v1/home/pairs/{pairs['pairs'][0]['id']}/join"
    )
    assert status == 201
    async with (
        aiohttp.ClientSession() as http,
        http.patch(
            f"{server.url}/api/v1/accounts/participants/{ada['id']}",
            json={"active": False},
            headers=ADMIN,
        ) as resp,
    ):
        assert resp.status == 200 and (await resp.json())["active"] is False
    assert await _node(server, "room-ada", minted["token"]) == 401
    assert (await browser.call("GET", "/api/v1/signin/session"))[0] == 401
    await browser.close()
