"""Red team: operator actions that let someone into a room, or put them out, are in the
audit log with who did them. Issuing a join token (anyone's identity, any room: the way
to sit in a pair's room as one of its members) and removing a participant left no entry,
so nobody could tell afterwards which operator did it. Against a real server process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp

from tests.conftest import ADMIN


async def test_issuing_a_token_and_removing_a_participant_are_audited(
    server_process: Callable[..., Any],
) -> None:
    server = server_process()
    who = {**ADMIN, "X-Pairwise-Operator": "ops-robot"}
    async with aiohttp.ClientSession(server.url) as http:
        async with http.post(
            "/api/v1/tokens",
            headers=who,
            json={"room": "room-x", "identity": "maya", "name": "Maya", "role": "mentee"},
        ) as resp:
            assert resp.status == 201, await resp.text()
        async with http.delete("/api/v1/rooms/room-x/participants/maya", headers=who) as resp:
            assert resp.status == 200, await resp.text()
        async with http.get("/api/v1/privacy/audit", headers=ADMIN) as resp:
            entries = (await resp.json())["entries"]
    done = {(e["actor"], e["action"], e["subject"]) for e in entries}
    assert ("ops-robot", "token_issue", "maya") in done, entries
    assert ("ops-robot", "participant_remove", "maya") in done, entries
    # The token itself is never written down (it would open the room to whoever reads it).
    assert all("token" not in str(e["detail"]).lower() for e in entries), entries
