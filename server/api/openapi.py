"""The OpenAPI document, generated from the route table's pydantic models."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from server.api.access import Access
from server.api.http import RouteTable

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}

# Who may call (server/api/access.py), as OpenAPI security requirements (any one of them).
SECURITY: dict[Access, list[dict[str, list[str]]]] = {
    Access.ADMIN: [{"adminKey": []}],
    Access.MEMBER: [{"joinToken": []}],
    Access.PAIR: [{"adminKey": []}, {"joinToken": []}],
    Access.ROOM: [{"adminKey": []}, {"joinToken": []}],
    # Operators' routes: the admin key until operators sign in (server/api/access.py).
    Access.MANAGER: [{"adminKey": []}],
    Access.VIEWER: [{"adminKey": []}],
}

_REASONS = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "Too large",
    422: "Invalid input",
    429: "Rate limited",
}


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        components[name] = sub
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def build_openapi(routes: RouteTable, version: str) -> dict[str, Any]:
    components: dict[str, Any] = {"Error": ERROR_SCHEMA}
    paths: dict[str, Any] = {}
    for ep in routes.endpoints:
        operation: dict[str, Any] = {"summary": ep.summary, "tags": list(ep.tags)}
        params = re.findall(r"{(\w+)}", ep.path)
        if params:
            operation["parameters"] = [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                for p in params
            ]
        if ep.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _schema(ep.body, components)}},
            }
        ok: dict[str, Any] = {"description": "OK"}
        if ep.response is not None:
            ok["content"] = {"application/json": {"schema": _schema(ep.response, components)}}
        responses: dict[str, Any] = {str(ep.status): ok}
        guarded = ep.access is not Access.PUBLIC
        # A guarded route refuses wrong credentials (401/403) and NULs anywhere (422).
        codes = set(ep.errors) | ({401, 403, 422} if guarded else set())
        codes |= {422} if ep.body else set()
        for code in sorted(codes):
            responses[str(code)] = {
                "description": _REASONS.get(code, "Error"),
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        operation["responses"] = responses
        if guarded:
            operation["security"] = SECURITY[ep.access]
        paths.setdefault(ep.path, {})[ep.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Pairwise API", "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "adminKey": {"type": "http", "scheme": "bearer"},
                "joinToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
        },
    }
