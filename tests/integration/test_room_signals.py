"""Reactions, raised hands and the pre-join lobby through a real server and real
Socket.IO clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from server.config import Settings
from server.signaling.gestures import GESTURE_BURST, REFUSED
from tests.support.participants import SocketParticipant, issue_token

Join = Callable[..., Any]


@pytest.fixture
async def base_url(aiohttp_server: Any, make_settings: Callable[..., Settings]) -> str:
    from server.app import create_app

    server = await aiohttp_server(create_app(make_settings()))
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
async def people(base_url: str) -> AsyncIterator[Join]:
    made: list[SocketParticipant] = []

    async def connect(
        identity: str, room: str = "pair-1", role: str = "mentee", join: bool = True
    ) -> SocketParticipant:
        token = await asyncio.to_thread(
            issue_token, base_url, room, identity, identity.title() + " L.", role
        )
        person = await SocketParticipant(base_url, token).connect()
        made.append(person)
        if join:
            await person.join()
        return person

    yield connect
    for person in made:
        await person.close()


async def test_a_reaction_reaches_everyone_with_the_name(people: Join) -> None:
    ada = await people("ada", role="mentor")
    bo = await people("bo")
    assert await bo.call("reaction", {"reaction": "clap"}) == {"ok": True}
    for person in (ada, bo):
        seen = await person.wait_for("reaction", {"identity": "bo"})
        assert seen == {"identity": "bo", "name": "Bo L.", "reaction": "clap"}


async def test_bad_reactions_are_refused_and_nothing_is_sent(people: Join) -> None:
    ada = await people("ada", role="mentor")
    bo = await people("bo")
    for bad in ({"reaction": "<script>"}, {"reaction": 1}, {}, {"reaction": "clap", "x": 1}):
        ack = await bo.call("reaction", bad)
        assert ack["error"]["code"] == "invalid_payload", (bad, ack)
    outsider = await people("cy", join=False)
    ack = await outsider.call("reaction", {"reaction": "clap"})
    assert ack["error"]["code"] == "not_joined"
    await bo.call("hand", {"raised": False})  # a marker that arrives after anything sent before
    await ada.wait_for("hand", {"identity": "bo"})
    assert ada.events["reaction"] == []


async def test_reactions_are_rate_limited(people: Join) -> None:
    ada = await people("ada", role="mentor")
    bo = await people("bo")
    acks = [await bo.call("reaction", {"reaction": "heart"}) for _ in range(GESTURE_BURST + 3)]
    refused = [a for a in acks if "error" in a]
    assert refused and all(a["error"]["code"] == "rate_limited" for a in refused)
    assert len(acks) - len(refused) <= GESTURE_BURST + 1  # one may refill while sending
    await ada.wait_for(
        "reaction", lambda _: len(ada.events["reaction"]) == len(acks) - len(refused)
    )
    # The limit is per person: Ada still can.
    assert await ada.call("reaction", {"reaction": "heart"}) == {"ok": True}


async def test_reactions_and_hands_have_an_allowance_each(people: Join) -> None:
    ada = await people("ada", role="mentor")
    bo = await people("bo")
    acks = [await bo.call("reaction", {"reaction": "heart"}) for _ in range(GESTURE_BURST + 3)]
    assert any("error" in ack for ack in acks)
    # A few hearts do not stop a hand from going up (they shared one allowance before).
    assert await bo.call("hand", {"raised": True}) == {"raised": True}
    await ada.wait_for("hand", {"identity": "bo", "raised": True})
    # A hand sent up and down past its own allowance is refused, and changes nothing.
    acks = [await bo.call("hand", {"raised": i % 2 == 1}) for i in range(GESTURE_BURST + 3)]
    refused = [ack for ack in acks if "error" in ack]
    assert refused and {ack["error"]["code"] for ack in refused} == {"rate_limited"}
    assert refused[0]["error"]["message"] == REFUSED["hand"]
    accepted = [ack for ack in acks if "error" not in ack]
    expected = ["bo"] if accepted[-1]["raised"] else []
    assert await ada.call("hands", {}) == {"hands": expected}


async def test_a_raised_hand_is_room_state_until_lowered_or_gone(people: Join) -> None:
    ada = await people("ada", role="mentor")
    bo = await people("bo")
    assert await bo.call("hand", {"raised": True}) == {"raised": True}
    await ada.wait_for("hand", {"identity": "bo", "raised": True})
    late = await people("cy")
    assert await late.call("hands", {}) == {"hands": ["bo"]}  # whoever joins later sees it
    await bo.call("hand", {"raised": False})
    await ada.wait_for("hand", {"identity": "bo", "raised": False})
    assert await late.call("hands", {}) == {"hands": []}
    # Way back up, then Bo leaves: the hand goes down for everyone.
    await bo.call("hand", {"raised": True})
    await ada.wait_for("hand", lambda d: d["raised"] and len(ada.events["hand"]) >= 3)
    await bo.close()
    await ada.wait_for("hand", lambda d: len(ada.events["hand"]) >= 4 and not d["raised"])
    assert await ada.call("hands", {}) == {"hands": []}


async def test_the_lobby_names_who_is_in_before_joining(people: Join) -> None:
    await people("ada", role="mentor")
    waiting = await people("bo", join=False)
    assert await waiting.call("lobby", {}) == {
        "participants": [{"name": "Ada L.", "role": "mentor"}],
        "title": None,  # no pair owns this room (a pair's room is named by its title)
    }
    other_room = await people("cy", room="pair-2", join=False)
    assert await other_room.call("lobby", {}) == {"participants": [], "title": None}
