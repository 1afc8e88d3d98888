"""Rooms, presence and chat through a real server and real Socket.IO clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import socketio

from server.auth import Role, TokenIssuer
from server.config import Settings
from server.jobs.clock import ManualClock
from server.signaling import ratelimit
from tests.support.participants import SocketParticipant, issue_token, set_operators_read_chat
from tests.support.process import SECRET_KEY

Join = Callable[..., Any]
NAMES = ("ada", "bo", "cy", "di", "ed")
# Signed with the servers' secret, and a minute past its expiry already.
EXPIRED, _ = TokenIssuer(SECRET_KEY, 3600).issue("pair-1", "ada", "Ada", Role.MENTEE, -60)


@pytest.fixture
async def base_url(aiohttp_server: Any, make_settings: Callable[..., Settings]) -> str:
    from server.app import create_app

    server = await aiohttp_server(create_app(make_settings(chat_burst=5, chat_rate_per_second=2)))
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
async def people(base_url: str) -> AsyncIterator[Join]:
    made: list[SocketParticipant] = []

    async def connect(
        identity: str, room: str = "pair-1", role: str = "mentee", join: bool = True
    ) -> SocketParticipant:
        token = await asyncio.to_thread(issue_token, base_url, room, identity, None, role)
        person = await SocketParticipant(base_url, token).connect()
        made.append(person)
        if join:
            person.joined = await person.join()  # type: ignore[attr-defined]
        return person

    yield connect
    for person in made:
        await person.close()


async def test_two_participants_see_each_other_and_chat_both_ways(people: Join) -> None:
    ada = await people("ada", role="mentor")
    bo = await people("bo")
    assert [p["identity"] for p in bo.joined["participants"]] == ["ada", "bo"]
    assert bo.joined["you"]["identity"] == "bo" and bo.joined["room"]["name"] == "pair-1"
    assert bo.joined["room"]["title"] is None  # no pair owns this room: no title
    joined = await ada.wait_for("participant_joined", {"identity": "bo"})
    assert joined["role"] == "mentee" and joined["media_mode"] == "text"

    ack = await ada.chat("Welcome! What would you like to work on?", "c-1")
    assert set(ack) == {"id", "ts"}
    seen_by_bo = await bo.wait_for("chat", {"client_id": "c-1"})
    assert seen_by_bo["from"] == {"identity": "ada", "name": "Ada"}
    assert seen_by_bo["id"] == ack["id"] and seen_by_bo["room"] == "pair-1"
    await ada.wait_for("chat", {"client_id": "c-1"})  # the sender gets it too

    back = await bo.chat("System design interviews", "c-2")
    message = await ada.wait_for("chat", {"client_id": "c-2"})
    assert message["text"] == "System design interviews" and message["id"] == back["id"]


async def test_history_on_rejoin_and_paging(people: Join) -> None:
    ada = await people("ada")
    for i in range(5):
        await ada.chat(f"question {i}", f"q{i}")
    await ada.close()
    again = await people("ada")
    assert [m["text"] for m in again.joined["history"]] == [f"question {i}" for i in range(5)]
    oldest_shown = again.joined["history"][2]["id"]
    page = await again.call("history", {"before": oldest_shown, "limit": 1})
    assert [m["text"] for m in page["messages"]] == ["question 1"] and page["has_more"] is True
    page = await again.call("history", {"before": oldest_shown, "limit": 5})
    assert [m["text"] for m in page["messages"]] == ["question 0", "question 1"]
    assert page["has_more"] is False


async def test_the_join_says_whether_history_goes_back_further(
    aiohttp_server: Any, make_settings: Callable[..., Settings]
) -> None:
    """The page size is the server's (`history_limit`, here 3): the join's history says
    whether there is more, and `history` without a limit pages by the same size, so the
    client keeps no number of its own (it once assumed 50)."""
    from server.app import create_app

    server = await aiohttp_server(create_app(make_settings(history_limit=3)))
    base_url = str(server.make_url("")).rstrip("/")
    token = await asyncio.to_thread(issue_token, base_url, "pair-1", "ada", None, "mentee")
    ada = await SocketParticipant(base_url, token).connect()
    try:
        first = await ada.join()
        assert (first["history"], first["history_has_more"]) == ([], False)
        for i in range(3):
            await ada.chat(f"note {i}", f"n{i}")
        again = await ada.join()
        assert [m["text"] for m in again["history"]] == ["note 0", "note 1", "note 2"]
        assert again["history_has_more"] is False
        for i in range(3, 7):
            await ada.chat(f"note {i}", f"n{i}")
        latest = await ada.join()
        assert [m["text"] for m in latest["history"]] == ["note 4", "note 5", "note 6"]
        assert latest["history_has_more"] is True
        page = await ada.call("history", {"before": latest["history"][0]["id"]})
        assert [m["text"] for m in page["messages"]] == ["note 1", "note 2", "note 3"]
        assert page["has_more"] is True
    finally:
        await ada.close()


async def test_messages_queued_for_an_absent_partner(people: Join) -> None:
    mentee = await people("mee")
    await mentee.chat("Can we talk about promotions next time?", "later-1")
    await mentee.call("leave")
    mentor = await people("mentor", role="mentor")
    assert [m["text"] for m in mentor.joined["history"]] == [
        "Can we talk about promotions next time?"
    ]


async def test_duplicate_client_id_is_stored_once(people: Join, base_url: str) -> None:
    ada = await people("ada")
    first = await ada.chat("hello", "same")
    second = await ada.chat("hello", "same")
    assert first == second
    bo = await people("bo")
    assert [m["client_id"] for m in bo.joined["history"]] == ["same"]
    # The same client_id from another person is a different message.
    other = await bo.chat("hello", "same")
    assert other["id"] != first["id"]


@pytest.mark.parametrize(
    ("event", "payload", "code"),
    [
        ("chat", {"text": "hi"}, "invalid_payload"),
        ("chat", {"text": 5, "client_id": "x"}, "invalid_payload"),
        ("chat", {"text": "   ", "client_id": "x"}, "invalid_payload"),
        ("chat", {"text": "x" * 4001, "client_id": "x"}, "too_long"),
        ("chat", ["not", "a", "map"], "invalid_payload"),
        ("chat", {"text": "hi", "client_id": "x", "extra": 1}, "invalid_payload"),
        ("history", {"before": -3}, "invalid_payload"),
        ("read", {"up_to": "one"}, "invalid_payload"),
        ("presence", {"presence": "invisible"}, "invalid_payload"),
        ("no_such_event", {}, "unknown_event"),
    ],
)
async def test_invalid_payloads_get_error_acks_and_change_nothing(
    people: Join, event: str, payload: Any, code: str
) -> None:
    ada = await people("ada")
    ack = await ada.call(event, payload)
    assert ack["error"]["code"] == code and ack["error"]["message"]
    later = await people("bo")
    assert later.joined["history"] == []


async def test_events_before_join_are_refused(people: Join) -> None:
    ada = await people("ada", join=False)
    ack = await ada.call("chat", {"text": "hi", "client_id": "1"})
    assert ack["error"]["code"] == "not_joined"


@pytest.mark.parametrize(
    ("auth", "code"),
    [
        (None, "token_missing"),
        ({"token": "garbage"}, "token_invalid"),
        ("just-a-string", "token_missing"),
        ({"token": EXPIRED}, "token_expired"),
    ],
    ids=["none", "garbage", "not-a-dict", "expired"],
)
async def test_bad_tokens_are_refused_at_connect(base_url: str, auth: Any, code: str) -> None:
    client = socketio.AsyncClient(serializer="msgpack", reconnection=False)
    errors: list[Any] = []
    client.on("connect_error", lambda data: errors.append(data))
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(base_url, auth=auth, transports=["websocket"], wait_timeout=5)
    assert errors, "no connect_error"
    assert errors[0]["data"]["code"] == code, errors[0]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    """The time the rate limits read, moved by the test (buckets made from now on)."""
    manual = ManualClock(1000.0)
    monkeypatch.setattr(ratelimit, "clock", manual)
    return manual


async def test_rate_limit_trips_and_recovers(people: Join, clock: ManualClock) -> None:
    ada = await people("ada")  # burst 5, 2 per second
    acks = [await ada.chat(f"m{i}", f"id{i}") for i in range(8)]
    limited = [a for a in acks if "error" in a]
    assert limited and all(a["error"]["code"] == "rate_limited" for a in limited)
    stored = [a for a in acks if "id" in a]
    assert len(stored) == 5
    assert "error" in await ada.chat("no pause", "too-soon")
    clock.advance(0.5)  # one message's worth at 2 per second
    assert "id" in await ada.chat("after a pause", "later")
    bo = await people("bo")
    assert len(bo.joined["history"]) == 6  # nothing refused was stored


async def test_chat_limits_forget_only_a_refilled_limit(
    people: Join, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chat rate limits are bounded (here at 2 people): past the bound the person idle
    longest whose limit has refilled is forgotten, one at a time; a limit still in force
    never is (newcomers share one overflow bucket meanwhile), or a flood of newcomers
    would hand the limited person a fresh burst. Before the bound, every person who ever
    chatted kept a bucket for the life of the process."""
    monkeypatch.setattr(ratelimit, "MAX_TRACKED", 2)
    ada, bo, cy, di, ed = [await people(name, room=f"room-{name}") for name in NAMES]

    async def limited(person: SocketParticipant, text: str) -> bool:
        ack = await person.chat(text, text)
        return "error" in ack and ack["error"]["code"] == "rate_limited"

    assert [await limited(ada, f"a{i}") for i in range(6)] == [False] * 5 + [True]
    assert not await limited(bo, "b1")
    assert not await limited(cy, "c1")  # ada and bo are short: cy shares the overflow
    assert await limited(ada, "a6"), "a limit in force was forgotten"
    assert [await limited(di, f"d{i}") for i in range(5)] == [False] * 4 + [True]  # shared
    clock.advance(3.0)  # burst 5 at 2 a second: every limit has refilled
    assert not await limited(ed, "e1")  # forgets bo, the idlest refilled
    assert not await limited(ada, "a7")


async def test_reconnect_replaces_the_old_connection(people: Join) -> None:
    first = await people("ada")
    watcher = await people("bo")
    second = await people("ada")
    replaced = await first.wait_for("error", {"code": "replaced"})
    assert replaced["message"]
    await asyncio.wait_for(first.sio.wait(), 10)  # returns once the server has closed it
    assert not first.sio.connected
    assert [p["identity"] for p in second.joined["participants"]].count("ada") == 1
    await watcher.wait_for("participant_joined", {"identity": "ada", "rejoined": True})
    ack = await second.chat("still here", "s1")
    assert "id" in ack
    # Anything the old connection's close set off reached the watcher before this message.
    await watcher.wait_for("chat", {"client_id": "s1"})
    assert not [e for e in watcher.events["participant_left"] if e["identity"] == "ada"]


async def test_room_capacity(
    people: Join, aiohttp_server: Any, make_settings: Callable[..., Settings]
) -> None:
    from server.app import create_app

    server = await aiohttp_server(create_app(make_settings(room_capacity=2)))
    url = str(server.make_url("")).rstrip("/")
    made = []
    for identity in ("a", "b", "c"):
        token = await asyncio.to_thread(issue_token, url, "small", identity)
        made.append(await SocketParticipant(url, token).connect())
    assert "room" in await made[0].call("join")
    assert "room" in await made[1].call("join")
    full = await made[2].call("join")
    assert full["error"]["code"] == "room_full"
    for person in made:
        await person.close()


async def test_typing_read_presence_and_leave_fan_out(people: Join) -> None:
    ada = await people("ada")
    bo = await people("bo")
    await ada.call("typing", {"typing": True})
    assert (await bo.wait_for("typing"))["identity"] == "ada"
    ack = await ada.chat("hi", "1")
    assert (await bo.call("read", {"up_to": ack["id"]}))["up_to"] == ack["id"]
    assert (await ada.wait_for("read", {"identity": "bo"}))["up_to"] == ack["id"]
    # A read marker never moves back.
    assert (await bo.call("read", {"up_to": 1}))["up_to"] == ack["id"]
    await bo.call("presence", {"presence": "away"})
    await ada.wait_for("presence", {"identity": "bo", "presence": "away"})
    await bo.call("media_mode", {"mode": "audio", "reason": "camera off"})
    changed = await ada.wait_for("media_mode", {"identity": "bo"})
    assert changed["mode"] == "audio" and changed["reason"] == "camera off"
    await bo.call("leave")
    assert (await ada.wait_for("participant_left", {"identity": "bo"}))["reason"] == "left"
    carol = await people("carol")
    assert carol.joined["reads"] == {"bo": ack["id"]}


async def test_observer_reads_but_cannot_write(people: Join, base_url: str) -> None:
    # Observers read chat only where the program lets its operators read chat
    # (tests/security/test_operator_chat_reads.py: not while it is off).
    await asyncio.to_thread(set_operators_read_chat, base_url, True)
    ada = await people("ada")
    observer = await people("obs", role="observer")
    await ada.chat("hello", "h")
    assert (await observer.wait_for("chat"))["text"] == "hello"
    denied = await observer.chat("can I?", "o1")
    assert denied["error"]["code"] == "forbidden"
    denied = await observer.call("media_mode", {"mode": "video"})
    assert denied["error"]["code"] == "forbidden"


async def test_metrics_count_sockets_rooms_messages_and_rejections(
    people: Join, base_url: str
) -> None:
    import aiohttp

    ada = await people("ada")
    await people("bo")
    first = await ada.chat("one", "1")
    retry = await ada.chat("one", "1")  # a resend after a lost ack: the same message
    assert retry["id"] == first["id"]
    await ada.call("chat", {"text": 1})
    await ada.call("bogus")
    async with aiohttp.ClientSession() as http, http.get(base_url + "/metrics") as resp:
        text = await resp.text()
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert values["pairwise_sockets_connected"] == 2
    assert values["pairwise_rooms"] == 1 and values["pairwise_participants"] == 2
    assert values["pairwise_chat_messages_total"] == 1
    assert values['pairwise_events_rejected_total{reason="invalid_payload"}'] == 1
    assert values['pairwise_events_rejected_total{reason="unknown_event"}'] == 1
    assert values['pairwise_event_seconds_count{event="chat"}'] == 3
