"""Who the client is when Pairwise runs behind reverse proxies.

Behind nginx every request comes from the proxy's address, so a per-address limit keyed on
the socket address is one limit for everybody: 20 wrong admin keys from one attacker locked
out the real admin and every member. `X-Forwarded-For` says who the proxy talked to, but
anyone can send that header, so it is believed only from `PAIRWISE_TRUSTED_PROXIES`: walking
it from the right (each proxy appends the address it saw), the first hop that is not a
trusted proxy is the client. `X-Forwarded-Proto` and `X-Forwarded-Host` are believed under
the same condition, so the same-origin checks see `https://` behind a TLS proxy.

A header sent on several lines is one comma-separated list (RFC 9110 §5.3). HAProxy's
`option forwardfor` adds its own `X-Forwarded-For` line after the client's; reading only
the first line let the client name the address that was counted (25 wrong admin keys, no
429; a victim's address in that line locked the victim out), so every line is read.

The middleware replaces the request with a clone whose `remote`, `scheme` and `host` are the
client's, so every later part (HTTP throttle, CORS, Socket.IO, the Engine.IO address cap)
reads `request.remote` and gets the same answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

from aiohttp import web
from multidict import CIMultiDictProxy

from server.api.http import Handler

Address = IPv4Address | IPv6Address


class TrustedProxies:
    def __init__(self, networks: Iterable[str]):
        self._networks = [ip_network(entry, strict=False) for entry in networks]

    def trusts(self, address: str | None) -> bool:
        parsed = _parse(address)
        return parsed is not None and any(parsed in net for net in self._networks)

    def client_address(self, peer: str | None, forwarded_for: str | None) -> str | None:
        """The right-most hop of `peer` + `X-Forwarded-For` that is not a trusted proxy.

        A hop that is not an address stops the walk at the last trusted hop before it: what
        stands left of garbage was not written by a proxy we trust.
        """
        if not self.trusts(peer) or not forwarded_for:
            return peer
        client = peer
        for hop in reversed([part.strip() for part in forwarded_for.split(",")]):
            parsed = _parse(hop)
            if parsed is None:
                return client
            client = str(parsed)
            if not self.trusts(client):
                return client
        return client  # every hop is a proxy of ours: the left-most is the best we know

    def middleware(self) -> web.middleware:  # type: ignore[valid-type]
        """Outermost: the client's address, scheme and host for every later part."""

        @web.middleware
        async def forwarded(request: web.Request, handler: Handler) -> web.StreamResponse:
            if not self._networks or not self.trusts(request.remote):
                return await handler(request)
            headers = request.headers
            changes: dict[str, str] = {}
            client = self.client_address(request.remote, _joined(headers, "X-Forwarded-For"))
            if client is not None and client != request.remote:
                changes["remote"] = client
            proto = _last(_joined(headers, "X-Forwarded-Proto"))
            if proto in ("http", "https"):
                changes["scheme"] = proto
            host = _last(_joined(headers, "X-Forwarded-Host"))
            if host:
                changes["host"] = host
            return await handler(request.clone(**changes) if changes else request)  # type: ignore[arg-type]

        return forwarded


def _parse(address: str | None) -> Address | None:
    if not address:
        return None
    try:
        parsed = ip_address(address)
    except ValueError:
        return None
    # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; compare them as IPv4.
    if isinstance(parsed, IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped
    return parsed


def _joined(headers: CIMultiDictProxy[str], name: str) -> str:
    """Every line of a header as the one comma-separated list it means (RFC 9110 §5.3)."""
    return ", ".join(headers.getall(name, ()))


def _last(value: str | None) -> str:
    """The value the nearest proxy added (proxies that append add on the right)."""
    return value.rsplit(",", 1)[-1].strip() if value else ""
