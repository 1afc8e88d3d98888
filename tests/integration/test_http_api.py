from typing import Any

import jwt

from tests.conftest import ADMIN


async def test_healthz_and_readyz(client: Any) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200 and await resp.json() == {"status": "ok"}
    resp = await client.get("/readyz")
    assert resp.status == 200
    assert (await resp.json())["checks"] == {"database": "ok"}


async def test_metrics_are_prometheus_text(client: Any) -> None:
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    assert "process_resident_memory_bytes" in await resp.text()


async def test_issue_token(client: Any) -> None:
    body = {
        "room": "pair-7",
        "identity": "ada",
        "name": "Ada",
        "role": "mentor",
        "ttl_seconds": 600,
    }
    resp = await client.post("/api/v1/tokens", json=body, headers=ADMIN)
    assert resp.status == 201
    data = await resp.json()
    claims = jwt.decode(data["token"], options={"verify_signature": False})
    assert claims["room"] == "pair-7" and claims["sub"] == "ada" and claims["role"] == "mentor"
    assert claims["exp"] - claims["iat"] == 600
    assert data["join_url"].endswith(data["token"]) and "/join#token=" in data["join_url"]
    assert data["expires_at"].startswith("20")


async def test_token_requires_the_admin_key(client: Any) -> None:
    body = {"room": "r", "identity": "a", "name": "A", "role": "mentee"}
    for headers in ({}, {"Authorization": "Bearer nope"}):
        resp = await client.post("/api/v1/tokens", json=body, headers=headers)
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "unauthorized"


async def test_bad_token_body_names_the_field(client: Any) -> None:
    resp = await client.post(
        "/api/v1/tokens",
        json={"room": "r", "identity": "a", "name": "A", "role": "king"},
        headers=ADMIN,
    )
    assert resp.status == 422
    error = (await resp.json())["error"]
    assert error["code"] == "invalid_payload" and "role" in error["message"]
    resp = await client.post("/api/v1/tokens", data=b"{not json", headers=ADMIN)
    assert resp.status == 422 and (await resp.json())["error"]["code"] == "invalid_json"
    resp = await client.post(
        "/api/v1/tokens",
        json={"room": "../etc", "identity": "a", "name": "A", "role": "mentee"},
        headers=ADMIN,
    )
    assert resp.status == 422 and "room" in (await resp.json())["error"]["message"]


async def test_unknown_path_is_a_json_error(client: Any) -> None:
    resp = await client.get("/api/v1/nothing-here")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"


async def test_openapi_document_describes_tokens(client: Any) -> None:
    resp = await client.get("/api/openapi.json")
    doc = await resp.json()
    op = doc["paths"]["/api/v1/tokens"]["post"]
    assert "201" in op["responses"] and "401" in op["responses"]
    schema = doc["components"]["schemas"]["TokenRequest"]
    assert set(schema["required"]) == {"room", "identity", "name", "role"}
