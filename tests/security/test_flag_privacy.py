"""Item 2: why a pair was flagged ("not a good fit, said X") is for operators only."""

from __future__ import annotations

from server.sessionlog import export
from tests.conftest import ADMIN
from tests.security.conftest import Target


async def test_partner_does_not_see_why_the_pair_was_flagged(target: Target) -> None:
    pair = await target.pair("ada", "bo")
    pid, room = pair["id"], pair["room"]
    sid = await target.session(pair)
    ada = target.bearer(target.token(room, "ada", "mentor"))
    bo = target.bearer(target.token(room, "bo", "mentee"))
    await target.ok(
        "POST", f"/api/v1/pairs/{pid}/sessions/{sid}/feedback", bo, {"rating": 2, "good_fit": False}
    )
    flagged = await target.ok("GET", f"/api/v1/pairs/{pid}", ADMIN)
    assert flagged["flagged"] is True and "said bo" in flagged["flag_reason"]

    for path in (f"/api/v1/pairs/{pid}", "/api/v1/me/pairs", f"/api/v1/pairs/{pid}/export"):
        status, payload, _ = await target.call("GET", path, ada)
        assert status == 200, payload
        assert "flag" not in str(payload) and "good fit" not in str(payload), path
    _, mine, _ = await target.call("GET", "/api/v1/me/pairs", ada)
    assert [p["id"] for p in mine["pairs"]] == [pid]
    _, as_csv, _ = await target.call("GET", f"/api/v1/pairs/{pid}/export?format=csv", ada)
    assert "not a good fit" not in as_csv
    assert "flag" not in export.from_csv(as_csv)["pairs"][0]
