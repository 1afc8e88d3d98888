"""Red team: single sign-on must not sign anyone in on an email the identity provider
did not say it verified (a multi-tenant provider lets a stranger put any address, a
programme manager's too, on their own account and leaves `email_verified` out)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.signin.conftest import mailbox, make_server  # noqa: F401 (fixtures)
from tests.signin.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider
from tests.signin.test_oidc import _round_trip


async def test_an_id_token_without_email_verified_signs_nobody_in(
    make_server: Any,  # noqa: F811
    aiohttp_server: Any,
    database_url: str,
) -> None:
    provider = Provider(email="boss@example.org", email_verified=None)
    running = await aiohttp_server(provider.app(), host="127.0.0.1")
    provider.issuer = str(running.make_url("")).rstrip("/")
    server = await make_server(
        database_url,
        oidc_issuer=provider.issuer,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
    )
    await server.admin(
        "POST", "/api/v1/accounts/operators", {"email": "boss@example.org", "role": "admin"}
    )
    attacker = server.browser()
    _, landed = await _round_trip(attacker)
    assert landed.startswith("/signin#error="), landed
    assert "verified" in parse_qs(urlsplit(landed).fragment)["error"][0]
    assert (await attacker.call("GET", "/api/v1/signin/session"))[0] == 401

    # The way back: the same provider saying it verified the address signs them in.
    provider.email_verified = True
    _, landed = await _round_trip(attacker)
    assert landed == "/console"
    await attacker.close()
