"""Every route in the app's router, called by every wrong kind of caller, answers 401 or 403.

Who may call a route is declared where the route is (`RouteTable.route(access=...)`); this
walks the router itself, so routes of every package count (media, phone, matching,
cluster), and a route added by hand outside a route table fails here until it is listed
as public below.
"""

from __future__ import annotations

from typing import Any

from server.api.access import SESSION_COOKIE, Access
from server.app import ROUTE_TABLES
from server.signin import csrf
from tests.conftest import ADMIN
from tests.security.conftest import Target

# Routes outside the route tables, all public: pages, static files, the API description,
# and Socket.IO (which checks the join token at connect: tests/integration/test_chat.py).
PUBLIC_OUTSIDE_TABLES = {
    "/",
    "/join",
    "/pair",
    "/program",
    "/signin",
    "/me",
    "/console",
    "/static",
    "/vendor/socket.io.msgpack.min.js",
    "/sw.js",  # the service worker (server/push): static, at the root for its scope
    "/manifest.webmanifest",
    "/favicon.ico",  # the app's icon (server/api/pages.py), asked for by every browser
    "/api/openapi.json",
    "/socket.io/",
}


# Public routes whose URL holds a secret, and wrong secrets that must find nothing.
SECRET_URLS = {
    "/calendar/{secret}.ics": [
        "/calendar/1.ics",
        "/calendar/" + "A" * 43 + ".ics",
        "/calendar/..%2F..%2Fadmin_key.ics",
    ],
    "/digest/unsubscribe/{token}": [
        "/digest/unsubscribe/1",
        "/digest/unsubscribe/YWRh.00000000000000000000000000000000",  # "ada", unsigned
        "/digest/unsubscribe/%FF%FE.1",
    ],
}


def declared() -> dict[tuple[str, str], Access]:
    return {(ep.method, ep.path): ep.access for t in ROUTE_TABLES for ep in t.endpoints}


# Sign-in links and their confirmation, and how one may sign in, are for anyone.
PUBLIC_SIGNIN = {
    "/api/v1/signin/options",
    "/api/v1/signin/links",
    "/api/v1/signin/preview",
    "/api/v1/signin/confirm",
    "/api/v1/signin/oidc/start",
    "/api/v1/signin/oidc/callback",
}


async def session_of(target: Target, email: str, role: str, identity: str | None = None) -> str:
    """The session cookie of a person signed in with `role` (an operator's, or a
    participant's when `identity` is given)."""
    signin = target.services.signin
    assert signin is not None
    if identity is None:
        account = await signin.accounts.create_operator(email, role)
    else:
        account = await signin.accounts.upsert_participant(identity, email, identity.title())
    secret, _ = await signin.start_session(account, user_agent="test", address="127.0.0.1")
    return secret


def with_session(target: Target, secret: str) -> dict[str, str]:
    """A same-origin page's request with the session: cookie, CSRF token and Origin."""
    key = target.services.settings.secret_key or ""
    return {
        "Cookie": f"{SESSION_COOKIE}={secret}",
        "X-CSRF-Token": csrf.token_for(key, "session", secret),
        "Origin": target.url,
    }


async def test_every_route_refuses_every_wrong_caller(target: Target) -> None:
    pair = await target.pair("ada", "bo")
    room = pair["room"]
    sid = await target.session(pair)
    revoked = target.token(room, "bo", "mentee")
    await target.ok("DELETE", f"/api/v1/rooms/{room}/participants/bo", ADMIN)
    admin = await session_of(target, "root@example.org", "admin")
    manager = await session_of(target, "mo@example.org", "manager")
    viewer = await session_of(target, "vi@example.org", "viewer")
    participant = await session_of(target, "ada@example.org", "participant", identity="ada")
    ended = await session_of(target, "gone@example.org", "admin")
    signin = target.services.signin
    assert signin is not None
    gone = await signin.accounts.by_email("gone@example.org")
    assert gone is not None
    await signin.deactivate(gone.id, "test")
    wrong_callers: dict[str, dict[str, str]] = {
        "no credentials": {},
        "a wrong admin key": {"Authorization": "Bearer not-the-admin-key-0123456789"},
        "a member token of another room": target.bearer(target.token("elsewhere", "ada", "mentor")),
        "an observer token": target.bearer(target.token(room, "ada", "observer")),
        "a revoked token": target.bearer(revoked),
        "the admin key": ADMIN,
        "an admin's session": with_session(target, admin),
        "a manager's session": with_session(target, manager),
        "a viewer's session": with_session(target, viewer),
        "a participant's session": with_session(target, participant),
        "a deactivated admin's session": with_session(target, ended),
        "a forged session cookie": {"Cookie": f"{SESSION_COOKIE}=forged-0123456789"},
        "an admin's session without the CSRF token": {
            k: v for k, v in with_session(target, admin).items() if k != "X-CSRF-Token"
        },
    }
    sessions = {
        "an admin's session",
        "a manager's session",
        "a viewer's session",
        "a participant's session",
    }
    # Which callers are wrong for each kind of route (an observer may ask where its room is).
    wrong_for = {
        Access.ADMIN: set(wrong_callers) - {"the admin key", "an admin's session"},
        Access.MANAGER: set(wrong_callers)
        - {"the admin key", "an admin's session", "a manager's session"},
        Access.VIEWER: set(wrong_callers)
        - {"the admin key", "an admin's session", "a manager's session", "a viewer's session"},
        Access.PAIR: set(wrong_callers)
        - {"the admin key", "an admin's session", "a manager's session"},
        Access.MEMBER: set(wrong_callers),
        Access.ROOM: set(wrong_callers)
        - {"the admin key", "an observer token", "an admin's session", "a manager's session"},
        Access.PARTICIPANT: set(wrong_callers) - {"a participant's session"},
        Access.SESSION: set(wrong_callers) - sessions,
    }
    values = {"pair_id": pair["id"], "room": room, "session_id": str(sid), "identity": "ada"}
    access_of = declared()
    walked: list[tuple[str, str, str]] = []
    for route in target.app.router.routes():
        if route.method in ("HEAD", "OPTIONS") or route.resource is None:
            continue
        path = route.resource.canonical
        access = access_of.get((route.method, path))
        if access is None:
            assert path in PUBLIC_OUTSIDE_TABLES, f"{route.method} {path} declares no access"
            continue
        if access is Access.PUBLIC:
            if path in SECRET_URLS:  # the secret in the URL is the credential
                for guess in SECRET_URLS[path]:
                    status, payload, _ = await target.call(route.method, guess, {})
                    assert status == 404, (path, guess, status, payload)
                    walked.append((route.method, path, guess))
                continue
            assert path in ("/healthz", "/readyz", "/metrics", *PUBLIC_SIGNIN), f"{path} is public"
            continue
        url = path.format_map(_Filled(values))
        wrong = set(wrong_for[access])
        if route.method == "GET" and "an admin's session" not in wrong:
            wrong.discard("an admin's session without the CSRF token")  # reading needs none
        if "{pair_id}" not in path and "{room}" not in path:
            wrong.discard("a member token of another room")  # /me: any room is the caller's
        for name in sorted(wrong):
            status, payload, _ = await target.call(route.method, url, wrong_callers[name])
            assert status in (401, 403), (route.method, path, name, status, payload)
            assert payload["error"]["code"], payload
            walked.append((route.method, path, name))
    # The walk reached every package's routes, not only the session log's.
    paths = {p for _, p, _ in walked}
    for expected in (
        "/api/v1/rooms/{room}/stats",
        "/api/v1/rooms/{room}/pin",
        "/api/v1/matching/runs",
        "/api/v1/nodes",
        "/api/v1/rooms/{room}/node",
        "/api/v1/pairs/{pair_id}/export",
        "/api/v1/home/pairs/{pair_id}/join",
        "/api/v1/accounts/operators",
        "/api/v1/accounts/participants/{account_id}/link",
        "/api/v1/signin/signout-everywhere",
        "/api/v1/console/participants/import",
        "/api/v1/console/pairs/{pair_id}/end",
        "/api/v1/console/rooms/{room}",
        "/api/v1/pairs/{pair_id}/meetings",
        "/api/v1/pairs/{pair_id}/meetings/{meeting_id}/accept",
        "/api/v1/pairs/{pair_id}/meetings/{meeting_id}/reschedule",
        "/api/v1/pairs/{pair_id}/meetings/{meeting_id}/cancel",
        "/api/v1/me/calendar",
        "/calendar/{secret}.ics",
        "/api/v1/phone/calls",
        "/api/v1/phone/trunk",
        "/digest/unsubscribe/{token}",
    ):
        assert expected in paths
    # Nothing any wrong caller sent got through.
    assert (await target.ok("GET", f"/api/v1/pairs/{pair['id']}/goals", ADMIN))["goals"] == []
    for secret in (admin, manager, viewer, participant):
        assert await signin.authenticate(secret) is not None, "a wrong caller signed someone out"


class _Filled(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "1"


async def test_call_me_is_for_the_rooms_members_only(target: Target) -> None:
    """An observer's token passes the room's access check but may not have the gateway
    call them (members only); the admin key is no member either."""
    url = "/api/v1/rooms/room-x/phone/call-me"
    body = {"number": "+4930123456"}
    for headers, code in (
        (target.bearer(target.token("room-x", "obs", "observer")), "members_only"),
        (ADMIN, "members_only"),
    ):
        status, payload, _ = await target.call("POST", url, headers, body)
        assert (status, payload["error"]["code"]) == (403, code)
    # A member gets through to the gateway (off in this app: 404, not 401/403).
    member = target.bearer(target.token("room-x", "maya", "mentee"))
    status, payload, _ = await target.call("POST", url, member, body)
    assert (status, payload["error"]["code"]) == (404, "phone_disabled")
