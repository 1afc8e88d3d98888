"""Signing in with an emailed link, over HTTP, against a real SMTP server, on SQLite and
PostgreSQL: the link, the confirmation, the session cookie, CSRF, and the way back out."""

from __future__ import annotations

import ast
import inspect
import textwrap
from typing import Any

from server.signin import api as signin_api
from server.signin.service import SignIn
from tests.signin.conftest import SignInServer


async def ask_for_link(server: SignInServer, email: str) -> tuple[int, Any]:
    browser = server.browser()
    try:
        return await browser.call("POST", "/api/v1/signin/links", {"email": email})
    finally:
        await browser.close()


async def test_a_participant_signs_in_through_the_emailed_link(server: SignInServer) -> None:
    await server.participant("ada", "Ada@Example.org", "Ada Lovelace")
    pair = await server.admin(
        "POST",
        "/api/v1/pairs",
        {
            "members": [
                {"identity": "grace", "name": "Grace", "role": "mentor"},
                {"identity": "ada", "name": "Ada Lovelace", "role": "mentee"},
            ],
            "room": "room-ada",
        },
    )
    status, answer = await ask_for_link(server, "ada@example.org")
    assert status == 202
    [mail] = await server.mailbox.wait_for(1)
    assert mail["To"] == "ada@example.org"
    url, secret = server.mailbox.link_in(mail)
    assert url.startswith(server.url + "/signin#link=")

    browser = server.browser()
    # Opening the link signs nobody in: the preview says who, and uses nothing up.
    status, who = await browser.call("POST", "/api/v1/signin/preview", {"link": secret})
    assert status == 200 and who["email"] == "ada@example.org" and who["signed_in_as"] is None
    assert (await browser.call("GET", "/api/v1/signin/session"))[0] == 401
    # Confirming without the page's CSRF token (a form on another site) is refused.
    status, refused = await browser.call("POST", "/api/v1/signin/confirm", {"link": secret})
    assert status == 403 and refused["error"]["code"] == "csrf_failed"
    status, refused = await browser.call(
        "POST",
        "/api/v1/signin/confirm",
        {"link": secret},
        headers={"X-CSRF-Token": who["csrf"], "Origin": "http://evil.example"},
    )
    assert status == 403
    done = await browser.confirm(secret)
    assert done["home"] == "/me" and done["account"]["identity"] == "ada"
    [cookie] = [c for c in browser.confirmed_cookies if c.startswith("pairwise_session=")]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "samesite", "path", "max-age"} <= attributes and "secure" not in attributes
    assert "SameSite=Lax" in cookie and f"Max-Age={180 * 86400}" in cookie

    # The link works once.
    other = server.browser()
    status, used = await other.call("POST", "/api/v1/signin/preview", {"link": secret})
    assert status == 401 and used["error"]["code"] == "link_invalid"
    await other.close()

    # Home: the pair with the partner's name; Join mints a short-lived token for the room.
    status, home = await browser.call("GET", "/api/v1/home")
    assert status == 200
    [mine] = home["pairs"]
    # Grace has no matching profile: no zone, nothing she brings, and no meeting booked.
    assert mine["partners"] == [
        {
            "name": "Grace",
            "role": "mentor",
            "timezone": None,
            "languages": [],
            "skills": [],
            "goals": [],
        }
    ]
    assert mine["room_open"] and mine["next_meeting"] is None
    status, minted = await browser.call("POST", f"/api/v1/home/pairs/{pair['id']}/join")
    assert status == 201, minted
    claims = server.services.tokens.verify(minted["token"])
    assert (claims.room, claims.identity, claims.role) == ("room-ada", "ada", "mentee")
    assert claims.expires_at - claims.issued_at <= 4 * 3600
    assert minted["join_url"].startswith(server.url + "/join#token=")
    # A change without the CSRF header, or from another origin, is refused.
    status, refused = await browser.call(
        "POST", f"/api/v1/home/pairs/{pair['id']}/join", with_csrf=False
    )
    assert status == 403 and refused["error"]["code"] == "csrf_failed"
    status, refused = await browser.call(
        "POST", f"/api/v1/home/pairs/{pair['id']}/join", headers={"Origin": "http://evil.example"}
    )
    assert status == 403
    # The ended pair's room is closed: no token.
    await server.signin.pairs.set_status(pair["id"], "unpublished")
    status, refused = await browser.call("POST", f"/api/v1/home/pairs/{pair['id']}/join")
    assert status == 403 and refused["error"]["code"] == "room_closed"

    # Sign out: the cookie opens nothing any more.
    status, _ = await browser.call("POST", "/api/v1/signin/signout")
    assert status == 200
    assert (await browser.call("GET", "/api/v1/home"))[0] == 401
    await browser.close()


async def test_the_answer_is_the_same_for_known_and_unknown_addresses(
    server: SignInServer,
) -> None:
    await server.participant("ada", "ada@example.org", "Ada")
    server.mailbox.hold.clear()  # the SMTP server answers nothing until released
    known = await ask_for_link(server, "ada@example.org")
    # The answer came while the SMTP server was still holding the message: nothing in the
    # request waited for it.
    assert await _wait_thread(server.mailbox.in_data)
    assert server.mailbox.messages == []
    unknown = await ask_for_link(server, "nobody@example.org")
    assert known == unknown == (202, signin_api.LINK_ANSWER)
    server.mailbox.hold.set()
    await server.signin.drain()
    assert [m["To"] for m in server.mailbox.messages] == ["ada@example.org"]


async def _wait_thread(event: Any) -> bool:
    import asyncio

    return bool(await asyncio.to_thread(event.wait, 10))


def test_asking_for_a_link_awaits_nothing_that_depends_on_the_address() -> None:
    """Structurally: the handler's only awaits are reading the body; the lookup and the mail
    are queued by `SignIn.request_link`, which is not a coroutine."""
    assert not inspect.iscoroutinefunction(SignIn.request_link)
    tree = ast.parse(textwrap.dedent(inspect.getsource(signin_api.request_link)))
    awaited = [ast.unparse(node.value) for node in ast.walk(tree) if isinstance(node, ast.Await)]
    assert awaited == ["read_body(request, LinkRequest)"]


async def test_links_are_throttled_per_address_and_per_email(
    make_server: Any, database_url: str
) -> None:
    server = await make_server(database_url, signin_links_per_hour=2)
    await server.participant("ada", "ada@example.org", "Ada")
    answers = [await ask_for_link(server, "ada@example.org") for _ in range(4)]
    # Per email: the same answer, but only two mails.
    assert all(a == (202, signin_api.LINK_ANSWER) for a in answers)
    await server.signin.drain()
    assert len(server.mailbox.messages) == 2
    # Per client address: 4x the per-email limit, then 429 for any address.
    statuses = [(await ask_for_link(server, f"x{i}@example.org"))[0] for i in range(6)]
    assert statuses[:4] == [202] * 4 and statuses[4:] == [429, 429]


async def test_a_link_expires_and_cannot_be_reused(server: SignInServer) -> None:
    account = await server.participant("ada", "ada@example.org", "Ada")
    signin = server.signin
    now = [1_800_000_000.0]
    signin.clock = lambda: now[0]
    ada = await signin.accounts.get(account["id"])
    secret = (await signin.link_url(ada)).rsplit("link=", 1)[1]
    now[0] += 15 * 60 + 1  # PAIRWISE_SIGNIN_LINK_MINUTES is 15
    browser = server.browser()
    status, refused = await browser.call("POST", "/api/v1/signin/preview", {"link": secret})
    assert status == 401 and refused["error"]["code"] == "link_invalid"
    fresh = (await signin.link_url(ada)).rsplit("link=", 1)[1]
    await browser.confirm(fresh)
    # Two confirmations of one link: the second is refused even with a valid CSRF pair.
    status, who = await browser.call("POST", "/api/v1/signin/preview", {"link": fresh})
    assert status == 401
    # Only hashes are stored.
    from sqlalchemy import select

    from server.store.schema import signin_links, signin_sessions

    async with server.services.database.connect() as conn:
        stored = [r[0] for r in await conn.execute(select(signin_links.c.token_hash))]
        sessions = [r[0] for r in await conn.execute(select(signin_sessions.c.token_hash))]
    cookie = browser.cookie("pairwise_session")
    assert fresh not in stored and secret not in stored and cookie not in sessions
    # A session unused past the idle timeout ends.
    now[0] += 31 * 86400
    assert (await browser.call("GET", "/api/v1/signin/session"))[0] == 401
    await browser.close()


async def test_a_link_does_not_silently_replace_another_persons_session(
    server: SignInServer,
) -> None:
    await server.participant("ada", "ada@example.org", "Ada")
    await server.participant("bo", "bo@example.org", "Bo")
    browser = await server.signed_in("ada@example.org")
    bo = await server.signin.accounts.by_email("bo@example.org")
    assert bo is not None
    secret = (await server.signin.link_url(bo)).rsplit("link=", 1)[1]
    status, who = await browser.call("POST", "/api/v1/signin/preview", {"link": secret})
    assert who["signed_in_as"] == "ada@example.org"
    status, refused = await browser.call(
        "POST", "/api/v1/signin/confirm", {"link": secret}, headers={"X-CSRF-Token": who["csrf"]}
    )
    assert status == 409 and refused["error"]["code"] == "signed_in_as_other"
    status, session = await browser.call("GET", "/api/v1/signin/session")
    assert session["account"]["email"] == "ada@example.org"  # still Ada, link not used up
    await browser.confirm(secret, replace=True)
    status, session = await browser.call("GET", "/api/v1/signin/session")
    assert session["account"]["email"] == "bo@example.org"
    await browser.close()


async def test_sessions_are_listed_and_revoked(server: SignInServer) -> None:
    account = await server.participant("ada", "ada@example.org", "Ada")
    laptop = await server.signed_in("ada@example.org")
    phone = await server.signed_in("ada@example.org")
    status, listed = await laptop.call("GET", "/api/v1/signin/sessions")
    assert len(listed["sessions"]) == 2
    [phone_session] = [s for s in listed["sessions"] if not s["current"]]
    assert (await laptop.call("DELETE", f"/api/v1/signin/sessions/{phone_session['id']}"))[0] == 200
    assert (await phone.call("GET", "/api/v1/home"))[0] == 401
    # Sign out everywhere, then an admin revoking, then deactivation: each ends them at once.
    tablet = await server.signed_in("ada@example.org")
    assert (await laptop.call("POST", "/api/v1/signin/signout-everywhere"))[1]["signed_out"] == 2
    assert (await tablet.call("GET", "/api/v1/home"))[0] == 401
    again = await server.signed_in("ada@example.org")
    await server.admin("DELETE", f"/api/v1/accounts/participants/{account['id']}/sessions")
    assert (await again.call("GET", "/api/v1/home"))[0] == 401
    last = await server.signed_in("ada@example.org")
    await server.admin("PATCH", f"/api/v1/accounts/participants/{account['id']}", {"active": False})
    assert (await last.call("GET", "/api/v1/home"))[0] == 401
    # A deactivated account gets no link, by mail or from an operator.
    assert (await ask_for_link(server, "ada@example.org"))[0] == 202
    await server.signin.drain()
    assert server.mailbox.messages == []
    for browser in (laptop, phone, tablet, again, last):
        await browser.close()


async def test_operator_roles_and_the_audit_names_who_did_it(server: SignInServer) -> None:
    for email, role in (
        ("root@example.org", "admin"),
        ("mo@example.org", "manager"),
        ("vi@example.org", "viewer"),
    ):
        await server.admin("POST", "/api/v1/accounts/operators", {"email": email, "role": role})
    root = await server.signed_in("root@example.org")
    manager = await server.signed_in("mo@example.org")
    viewer = await server.signed_in("vi@example.org")
    body = {"identity": "ada", "email": "ada@example.org", "name": "Ada"}
    assert (await viewer.call("POST", "/api/v1/accounts/participants", body))[0] == 403
    status, ada = await manager.call("POST", "/api/v1/accounts/participants", body)
    assert status == 201
    # A manager manages participants, not operators; an admin does both.
    assert (await manager.call("GET", "/api/v1/accounts/operators"))[0] == 403
    status, created = await root.call(
        "POST", "/api/v1/accounts/operators", {"email": "new@example.org", "role": "viewer"}
    )
    assert status == 201
    # A manager has a participant's link mailed (never to copy: tests/signin/
    # test_participant_links.py); an admin may copy one.
    status, link = await manager.call("POST", f"/api/v1/accounts/participants/{ada['id']}/link", {})
    assert (status, link) == (201, {"url": None, "mailed": True})
    status, link = await root.call("POST", f"/api/v1/accounts/participants/{ada['id']}/link", {})
    assert status == 201 and link["url"].startswith(server.url + "/signin#link=")
    # An admin route refuses a viewer's and a manager's session, and takes the admin's.
    assert (await viewer.call("GET", "/api/v1/privacy/audit"))[0] == 403
    assert (await manager.call("GET", "/api/v1/privacy/audit"))[0] == 403
    assert (await root.call("GET", "/api/v1/privacy/audit"))[0] == 200
    # Health is for every operator (tests/security/test_route_roles.py has every route).
    assert (await viewer.call("GET", "/api/v1/program/health"))[0] == 200
    entries = (await server.admin("GET", "/api/v1/privacy/audit"))["entries"]
    actors = {(e["actor"], e["action"]) for e in entries}
    assert ("mo@example.org", "account_create") in actors
    assert ("root@example.org", "account_create") in actors
    assert ("mo@example.org", "signin_link") in actors
    assert ("admin-key", "account_create") in actors
    for browser in (root, manager, viewer):
        await browser.close()


async def test_an_admin_signs_an_operator_out_everywhere(server: SignInServer) -> None:
    """A lost laptop: an admin ends every session of a programme manager at once; a manager
    cannot do the same to an admin, and the operators' route does not reach a participant."""
    ids = {}
    for email, role in (("root@example.org", "admin"), ("mo@example.org", "manager")):
        created = await server.admin(
            "POST", "/api/v1/accounts/operators", {"email": email, "role": role}
        )
        ids[role] = created["id"]
    ada = await server.participant("ada", "ada@example.org", "Ada")
    root = await server.signed_in("root@example.org")
    laptop = await server.signed_in("mo@example.org")
    phone = await server.signed_in("mo@example.org")
    status, _ = await laptop.call("DELETE", f"/api/v1/accounts/operators/{ids['admin']}/sessions")
    assert status == 403
    assert (await root.call("GET", "/api/v1/console/me"))[0] == 200
    status, _ = await root.call("DELETE", f"/api/v1/accounts/operators/{ada['id']}/sessions")
    assert status == 404
    status, done = await root.call(
        "DELETE", f"/api/v1/accounts/operators/{ids['manager']}/sessions"
    )
    assert (status, done) == (200, {"signed_out": 2})
    for browser in (laptop, phone):
        assert (await browser.call("GET", "/api/v1/console/me"))[0] == 401
    assert (await root.call("GET", "/api/v1/console/me"))[0] == 200
    entries = (await server.admin("GET", "/api/v1/privacy/audit"))["entries"]
    assert ("root@example.org", "sessions_revoke", "mo@example.org") in {
        (e["actor"], e["action"], e["subject"]) for e in entries
    }
    for browser in (root, laptop, phone):
        await browser.close()
