"""Red team: single sign-on must not sign anyone in on an email the identity provider
did not say it verified (a multi-tenant provider lets a stranger put any address, a
programme manager's too, on their own account and leaves `email_verified` out)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp

from server.app import create_app
from tests.signin.conftest import mailbox, make_server  # noqa: F401 (fixtures)
from tests.signin.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider
from tests.signin.test_oidc import _round_trip
from tests.support.parts import ServerParts


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


async def test_a_removed_member_cannot_mint_their_way_back_in_from_their_home(
    make_server: Any,  # noqa: F811
    database_url: str,
) -> None:
    """An operator removed Ada from her pair's room (DELETE .../participants/ada: her tokens
    for it stop working). Her home's Join minted her a fresh token, issued after the
    removal, which the removal does not refuse: she was back in the room by herself."""
    server = await make_server(database_url)
    await server.participant("ada", "ada@example.org", "Ada")
    await server.participant("grace", "grace@example.org", "Grace")
    pair = await server.admin(
        "POST",
        "/api/v1/pairs",
        {
            "members": [
                {"identity": "grace", "name": "Grace", "role": "mentor"},
                {"identity": "ada", "name": "Ada", "role": "mentee"},
            ],
            "room": "room-ada",
        },
    )
    ada = await server.signed_in("ada@example.org")
    join = f"/api/v1/home/pairs/{pair['id']}/join"
    status, before = await ada.call("POST", join)
    assert status == 201, before
    await server.admin("DELETE", "/api/v1/rooms/room-ada/participants/ada")

    status, refused = await ada.call("POST", join)
    assert status == 403, refused
    assert refused["error"]["code"] == "removed"
    earlier = {"Authorization": f"Bearer {before['token']}"}  # her earlier token: refused
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{server.url}/api/v1/rooms/room-ada/node", headers=earlier) as resp,
    ):
        assert resp.status == 401
    # Her partner, not removed, still gets in.
    grace = await server.signed_in("grace@example.org")
    assert (await grace.call("POST", join))[0] == 201
    await ada.close()
    await grace.close()


async def test_a_manager_cannot_sign_in_as_a_participant(
    make_server: Any,  # noqa: F811
    database_url: str,
) -> None:
    server = await make_server(database_url)
    ada = await server.participant("ada", "ada@example.org", "Ada")
    await server.admin(
        "POST", "/api/v1/accounts/operators", {"email": "mo@example.org", "role": "manager"}
    )
    manager = await server.signed_in("mo@example.org")
    status, link = await manager.call(
        "POST", f"/api/v1/accounts/participants/{ada['id']}/link", {"send": True}
    )
    assert status == 201, link
    await manager.close()
    assert link.get("url") is None, "the manager holds Ada's sign-in link"
    # The link went to Ada instead.
    [mail] = await server.mailbox.wait_for(1)
    assert mail["To"] == "ada@example.org"


async def test_the_session_cookie_is_secure_when_the_public_url_is_https(
    aiohttp_server: Any,
    make_settings: Any,
    mailbox: Any,  # noqa: F811
) -> None:
    """A careless setup: TLS ends at a proxy the server was not told to trust
    (PAIRWISE_TRUSTED_PROXIES), so every request looks like plain HTTP. The public URL says
    https, yet the session cookie went out without `Secure`: a browser would then send it
    over any plain-HTTP request to the host, where anyone on the path reads it."""
    public = "https://pairwise.example.org"
    settings = make_settings(public_url=public, smtp_host="127.0.0.1", smtp_port=mailbox.port)
    running = await aiohttp_server(create_app(settings), host="127.0.0.1")
    signin = ServerParts(running.app).signin
    account = await signin.accounts.upsert_participant("ada", "ada@example.org", "Ada")
    secret = (await signin.link_url(account)).rsplit("link=", 1)[1]
    async with aiohttp.ClientSession(str(running.make_url(""))) as http:
        async with http.post("/api/v1/signin/preview", json={"link": secret}) as resp:
            assert resp.status == 200
            nonce_cookies = resp.headers.getall("Set-Cookie")
            token = (await resp.json())["csrf"]
        async with http.post(
            "/api/v1/signin/confirm",
            json={"link": secret},
            headers={"Origin": public, "X-CSRF-Token": token},
            cookies=dict([nonce_cookies[0].split(";", 1)[0].split("=", 1)]),
        ) as resp:
            assert resp.status == 200, await resp.text()
            cookies = resp.headers.getall("Set-Cookie")
    [session] = [c for c in cookies if c.startswith("pairwise_session=")]
    assert "Secure" in session, session
    assert all("Secure" in c for c in nonce_cookies), nonce_cookies


async def test_a_cross_site_form_post_with_a_valid_session_cookie_is_refused(
    make_server: Any,  # noqa: F811
    database_url: str,
) -> None:
    """What another site's auto-submitting <form> sends, if a browser still attached the
    session cookie (an old browser, or a same-site sibling domain): form-encoded, its own
    Origin, no CSRF header. Each change is refused (the foreign Origin, else the missing
    CSRF token) and nothing changes;
    the same call from the page itself goes through."""
    server = await make_server(database_url)
    await server.participant("ada", "ada@example.org", "Ada")
    await server.admin(
        "POST", "/api/v1/accounts/operators", {"email": "mo@example.org", "role": "manager"}
    )
    ada = await server.signed_in("ada@example.org")
    manager = await server.signed_in("mo@example.org")
    csv = "identity,name,role,timezone,availability\nada,Ada,mentee,Europe/London,Mon 09:00-12:00\n"
    status, imported = await manager.call(
        "POST", "/api/v1/console/participants/import", {"format": "csv", "text": csv}
    )
    assert status == 200 and imported["imported"] == 1, imported
    attacks = [
        (ada, "/api/v1/signin/signout-everywhere"),
        (manager, "/api/v1/signin/signout-everywhere"),
        (manager, "/api/v1/console/participants/ada/deactivate"),
    ]
    for browser, path in attacks:
        for origin in ("http://evil.example", None):  # a stripped Origin is no better
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            if origin:
                headers["Origin"] = origin
            async with browser.http.post(
                server.url + path, data="x=1", headers=headers
            ) as response:
                assert response.status == 403, (path, origin, response.status)
                code = (await response.json())["error"]["code"]
                assert code == ("origin_not_allowed" if origin else "csrf_failed"), (path, code)
    # Nothing happened: both are still signed in, Ada is still in the matching pool.
    assert (await ada.call("GET", "/api/v1/home"))[0] == 200
    status, people = await manager.call("GET", "/api/v1/console/participants")
    assert status == 200
    assert [p["active"] for p in people["participants"] if p["identity"] == "ada"] == [True]
    # The page's own call (its CSRF token, its origin) is taken: the refusal was the check's.
    status, _ = await manager.call("POST", "/api/v1/console/participants/ada/deactivate")
    assert status == 200
    await ada.close()
    await manager.close()
