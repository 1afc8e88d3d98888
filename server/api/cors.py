"""CORS for the REST API: same origin always, other origins only from the allow-list.

Browsers enforce CORS on responses; refusing an unknown origin outright (403) also stops
a page elsewhere from using a visitor's browser to call the API at all.
"""

from __future__ import annotations

from aiohttp import web

from server.api.http import Handler, error_response

ALLOW_HEADERS = "Authorization, Content-Type"
ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"


def cors_middleware(allowed: list[str]) -> web.middleware:  # type: ignore[valid-type]
    allowed_set = {origin.rstrip("/") for origin in allowed}

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is None or not request.path.startswith("/api/"):
            return await handler(request)
        own = f"{request.scheme}://{request.host}"
        if origin == own:
            return await handler(request)
        if origin not in allowed_set:
            return error_response(
                "origin_not_allowed", f"requests from {origin} are not allowed", 403
            )
        if request.method == "OPTIONS":
            response: web.StreamResponse = web.Response(status=204)
        else:
            response = await handler(request)
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
        response.headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
        response.headers["Access-Control-Max-Age"] = "600"
        response.headers["Vary"] = "Origin"
        return response

    return cors
