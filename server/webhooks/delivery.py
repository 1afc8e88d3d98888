"""Sending one delivery over HTTP, and refusing targets inside the server's own network.

A webhook URL is chosen by an operator, but the server makes the request: without a
guard, a URL on 127.0.0.1, 10.0.0.0/8 or 169.254.169.254 (a cloud's metadata service)
would let whoever registers webhooks reach what only the server can (SSRF). So, unless
`PAIRWISE_WEBHOOK_ALLOW_PRIVATE` is on, a target must be a public address: checked when
the webhook is registered, and again on every connection by the resolver the HTTP client
connects through (a name that resolved to a public address at registration may resolve to
a private one later). Redirects are not followed (one could lead inside); no proxy from
the environment is used; no cookies are kept between deliveries.
"""

from __future__ import annotations

import asyncio
import re
import socket
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from server.errors import InvalidInput

USER_AGENT = "Pairwise-Webhooks/1"
NAT64 = ip_network("64:ff9b::/96")  # a gateway maps these onto IPv4 addresses
# Not globally reachable (IANA's special-purpose registry), though Python before 3.12.4 says
# they are: a local-use NAT64 gateway (RFC 8215) maps 64:ff9b:1::/48 onto inside IPv4
# addresses, as do the IPv4-compatible and IPv4-translated forms; 3fff::/20 documents,
# 5f00::/16 is segment routing's.
NOT_GLOBAL_V6 = tuple(
    ip_network(net)
    for net in ("::/96", "::ffff:0:0:0/96", "64:ff9b:1::/48", "3fff::/20", "5f00::/16")
)
# A name's labels as DNS takes them (an international name arrives in punycode).
HOSTNAME = re.compile(r"[A-Za-z0-9_-]{1,63}(\.[A-Za-z0-9_-]{1,63})*\.?")


class RefusedTarget(InvalidInput):
    code = "webhook_url_refused"


class PrivateAddress(OSError):
    """The resolver found only addresses it will not connect to (an OSError, so aiohttp
    reports it as a failed connection)."""


def parse_url(url: str) -> URL:
    """An absolute http(s) URL with a host, or RefusedTarget."""
    try:
        parsed = URL(url)
    except ValueError:
        raise RefusedTarget("the webhook URL is not a URL") from None
    if parsed.scheme not in ("http", "https"):
        raise RefusedTarget("a webhook URL starts with http:// or https://")
    host = parsed.raw_host or ""
    if not host:
        raise RefusedTarget("the webhook URL has no host")
    if not (_is_literal(host) or HOSTNAME.fullmatch(host)):
        raise RefusedTarget("the webhook URL's host is not a host name")
    return parsed


def is_public(address: str) -> bool:
    """Whether the server may connect to `address`: a globally routable unicast address,
    seen through the IPv4 address an IPv6 one carries (::ffff:127.0.0.1 is loopback)."""
    try:
        ip: IPv4Address | IPv6Address = ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, IPv6Address):
        if any(ip in net for net in NOT_GLOBAL_V6):
            return False
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip in NAT64:
            ip = IPv4Address(int(ip) & 0xFFFFFFFF)
        elif ip.sixtofour is not None:
            ip = ip.sixtofour
    return ip.is_global and not ip.is_multicast


class PublicResolver(AbstractResolver):
    """Resolves as aiohttp does, and refuses a name with any non-public address: a
    round-robin name with one private address among public ones is refused as a whole."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        private = [r["host"] for r in found if not is_public(r["host"])]
        if private or not found:
            raise PrivateAddress(f"{host} resolves to a non-public address ({private[0]})")
        return found

    async def close(self) -> None:
        await self._inner.close()


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None  # None: delivered
    retry: bool  # a network failure, a timeout or a 5xx (and 408, 429): worth another try

    @property
    def delivered(self) -> bool:
        return self.error is None


class Sender:
    """One HTTP client for every delivery of this node (a connection pool, timeouts)."""

    def __init__(self, *, timeout_seconds: float, allow_private: bool) -> None:
        self.timeout_seconds = timeout_seconds
        self.allow_private = allow_private
        self._session: aiohttp.ClientSession | None = None

    async def check(self, url: str) -> None:
        """At registration: refuse what no delivery could be sent to."""
        parsed = parse_url(url)
        if self.allow_private:
            return
        host = parsed.raw_host or ""
        if _is_literal(host):
            if not is_public(host):
                raise RefusedTarget(f"{host} is not a public address")
            return
        loop = asyncio.get_running_loop()
        try:
            found = await loop.getaddrinfo(host, parsed.port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            raise RefusedTarget(f"the host {host} does not resolve") from None
        for *_, address in found:
            if not is_public(str(address[0])):
                raise RefusedTarget(f"{host} resolves to a non-public address ({address[0]})")

    async def send(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        try:
            parsed = parse_url(url)
            host = parsed.raw_host or ""
            if not self.allow_private and _is_literal(host) and not is_public(host):
                # aiohttp connects to an address literal without asking the resolver.
                raise RefusedTarget(f"{host} is not a public address")
            async with self._client().post(
                parsed, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
        except RefusedTarget as exc:
            return Outcome(None, f"refused: {exc.message}", retry=False)
        except TimeoutError:
            return Outcome(None, f"no answer within {self.timeout_seconds:g} s", retry=True)
        except (aiohttp.ClientError, OSError) as exc:
            if isinstance(exc.__cause__, PrivateAddress):
                return Outcome(None, f"refused: {exc.__cause__}", retry=False)
            return Outcome(None, f"{type(exc).__name__}: {exc}"[:500], retry=True)
        if 200 <= status < 300:
            return Outcome(status, None, retry=False)
        if 300 <= status < 400:
            return Outcome(status, f"HTTP {status} (redirects are not followed)", retry=False)
        return Outcome(status, f"HTTP {status}", retry=status >= 500 or status in (408, 429))

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                resolver=None if self.allow_private else PublicResolver(), limit=20
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout_seconds),
                headers={"User-Agent": USER_AGENT},
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _is_literal(host: str) -> bool:
    try:
        ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True
