"""Who may call each operator route, as a table: one decision per route, written here.

The programme's roles: a programme manager runs the cohort and its pairs (participants,
criteria, matching, publishing, rematching, pairs, rooms and removing someone from one,
dial-in PINs); a viewer reads health and exports, nothing else; an admin does everything,
operators' accounts and admin-only settings included (privacy, program settings, join
tokens, the nodes). Every route the app's router holds must have a decision in `DECIDED`:
a new route without one fails here. Each operator route is then called as an admin, a
manager, a viewer, a participant (signed in) and anonymously, and the answer must be the
guard's refusal exactly for those the decision leaves out.
"""

from __future__ import annotations

from typing import Any

from server.api.access import Access as A
from server.app import ROUTE_TABLES
from tests.conftest import ADMIN
from tests.security.conftest import Target
from tests.security.test_route_access import (
    PUBLIC_OUTSIDE_TABLES,
    declared,
    with_session,
)

DECIDED: dict[tuple[str, str], A] = {
    ("GET", "/healthz"): A.PUBLIC,
    ("GET", "/readyz"): A.PUBLIC,
    ("GET", "/metrics"): A.PUBLIC,
    ("POST", "/api/v1/tokens"): A.ADMIN,
    ("GET", "/api/v1/rooms/{room}/node"): A.ROOM,
    ("GET", "/api/v1/nodes"): A.ADMIN,
    ("GET", "/api/v1/rooms/{room}"): A.MANAGER,
    ("DELETE", "/api/v1/rooms/{room}/participants/{identity}"): A.MANAGER,
    ("POST", "/api/v1/pairs"): A.MANAGER,
    ("GET", "/api/v1/pairs"): A.MANAGER,
    ("GET", "/api/v1/me/pairs"): A.MEMBER,
    ("GET", "/api/v1/pairs/{pair_id}"): A.PAIR,
    ("GET", "/api/v1/pairs/{pair_id}/sessions"): A.PAIR,
    ("GET", "/api/v1/pairs/{pair_id}/sessions/{session_id}"): A.PAIR,
    ("GET", "/api/v1/pairs/{pair_id}/sessions/{session_id}/transcript"): A.PAIR,
    ("POST", "/api/v1/pairs/{pair_id}/sessions/{session_id}/notes"): A.MEMBER,
    ("POST", "/api/v1/pairs/{pair_id}/sessions/{session_id}/feedback"): A.MEMBER,
    ("GET", "/api/v1/pairs/{pair_id}/feedback"): A.PAIR,
    ("GET", "/api/v1/pairs/{pair_id}/agenda"): A.PAIR,
    ("POST", "/api/v1/pairs/{pair_id}/agenda"): A.MEMBER,
    ("PATCH", "/api/v1/pairs/{pair_id}/agenda/{item_id}"): A.MEMBER,
    ("GET", "/api/v1/pairs/{pair_id}/goals"): A.PAIR,
    ("POST", "/api/v1/pairs/{pair_id}/goals"): A.MEMBER,
    ("PATCH", "/api/v1/pairs/{pair_id}/goals/{goal_id}"): A.MEMBER,
    ("GET", "/api/v1/pairs/{pair_id}/export"): A.PAIR,
    ("GET", "/api/v1/program/export"): A.VIEWER,
    ("GET", "/api/v1/program/health"): A.VIEWER,
    ("GET", "/api/v1/program/settings"): A.ADMIN,
    ("PUT", "/api/v1/program/settings"): A.ADMIN,
    ("GET", "/api/v1/program/transcript-reads"): A.ADMIN,
    ("GET", "/api/v1/rooms/{room}/stats"): A.MANAGER,
    ("POST", "/api/v1/rooms/{room}/pin"): A.MANAGER,
    ("GET", "/api/v1/rooms/{room}/pin"): A.MANAGER,
    ("POST", "/api/v1/rooms/{room}/participant-pins"): A.MANAGER,
    ("GET", "/api/v1/phone/calls"): A.MANAGER,
    ("GET", "/api/v1/phone/trunk"): A.VIEWER,  # the gateway's health: no caller, no PIN
    ("GET", "/api/v1/phone/guessing"): A.VIEWER,  # refusals and blocks: no caller, no PIN
    ("POST", "/api/v1/rooms/{room}/phone/call-me"): A.ROOM,
    ("DELETE", "/api/v1/rooms/{room}/phone/call-me"): A.ROOM,
    ("POST", "/api/v1/matching/profiles"): A.MANAGER,
    ("GET", "/api/v1/matching/profiles"): A.MANAGER,
    ("PUT", "/api/v1/matching/criteria"): A.MANAGER,
    ("GET", "/api/v1/matching/criteria"): A.MANAGER,
    ("POST", "/api/v1/matching/runs"): A.MANAGER,
    ("GET", "/api/v1/matching/runs/{run_id}"): A.MANAGER,
    ("GET", "/api/v1/matching/runs/{run_id}/results"): A.MANAGER,
    ("POST", "/api/v1/matching/runs/{run_id}/publish"): A.MANAGER,
    ("POST", "/api/v1/pairs/{pair_id}/rematch"): A.MANAGER,
    ("GET", "/api/v1/me/data"): A.MEMBER,
    ("POST", "/api/v1/me/erasure-request"): A.MEMBER,
    ("GET", "/api/v1/privacy/erasure-requests"): A.ADMIN,
    ("POST", "/api/v1/privacy/people/{identity}/forget"): A.ADMIN,
    ("GET", "/api/v1/privacy/audit"): A.ADMIN,
    ("POST", "/api/v1/privacy/retention"): A.ADMIN,
    ("GET", "/api/v1/signin/options"): A.PUBLIC,
    ("POST", "/api/v1/signin/links"): A.PUBLIC,
    ("POST", "/api/v1/signin/preview"): A.PUBLIC,
    ("POST", "/api/v1/signin/confirm"): A.PUBLIC,
    ("GET", "/api/v1/signin/oidc/start"): A.PUBLIC,
    ("GET", "/api/v1/signin/oidc/callback"): A.PUBLIC,
    ("GET", "/api/v1/signin/session"): A.SESSION,
    ("POST", "/api/v1/signin/signout"): A.SESSION,
    ("POST", "/api/v1/signin/signout-everywhere"): A.SESSION,
    ("GET", "/api/v1/signin/sessions"): A.SESSION,
    ("DELETE", "/api/v1/signin/sessions/{session_id}"): A.SESSION,
    ("GET", "/api/v1/home"): A.PARTICIPANT,
    ("POST", "/api/v1/home/pairs/{pair_id}/join"): A.PARTICIPANT,
    ("GET", "/api/v1/home/notifications"): A.PARTICIPANT,
    ("PUT", "/api/v1/home/notifications/channels"): A.PARTICIPANT,
    ("POST", "/api/v1/home/push/subscriptions"): A.PARTICIPANT,
    ("DELETE", "/api/v1/home/push/subscriptions"): A.PARTICIPANT,
    ("GET", "/api/v1/accounts/operators"): A.ADMIN,
    ("POST", "/api/v1/accounts/operators"): A.ADMIN,
    ("PATCH", "/api/v1/accounts/operators/{account_id}"): A.ADMIN,
    ("POST", "/api/v1/accounts/operators/{account_id}/link"): A.ADMIN,
    ("DELETE", "/api/v1/accounts/operators/{account_id}/sessions"): A.ADMIN,
    ("GET", "/api/v1/accounts/participants"): A.MANAGER,
    ("POST", "/api/v1/accounts/participants"): A.MANAGER,
    ("PATCH", "/api/v1/accounts/participants/{account_id}"): A.MANAGER,
    ("POST", "/api/v1/accounts/participants/{account_id}/link"): A.MANAGER,
    ("DELETE", "/api/v1/accounts/participants/{account_id}/sessions"): A.MANAGER,
    ("GET", "/api/v1/console/me"): A.VIEWER,
    ("GET", "/api/v1/console/participants"): A.MANAGER,
    ("POST", "/api/v1/console/participants/import"): A.MANAGER,
    ("PUT", "/api/v1/console/participants/{identity}"): A.MANAGER,
    ("POST", "/api/v1/console/participants/{identity}/deactivate"): A.MANAGER,
    ("POST", "/api/v1/console/participants/{identity}/reactivate"): A.MANAGER,
    ("GET", "/api/v1/console/pairs"): A.MANAGER,
    ("POST", "/api/v1/console/pairs/{pair_id}/end"): A.MANAGER,
    ("POST", "/api/v1/console/pairs/{pair_id}/invitations"): A.MANAGER,
    ("GET", "/api/v1/console/rooms/{room}"): A.MANAGER,
    ("GET", "/api/v1/pairs/{pair_id}/meetings"): A.PAIR,
    ("GET", "/api/v1/pairs/{pair_id}/meetings/suggestions"): A.PAIR,
    ("POST", "/api/v1/pairs/{pair_id}/meetings"): A.MEMBER,
    ("POST", "/api/v1/pairs/{pair_id}/meetings/{meeting_id}/accept"): A.MEMBER,
    ("POST", "/api/v1/pairs/{pair_id}/meetings/{meeting_id}/reschedule"): A.MEMBER,
    ("POST", "/api/v1/pairs/{pair_id}/meetings/{meeting_id}/cancel"): A.MEMBER,
    ("POST", "/api/v1/me/calendar"): A.MEMBER,
    ("DELETE", "/api/v1/me/calendar"): A.MEMBER,
    ("GET", "/calendar/{secret}.ics"): A.PUBLIC,
    ("GET", "/digest/unsubscribe/{token}"): A.PUBLIC,
    ("POST", "/digest/unsubscribe/{token}"): A.PUBLIC,
    # Webhooks carry a programme's pair events (ids and times, never names, links or
    # tokens) to its own tools: the programme manager's, like the rest of the cohort.
    ("POST", "/api/v1/webhooks"): A.MANAGER,
    ("GET", "/api/v1/webhooks"): A.MANAGER,
    ("DELETE", "/api/v1/webhooks/{webhook_id}"): A.MANAGER,
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries"): A.MANAGER,
}

# Who gets through each kind of route, among the callers this test plays.
ADMITS: dict[A, set[str]] = {
    A.ADMIN: {"admin key", "admin"},
    A.MANAGER: {"admin key", "admin", "manager"},
    A.VIEWER: {"admin key", "admin", "manager", "viewer"},
    A.PAIR: {"admin key", "admin", "manager"},
    A.ROOM: {"admin key", "admin", "manager"},
    A.MEMBER: set(),
    A.PARTICIPANT: {"participant"},
    A.SESSION: {"admin", "manager", "viewer", "participant"},
}
# Routes whose handler narrows its access further: only the room's members are called in.
NARROWED: dict[tuple[str, str], set[str]] = {
    ("POST", "/api/v1/rooms/{room}/phone/call-me"): set(),
    ("DELETE", "/api/v1/rooms/{room}/phone/call-me"): set(),
}
ROLES = ("admin", "manager", "viewer", "participant")
# What the guard answers when it turns a caller away (a handler's own 403s, such as
# room_closed, are other codes).
REFUSALS = {"unauthorized", "forbidden", "wrong_role", "members_only", "session_ended"}


def test_every_route_has_a_decision_and_the_code_declares_it() -> None:
    routes = declared()
    assert set(routes) == set(DECIDED), (
        f"routes without a decision here: {sorted(set(routes) - set(DECIDED))}; "
        f"decisions for routes that are gone: {sorted(set(DECIDED) - set(routes))}"
    )
    wrong = {
        route: (routes[route], DECIDED[route])
        for route in routes
        if routes[route] != DECIDED[route]
    }
    assert not wrong, wrong
    assert sum(1 for t in ROUTE_TABLES for _ in t.endpoints) == len(DECIDED)


async def test_each_role_gets_exactly_its_routes(target: Target) -> None:
    signin = target.services.signin
    assert signin is not None
    accounts = {
        role: await signin.accounts.upsert_participant("ada", "ada@example.org", "Ada")
        if role == "participant"
        else await signin.accounts.create_operator(f"{role}@example.org", role)
        for role in ROLES
    }
    values = _Filled({"pair_id": "no-such-pair", "room": "room-none", "identity": "nobody",
                      "account_id": "999999", "session_id": "999999", "run_id": "no-such-run",
                      "webhook_id": "999999"})  # fmt: skip
    checked = 0
    for route in target.app.router.routes():
        if route.method in ("HEAD", "OPTIONS") or route.resource is None:
            continue
        path = route.resource.canonical
        access = DECIDED.get((route.method, path))
        if access is None:
            assert path in PUBLIC_OUTSIDE_TABLES, f"{route.method} {path} has no decision"
            continue
        if access is A.PUBLIC:
            continue
        url = path.format_map(values)
        for caller in ("anonymous", "admin key", *ROLES):
            if caller == "anonymous":
                headers: dict[str, str] = {}
            elif caller == "admin key":
                headers = dict(ADMIN)
            else:  # a fresh session each call: signing out must not end the next call's
                secret, _ = await signin.start_session(
                    accounts[caller], user_agent="test", address="127.0.0.1"
                )
                headers = with_session(target, secret)
            body = None if route.method in ("GET", "DELETE") else {}
            status, payload, _ = await target.call(route.method, url, headers, body)
            code = payload.get("error", {}).get("code") if isinstance(payload, dict) else None
            refused = status == 401 or (status == 403 and code in REFUSALS)
            admitted = caller in NARROWED.get((route.method, path), ADMITS[access])
            assert refused != admitted, (route.method, path, caller, status, payload)
            checked += 1
    assert checked > 400, checked


class _Filled(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "1"
