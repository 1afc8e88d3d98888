"""Every route in the app's router, called by every wrong kind of caller, answers 401 or 403.

Who may call a route is declared where the route is (`RouteTable.route(access=...)`); this
walks the router itself, so routes of every package count (media, phone, matching,
cluster), and a route added by hand outside a route table fails here until it is listed
as public below.
"""

from __future__ import annotations

from typing import Any

from server.api.access import Access
from server.app import ROUTE_TABLES
from tests.conftest import ADMIN
from tests.security.conftest import Target

# Routes outside the route tables, all public: pages, static files, the API description,
# and Socket.IO (which checks the join token at connect: tests/integration/test_chat.py).
PUBLIC_OUTSIDE_TABLES = {
    "/",
    "/join",
    "/pair",
    "/program",
    "/static",
    "/vendor/socket.io.msgpack.min.js",
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


async def test_every_route_refuses_every_wrong_caller(target: Target) -> None:
    pair = await target.pair("ada", "bo")
    room = pair["room"]
    sid = await target.session(pair)
    revoked = target.token(room, "bo", "mentee")
    await target.ok("DELETE", f"/api/v1/rooms/{room}/participants/bo", ADMIN)
    wrong_callers: dict[str, dict[str, str]] = {
        "no credentials": {},
        "a wrong admin key": {"Authorization": "Bearer not-the-admin-key-0123456789"},
        "a member token of another room": target.bearer(target.token("elsewhere", "ada", "mentor")),
        "an observer token": target.bearer(target.token(room, "ada", "observer")),
        "a revoked token": target.bearer(revoked),
        "the admin key": ADMIN,
    }
    # Which callers are wrong for each kind of route (an observer may ask where its room is).
    wrong_for = {
        Access.ADMIN: set(wrong_callers) - {"the admin key"},
        Access.PAIR: set(wrong_callers) - {"the admin key"},
        Access.MEMBER: set(wrong_callers),
        Access.ROOM: set(wrong_callers) - {"the admin key", "an observer token"},
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
            assert path in ("/healthz", "/readyz", "/metrics"), f"{path} is public"
            continue
        url = path.format_map(_Filled(values))
        wrong = set(wrong_for[access])
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
        "/api/v1/pairs/{pair_id}/meetings",
        "/api/v1/pairs/{pair_id}/meetings/{meeting_id}/accept",
        "/api/v1/pairs/{pair_id}/meetings/{meeting_id}/reschedule",
        "/api/v1/pairs/{pair_id}/meetings/{meeting_id}/cancel",
        "/api/v1/me/calendar",
        "/calendar/{secret}.ics",
        "/digest/unsubscribe/{token}",
    ):
        assert expected in paths
    # Nothing any wrong caller sent got through.
    assert (await target.ok("GET", f"/api/v1/pairs/{pair['id']}/goals", ADMIN))["goals"] == []


class _Filled(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "1"
