"""Item 4: with `operators_read_chat` off, an operator who issues themselves a token (observer,
operator, or a mentee outside the pair) and joins the pair's room reads no chat; with it
on, every read is audited."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import ADMIN
from tests.security.conftest import Target
from tests.support.participants import SocketParticipant


@pytest.fixture
async def sockets(target: Target) -> AsyncIterator[list[SocketParticipant]]:
    made: list[SocketParticipant] = []
    yield made
    for person in made:
        await person.close()


async def test_operator_cannot_read_chat_through_an_observer_token(
    target: Target, sockets: list[SocketParticipant]
) -> None:
    pair = await target.pair("ada", "bo")
    room = pair["room"]

    async def connect(identity: str, role: str) -> SocketParticipant:
        person = await SocketParticipant(target.url, target.token(room, identity, role)).connect()
        sockets.append(person)
        return person

    ada = await connect("ada", "mentor")
    ada_joined = await ada.join(media_mode="text")
    # The join names the room by its pair's title (the room's header shows it).
    assert ada_joined["room"]["title"] == pair["title"] and pair["title"], ada_joined["room"]
    bo = await connect("bo", "mentee")
    await bo.join(media_mode="text")
    assert "id" in await ada.chat("my manager is making me miserable", "a-1")
    assert (await target.ok("GET", "/api/v1/program/settings", ADMIN)) == {
        "operators_read_chat": False
    }

    # An operator issues themselves tokens through the admin API and joins the room: as an
    # observer, as an operator, or as a mentee who is not one of the pair's members.
    for role in ("observer", "operator", "mentee"):
        token = (
            await target.ok(
                "POST",
                "/api/v1/tokens",
                ADMIN,
                {"room": room, "identity": f"olga-{role}", "name": "Olga", "role": role},
            )
        )["token"]
        spy = await SocketParticipant(target.url, token).connect()
        sockets.append(spy)
        joined = await spy.join(media_mode="text")
        assert joined["history"] == [] and joined["chat_private"] is True, joined
        refused = await spy.call("history", {})
        assert refused["error"]["code"] == "chat_private", refused
        # Live messages do not reach them either: ada's next message arrives at bo only.
        await ada.chat(f"still miserable ({role})", f"a-{role}")
        await bo.wait_for("chat", {"client_id": f"a-{role}"})
        await spy.call("presence", {"presence": "online"})  # a round trip after the fan-out
        assert spy.events["chat"] == [], spy.events["chat"]
    reads = (await target.ok("GET", "/api/v1/program/transcript-reads", ADMIN))["reads"]
    assert {(r["actor"], r["granted"], r["messages"]) for r in reads} == {
        ("observer:olga-observer", False, 0),
        ("operator:olga-operator", False, 0),
        ("mentee:olga-mentee", False, 0),
    }

    # The program allows operators to read chat: an observer reads it, and that is audited.
    await target.ok("PUT", "/api/v1/program/settings", ADMIN, {"operators_read_chat": True})
    reader = await connect("olga-2", "observer")
    joined = await reader.join(media_mode="text")
    assert "my manager is making me miserable" in [m["text"] for m in joined["history"]]
    got = await reader.call("history", {})
    assert len(got["messages"]) == 4
    reads = (await target.ok("GET", "/api/v1/program/transcript-reads", ADMIN))["reads"]
    assert [(r["actor"], r["purpose"], r["granted"], r["pair_id"]) for r in reads[:2]] == [
        ("observer:olga-2", "room_history", True, pair["id"]),
        ("observer:olga-2", "room_join", True, pair["id"]),
    ]


async def test_switching_operators_read_chat_off_cuts_live_chat_of_those_already_in(
    target: Target, sockets: list[SocketParticipant]
) -> None:
    pair = await target.pair("ada", "bo")
    room = pair["room"]

    async def connect(identity: str, role: str) -> SocketParticipant:
        person = await SocketParticipant(target.url, target.token(room, identity, role)).connect()
        sockets.append(person)
        await person.join(media_mode="text")
        return person

    async def chat_reaches_bo(text: str, client_id: str) -> None:
        await ada.chat(text, client_id)
        await bo.wait_for("chat", {"client_id": client_id})

    await target.ok("PUT", "/api/v1/program/settings", ADMIN, {"operators_read_chat": True})
    watcher = await connect("watcher", "observer")
    outsider = await connect("olga", "mentee")  # a token an operator issued for a non-member
    ada = await connect("ada", "mentor")
    bo = await connect("bo", "mentee")

    # While the setting is on, live chat reaches them, and each delivery is audited.
    await chat_reaches_bo("allowed to be read", "a-1")
    await watcher.wait_for("chat", {"client_id": "a-1"})
    await outsider.wait_for("chat", {"client_id": "a-1"})
    reads = (await target.ok("GET", "/api/v1/program/transcript-reads", ADMIN))["reads"]
    live = {(r["actor"], r["messages"], r["pair_id"]) for r in reads if r["purpose"] == "room_live"}
    assert live == {("observer:watcher", 1, pair["id"]), ("mentee:olga", 1, pair["id"])}

    # Switched off: nothing more reaches them, though they stay in the room.
    await target.ok("PUT", "/api/v1/program/settings", ADMIN, {"operators_read_chat": False})
    await chat_reaches_bo("private again", "a-2")
    # Switched on again: they read live chat again only once they join again.
    await target.ok("PUT", "/api/v1/program/settings", ADMIN, {"operators_read_chat": True})
    await chat_reaches_bo("still private to those who joined before", "a-3")
    for spy in (watcher, outsider):
        await spy.call("presence", {"presence": "online"})  # a round trip after the fan-out
        assert [m["client_id"] for m in spy.events["chat"]] == ["a-1"], spy.events["chat"]
    after = (await target.ok("GET", "/api/v1/program/transcript-reads", ADMIN))["reads"]
    assert [r for r in after if r["purpose"] == "room_live"] == [
        r for r in reads if r["purpose"] == "room_live"
    ]

    await watcher.call("leave", {})
    await watcher.join(media_mode="text")
    await chat_reaches_bo("read again, and audited", "a-4")
    await watcher.wait_for("chat", {"client_id": "a-4"})
