"""Several nodes: room placement, a node killed mid-session, Redis going away and coming back.

Real server processes, the real Redis on this machine (or one started by the test), and a
fresh PostgreSQL database shared by the nodes.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tests.support.participants import SocketParticipant, issue_token
from tests.support.process import ADMIN_KEY, ServerProcess
from tests.support.services import (
    free_port,
    fresh_postgres_database,
    require_program,
    require_redis,
)
from tests.support.waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]

FAST = {"PAIRWISE_HEARTBEAT_SECONDS": "0.5", "PAIRWISE_NODE_TTL_SECONDS": "2"}


def get(url: str, token: str = ADMIN_KEY) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture
async def database_for_nodes() -> AsyncIterator[str]:
    async with fresh_postgres_database() as url:
        yield url


def cluster_env(redis_url: str, database_url: str) -> dict[str, str]:
    return {
        "PAIRWISE_REDIS_URL": redis_url,
        "PAIRWISE_DATABASE_URL": database_url,
        "PAIRWISE_CLUSTER": f"t{uuid.uuid4().hex[:8]}",
        **FAST,
    }


async def live_urls(node: ServerProcess) -> set[str]:
    status, listed = await asyncio.to_thread(get, node.url + "/api/v1/nodes")
    return {n["url"] for n in listed["nodes"]} if status == 200 else set()


async def participant(url: str, room: str, identity: str) -> SocketParticipant:
    token = await asyncio.to_thread(issue_token, url, room, identity)
    return await SocketParticipant(url, token).connect()


async def test_rooms_are_placed_on_live_nodes_and_move_when_a_node_dies(
    server_process: Callable[..., ServerProcess], database_for_nodes: str
) -> None:
    env = cluster_env(require_redis(), database_for_nodes)
    a = await asyncio.to_thread(server_process, **env)
    b = await asyncio.to_thread(server_process, **env)
    status, listed = await asyncio.to_thread(get, a.url + "/api/v1/nodes")
    assert status == 200 and {n["url"] for n in listed["nodes"]} == {a.url, b.url}

    # Either node answers the same placement; a join token for the room may ask.
    token = await asyncio.to_thread(issue_token, a.url, "pair-move", "ada")
    _, first = await asyncio.to_thread(get, a.url + "/api/v1/rooms/pair-move/node", token)
    _, again = await asyncio.to_thread(get, b.url + "/api/v1/rooms/pair-move/node", token)
    assert first["url"] == again["url"] and first["moved"] is False
    status, denied = await asyncio.to_thread(get, a.url + "/api/v1/rooms/other/node", token)
    assert status == 403
    home = a if first["url"] == a.url else b
    other = b if home is a else a
    members = [
        {"identity": "ada", "name": "Ada", "role": "mentee"},
        {"identity": "bo", "name": "Bo", "role": "mentor"},
    ]
    status, pair = await asyncio.to_thread(
        post, a.url + "/api/v1/pairs", {"members": members, "room": "pair-move"}
    )
    assert status == 201, pair

    ada = await participant(home.url, "pair-move", "ada")
    joined = await ada.join()
    assert joined["node"] == {"name": f"127.0.0.1:{home.port}", "url": home.url, "home": True}
    bo = await participant(home.url, "pair-move", "bo")
    await bo.join()
    acks = [await ada.chat("before the crash", "m1"), await bo.chat("me too", "m2")]

    await asyncio.to_thread(home.kill)

    # Clients ask any live node where the room is now, and go there. (How fast: see
    # benchmarks/cluster.py, recovery.)
    async def placed_on_other() -> dict[str, Any] | None:
        status, placement = await asyncio.to_thread(
            get, other.url + "/api/v1/rooms/pair-move/node", token
        )
        return placement if status == 200 and placement["url"] == other.url else None

    placement = await eventually(placed_on_other, interval=0.25, what="the room on the live node")
    assert placement["moved"] is True
    ada2 = await participant(other.url, "pair-move", "ada")
    rejoined = await ada2.join()
    assert rejoined["node"]["home"] is True
    assert [m["id"] for m in rejoined["history"]] == [a["id"] for a in acks]
    # The session log carries on where the dead node left it: one session, not two.
    pair_id = pair["id"]
    status, listed = await asyncio.to_thread(get, other.url + f"/api/v1/pairs/{pair_id}/sessions")
    assert status == 200 and len(listed["sessions"]) == 1, listed
    session_id = listed["sessions"][0]["id"]
    _, detail = await asyncio.to_thread(
        get, other.url + f"/api/v1/pairs/{pair_id}/sessions/{session_id}"
    )
    kinds = [event["kind"] for event in detail["timeline"]]
    assert "continued" in kinds and kinds.index("continued") > kinds.index("started")
    for person in (ada, bo, ada2):
        await person.close()


class OwnRedis:
    """A redis-server of the test's own, without persistence, to stop and start again."""

    def __init__(self, directory: Path):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._command = [
            require_program("redis-server"),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ]
        self._process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self._process = await asyncio.to_thread(
            subprocess.Popen, self._command, stdout=subprocess.DEVNULL
        )

        async def answers() -> bool:
            client = Redis(port=self.port, socket_timeout=1)
            try:
                return bool(await client.ping())
            except (RedisError, OSError):
                return False
            finally:
                await client.aclose()

        await eventually(answers, timeout=10, what=f"Redis answering on port {self.port}")

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    await server.start()
    yield server
    server.kill()


async def test_redis_outage_keeps_local_rooms_serving_and_recovers(
    server_process: Callable[..., ServerProcess], database_for_nodes: str, own_redis: OwnRedis
) -> None:
    env = cluster_env(own_redis.url, database_for_nodes)
    node = await asyncio.to_thread(server_process, **env)
    ada = await participant(node.url, "pair-r", "ada")
    bo = await participant(node.url, "pair-r", "bo")
    await ada.join()
    await bo.join()
    acked = [await ada.chat("redis is up", "u1")]

    own_redis.kill()
    status, ready = await asyncio.to_thread(get, node.url + "/readyz")
    assert status == 503 and ready["checks"]["redis"].startswith("failed")
    # The room keeps working on this node while Redis is away.
    ack = await ada.chat("redis is down", "d1")
    assert "id" in ack, ack
    acked.append(ack)
    assert (await bo.wait_for("chat", {"client_id": "d1"}))["text"] == "redis is down"
    carol = await participant(node.url, "pair-r", "carol")
    assert [m["client_id"] for m in (await carol.join())["history"]] == ["u1", "d1"]

    await own_redis.start()

    async def ready() -> bool:
        status, _ = await asyncio.to_thread(get, node.url + "/readyz")
        return status == 200

    await eventually(ready, timeout=20, interval=0.25, what="/readyz answering 200")
    acked.append(await bo.chat("redis is back", "b1"))
    assert (await ada.wait_for("chat", {"client_id": "b1"}))["id"] == acked[-1]["id"]
    history = (await carol.call("history", {"limit": 50}))["messages"]
    assert [m["id"] for m in history] == [a["id"] for a in acked]
    for person in (ada, bo, carol):
        await person.close()


async def test_after_a_redis_restart_live_rooms_stay_on_their_nodes(
    server_process: Callable[..., ServerProcess], database_for_nodes: str, own_redis: OwnRedis
) -> None:
    # A TTL well beyond b's freeze and its reconnection to the new Redis on a loaded machine
    # (6 s was not): a node silent for a TTL is dead, and its rooms may then move. Nothing
    # here waits for the TTL to pass.
    env = {**cluster_env(own_redis.url, database_for_nodes), "PAIRWISE_NODE_TTL_SECONDS": "20"}
    a = await asyncio.to_thread(server_process, **env)
    b = await asyncio.to_thread(server_process, **env)
    rooms = [f"pair-live-{i}" for i in range(6)]
    homes: dict[str, str] = {}
    people = []
    for i, room in enumerate(rooms):
        _, placed = await asyncio.to_thread(get, (a, b)[i % 2].url + f"/api/v1/rooms/{room}/node")
        homes[room] = placed["url"]
        person = await participant(placed["url"], room, "ada")
        await person.join()
        people.append(person)
    assert set(homes.values()) == {a.url, b.url}, homes
    on_b = next(room for room in rooms if homes[room] == b.url)

    # b is frozen while Redis restarts, so a beats and announces its rooms first: asked for
    # b's room then, a must not place it on itself (the room would live on two nodes).
    b.proc.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
    try:
        own_redis.kill()
        await own_redis.start()  # empty: it keeps nothing on disk

        async def a_beats() -> bool:
            return a.url in await live_urls(a)

        await eventually(a_beats, timeout=20, interval=0.1, what="a beating after the restart")
        lookup = asyncio.ensure_future(asyncio.to_thread(get, a.url + f"/api/v1/rooms/{on_b}/node"))

        def lookup_waits() -> bool:
            assert not lookup.done(), f"a placed b's room before b came back: {lookup.result()}"
            return "placement waits for the room directory to settle" in a.log()

        await eventually(lookup_waits, timeout=20, interval=0.1, what="a's lookup waiting")
    finally:
        b.proc.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
    status, placed = await lookup
    assert (status, placed["url"], placed["moved"]) == (200, b.url, False), placed
    # The nodes announce the rooms they hold again; no lookup is needed for that.
    directory = Redis.from_url(own_redis.url)
    owner_keys = [f"{env['PAIRWISE_CLUSTER']}:roomnode:{room}" for room in rooms]
    try:

        async def all_announced() -> bool:
            return await directory.exists(*owner_keys) == len(rooms)

        await eventually(all_announced, timeout=20, interval=0.1, what="every room announced")
    finally:
        await directory.aclose()

    # Wait until both nodes beat again, so a lookup could choose either.
    async def both_beat() -> bool:
        return len(await live_urls(a)) == 2

    await eventually(both_beat, timeout=20, interval=0.1, what="both nodes beating")
    for room in rooms:
        for node in (a, b):
            status, placed = await asyncio.to_thread(get, node.url + f"/api/v1/rooms/{room}/node")
            assert status == 200, placed
            assert (placed["url"], placed["moved"]) == (homes[room], False), room
    for person in people:
        await person.close()


async def test_a_burst_of_rooms_is_placed_evenly_across_two_nodes(
    server_process: Callable[..., ServerProcess], database_for_nodes: str
) -> None:
    env = cluster_env(require_redis(), database_for_nodes)
    a = await asyncio.to_thread(server_process, **env)
    b = await asyncio.to_thread(server_process, **env)
    # Twenty lookups at once, half through each node: no heartbeat can report the rooms
    # placed meanwhile, so only counting at placement keeps the nodes even.
    answers = await asyncio.gather(
        *(
            asyncio.to_thread(get, (a if i % 2 else b).url + f"/api/v1/rooms/burst-{i}/node")
            for i in range(20)
        )
    )
    assert all(status == 200 for status, _ in answers), answers
    on_a = sum(1 for _, placed in answers if placed["url"] == a.url)
    assert abs(on_a - 10) <= 1, f"{on_a} rooms on one node, {20 - on_a} on the other"
    # Asked again, on either node, every room stays where it was placed.
    again = [
        await asyncio.to_thread(get, a.url + f"/api/v1/rooms/burst-{i}/node") for i in range(20)
    ]
    assert [p["url"] for _, p in again] == [p["url"] for _, p in answers]
    # One new room asked for twenty times at once, through both nodes: one holder, never two.
    same = await asyncio.gather(
        *(
            asyncio.to_thread(get, (a if i % 2 else b).url + "/api/v1/rooms/contested/node")
            for i in range(20)
        )
    )
    assert {(status, placed["url"], placed["moved"]) for status, placed in same} == {
        (200, same[0][1]["url"], False)
    }, same


async def test_participants_of_a_killed_node_leave_every_roster(
    server_process: Callable[..., ServerProcess], database_for_nodes: str
) -> None:
    env = cluster_env(require_redis(), database_for_nodes)
    a = await asyncio.to_thread(server_process, **env)
    b = await asyncio.to_thread(server_process, **env)
    ada = await participant(a.url, "pair-ghost", "ada")
    await ada.join()
    # Bo's connection is on node b (chat and presence work from any node).
    bo = await participant(b.url, "pair-ghost", "bo")
    assert "ada" in {p["identity"] for p in (await bo.join())["participants"]}
    await ada.wait_for("participant_joined", {"identity": "bo"})

    await asyncio.to_thread(b.kill)
    left = await ada.wait_for("participant_left", {"identity": "bo"}, timeout=20)
    assert left["reason"] == "disconnected"
    carol = await participant(a.url, "pair-ghost", "carol")
    listed = {p["identity"] for p in (await carol.join())["participants"]}
    assert listed == {"ada", "carol"}, listed
    for person in (ada, bo, carol):
        await person.close()


async def test_chat_across_nodes_during_a_redis_outage_reaches_the_other_side_after(
    server_process: Callable[..., ServerProcess], database_for_nodes: str, own_redis: OwnRedis
) -> None:
    env = cluster_env(own_redis.url, database_for_nodes)
    a = await asyncio.to_thread(server_process, **env)
    b = await asyncio.to_thread(server_process, **env)
    ada = await participant(a.url, "pair-gap", "ada")
    bo = await participant(b.url, "pair-gap", "bo")
    # An observer beside bo, with operators_read_chat off (the default): the catch-up is a
    # path chat leaves by too, and must keep to the same rule as live chat.
    olga_token = await asyncio.to_thread(issue_token, b.url, "pair-gap", "olga", "Olga", "observer")
    olga = await SocketParticipant(b.url, olga_token).connect()
    await ada.join()
    await bo.join()
    await olga.join()
    before = await ada.chat("before", "a0")
    assert (await bo.wait_for("chat", {"client_id": "a0"}))["id"] == before["id"]

    own_redis.kill()
    # Acked and stored on each side while the nodes cannot reach each other.
    during = [
        (await ada.chat("from a, redis down", "a1"), bo),
        (await bo.chat("from b, redis down", "b1"), ada),
        (await ada.chat("again from a", "a2"), bo),
    ]
    assert all("id" in ack for ack, _ in during), during
    await own_redis.start()
    after = await bo.chat("redis is back", "b2")
    for ack, other in [*during, (after, ada)]:
        got = await other.wait_for("chat", {"id": ack["id"]}, timeout=60)
        assert got["from"]["identity"] != "" and got["id"] == ack["id"]
    # Each message reached the other side once.
    for person in (ada, bo):
        ids = [m["id"] for m in person.events["chat"]]
        assert len(ids) == len(set(ids)), ids
    assert olga.events["chat"] == [], "the catch-up showed chat to an observer"
    for person in (ada, bo, olga):
        await person.close()


async def test_a_room_placed_but_never_joined_is_given_back(
    server_process: Callable[..., ServerProcess], database_for_nodes: str
) -> None:
    env = cluster_env(require_redis(), database_for_nodes)
    node = await asyncio.to_thread(server_process, PAIRWISE_ROOM_GRACE_SECONDS="1", **env)
    _, unused = await asyncio.to_thread(get, node.url + "/api/v1/rooms/pair-unused/node")
    ada = await participant(node.url, "pair-used", "ada")
    await ada.join()
    directory = Redis.from_url(require_redis())
    cluster = env["PAIRWISE_CLUSTER"]
    try:
        assert await directory.exists(f"{cluster}:roomnode:pair-unused") == 1

        async def unplaced() -> bool:
            return not await directory.exists(f"{cluster}:roomnode:pair-unused")

        await eventually(unplaced, timeout=20, interval=0.1, what="the unused room unplaced")
        # No longer counted as load on the node; the room in use stays.
        placed = await directory.smembers(f"{cluster}:placed:{unused['node']}")
        assert placed == {b"pair-used"}
        assert await directory.get(f"{cluster}:roomnode:pair-used") == unused["node"].encode()
    finally:
        await directory.aclose()
        await ada.close()
