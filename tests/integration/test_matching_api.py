"""The matching API through the real app, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import insert

from server.app import create_app
from server.config import Settings
from server.matching.runs import MatchingStore
from server.services import SERVICES
from server.store.schema import match_runs
from tests.conftest import ADMIN

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
    for _ in range(400):
        resp = await client.get(f"/api/v1/matching/runs/{run_id}", headers=ADMIN)
        run = await resp.json()
        assert 0 <= run["progress"] <= 1
        if run["status"] != "running":
            return run
        await asyncio.sleep(0.05)
    raise AssertionError("the run did not finish")


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
    assert results["unmatched"] == [{
        "mentee": "dee", "reason": "no mentor passes the filters",
        "explanation": {"summary": "Not matched: no mentor passes the filters."},
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
        ({"fixed_pairs": [{"mentee": "bo", "mentor": "ada"}, {"mentee": "fay", "mentor": "ada"}]},
         422, "more mentees than its capacity"),
    ]:  # fmt: skip
        resp = await client.post("/api/v1/matching/runs", json=body, headers=ADMIN)
        assert resp.status == status and text in (await resp.json())["error"]["message"]
    resp = await client.get("/api/v1/matching/runs/nope", headers=ADMIN)
    assert resp.status == 404
    resp = await client.post("/api/v1/pairs/nope/rematch", headers=ADMIN)
    assert resp.status == 404


async def test_runs_cut_off_by_a_restart_are_failed(client: Any) -> None:
    await setup(client)
    done = await start(client, {"mode": "optimal"})
    database = client.app[SERVICES].database
    async with database.begin() as conn:  # a run whose process died mid-way
        await conn.execute(insert(match_runs).values(
            id="cut-off", status="running", progress=0.4, mode="optimal", created_at=0.0
        ))  # fmt: skip
    assert await MatchingStore(database).fail_interrupted() == 1
    resp = await client.get("/api/v1/matching/runs/cut-off", headers=ADMIN)
    run = await resp.json()
    assert (run["status"], run["error"]) == ("failed", "interrupted by a restart")
    resp = await client.get(f"/api/v1/matching/runs/{done['id']}", headers=ADMIN)
    assert (await resp.json())["status"] == "done"


async def test_admin_key_required(client: Any) -> None:
    for method, path in [("GET", "/api/v1/matching/profiles"), ("POST", "/api/v1/matching/runs"),
                         ("GET", "/api/v1/matching/criteria")]:  # fmt: skip
        resp = await client.request(method, path, headers={"Authorization": "Bearer wrong"})
        assert resp.status == 401
