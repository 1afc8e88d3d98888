"""Per-address limits on the endpoints worth abusing: token issuing and guessing the admin key."""

from __future__ import annotations

from aiohttp import web

from server.api.http import Handler, error_response
from server.signaling.ratelimit import Buckets


def throttle_middleware(tokens_per_minute: float, failures_per_minute: float) -> web.middleware:  # type: ignore[valid-type]
    issued = Buckets(tokens_per_minute)
    failures = Buckets(failures_per_minute)

    @web.middleware
    async def throttle(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/api/"):
            return await handler(request)
        address = request.remote or "unknown"
        failed = failures.get(address)
        if failed.empty():
            return error_response("rate_limited", "too many failed attempts; wait a minute", 429)
        if (
            request.path == "/api/v1/tokens"
            and request.method == "POST"
            and not issued.get(address).take()
        ):
            return error_response("rate_limited", "too many token requests; slow down", 429)
        response = await handler(request)
        if response.status == 401:
            failed.take()
        return response

    return throttle
