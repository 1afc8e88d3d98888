"""A participant's sign-in link leaves the server to an admin only.

Whoever holds a participant's link can sign in as them, mint a member's join token at /me
and read the pair's private chat. A programme manager therefore has links mailed to the
person and never sees one; with mail off, only an admin gets the link to copy. Every route
that makes a link is called by every kind of caller here, and every operator GET route is
read afterwards to find no link or join token in it.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from server.app import ROUTE_TABLES
from server.auth import Role
from tests.conftest import ADMIN
from tests.signin.conftest import LINK, Browser, SignInServer
from tests.support.participants import SocketParticipant
from tests.support.waiting import eventually

LEAKS = ("signin#link=", "#token=", "/join#")


async def _cohort(server: SignInServer) -> dict[str, Any]:
    """Ada (mentee) and Grace (mentor) with accounts and a pair; one operator per role."""
    ada = await server.participant("ada", "ada@example.org", "Ada")
    await server.participant("grace", "grace@example.org", "Grace")
    for email, role in (
        ("root@example.org", "admin"),
        ("mo@example.org", "manager"),
        ("vi@example.org", "viewer"),
    ):
        await server.admin("POST", "/api/v1/accounts/operators", {"email": email, "role": role})
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
    return {"ada": ada, "pair": pair}


async def _as_key(server: SignInServer, method: str, path: str, body: Any = None) -> Any:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, server.url + path, headers=ADMIN, json=body) as resp,
    ):
        return resp.status, await resp.json()


async def _browsers(server: SignInServer) -> dict[str, Browser]:
    return {
        role: await server.signed_in(email)
        for role, email in (
            ("admin", "root@example.org"),
            ("manager", "mo@example.org"),
            ("viewer", "vi@example.org"),
            ("participant", "ada@example.org"),
        )
    }


def _no_link_in(payload: Any) -> None:
    text = json.dumps(payload)
    for leak in LEAKS:
        assert leak not in text, (leak, text[:500])


async def test_with_mail_a_manager_has_links_mailed_and_never_sees_one(
    server: SignInServer,
) -> None:
    made = await _cohort(server)
    ada, pair = made["ada"], made["pair"]
    people = await _browsers(server)
    link = f"/api/v1/accounts/participants/{ada['id']}/link"

    # A manager: mailed to Ada whether or not they asked for it, never returned.
    for body in ({"send": True}, {"send": False}):
        status, made_link = await people["manager"].call("POST", link, body)
        assert (status, made_link) == (201, {"url": None, "mailed": True})
    mails = await server.mailbox.wait_for(2)
    assert [m["To"] for m in mails] == ["ada@example.org", "ada@example.org"]

    # An admin (signed in, or the admin key) gets the link to copy; it signs in as Ada.
    status, copied = await people["admin"].call("POST", link, {})
    assert status == 201 and copied["mailed"] is False, copied
    assert LINK.match(copied["url"])
    status, keyed = await _as_key(server, "POST", link, {})
    assert status == 201 and LINK.match(keyed["url"]), keyed
    stranger = server.browser()
    status, who = await stranger.call(
        "POST", "/api/v1/signin/preview", {"link": copied["url"].rsplit("link=", 1)[1]}
    )
    assert (status, who["email"]) == (200, "ada@example.org")
    await stranger.close()

    # The wrong callers: a viewer and a participant are refused; nobody anonymous gets in.
    assert (await people["viewer"].call("POST", link, {"send": True}))[0] == 403
    assert (await people["participant"].call("POST", link, {"send": True}))[0] == 403
    anonymous = server.browser()
    assert (await anonymous.call("POST", link, {"send": True}))[0] == 401
    await anonymous.close()

    # "Invite again" as a manager: both members are mailed; the answer holds no link.
    invite = f"/api/v1/console/pairs/{pair['id']}/invitations"
    status, invited = await people["manager"].call("POST", invite)
    assert status == 200, invited
    assert sorted((i["identity"], i["status"]) for i in invited["invitations"]) == [
        ("ada", "mailed"),
        ("grace", "mailed"),
    ]
    _no_link_in(invited)
    for role in ("viewer", "participant"):
        assert (await people[role].call("POST", invite))[0] == 403
    mails = await server.mailbox.wait_for(4)
    assert {m["To"] for m in mails[2:]} == {"ada@example.org", "grace@example.org"}
    for browser in people.values():
        await browser.close()


async def test_without_mail_only_an_admin_gets_links_to_copy(
    make_server: Any, database_url: str
) -> None:
    server = await make_server(database_url, smtp_host=None)
    made = await _cohort(server)
    ada, pair = made["ada"], made["pair"]
    people = await _browsers(server)
    link = f"/api/v1/accounts/participants/{ada['id']}/link"
    invite = f"/api/v1/console/pairs/{pair['id']}/invitations"

    status, refused = await people["manager"].call("POST", link, {"send": True})
    assert (status, refused["error"]["code"]) == (409, "mail_off"), refused
    status, invited = await people["manager"].call("POST", invite)
    assert status == 200 and invited["mail"] is False, invited
    assert {i["status"] for i in invited["invitations"]} == {"mail_off"}
    _no_link_in(invited)
    status, me = await people["manager"].call("GET", "/api/v1/console/me")
    assert (me["role"], me["mail"]) == ("manager", False), me

    status, invited = await people["admin"].call("POST", invite)
    assert status == 200, invited
    copies = {i["identity"]: i for i in invited["invitations"]}
    assert {i["status"] for i in copies.values()} == {"copy"}
    # Ada's copied link signs her in, and lands her at home (/me), where Join works.
    ada_browser = server.browser()
    done = await ada_browser.confirm(copies["ada"]["url"].rsplit("link=", 1)[1])
    assert done["home"] == "/me"
    assert (await ada_browser.call("POST", f"/api/v1/home/pairs/{pair['id']}/join"))[0] == 201
    await ada_browser.close()
    assert (await people["admin"].call("POST", link, {}))[0] == 201
    assert (await people["viewer"].call("POST", invite))[0] == 403
    assert server.mailbox.messages == []
    for browser in people.values():
        await browser.close()


async def test_no_operator_read_returns_a_link_or_a_join_token(server: SignInServer) -> None:
    """After links were made, mailed and copied, no GET route an operator reads (lists,
    exports as JSON and CSV, health, accounts, the console's pages) holds one, nor what an
    operator's observer gets from Socket.IO on joining the pair's room."""
    made = await _cohort(server)
    ada, pair = made["ada"], made["pair"]
    await _as_key(server, "POST", f"/api/v1/accounts/participants/{ada['id']}/link", {})
    await _as_key(server, "POST", f"/api/v1/console/pairs/{pair['id']}/invitations")
    values = {"pair_id": pair["id"], "room": "room-ada", "identity": "ada"}
    read = 0
    for table in ROUTE_TABLES:
        for endpoint in table.endpoints:
            if endpoint.method != "GET" or not endpoint.path.startswith("/api/v1/"):
                continue
            if "{" in endpoint.path.format_map(_Known(values)):
                continue
            path = endpoint.path.format_map(values)
            for suffix in ("", "?format=csv"):
                async with (
                    aiohttp.ClientSession() as http,
                    http.get(server.url + path + suffix, headers=ADMIN) as resp,
                ):
                    text = await resp.text()
                for leak in LEAKS:
                    assert leak not in text, (path, leak)
                read += resp.status == 200
    assert read >= 20, read  # the walk read real answers, not only refusals
    # Socket.IO: what an operator's observer sees on joining the pair's room holds none.
    observer, _ = server.services.tokens.issue("room-ada", "ops", "Ops", Role.OBSERVER)
    watching = await SocketParticipant(server.url, observer).connect()
    try:
        _no_link_in(await watching.join(media_mode="text"))
    finally:
        await watching.close()
    await server.mailbox.wait_for(2)


class _Known(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


COHORT = """identity,name,role,timezone,availability,skills,email
mara,Mara,mentor,Europe/London,Mon 09:00-17:00,python,mara@example.org
nils,Nils,mentor,Europe/London,Mon 09:00-17:00,python,nils@example.org
lin,Lin,mentor,Europe/London,Mon 09:00-17:00,python,lin@example.org
tess,Tess,mentee,Europe/London,Mon 09:00-12:00,python,tess@example.org
ugo,Ugo,mentee,Europe/London,Mon 13:00-17:00,python,ugo@example.org
"""
CRITERIA = {"criteria": [{"name": "skills", "rule": "overlap", "weight": "high"}]}


async def _finished(browser: Browser, run_id: str) -> None:
    """Wait for a matching run to end (it runs in the background; the console polls too)."""

    async def ended() -> dict[str, Any] | None:
        status, run = await browser.call("GET", f"/api/v1/matching/runs/{run_id}")
        assert status == 200, run
        return None if run["status"] == "running" else run

    run = await eventually(ended, timeout=20, what="the run to finish")
    assert run["status"] == "done", run


async def test_publishing_and_rematching_without_mail(make_server: Any, database_url: str) -> None:
    """Publishing as a manager with mail off hands out no link; an admin publishing the
    rematch run gets the new pair's links to copy."""
    server = await make_server(database_url, smtp_host=None)
    for email, role in (("root@example.org", "admin"), ("mo@example.org", "manager")):
        await server.admin("POST", "/api/v1/accounts/operators", {"email": email, "role": role})
    root = await server.signed_in("root@example.org")
    manager = await server.signed_in("mo@example.org")
    body = {"format": "csv", "text": COHORT}
    status, imported = await manager.call("POST", "/api/v1/console/participants/import", body)
    assert (status, imported["imported"]) == (200, 5), imported
    assert (await manager.call("PUT", "/api/v1/matching/criteria", CRITERIA))[0] == 200
    status, started = await manager.call("POST", "/api/v1/matching/runs", {"mode": "optimal"})
    assert status == 202, started
    await _finished(manager, started["id"])
    status, published = await manager.call("POST", f"/api/v1/matching/runs/{started['id']}/publish")
    assert status == 200 and len(published["pairs"]) == 2, published
    assert {i["status"] for i in published["invitations"]} == {"mail_off"}
    assert len(published["invitations"]) == 4
    _no_link_in(published)

    status, rematch = await manager.call(
        "POST", f"/api/v1/pairs/{published['pairs'][0]['id']}/rematch"
    )
    assert status == 202, rematch
    await _finished(manager, rematch["run"]["id"])
    status, again = await root.call("POST", f"/api/v1/matching/runs/{rematch['run']['id']}/publish")
    assert status == 200 and again["pairs"], again
    copies = again["invitations"]
    assert copies and {i["status"] for i in copies} == {"copy"}, copies
    assert all(LINK.match(i["url"]) for i in copies)
    for browser in (root, manager):
        await browser.close()
