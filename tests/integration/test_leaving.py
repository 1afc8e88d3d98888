"""Leaving versus dropping, through a real server and real Socket.IO clients.

A client that closes its socket says goodbye (a page being closed does: web/client/
socket.js on `pagehide`): that is a leave, and the others' tiles go at once. A WebSocket
that closes without a goodbye may be a network drop: the others show "Reconnecting…" for
the room's grace period, and a raised hand stays up unless the grace runs out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from server.config import Settings
from tests.support.participants import SocketParticipant, issue_token
from tests.support.process import ADMIN_KEY

# Short enough for a test to see it run out; a rejoin takes a few milliseconds here.
GRACE_SECONDS = 2.0


class Room:
    def __init__(self, base_url: str):
        self.base_url = base_url
        self.made: list[SocketParticipant] = []

    async def connect(self, identity: str, join: bool = True) -> SocketParticipant:
        """`identity` on a new connection (the same person again, when they exist)."""
        token = await asyncio.to_thread(issue_token, self.base_url, "pair-1", identity)
        person = await SocketParticipant(self.base_url, token).connect()
        self.made.append(person)
        if join:
            await person.join()
        return person


@pytest.fixture
async def room(aiohttp_server: Any, make_settings: Callable[..., Settings]) -> AsyncIterator[Room]:
    from server.app import create_app

    server = await aiohttp_server(create_app(make_settings(room_grace_seconds=GRACE_SECONDS)))
    made = Room(str(server.make_url("")).rstrip("/"))
    yield made
    for person in made.made:
        await person.close()


def lowered(identity: str) -> dict[str, Any]:
    return {"identity": identity, "raised": False}


async def test_closing_the_socket_is_leaving_at_once(room: Room) -> None:
    ada = await room.connect("ada")
    bo = await room.connect("bo")
    await bo.close()
    left = await ada.wait_for("participant_left", {"identity": "bo"})
    assert left == {"identity": "bo", "reason": "left"}  # no grace: the tile goes now


async def test_a_dropped_connection_is_held_for_the_grace_period(room: Room) -> None:
    ada = await room.connect("ada")
    bo = await room.connect("bo")
    await bo.drop()
    left = await ada.wait_for("participant_left", {"identity": "bo"})
    assert left == {"identity": "bo", "reason": "disconnected", "grace_seconds": GRACE_SECONDS}


async def test_a_raised_hand_survives_a_drop_and_a_rejoin(room: Room) -> None:
    """Bo's connection drops with his hand up and he is back within the grace: nobody
    sees it lowered, and his own page is told it is still up. Cy drops after Bo with her
    hand up and stays away: her hand going down marks the end of Bo's grace too."""
    ada = await room.connect("ada")
    bo = await room.connect("bo")
    cy = await room.connect("cy")
    for person, identity in ((bo, "bo"), (cy, "cy")):
        assert await person.call("hand", {"raised": True}) == {"raised": True}
        await ada.wait_for("hand", {"identity": identity, "raised": True})
    bo_again = await room.connect("bo", join=False)  # the page's next connection, ready

    await bo.drop()
    await ada.wait_for("participant_left", {"identity": "bo", "reason": "disconnected"})
    await bo_again.join()
    assert await bo_again.call("hands", {}) == {"hands": ["bo", "cy"]}

    await cy.drop()
    await ada.wait_for("hand", lowered("cy"), timeout=GRACE_SECONDS + 10)
    assert lowered("bo") not in [
        {k: h[k] for k in ("identity", "raised")} for h in ada.events["hand"]
    ]
    assert await ada.call("hands", {}) == {"hands": ["bo"]}


async def test_a_held_hand_goes_down_when_the_grace_runs_out(room: Room) -> None:
    ada = await room.connect("ada")
    bo = await room.connect("bo")
    assert await bo.call("hand", {"raised": True}) == {"raised": True}
    await ada.wait_for("hand", {"identity": "bo", "raised": True})
    await bo.drop()
    await ada.wait_for("participant_left", {"identity": "bo", "reason": "disconnected"})
    assert await ada.call("hands", {}) == {"hands": ["bo"]}  # held meanwhile

    await ada.wait_for("hand", lowered("bo"), timeout=GRACE_SECONDS + 10)
    assert await ada.call("hands", {}) == {"hands": []}
    bo_again = await room.connect("bo")  # too late: he comes back with his hand down
    assert await bo_again.call("hands", {}) == {"hands": []}


async def test_a_hand_goes_down_at_once_when_its_raiser_leaves(room: Room) -> None:
    """Closing the page, and being removed by an operator, lower the hand without waiting
    for the grace period: Ada hears it go down before she hears the grace could be over
    (her own marker, a drop of Di's, held for the same grace, comes after)."""
    ada = await room.connect("ada")
    bo = await room.connect("bo")
    cy = await room.connect("cy")
    di = await room.connect("di")
    for person, identity in ((bo, "bo"), (cy, "cy"), (di, "di")):
        assert await person.call("hand", {"raised": True}) == {"raised": True}
        await ada.wait_for("hand", {"identity": identity, "raised": True})
    await di.drop()  # the clock: Di's hand goes down one grace period from now

    await bo.close()
    async with (
        aiohttp.ClientSession() as http,
        http.delete(
            room.base_url + "/api/v1/rooms/pair-1/participants/cy",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        ) as resp,
    ):
        assert resp.status == 200
    await ada.wait_for("hand", lowered("di"), timeout=GRACE_SECONDS + 10)
    down = [h["identity"] for h in ada.events["hand"] if not h["raised"]]
    assert down[-1] == "di" and set(down[:-1]) == {"bo", "cy"}, down
