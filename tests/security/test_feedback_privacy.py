"""Item 1: a member's export must not carry what their partner said in feedback."""

from __future__ import annotations

from server.sessionlog import export
from tests.conftest import ADMIN
from tests.security.conftest import Target

SECRET = "she talks over me and never prepares"


async def test_export_does_not_leak_partner_feedback(target: Target) -> None:
    pair = await target.pair("ada", "bo")
    pid, room = pair["id"], pair["room"]
    sid = await target.session(pair)
    ada = target.bearer(target.token(room, "ada", "mentor"))
    bo = target.bearer(target.token(room, "bo", "mentee"))
    feedback = f"/api/v1/pairs/{pid}/sessions/{sid}/feedback"
    await target.ok("POST", feedback, bo, {"rating": 1, "comment": SECRET, "good_fit": False})
    await target.ok("POST", feedback, ada, {"rating": 5, "comment": "a good start"})

    # Every way the mentor can read the pair's log: none carries the mentee's answer.
    paths = [
        f"/api/v1/pairs/{pid}/export",
        f"/api/v1/pairs/{pid}/export?format=json",
        f"/api/v1/pairs/{pid}/export?format=csv",
        f"/api/v1/pairs/{pid}/feedback",
        f"/api/v1/pairs/{pid}",
        f"/api/v1/pairs/{pid}/sessions",
        f"/api/v1/pairs/{pid}/sessions/{sid}",
        "/api/v1/me/pairs",
    ]
    for path in paths:
        status, payload, _ = await target.call("GET", path, ada)
        assert status == 200, (path, payload)
        assert SECRET not in str(payload), path
    _, as_json, _ = await target.call("GET", f"/api/v1/pairs/{pid}/export", ada)
    _, as_csv, _ = await target.call("GET", f"/api/v1/pairs/{pid}/export?format=csv", ada)
    for tables in (export.from_json(export.to_json(as_json["tables"])), export.from_csv(as_csv)):
        assert [(f["identity"], f["rating"]) for f in tables["feedback"]] == [("ada", 5)]
    _, own, _ = await target.call("GET", f"/api/v1/pairs/{pid}/feedback", ada)
    assert [f["identity"] for f in own["feedback"]] == ["ada"]

    # The operator still sees both answers, in the pair and in the program export.
    for path in (f"/api/v1/pairs/{pid}/export?format=csv", "/api/v1/program/export?format=csv"):
        _, text, _ = await target.call("GET", path, ADMIN)
        given = export.from_csv(text)["feedback"]
        assert sorted((f["identity"], f["good_fit"]) for f in given) == [
            ("ada", True),
            ("bo", False),
        ]
