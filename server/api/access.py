"""Who may call an HTTP route: declared where the route is (`RouteTable.route(access=...)`),
checked here, once, before the handler runs (as Starlette's `requires()` does).

Kinds of caller:
- API automation, with the admin key (`Authorization: Bearer <admin key>`): every operator
  route;
- a person signed in with a session cookie (server/signin): an operator with a role (admin,
  manager, viewer) on the operator routes their role opens, a participant on their home's
  routes; every state-changing request with a cookie also carries a CSRF token
  (`X-CSRF-Token`) and, when the browser sends one, this server's `Origin`;
- a member, with a mentor's or mentee's join token that has not been revoked by a removal;
- anyone holding a join token for one room (observers included), for routes about that room.

A request with an `Authorization` header is judged by it alone; its cookies are not read.

Every route declares its access (`RouteTable.route` refuses one that does not). Handlers read
who called with the accessors below, never by looking at the credentials themselves:
`caller_of` (anyone admitted), `account_of` (signed in), `participant_of` (a participant
signed in), `member_of` (a member's join token); a pair's routes narrow to that pair's
members with `server.api.pair_access`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from aiohttp import web

from server.api.keys import REMOVALS, SETTINGS, SIGNIN, TOKENS
from server.auth import JoinToken, Role, is_admin_key
from server.errors import Forbidden, InvalidInput, Unauthorized
from server.signin import csrf
from server.signin.accounts import Account, AccountRole

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

OPERATOR_LABEL_HEADER = "X-Pairwise-Operator"
MEMBER_ROLES = frozenset({Role.MENTOR, Role.MENTEE})


class Access(StrEnum):
    PUBLIC = "public"  # anyone: liveness, readiness, metrics
    ADMIN = "admin"  # the admin key, or an operator signed in with the admin role
    MANAGER = "manager"  # an admin, or an operator with the programme manager role
    VIEWER = "viewer"  # any operator: admin, programme manager or viewer (health, exports)
    MEMBER = "member"  # a member's join token only (writes to a pair's log, /me)
    PAIR = "pair"  # a member's join token, or an admin or manager (reading a pair's log)
    ROOM = "room"  # the admin key or any join token for the route's {room}
    PARTICIPANT = "participant"  # a participant signed in with a session (their home)
    SESSION = "session"  # anyone signed in with a session (their own sessions, signing out)


# Routes only operators call: the admin key, or a session whose role is one of these.
OPERATOR_ACCESS = frozenset({Access.ADMIN, Access.MANAGER, Access.VIEWER})
ROLES_FOR: dict[Access, frozenset[AccountRole]] = {
    Access.ADMIN: frozenset({AccountRole.ADMIN}),
    Access.MANAGER: frozenset({AccountRole.ADMIN, AccountRole.MANAGER}),
    Access.VIEWER: frozenset({AccountRole.ADMIN, AccountRole.MANAGER, AccountRole.VIEWER}),
    # Reading a pair's log, and where a room lives: the cohort and its pairs (a viewer reads
    # the whole programme's export instead, never one pair's private log).
    Access.PAIR: frozenset({AccountRole.ADMIN, AccountRole.MANAGER}),
    Access.ROOM: frozenset({AccountRole.ADMIN, AccountRole.MANAGER}),
    Access.PARTICIPANT: frozenset({AccountRole.PARTICIPANT}),
    Access.SESSION: frozenset(AccountRole),
}
SESSION_ONLY = frozenset({Access.PARTICIPANT, Access.SESSION})
SESSION_COOKIE = "pairwise_session"
ADMIN_KEY_LABEL = "admin-key"


@dataclass(frozen=True)
class Caller:
    """Who called: the admin key, a signed-in account (with its session), or the holder of a
    verified join token."""

    token: JoinToken | None
    label: str  # who did it, for the audit log: see `actor_of`
    account: Account | None = None
    session_id: int | None = None

    @property
    def operator(self) -> bool:
        """The admin key or an operator's session (never a participant's)."""
        return self.token is None and (self.account is None or self.account.operator)


CALLER = web.RequestKey("caller", Caller)


def may_copy_participant_links(caller: Caller) -> bool:
    """Whether a participant's sign-in link may be handed to this caller to copy: the admin
    key or a signed-in admin only. Whoever holds the link can sign in as the participant,
    mint a member's join token at /me and read the pair's private chat, which no operator
    role below admin may; a programme manager has links mailed to the person instead."""
    return caller.token is None and (
        caller.account is None or caller.account.role is AccountRole.ADMIN
    )


def caller_of(request: web.Request) -> Caller:
    """The caller `guard` admitted; only routes that are not PUBLIC have one."""
    return request[CALLER]


def account_of(request: web.Request) -> Account:
    """The signed-in caller's account, on a SESSION or PARTICIPANT route (which admit no
    one else)."""
    account = caller_of(request).account
    assert account is not None, "a SESSION/PARTICIPANT route has a signed-in caller"
    return account


def participant_of(request: web.Request) -> str:
    """The identity (in pairs and join tokens) of the participant signed in."""
    account = caller_of(request).account
    if account is None or account.identity is None:
        raise Forbidden("this is done by a participant signed in", code="not_a_participant")
    return account.identity


def member_of(
    request: web.Request, refusal: str = "this is done by a pair's member, with their join token"
) -> JoinToken:
    """The caller's join token if it is a member's (a mentor's or mentee's); otherwise
    Forbidden(members_only) with `refusal`. On a MEMBER route the guard already made sure;
    a ROOM route narrows with it where only the room's members may act."""
    token = caller_of(request).token
    if token is None or token.role not in MEMBER_ROLES:
        raise Forbidden(refusal, code="members_only")
    return token


def actor_of(request: web.Request) -> str:
    """Who did it, as every audit entry names them: the signed-in operator's email, or
    `admin-key` (with the `X-Pairwise-Operator` name API automation may add), or a member's
    identity."""
    return caller_of(request).label


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or not header.removeprefix("Bearer ").strip():
        raise Unauthorized("credentials are required (Authorization: Bearer ...)")
    return header.removeprefix("Bearer ").strip()


async def admit(request: web.Request, access: Access) -> Caller | None:
    """The caller, if `access` lets them call; otherwise Unauthorized (no or bad credentials,
    a revoked token) or Forbidden (valid credentials of the wrong kind)."""
    if access is Access.PUBLIC:
        return None
    app = request.app
    if "Authorization" not in request.headers and SESSION_COOKIE in request.cookies:
        return await _signed_in(request, access)
    given = _bearer(request)
    if is_admin_key(app[SETTINGS].filled_admin_key, given):
        if access is Access.MEMBER:
            raise Forbidden(
                "this is done by a pair's member, with their join token", code="members_only"
            )
        if access in SESSION_ONLY:
            raise Forbidden("this is done by a person signed in, not the admin key")
        return _operator(request)
    if access in OPERATOR_ACCESS:
        try:
            app[TOKENS].verify(given)
        except Unauthorized:
            raise Unauthorized("the admin key is wrong") from None
        raise Forbidden("only operators (with the admin key) may do this")
    if access in SESSION_ONLY:
        raise Forbidden("this is done by a person signed in, not with a join token")
    token = app[TOKENS].verify(given)
    if await app[REMOVALS].refuses(token):
        raise Unauthorized("an operator removed you from this room", code="token_revoked")
    if access is Access.ROOM:
        if token.room != request.match_info.get("room"):
            raise Forbidden("this token is for another room", code="wrong_room")
    elif token.role not in MEMBER_ROLES:
        raise Forbidden(f"a {token.role} token does not open a pair's log", code="not_a_member")
    return Caller(token, token.identity)


def _operator(request: web.Request) -> Caller:
    label = request.headers.get(OPERATOR_LABEL_HEADER, "").strip()[:100]
    return Caller(None, label or ADMIN_KEY_LABEL)


async def _signed_in(request: web.Request, access: Access) -> Caller:
    """The caller behind a session cookie, for `access`: a live session, CSRF-checked when
    the request changes something, of an account whose role `access` admits."""
    secret = request.cookies[SESSION_COOKIE]
    found = await request.app[SIGNIN].authenticate(secret)
    if found is None:
        raise Unauthorized("your session has ended: sign in again", code="session_ended")
    if csrf.changes_state(request.method):
        require_same_origin(request)
        key = request.app[SETTINGS].secret_key or ""
        if not csrf.matches(key, "session", secret, request.headers.get(csrf.HEADER)):
            raise Forbidden(
                f"a signed-in change needs the page's {csrf.HEADER} header", code="csrf_failed"
            )
    account = found.account
    if account.role not in ROLES_FOR.get(access, frozenset()):
        raise Forbidden(f"a {account.role} cannot do this", code="wrong_role")
    return Caller(None, account.label, account, found.session.id)


def require_same_origin(request: web.Request) -> None:
    """An `Origin` the browser sent must be this server's (`PAIRWISE_PUBLIC_URL`'s, or the
    request's own scheme and host): another site's page, even one the CORS allow-list lets
    call the API with tokens, never acts with a visitor's cookie."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    public = request.app[SETTINGS].public_url
    own = _origin_parts(public) if public else (request.scheme, request.host.lower())
    if _origin_parts(origin) != own:
        raise Forbidden(f"a signed-in change from {origin[:100]} is refused", code="csrf_failed")


def _origin_parts(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = -1
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    default = {"http": 80, "https": 443}.get(scheme)
    return scheme, host if port in (None, default) else f"{host}:{port}"


# An escape in JSON text: after an even number of backslashes (`\\u0000` is a backslash).
_ESCAPE = rb"(?<!\\)(?:\\\\)*\\u"
_JSON_NUL = re.compile(_ESCAPE + rb"0000")
# A UTF-16 surrogate escape not in a pair: it decodes to a str no database or encoder takes.
_JSON_LONE_SURROGATE = re.compile(
    _ESCAPE + rb"(?:[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])"
    rb"|(?<![dD][89abAB][0-9a-fA-F]{2}\\u)[dD][c-fC-F][0-9a-fA-F]{2})"
)
# Python refuses to turn more digits than this into an int (a ValueError in any parser).
_TOO_MANY_DIGITS = re.compile(rb"[0-9]{%d,}" % (sys.get_int_max_str_digits() + 1))


async def refuse_unstorable(request: web.Request) -> None:
    """Input no handler could store or parse is refused before anything reads it: a NUL
    anywhere (path, query, body, raw or as a JSON escape; PostgreSQL can neither store nor
    compare it), a lone surrogate escape in the body, a number too long for Python's int.
    No name, title, message or number needs one."""
    for where, values in (("path", request.match_info.values()), ("query", request.query.values())):
        if any("\x00" in value for value in values):
            raise InvalidInput(f"a {where} parameter contains a NUL character (U+0000)")
    if request.can_read_body:
        body = await request.read()  # kept by aiohttp: the handler reads the same bytes
        if b"\x00" in body or _JSON_NUL.search(body):
            raise InvalidInput("the body contains a NUL character (U+0000)")
        if _JSON_LONE_SURROGATE.search(body):
            raise InvalidInput("the body contains a lone UTF-16 surrogate (\\ud800-\\udfff)")
        if _TOO_MANY_DIGITS.search(body):
            raise InvalidInput("the body contains a number with too many digits")


def guard(handler: Handler, access: Access) -> Handler:
    """`handler`, called only for a caller `access` admits; its answers are never cached
    unless the route is public (they carry someone's private data)."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        caller = await admit(request, access)
        if caller is not None:
            request[CALLER] = caller
        await refuse_unstorable(request)
        response = await handler(request)
        if access is not Access.PUBLIC:
            response.headers["Cache-Control"] = "no-store"
        return response

    guarded.__name__ = getattr(handler, "__name__", "guarded")
    guarded.__doc__ = handler.__doc__
    return guarded
