"""Item 5: behind a reverse proxy, one attacker's wrong admin keys locked out everybody.

Every request reached the server from the proxy's address, and failures were counted per
socket address. The proxy here is tests/security/proxy.py (standing in for nginx); the
attacker and the real admin reach it from different loopback addresses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from server.api.forwarded import TrustedProxies
from server.config import SettingsError, load_settings
from tests.conftest import ADMIN
from tests.security.proxy import from_address, reverse_proxy
from tests.support.process import ServerProcess

BODY = {"room": "r", "identity": "a", "name": "A", "role": "mentee"}


async def test_wrong_admin_keys_through_the_proxy_lock_out_only_the_guesser(
    server_process: Callable[..., ServerProcess],
) -> None:
    server = await asyncio.to_thread(
        server_process,
        PAIRWISE_TRUSTED_PROXIES='["127.0.0.1"]',
        PAIRWISE_AUTH_FAILURES_PER_MINUTE="20",
    )
    async with (
        reverse_proxy(server.url) as proxy,
        from_address("127.0.0.2") as attacker,
        from_address("127.0.0.3") as admin,
    ):
        statuses = []
        for _ in range(25):
            async with attacker.post(
                proxy + "/api/v1/tokens", json=BODY, headers={"Authorization": "Bearer guess"}
            ) as resp:
                statuses.append(resp.status)
        # The limit is exceeded: the guesser is locked out, even with the right key.
        assert statuses[:20] == [401] * 20 and set(statuses[20:]) == {429}
        async with attacker.post(proxy + "/api/v1/tokens", json=BODY, headers=ADMIN) as resp:
            assert resp.status == 429
        # The real admin, behind the same proxy, is not.
        async with admin.post(proxy + "/api/v1/tokens", json=BODY, headers=ADMIN) as resp:
            assert resp.status == 201, await resp.text()


async def test_forged_forwarded_for_from_an_untrusted_peer_does_not_dodge_the_lockout(
    server_process: Callable[..., ServerProcess],
) -> None:
    """X-Forwarded-For sent straight to the server (not from a trusted proxy) is ignored:
    rotating it does not give the guesser a fresh allowance."""
    server = await asyncio.to_thread(
        server_process,
        PAIRWISE_TRUSTED_PROXIES='["10.9.9.9"]',
        PAIRWISE_AUTH_FAILURES_PER_MINUTE="5",
    )
    async with from_address("127.0.0.2") as attacker:
        statuses = []
        for n in range(8):
            headers = {"Authorization": "Bearer guess", "X-Forwarded-For": f"192.0.2.{n}"}
            async with attacker.post(
                server.url + "/api/v1/tokens", json=BODY, headers=headers
            ) as resp:
                statuses.append(resp.status)
        assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}


async def test_a_client_behind_the_proxy_cannot_spoof_its_way_past_the_trusted_hop(
    server_process: Callable[..., ServerProcess],
) -> None:
    """The client's own X-Forwarded-For is left of the address the proxy appends: the
    right-most untrusted hop (the real peer) is what is counted."""
    server = await asyncio.to_thread(
        server_process,
        PAIRWISE_TRUSTED_PROXIES='["127.0.0.1"]',
        PAIRWISE_AUTH_FAILURES_PER_MINUTE="5",
    )
    async with reverse_proxy(server.url) as proxy, from_address("127.0.0.2") as attacker:
        statuses = []
        for n in range(8):
            headers = {"Authorization": "Bearer guess", "X-Forwarded-For": f"192.0.2.{n}"}
            async with attacker.post(proxy + "/api/v1/tokens", json=BODY, headers=headers) as resp:
                statuses.append(resp.status)
        assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}


async def test_behind_a_proxy_that_adds_its_own_header_line_the_client_cannot_pick_its_address(
    server_process: Callable[..., ServerProcess],
) -> None:
    """HAProxy's `option forwardfor` adds its own `X-Forwarded-For` line after the client's.
    Read as the first line only, the client's line chose the counted address: rotating it
    dodged the lock-out, and naming someone else's address locked that person out."""
    server = await asyncio.to_thread(
        server_process,
        PAIRWISE_TRUSTED_PROXIES='["127.0.0.1"]',
        PAIRWISE_AUTH_FAILURES_PER_MINUTE="5",
    )
    async with (
        reverse_proxy(server.url, forwarded_for="line") as proxy,
        from_address("127.0.0.2") as attacker,
        from_address("127.0.0.3") as victim,
    ):
        statuses = []
        for n in range(8):
            # Rotating addresses, and the victim's: both in the attacker's own line.
            forged = f"192.0.2.{n}" if n % 2 else "127.0.0.3"
            headers = {"Authorization": "Bearer guess", "X-Forwarded-For": forged}
            async with attacker.post(proxy + "/api/v1/tokens", json=BODY, headers=headers) as resp:
                statuses.append(resp.status)
        assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
        async with victim.post(proxy + "/api/v1/tokens", json=BODY, headers=ADMIN) as resp:
            assert resp.status == 201, await resp.text()


def test_the_client_is_the_right_most_untrusted_hop() -> None:
    proxies = TrustedProxies(["10.0.0.0/8", "192.168.1.1"])
    # Straight from a client: its headers are not believed.
    assert proxies.client_address("203.0.113.9", "1.2.3.4") == "203.0.113.9"
    # Through our proxies: the first hop from the right that is not ours.
    assert proxies.client_address("10.0.0.5", "1.2.3.4, 203.0.113.9, 192.168.1.1") == "203.0.113.9"
    # Garbage where a proxy should have written an address: the last proxy we trust.
    assert proxies.client_address("10.0.0.5", "1.2.3.4, bogus") == "10.0.0.5"
    # Only proxies of ours: the left-most is the best we know.
    assert proxies.client_address("10.0.0.5", "10.1.1.1") == "10.1.1.1"
    assert proxies.client_address("10.0.0.5", None) == "10.0.0.5"
    assert proxies.client_address("10.0.0.5", "") == "10.0.0.5"
    # A dual-stack listener sees the proxy as an IPv4-mapped IPv6 address.
    assert proxies.client_address("::ffff:10.0.0.5", "203.0.113.9") == "203.0.113.9"


def test_a_trusted_proxy_setting_that_is_not_an_address_stops_the_start() -> None:
    with pytest.raises(SettingsError, match="PAIRWISE_TRUSTED_PROXIES"):
        load_settings(trusted_proxies=["10.0.0.0/33"])
