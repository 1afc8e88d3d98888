"""CORS for the REST API and Socket.IO: same origin always, other origins only from the
allow-list.

Browsers enforce CORS on responses; refusing an unknown origin outright (403) also stops
a page elsewhere from using a visitor's browser to call the API at all.

The server's own origin is the one its clients see. Without that, behind a TLS proxy the
page's `https://` origin was compared with `http://` and refused, and with an allow-list
set Socket.IO refused the server's own join page.

- With `PAIRWISE_PUBLIC_URL` set it is that URL's origin, and only that: the request's
  `Host` and a proxy's `X-Forwarded-Host` are not consulted. Both are written by whoever
  sends the request; when they counted, a caller behind a proxy that passed the client's
  `X-Forwarded-Host` through made `Origin: https://evil.example` its own with
  `X-Forwarded-Host: evil.example`, and a DNS-rebinding page did the same with `Host`.
- Without it (development, or one server reached directly) it is the scheme and host of
  the request, from `X-Forwarded-Proto`/`-Host` when a trusted proxy sends them
  (server/api/forwarded.py).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from server.api.http import Handler, error_response

ALLOW_HEADERS = "Authorization, Content-Type"
ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of a URL, as a browser writes it in `Origin` (no default port)."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    return (
        f"{scheme}://{host}"
        if port in (None, DEFAULT_PORTS.get(scheme))
        else f"{scheme}://{host}:{port}"
    )


class OriginPolicy:
    """Which `Origin` values may call this server: its own, and the allow-list."""

    def __init__(self, public_url: str | None, allowed: list[str]):
        self.public_origin = origin_of(public_url) if public_url else None
        self.allowed = {origin.rstrip("/").lower() for origin in allowed}

    def is_own(self, origin: str, request: web.Request) -> bool:
        own = self.public_origin or f"{request.scheme}://{request.host}".lower()
        return origin.lower() == own

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
