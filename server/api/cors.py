"""CORS for the REST API and Socket.IO: same origin always, other origins only from the
allow-list.

Browsers enforce CORS on responses; refusing an unknown origin outright (403) also stops
a page elsewhere from using a visitor's browser to call the API at all.

The server's own origin is the one its clients see: `PAIRWISE_PUBLIC_URL`, or the scheme
and host of the request as a trusted proxy reports them (server/api/forwarded.py). Without
that, behind a TLS proxy the page's `https://` origin was compared with `http://` and
refused, and with an allow-list set Socket.IO refused the server's own join page.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from server.api.http import Handler, error_response

ALLOW_HEADERS = "Authorization, Content-Type"
ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of a URL, as a browser writes it in `Origin`."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class OriginPolicy:
    """Which `Origin` values may call this server: its own, and the allow-list."""

    def __init__(self, public_url: str, allowed: list[str]):
        self.public_origin = origin_of(public_url)
        self.allowed = {origin.rstrip("/").lower() for origin in allowed}

    def is_own(self, origin: str, request: web.Request) -> bool:
        origin = origin.lower()
        return origin in (self.public_origin, f"{request.scheme}://{request.host}".lower())

    def allows(self, origin: str, request: web.Request) -> bool:
        return self.is_own(origin, request) or origin.lower() in self.allowed

    def for_socketio(self, origin: str | None, environ: dict[str, Any]) -> bool:
        """python-engineio's `cors_allowed_origins` callable: the same rule for Socket.IO.

        `environ["aiohttp.request"]` is the request after the forwarded-headers middleware.
        """
        if origin is None:
            return True  # not a browser: nothing for CORS to protect
        return self.allows(origin, environ["aiohttp.request"])

    def middleware(self) -> web.middleware:  # type: ignore[valid-type]
        @web.middleware
        async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
            origin = request.headers.get("Origin")
            if origin is None or not request.path.startswith("/api/"):
                return await handler(request)
            if self.is_own(origin, request):
                return await handler(request)
            if not self.allows(origin, request):
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
