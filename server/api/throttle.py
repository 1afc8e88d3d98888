"""Per-address limits on the endpoints worth abusing: token issuing and guessing the admin key."""

from __future__ import annotations

from collections import OrderedDict

from aiohttp import web

from server.api.http import Handler, error_response
from server.signaling.ratelimit import TokenBucket

MAX_TRACKED = 10_000


class Buckets:
    """Token buckets by client address, forgetting the least recently seen beyond a bound."""

    def __init__(self, per_minute: float, burst: int | None = None):
        self._rate = per_minute / 60
        self._burst = burst or max(1, int(per_minute))
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def get(self, key: str) -> TokenBucket:
        bucket = self._buckets.pop(key, None) or TokenBucket(self._rate, self._burst)
        self._buckets[key] = bucket
        if len(self._buckets) > MAX_TRACKED:
            self._buckets.popitem(last=False)
        return bucket


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
