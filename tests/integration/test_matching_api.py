"""The matching API through the real app, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import insert, select

from server.app import create_app
from server.config import Settings
from server.errors import InvalidInput
from server.matching import runs
from server.matching.runs import INTERRUPTED, LAPSED, LEASE_SECONDS, MatchingStore
from server.store.schema import match_runs
from tests.conftest import ADMIN
from tests.support.parts import ServerParts
from tests.support.waiting import eventually

PROFILES = """identity,name,role,timezone,availability,languages,skills,capacity,avoid
ada,Ada,mentor,Europe/London,Mon 09:00-12:00; Wed 18:00-20:00,en,python;sql,1,
eve,Eve,mentor,America/New_York,Mon 08:00-11:00,en,go;python,2,
bo,Bo,mentee,Europe/Berlin,Mon 10:00-13:00,en,python;sql,,
cy,Cy,mentee,America/Chicago,Mon 07:00-10:00,en,go,,
dee,Dee,mentee,Asia/Tokyo,Sat 10:00-11:00,ja,python,,
fay,Fay,mentee,Europe/Paris,Mon 13:00-16:00,en,python,,ada
"""
CRITERIA = """availability: {start: 2025-03-10}
criteria:
  - {name: skills, rule: overlap, weight: high}
  - {name: time together, rule: shared_hours, min_hours: 1, target_hours: 2, weight: must}
filters: {shared_language: true}
"""


@pytest.fixture
async def client(
    aiohttp_client: Any, make_settings: Callable[..., Settings], database_url: str
) -> Any:
    return await aiohttp_client(create_app(make_settings(database_url=database_url)))


async def setup(client: Any) -> None:
    resp = await client.post("/api/v1/matching/profiles", data=PROFILES,
                             headers={**ADMIN, "Content-Type": "text/csv"})  # fmt: skip
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"imported": 6, "errors": []}
    resp = await client.put("/api/v1/matching/criteria", data=CRITERIA,
                            headers={**ADMIN, "Content-Type": "application/yaml"})  # fmt: skip
    assert resp.status == 200, await resp.text()


async def finished(client: Any, run_id: str) -> dict[str, Any]:
    async def ended() -> dict[str, Any] | None:
        resp = await client.get(f"/api/v1/matching/runs/{run_id}", headers=ADMIN)
        run: dict[str, Any] = await resp.json()
        assert 0 <= run["progress"] <= 1
        return run if run["status"] != "running" else None

    # A run reports its end only through this view: there is no event to wait on.
    run: dict[str, Any] = await eventually(ended, timeout=20, what="the run to finish")
    return run


async def start(client: Any, body: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post("/api/v1/matching/runs", json=body, headers=ADMIN)
    assert resp.status == 202, await resp.text()
    started = await resp.json()
    assert started["status"] == "running"
    return await finished(client, started["id"])


async def test_run_results_publish_and_rematch(client: Any) -> None:
    await setup(client)
    run = await start(
        client, {"mode": "optimal", "fixed_pairs": [{"mentee": "cy", "mentor": "eve"}]}
    )
    assert run["status"] == "done" and run["progress"] == 1.0
    assert run["summary"]["matched"] == 3 and run["summary"]["fixed"] == 1

    resp = await client.get(f"/api/v1/matching/runs/{run['id']}/results", headers=ADMIN)
    results = await resp.json()
    pairs = {p["mentee"]: p for p in results["pairs"]}
    assert {m: p["mentor"] for m, p in pairs.items()} == {"bo": "ada", "cy": "eve", "fay": "eve"}
    assert pairs["cy"]["fixed"] and not pairs["bo"]["fixed"]
    bo = pairs["bo"]
    assert bo["score"] == 100.0 and sum(bo["contributions"].values()) == bo["score"]
    assert bo["explanation"]["shared_hours"] == 3.0
    assert bo["slots"][0]["mentee_local"] == "Mon 10:00-13:00 Europe/Berlin"
    assert bo["status"] == "draft" and bo["pair_id"] is None
    assert (bo["mentee_name"], bo["mentor_name"]) == ("Bo", "Ada")  # the console shows names
    assert results["unmatched"] == [{
        "mentee": "dee", "mentee_name": "Dee", "reason": "no mentor passes the filters",
        "explanation": {
            "summary": "Not matched: no mentor passes the filters: of 2 mentors, time together "
            "(must) rules out 2, shared language rules out 2.",
            "ruled_out_by": {"time together (must)": 2, "shared language": 2},
        },
    }]  # fmt: skip

    resp = await client.post(f"/api/v1/matching/runs/{run['id']}/publish", headers=ADMIN)
    assert resp.status == 200
    published = (await resp.json())["pairs"]
    assert len(published) == 3 and {p["source"] for p in published} == {"matching"}
    members = {tuple(sorted((m["role"], m["identity"]) for m in p["members"])) for p in published}
    assert (("mentee", "bo"), ("mentor", "ada")) in members
    again = await client.post(f"/api/v1/matching/runs/{run['id']}/publish", headers=ADMIN)
    assert [p["id"] for p in (await again.json())["pairs"]] == [p["id"] for p in published]

    bo_pair = next(p for p in published if any(m["identity"] == "bo" for m in p["members"]))
    resp = await client.post(f"/api/v1/pairs/{bo_pair['id']}/rematch", headers=ADMIN)
    assert resp.status == 202, await resp.text()
    body = await resp.json()
    assert body["pair"]["status"] == "unpublished" and body["pair"]["id"] == bo_pair["id"]
    rerun = await finished(client, body["run"]["id"])
    assert rerun["status"] == "done" and rerun["summary"]["mentees"] == 1
    resp = await client.get(f"/api/v1/matching/runs/{rerun['id']}/results", headers=ADMIN)
    # Ada is now excluded for Bo, and Eve's two places are taken by published pairs.
    assert (await resp.json())["unmatched"][0]["reason"] == "no mentor passes the filters"
    resp = await client.get(f"/api/v1/matching/runs/{run['id']}/results", headers=ADMIN)
    statuses = {p["mentee"]: p["status"] for p in (await resp.json())["pairs"]}
    assert statuses == {"bo": "rematched", "cy": "published", "fay": "published"}


@pytest.mark.parametrize("mode", ["max-coverage", "stable"])
async def test_other_modes(client: Any, mode: str) -> None:
    await setup(client)
    run = await start(client, {"mode": mode})
    assert run["summary"]["mode"] == mode and run["summary"]["matched"] == 3


async def test_bad_profiles_change_nothing(client: Any) -> None:
    await setup(client)
    bad = PROFILES.replace("Asia/Tokyo", "Europe/Pariss").replace(",1,\n", ",-1,\n", 1)
    resp = await client.post("/api/v1/matching/profiles", data=bad,
                             headers={**ADMIN, "Content-Type": "text/csv"})  # fmt: skip
    assert resp.status == 422
    message = (await resp.json())["error"]["message"]
    assert "row 2: capacity must be a whole number ≥ 0, got '-1'" in message
    assert "row 6: unknown time zone 'Europe/Pariss'" in message
    profiles = await (await client.get("/api/v1/matching/profiles", headers=ADMIN)).json()
    assert {p["identity"]: p["capacity"] for p in profiles["profiles"]}["ada"] == 1
    assert {p["identity"]: p["timezone"] for p in profiles["profiles"]}["dee"] == "Asia/Tokyo"

    resp = await client.post("/api/v1/matching/profiles?allow_partial=true", data=bad,
                             headers={**ADMIN, "Content-Type": "text/csv"})  # fmt: skip
    assert resp.status == 200
    assert (await resp.json())["imported"] == 4

    resp = await client.post("/api/v1/matching/profiles", data="{not json", headers=ADMIN)
    assert resp.status == 422 and (await resp.json())["error"]["code"] == "invalid_json"


async def test_bad_criteria_change_nothing(client: Any) -> None:
    await setup(client)
    contradictory = {
        "criteria": [{"name": "dept", "rule": "equality", "field": "department", "weight": "must"}],
        "filters": {"different_department": True},
    }
    resp = await client.put("/api/v1/matching/criteria", json=contradictory, headers=ADMIN)
    assert resp.status == 422
    assert "filters.different_department forbids it" in (await resp.json())["error"]["message"]
    resp = await client.get("/api/v1/matching/criteria", headers=ADMIN)
    assert [c["name"] for c in (await resp.json())["criteria"]] == ["skills", "time together"]


async def test_run_input_errors(client: Any) -> None:
    resp = await client.post("/api/v1/matching/runs", json={"mode": "optimal"}, headers=ADMIN)
    assert resp.status == 409 and "criteria" in (await resp.json())["error"]["message"]
    await setup(client)
    for body, status, text in [
        ({"mode": "best"}, 422, "mode"),
        ({"fixed_pairs": [{"mentee": "bo", "mentor": "zed"}]}, 422, "no mentor 'zed'"),
        ({"fixed_pairs": [{"mentee": "bo", "mentor": "ada"}, {"mentee": "cy", "mentor": "ada"}]},
         422, "more mentees than its capacity"),
        ({"fixed_pairs": [{"mentee": "fay", "mentor": "ada"}]}, 422,
         "'fay' lists 'ada' to avoid, and avoid lists always apply"),
    ]:  # fmt: skip
        resp = await client.post("/api/v1/matching/runs", json=body, headers=ADMIN)
        assert resp.status == status and text in (await resp.json())["error"]["message"]
    resp = await client.get("/api/v1/matching/runs/nope", headers=ADMIN)
    assert resp.status == 404
    resp = await client.post("/api/v1/pairs/nope/rematch", headers=ADMIN)
    assert resp.status == 404


async def run_status(client: Any, run_id: str) -> tuple[str, str | None]:
    resp = await client.get(f"/api/v1/matching/runs/{run_id}", headers=ADMIN)
    run = await resp.json()
    return run["status"], run["error"]


async def insert_running(database: Any, run_id: str, node: str | None, renewed: float) -> None:
    """A run some process claims to be working on, its lease last renewed at `renewed`."""
    async with database.begin() as conn:
        await conn.execute(insert(match_runs).values(
            id=run_id, status="running", progress=0.4, mode="optimal", created_at=renewed,
            node=node, heartbeat_at=renewed if node else None,
        ))  # fmt: skip


async def test_a_restarting_node_fails_its_own_runs_and_lapsed_ones_only(
    aiohttp_client: Any, make_settings: Callable[..., Settings], database_url: str
) -> None:
    node_a = await aiohttp_client(
        create_app(make_settings(database_url=database_url, node_id="node-a"))
    )
    await setup(node_a)
    done = await start(node_a, {"mode": "optimal"})
    database = ServerParts(node_a.app).database
    now = time.time()
    await insert_running(database, "own", "node-a", now)  # died with node-a's process
    await insert_running(database, "live", "node-b", now)  # node-b is working on it
    await insert_running(database, "lapsed", "node-b", now - LEASE_SECONDS - 5)
    await insert_running(database, "legacy", None, 0.0)  # from before leases
    # node-a starts again on the same database (what a rolling restart does).
    await aiohttp_client(create_app(make_settings(database_url=database_url, node_id="node-a")))
    assert await run_status(node_a, "own") == ("failed", INTERRUPTED)
    assert await run_status(node_a, "live") == ("running", None)
    assert await run_status(node_a, "lapsed") == ("failed", LAPSED)
    assert await run_status(node_a, "legacy") == ("failed", LAPSED)
    assert await run_status(node_a, done["id"]) == ("done", None)


async def test_a_run_whose_node_went_quiet_reads_as_failed(client: Any) -> None:
    database = ServerParts(client.app).database
    await insert_running(database, "quiet", "node-b", time.time() - LEASE_SECONDS - 1)
    await insert_running(database, "busy", "node-b", time.time() - LEASE_SECONDS + 20)
    assert await run_status(client, "quiet") == ("failed", LAPSED)
    assert await run_status(client, "busy") == ("running", None)


async def test_a_working_run_renews_its_lease(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runs, "LEASE_RENEW_SECONDS", 0.0)
    monkeypatch.setattr(runs, "PROGRESS_EVERY", 0.01)
    database = ServerParts(client.app).database
    await insert_running(database, "slow", "node-a", 0.0)
    store = MatchingStore(database, "node-a")
    renewals: list[float] = []
    renewed_thrice = threading.Event()
    write = store._progress

    async def recording(run_id: str, progress: float) -> None:
        await write(run_id, progress)
        async with database.connect() as conn:
            query = select(match_runs.c.heartbeat_at).where(match_runs.c.id == run_id)
            renewals.append(await conn.scalar(query))
        if len(renewals) >= 3:
            renewed_thrice.set()

    monkeypatch.setattr(store, "_progress", recording)

    def work() -> None:  # a long step that reports no progress: it lasts until 3 renewals
        if not renewed_thrice.wait(timeout=60):
            raise AssertionError("the lease was not renewed while the run worked")
        raise InvalidInput("stopped by the test")

    await runs._Job(store, "slow").run(work)
    assert len(renewals) >= 3 and renewals[0] > 0
    assert all(a < b for a, b in zip(renewals, renewals[1:], strict=False)), renewals
    assert await run_status(client, "slow") == ("failed", "stopped by the test")


async def test_admin_key_required(client: Any) -> None:
    for method, path in [("GET", "/api/v1/matching/profiles"), ("POST", "/api/v1/matching/runs"),
                         ("GET", "/api/v1/matching/criteria")]:  # fmt: skip
        resp = await client.request(method, path, headers={"Authorization": "Bearer wrong"})
        assert resp.status == 401


@pytest.mark.parametrize(
    ("path", "method", "content_type", "body", "status", "code"),
    [
        ("profiles", "POST", "text/csv", "identity,timezone\nz\xe9d,UTC\n".encode("latin-1"),
         400, "invalid_encoding"),
        ("profiles", "POST", "text/csv; charset=klingon", b"identity,timezone\nzed,UTC\n",
         415, "unsupported_charset"),
        ("profiles", "POST", "application/json", b'[{"identity": "z\xff"}]', 400,
         "invalid_encoding"),
        ("criteria", "PUT", "application/yaml", b"criteria:\n  - {name: \xff, rule: overlap}\n",
         400, "invalid_encoding"),
        ("criteria", "PUT", "application/json; charset=rot13", b'{"criteria": []}', 415,
         "unsupported_charset"),
    ],
)  # fmt: skip
async def test_a_body_that_is_not_text_is_a_4xx_and_changes_nothing(
    client: Any, path: str, method: str, content_type: str, body: bytes, status: int, code: str
) -> None:
    await setup(client)
    resp = await client.request(method, f"/api/v1/matching/{path}", data=body,
                                headers={**ADMIN, "Content-Type": content_type})  # fmt: skip
    assert resp.status == status, await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == code and error["message"]
    profiles = await (await client.get("/api/v1/matching/profiles", headers=ADMIN)).json()
    assert len(profiles["profiles"]) == 6
    criteria = await (await client.get("/api/v1/matching/criteria", headers=ADMIN)).json()
    assert [c["name"] for c in criteria["criteria"]] == ["skills", "time together"]


async def test_a_body_in_a_declared_charset_is_read_in_it(client: Any) -> None:
    body = "identity,role,timezone,name\nzed,mentee,UTC,Zoë\n".encode("latin-1")
    resp = await client.post("/api/v1/matching/profiles", data=body,
                             headers={**ADMIN, "Content-Type": "text/csv; charset=latin-1"})  # fmt: skip
    assert resp.status == 200, await resp.text()
    profiles = await (await client.get("/api/v1/matching/profiles", headers=ADMIN)).json()
    assert [p["name"] for p in profiles["profiles"]] == ["Zoë"]


async def test_an_unknown_seniority_level_is_a_422_wherever_it_meets_the_levels(
    client: Any,
) -> None:
    await setup(client)  # criteria without levels: any seniority is just text
    wizard = "identity,role,timezone,seniority\nzed,mentee,UTC,wizard\n"
    resp = await client.post("/api/v1/matching/profiles", data=wizard,
                             headers={**ADMIN, "Content-Type": "text/csv"})  # fmt: skip
    assert resp.status == 200, await resp.text()
    levelled = {
        "availability": {"start": "2025-03-10"},
        "criteria": [{"name": "level", "rule": "distance", "levels": ["junior", "senior"]}],
    }
    message = "unknown seniority level 'wizard' (zed): criterion 'level' knows junior, senior"
    resp = await client.put("/api/v1/matching/criteria", json=levelled, headers=ADMIN)
    assert resp.status == 422
    assert (await resp.json())["error"]["message"] == message
    criteria = await (await client.get("/api/v1/matching/criteria", headers=ADMIN)).json()
    assert [c["name"] for c in criteria["criteria"]] == ["skills", "time together"]

    # The other way round: levels first, then a profile with a level they do not know.
    resp = await client.post("/api/v1/matching/profiles", data=wizard.replace("wizard", "senior"),
                             headers={**ADMIN, "Content-Type": "text/csv"})  # fmt: skip
    assert resp.status == 200
    resp = await client.put("/api/v1/matching/criteria", json=levelled, headers=ADMIN)
    assert resp.status == 200, await resp.text()
    resp = await client.post("/api/v1/matching/profiles", data=wizard,
                             headers={**ADMIN, "Content-Type": "text/csv"})  # fmt: skip
    assert resp.status == 422
    assert (await resp.json())["error"]["message"] == message
    profiles = await (await client.get("/api/v1/matching/profiles", headers=ADMIN)).json()
    assert {p["identity"]: p["seniority"] for p in profiles["profiles"]}["zed"] == "senior"


async def test_an_identity_differing_only_in_case_from_a_stored_one_is_refused(
    client: Any,
) -> None:
    await setup(client)
    resp = await client.post("/api/v1/matching/profiles", data="identity,role,timezone\nADA,mentor,UTC\n",
                             headers={**ADMIN, "Content-Type": "text/csv"})  # fmt: skip
    assert resp.status == 422
    assert "'ADA' (stored as 'ada')" in (await resp.json())["error"]["message"]
    profiles = await (await client.get("/api/v1/matching/profiles", headers=ADMIN)).json()
    assert [p["identity"] for p in profiles["profiles"]].count("ada") == 1
    assert "ADA" not in [p["identity"] for p in profiles["profiles"]]


async def test_profiles_come_a_page_at_a_time(client: Any) -> None:
    await setup(client)
    resp = await client.get("/api/v1/matching/profiles?limit=4", headers=ADMIN)
    first = await resp.json()
    assert [p["identity"] for p in first["profiles"]] == ["ada", "bo", "cy", "dee"]
    assert first["next"] == "dee"
    resp = await client.get(
        f"/api/v1/matching/profiles?limit=4&after={first['next']}", headers=ADMIN
    )
    second = await resp.json()
    assert [p["identity"] for p in second["profiles"]] == ["eve", "fay"]
    assert second["next"] is None
    assert (
        second["profiles"][1]["avoid"] == ["ada"]
        and second["profiles"][1]["timezone"] == "Europe/Paris"
    )
    for bad in ("limit=0", "limit=10001", "limit=many", "after="):
        resp = await client.get(f"/api/v1/matching/profiles?{bad}", headers=ADMIN)
        assert resp.status == 422, bad
        assert (await resp.json())["error"]["code"] == "invalid_payload"


async def test_rematching_an_unpublished_pair_again_starts_nothing(client: Any) -> None:
    await setup(client)
    run = await start(client, {"mode": "optimal"})
    resp = await client.post(f"/api/v1/matching/runs/{run['id']}/publish", headers=ADMIN)
    pair = (await resp.json())["pairs"][0]
    resp = await client.post(f"/api/v1/pairs/{pair['id']}/rematch", headers=ADMIN)
    assert resp.status == 202
    await finished(client, (await resp.json())["run"]["id"])
    database = ServerParts(client.app).database
    async with database.connect() as conn:
        runs_before = len((await conn.execute(select(match_runs.c.id))).all())
    resp = await client.post(f"/api/v1/pairs/{pair['id']}/rematch", headers=ADMIN)
    assert resp.status == 409
    assert "already unpublished" in (await resp.json())["error"]["message"]
    async with database.connect() as conn:
        assert len((await conn.execute(select(match_runs.c.id))).all()) == runs_before
