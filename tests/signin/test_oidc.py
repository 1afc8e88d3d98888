"""Single sign-on against a real OpenID Connect provider started on loopback by the test
(tests/signin/oidc_provider.py: discovery, authorize, token with PKCE, JWKS, RS256 ID
tokens): code + PKCE, state bound to the browser, nonce checked, email mapped to an account,
unknown emails refused."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp

from tests.signin.conftest import Browser, SignInServer
from tests.signin.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider


async def _server(
    make_server: Any, aiohttp_server: Any, database_url: str
) -> tuple[SignInServer, Provider]:
    provider = Provider()
    running = await aiohttp_server(provider.app(), host="127.0.0.1")
    provider.issuer = str(running.make_url("")).rstrip("/")
    server = await make_server(
        database_url,
        oidc_issuer=provider.issuer,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
    )
    return server, provider


async def _go(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url, allow_redirects=False) as response:
        assert response.status == 302, await response.text()
        return response.headers["Location"]


async def _round_trip(browser: Browser) -> tuple[str, str]:
    """Start at Pairwise, through the provider, back: (the callback URL, where it sent us)."""
    to_provider = await _go(browser.http, browser.url + "/api/v1/signin/oidc/start")
    callback = await _go(browser.http, to_provider)
    assert callback.startswith(browser.url + "/api/v1/signin/oidc/callback?")
    return callback, await _go(browser.http, callback)


async def test_single_sign_on_maps_the_email_to_an_account(
    make_server: Any, aiohttp_server: Any, database_url: str
) -> None:
    server, provider = await _server(make_server, aiohttp_server, database_url)
    await server.participant("ada", "ada@example.org", "Ada")
    browser = server.browser()
    assert (await browser.call("GET", "/api/v1/signin/options"))[1]["oidc"] is True
    callback, landed = await _round_trip(browser)
    assert landed == "/me" and provider.challenges_checked == 1
    await browser.refresh()
    status, session = await browser.call("GET", "/api/v1/signin/session")
    assert session["account"]["identity"] == "ada"

    # The same callback again: the code is used up (the provider refuses it).
    other = server.browser()
    assert "error=" in await _go(other.http, callback)
    # Login CSRF: another browser handed a fresh callback URL is refused (its state is not
    # this browser's), and is not signed in.
    to_provider = await _go(browser.http, browser.url + "/api/v1/signin/oidc/start")
    fresh_callback = await _go(browser.http, to_provider)
    refused = await _go(other.http, fresh_callback)
    assert refused.startswith("/signin#error=")
    assert "not started in this browser" in parse_qs(urlsplit(refused).fragment)["error"][0]
    assert (await other.call("GET", "/api/v1/signin/session"))[0] == 401
    # A state that is not the one this browser started with.
    to_provider = await _go(browser.http, browser.url + "/api/v1/signin/oidc/start")
    tampered = (await _go(browser.http, to_provider)).replace("state=", "state=x")
    assert (await _go(browser.http, tampered)).startswith("/signin#error=")
    await browser.close()
    await other.close()


async def test_unknown_emails_and_wrong_nonces_are_refused(
    make_server: Any, aiohttp_server: Any, database_url: str
) -> None:
    server, provider = await _server(make_server, aiohttp_server, database_url)
    provider.email = "stranger@example.org"
    browser = server.browser()
    _, landed = await _round_trip(browser)
    assert landed.startswith("/signin#error=")
    assert "no account" in parse_qs(urlsplit(landed).fragment)["error"][0]
    assert (await browser.call("GET", "/api/v1/signin/session"))[0] == 401

    await server.participant("ada", "ada@example.org", "Ada")
    provider.email, provider.wrong_nonce = "ada@example.org", True
    _, landed = await _round_trip(browser)
    assert "nonce" in parse_qs(urlsplit(landed).fragment)["error"][0]
    assert (await browser.call("GET", "/api/v1/signin/session"))[0] == 401
    await browser.close()
