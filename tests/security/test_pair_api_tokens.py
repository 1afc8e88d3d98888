"""Item 3: the pair API honours removals, and a token's room and role, as Socket.IO does."""

from __future__ import annotations

import time

from tests.conftest import ADMIN
from tests.security.conftest import Target


async def test_revoked_or_foreign_room_token_cannot_use_the_pair_api(target: Target) -> None:
    pair = await target.pair("ada", "bo")
    pid, room = pair["id"], pair["room"]
    sid = await target.session(pair, start=time.time() - 60)  # the chat falls in it
    await target.services.chat.post(room, "bo", "Bo", "a private word", "bo-1")
    base = f"/api/v1/pairs/{pid}"
    attempts = [
        ("GET", f"{base}/sessions/{sid}/transcript", None),
        ("GET", f"{base}/export", None),
        ("GET", f"{base}/sessions/{sid}", None),
        ("POST", f"{base}/agenda", {"text": "planted"}),
        ("POST", f"{base}/goals", {"title": "planted"}),
    ]

    # Tokens that carry a member's identity but not a member's room or role.
    for token, status in [
        (target.token("unrelated-room", "bo", "observer"), 403),
        (target.token("unrelated-room", "bo", "mentee"), 403),
        (target.token(room, "bo", "observer"), 403),
        (target.token(room, "bo", "operator"), 403),
    ]:
        for method, path, body in attempts:
            got, payload, _ = await target.call(method, path, target.bearer(token), body)
            assert got == status, (method, path, payload)
        got, mine, _ = await target.call("GET", "/api/v1/me/pairs", target.bearer(token))
        assert got == 403 or (got == 200 and mine["pairs"] == []), mine

    # Bo is removed from the room: the token he holds stops working on the pair API too.
    bo = target.bearer(target.token(room, "bo", "mentee"))
    read = await target.ok("GET", f"{base}/sessions/{sid}/transcript", bo)
    assert [m["text"] for m in read["messages"]] == ["a private word"]
    await target.ok("DELETE", f"/api/v1/rooms/{room}/participants/bo", ADMIN)
    for method, path, body in [*attempts, ("GET", "/api/v1/me/pairs", None)]:
        got, payload, _ = await target.call(method, path, bo, body)
        assert got == 401 and payload["error"]["code"] == "token_revoked", (method, path)

    # Nothing was planted by any of them.
    assert (await target.ok("GET", f"{base}/agenda?all=1", ADMIN))["items"] == []
    assert (await target.ok("GET", f"{base}/goals", ADMIN))["goals"] == []
