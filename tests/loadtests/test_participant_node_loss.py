"""A load-tool participant whose node dies under its join: the join gives up at once, as a
connect no node took (so in cluster mode it goes where the room is now), instead of
waiting out the 15 s join timeout and counting a `join_timeout`.

The node is a real python-socketio server on loopback whose `join` is never answered: the
connection is dropped instead, as a node killed mid-join drops it. (A CI run caught the
real thing: tests/loadtests/test_loadtool_cluster.py's first-connect test, one participant
of twelve connected to the node as it was killed.)
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
import socketio
from aiohttp import web

from loadtests.participant import Measurements, Participant, Spec


@pytest.fixture
async def dying_node(aiohttp_server: Any) -> str:
    sio = socketio.AsyncServer(async_mode="aiohttp", serializer="msgpack")

    @sio.on("join")  # type: ignore[misc]
    async def join(sid: str, data: Any) -> None:
        await sio.disconnect(sid)  # never answered: the node is gone

    app = web.Application()
    sio.attach(app)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


@pytest.mark.parametrize("elsewhere_next", [True, False], ids=["cluster", "one-node"])
async def test_a_join_whose_node_dies_gives_up_at_once(
    dying_node: str, elsewhere_next: bool
) -> None:
    measurements = Measurements()
    spec = Spec(room="pair-1", identity="ada", role="mentee", messages_per_second=0, text_length=10)
    async with aiohttp.ClientSession() as session:
        person = Participant(spec, dying_node, session, measurements)
        try:
            # well before the join's own 15 s timeout
            joined = await asyncio.wait_for(
                person.connect_and_join("token", elsewhere_next=elsewhere_next), 10
            )
        finally:
            await person.close()
    assert joined is False and person.unreachable
    errors = dict(measurements.errors)
    assert "join_timeout" not in errors, errors
    assert errors.get("disconnected") == 1, errors
    # In cluster mode the caller goes where the room is now: not an error yet.
    assert ("join_no_ack" in errors) is not elsewhere_next, errors
    assert not person.joined and measurements.joined == 0
