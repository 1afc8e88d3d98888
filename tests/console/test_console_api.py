"""The console's REST routes against a real server (SQLite and PostgreSQL): an import that
reports each row in place, deactivation, and ending a pair, which closes every way into
its room while its log stays readable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from server.app import create_app
from server.config import Settings
from tests.conftest import ADMIN
from tests.support.participants import SocketParticipant

CSV = """identity,name,role,timezone,email,skills
ada,Ada,mentor,Europe/London,ada@example.org,python
bo,Bo,mentee,Mars/Olympus,bo@example.org,python
cy,Cy,mentee,Europe/Paris,,python
"""


@pytest.fixture
async def base(
    aiohttp_server: Any, make_settings: Callable[..., Settings], database_url: str
) -> str:
    server = await aiohttp_server(create_app(make_settings(database_url=database_url)))
    return str(server.make_url("")).rstrip("/")


async def call(
    base: str, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method, base + path, json=body, headers=ADMIN if headers is None else headers
        ) as response,
    ):
        return response.status, await response.json()


async def test_import_shows_each_bad_row_and_takes_it_fixed(base: str) -> None:
    status, report = await call(
        base, "POST", "/api/v1/console/participants/import", {"format": "csv", "text": CSV}
    )
    assert status == 200, report
    assert report["imported"] == 2 and report["errors"] == 1
    bad = [r for r in report["rows"] if not r["ok"]]
    assert [(r["row"], r["identity"]) for r in bad] == [(3, "bo")]
    assert "Mars/Olympus" in bad[0]["error"]
    assert bad[0]["email"] == "bo@example.org"  # kept for sign-in
    assert {r["identity"]: r["email"] for r in report["rows"]}["ada"] == "ada@example.org"
    fixed = {**bad[0]["fields"], "timezone": "Europe/Berlin", "email": bad[0]["email"]}
    status, again = await call(
        base, "POST", "/api/v1/console/participants/import",
        {"format": "rows", "rows": [{"row": 3, "fields": fixed}]},
    )  # fmt: skip
    assert status == 200 and again["imported"] == 1 and again["errors"] == 0, again
    status, people = await call(base, "GET", "/api/v1/console/participants")
    assert [(p["identity"], p["active"]) for p in people["participants"]] == [
        ("ada", True), ("bo", True), ("cy", True),
    ]  # fmt: skip
    # An email that is not one is the row's error, and nothing of that row is stored.
    status, report = await call(
        base, "POST", "/api/v1/console/participants/import",
        {"format": "json", "text": '[{"identity": "di", "timezone": "UTC", "role": "mentee", '
         '"email": "not-an-email"}]'},
    )  # fmt: skip
    assert report["imported"] == 0 and "email" in report["rows"][0]["error"]


async def test_deactivate_takes_a_person_out_of_matching_and_back(base: str) -> None:
    await call(base, "POST", "/api/v1/console/participants/import", {"format": "csv", "text": CSV})
    status, _ = await call(base, "POST", "/api/v1/console/participants/ada/deactivate")
    assert status == 200
    _, page = await call(base, "GET", "/api/v1/matching/profiles")
    assert "ada" not in [p["identity"] for p in page["profiles"]]
    status, again = await call(base, "POST", "/api/v1/console/participants/ada/deactivate")
    assert status == 409, again
    _, report = await call(
        base, "POST", "/api/v1/console/participants/import", {"format": "csv", "text": CSV}
    )
    assert "deactivated" in next(r for r in report["rows"] if r["identity"] == "ada")["error"]
    status, _ = await call(base, "POST", "/api/v1/console/participants/ada/reactivate")
    assert status == 200
    _, page = await call(base, "GET", "/api/v1/matching/profiles")
    assert "ada" in [p["identity"] for p in page["profiles"]]
    status, edited = await call(
        base, "PUT", "/api/v1/console/participants/ada",
        {"identity": "ada", "name": "Ada L.", "role": "mentor", "timezone": "Europe/Rome"},
    )  # fmt: skip
    assert status == 200 and edited["name"] == "Ada L.", edited
    status, refused = await call(
        base, "PUT", "/api/v1/console/participants/ada",
        {"identity": "ada", "role": "mentor", "timezone": "Nowhere/Else"},
    )  # fmt: skip
    assert status == 422 and "Nowhere/Else" in refused["error"]["message"]


async def test_an_ended_pair_room_refuses_every_way_in_and_keeps_its_log(base: str) -> None:
    members = [
        {"identity": "ada", "name": "Ada", "role": "mentor"},
        {"identity": "bo", "name": "Bo", "role": "mentee"},
    ]
    status, pair = await call(base, "POST", "/api/v1/pairs", {"members": members})
    assert status == 201, pair
    room = pair["room"]
    status, invited = await call(base, "POST", f"/api/v1/console/pairs/{pair['id']}/invitations")
    assert status == 200 and len(invited["invitations"]) == 2
    token_body = {"room": room, "identity": "bo", "name": "Bo", "role": "mentee"}
    status, minted = await call(base, "POST", "/api/v1/tokens", token_body)
    assert status == 201
    bo_bearer = {"Authorization": f"Bearer {minted['token']}"}
    inside = await SocketParticipant(base, minted["token"]).connect()
    try:
        await inside.join(media_mode="text")
        assert "error" not in await inside.chat("before the end", "c1")
        status, _ = await call(
            base, "POST", f"/api/v1/pairs/{pair['id']}/agenda", {"text": "goals"}, bo_bearer
        )
        assert status == 201

        status, ended = await call(base, "POST", f"/api/v1/console/pairs/{pair['id']}/end")
        assert status == 200 and ended["status"] == "unpublished"

        # Every way in refuses: a new token, a join, a chat from who was inside, the agenda.
        status, refused = await call(base, "POST", "/api/v1/tokens", token_body)
        assert (status, refused["error"]["code"]) == (403, "room_closed")
        ack = await inside.chat("after the end", "c2")
        assert ack["error"]["code"] == "room_closed", ack
        status, refused = await call(
            base, "POST", f"/api/v1/pairs/{pair['id']}/agenda", {"text": "more"}, bo_bearer
        )
        assert (status, refused["error"]["code"]) == (403, "room_closed")
        status, refused = await call(
            base, "POST", f"/api/v1/console/pairs/{pair['id']}/invitations"
        )
        assert (status, refused["error"]["code"]) == (403, "room_closed")
    finally:
        await inside.close()
    late = await SocketParticipant(base, minted["token"]).connect()
    try:
        ack = await late.call("join", {"media_mode": "text"})
        assert ack["error"]["code"] == "room_closed", ack
    finally:
        await late.close()
    # The log stays readable, to operators and members alike.
    status, agenda = await call(base, "GET", f"/api/v1/pairs/{pair['id']}/agenda", None, bo_bearer)
    assert status == 200 and [i["text"] for i in agenda["items"]] == ["goals"]
    status, exported = await call(base, "GET", f"/api/v1/pairs/{pair['id']}/export?format=json")
    assert status == 200, exported
    status, overview = await call(base, "GET", "/api/v1/console/pairs")
    row = next(p for p in overview["pairs"] if p["id"] == pair["id"])
    assert row["status"] == "unpublished" and row["last_message"] is not None
    status, again = await call(base, "POST", f"/api/v1/console/pairs/{pair['id']}/end")
    assert status == 409
    # Who did what: the audit log has the console's actions.
    status, audit = await call(base, "GET", "/api/v1/privacy/audit")
    assert {"pair_end", "pair_invite"} <= {e["action"] for e in audit["entries"]}
