"""Sign-in over HTTP: asking for a link, confirming it, the session cookie, a participant's
home and its room tokens, and operators managing accounts.

Cookies: the session's (HttpOnly, SameSite=Lax, Secure when the request came over TLS,
as `server.api.forwarded` tells behind a proxy, or when the public URL is https) and,
while a link is being confirmed, a short-lived random one whose HMAC the confirm page
sends back (login CSRF).
"""

from __future__ import annotations

import dataclasses
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlencode

from aiohttp import web
from pydantic import BaseModel, Field

from server.api.access import (
    SESSION_COOKIE,
    Access,
    account_of,
    actor_of,
    caller_of,
    may_copy_participant_links,
    require_same_origin,
)
from server.api.http import RouteTable, json_response, path_id, read_body
from server.api.keys import CHAT, REMOVALS, SETTINGS, SIGNIN
from server.api.rooms import remove_from_room
from server.api.tokens import join_url
from server.config import Settings
from server.errors import Conflict, Forbidden, NotFound, PairwiseError, RateLimited
from server.matching.profiles import Profile
from server.meetings.api import MEETINGS
from server.meetings.model import BOOKED, Meeting
from server.pairs.model import Pair, PairStatus
from server.rooms.ids import IDENTITY_PATTERN
from server.signaling.ratelimit import Buckets
from server.signin import csrf
from server.signin.accounts import Account, AccountRole, normal_email
from server.signin.oidc import OidcClient, OidcFailed
from server.signin.service import Invitation, SignedIn, SignIn, lifted_by_reactivation
from server.signin.sessions import Session

routes = RouteTable()
PREFIX = "/api/v1"
TAGS = ("signin",)
CONFIRM_COOKIE = "pairwise_signin_confirm"
CONFIRM_SECONDS = 3600
OIDC_COOKIE = "pairwise_oidc"
OIDC_CALLBACK = "/api/v1/signin/oidc/callback"
# Asking for links: per email address (silently: the answer must not differ) and per
# client address (a 429: it says nothing about any account).
LINK_BUCKETS: web.AppKey[tuple[Buckets, Buckets]] = web.AppKey("signin_link_buckets")


def link_buckets(links_per_hour: int) -> tuple[Buckets, Buckets]:
    """The per-email and per-client-address limits on asking for links (`app.create_app`
    keeps them under `LINK_BUCKETS`)."""
    return (
        Buckets(links_per_hour / 60, burst=links_per_hour),
        Buckets(4 * links_per_hour / 60, burst=4 * links_per_hour),
    )


# --- bodies ---------------------------------------------------------------------------


class LinkRequest(BaseModel):
    email: str = Field(min_length=3, max_length=320)


class LinkIn(BaseModel):
    link: str = Field(min_length=20, max_length=200)


class ConfirmIn(LinkIn):
    replace: bool = False


class OperatorIn(BaseModel):
    email: str = Field(min_length=3, max_length=320)
    role: Literal["admin", "manager", "viewer"]
    name: str = Field("", max_length=200)


class ParticipantIn(BaseModel):
    identity: str = Field(pattern=IDENTITY_PATTERN)
    email: str = Field(min_length=3, max_length=320)
    name: str = Field(min_length=1, max_length=200)


class AccountPatch(BaseModel):
    email: str | None = Field(None, min_length=3, max_length=320)
    name: str | None = Field(None, min_length=1, max_length=200)
    role: Literal["admin", "manager", "viewer"] | None = None
    active: bool | None = None


class LinkOptions(BaseModel):
    send: bool = False  # mail it too (when mail is on); the link is returned either way


# --- helpers --------------------------------------------------------------------------


def _signin(request: web.Request) -> SignIn:
    return request.app[SIGNIN]


def account_json(account: Account) -> dict[str, Any]:
    return {**dataclasses.asdict(account), "role": str(account.role)}


def session_json(session: Session, current: int | None) -> dict[str, Any]:
    return {
        "id": session.id,
        "created_at": session.created_at,
        "last_seen_at": session.last_seen_at,
        "expires_at": session.expires_at,
        "user_agent": session.user_agent,
        "address": session.address,
        "current": session.id == current,
    }


def set_session_cookie(request: web.Request, response: web.StreamResponse, secret: str) -> None:
    settings = request.app[SETTINGS]
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(settings.session_days * 86400),
        path="/",
        httponly=True,
        secure=_secure(request),
        samesite="Lax",
    )


def _secure(request: web.Request) -> bool:
    """Cookies only over TLS: the request came over it, or the public URL says https (TLS
    may end at a proxy the server was not told to trust; the browser still used https)."""
    return request.scheme == "https" or request.app[SETTINGS].base_url.startswith("https://")


def _csrf_key(request: web.Request) -> str:
    return request.app[SETTINGS].secret_key or ""


async def _current(request: web.Request) -> SignedIn | None:
    secret = request.cookies.get(SESSION_COOKIE)
    return await _signin(request).authenticate(secret) if secret else None


# --- links and confirming them --------------------------------------------------------


@routes.route(
    "GET",
    f"{PREFIX}/signin/options",
    summary="How people can sign in here: email links always, single sign-on when set up",
    access=Access.PUBLIC,
    tags=TAGS,
)
async def signin_options(request: web.Request) -> web.Response:
    return json_response({"email": True, "oidc": _signin(request).oidc is not None})


LINK_ANSWER = {
    "status": "queued",
    "message": "If this address has an account, a sign-in link is on its way.",
}


@routes.route(
    "POST",
    f"{PREFIX}/signin/links",
    summary="Ask for a sign-in link by email (the same answer for every address)",
    body=LinkRequest,
    status=202,
    access=Access.PUBLIC,
    errors=(422, 429),
    tags=TAGS,
)
async def request_link(request: web.Request) -> web.Response:
    body = await read_body(request, LinkRequest)
    by_email, by_address = request.app[LINK_BUCKETS]
    if not by_address.get(request.remote or "unknown").take():
        raise RateLimited("too many sign-in links asked from here; wait a while")
    if by_email.get(body.email.strip().lower()).take():
        _signin(request).request_link(body.email)  # queued: no await, nothing looked up
    return json_response(LINK_ANSWER, status=202)


@routes.route(
    "POST",
    f"{PREFIX}/signin/preview",
    summary="Whom a sign-in link is for, without using it (the confirm page)",
    body=LinkIn,
    access=Access.PUBLIC,
    errors=(401, 422),
    tags=TAGS,
)
async def preview_link(request: web.Request) -> web.Response:
    body = await read_body(request, LinkIn)
    account = await _signin(request).preview(body.link)
    current = await _current(request)
    nonce = request.cookies.get(CONFIRM_COOKIE) or secrets.token_urlsafe(32)
    response = json_response(
        {
            "email": account.email,
            "name": account.name,
            "signed_in_as": current.account.email if current else None,
            "csrf": csrf.token_for(_csrf_key(request), "confirm", nonce),
        }
    )
    response.set_cookie(
        CONFIRM_COOKIE,
        nonce,
        max_age=CONFIRM_SECONDS,
        path="/api/v1/signin/",
        httponly=True,
        secure=_secure(request),
        samesite="Strict",
    )
    return response


@routes.route(
    "POST",
    f"{PREFIX}/signin/confirm",
    summary="Use a sign-in link (the person pressed 'Sign in'): starts a session cookie",
    body=ConfirmIn,
    access=Access.PUBLIC,
    errors=(401, 403, 409, 422),
    tags=TAGS,
)
async def confirm_link(request: web.Request) -> web.Response:
    require_same_origin(request)
    nonce = request.cookies.get(CONFIRM_COOKIE, "")
    if not nonce or not csrf.matches(
        _csrf_key(request), "confirm", nonce, request.headers.get(csrf.HEADER)
    ):
        raise Forbidden("open the sign-in link and press 'Sign in' on its page", code="csrf_failed")
    body = await read_body(request, ConfirmIn)
    secret, signed_in = await _signin(request).confirm(
        body.link,
        await _current(request),
        replace=body.replace,
        user_agent=request.headers.get("User-Agent", ""),
        address=request.remote or "",
    )
    response = json_response(
        {"account": account_json(signed_in.account), "home": _home_of(signed_in.account)}
    )
    set_session_cookie(request, response, secret)
    response.del_cookie(CONFIRM_COOKIE, path="/api/v1/signin/")
    return response


def _home_of(account: Account) -> str:
    return "/me" if account.role is AccountRole.PARTICIPANT else "/console"


# --- single sign-on (OpenID Connect) ----------------------------------------------------


def oidc_client(settings: Settings) -> OidcClient | None:
    """The OpenID Connect client `PAIRWISE_OIDC_*` configure, or None (off)."""
    if not (settings.oidc_issuer and settings.oidc_client_id and settings.oidc_client_secret):
        return None
    return OidcClient(
        settings.oidc_issuer,
        settings.oidc_client_id,
        settings.oidc_client_secret,
        settings.base_url + OIDC_CALLBACK,
        settings.secret_key or "",
    )


def _redirect(location: str) -> web.Response:
    return web.Response(status=302, headers={"Location": location})


def _oidc(request: web.Request) -> OidcClient:
    client = _signin(request).oidc
    if client is None:
        raise NotFound("single sign-on is not set up here (PAIRWISE_OIDC_ISSUER)")
    return client


@routes.route(
    "GET",
    f"{PREFIX}/signin/oidc/start",
    summary="Sign in with the organisation's identity provider (a browser navigation)",
    status=302,
    access=Access.PUBLIC,
    errors=(403, 404),
    tags=TAGS,
)
async def oidc_start(request: web.Request) -> web.Response:
    url, flow = await _oidc(request).start()
    response = _redirect(url)
    response.set_cookie(
        OIDC_COOKIE,
        flow,
        max_age=600,
        path=OIDC_CALLBACK,
        httponly=True,
        secure=_secure(request),
        samesite="Lax",  # the issuer's redirect back is a top-level GET from its site
    )
    return response


@routes.route(
    "GET",
    OIDC_CALLBACK,
    summary="Where the identity provider sends the browser back (a browser navigation)",
    status=302,
    access=Access.PUBLIC,
    errors=(403, 404),
    tags=TAGS,
)
async def oidc_callback(request: web.Request) -> web.Response:
    try:
        if "error" in request.query:
            raise OidcFailed(f"the identity provider said: {request.query['error'][:100]}")
        email = await _oidc(request).finish(
            request.cookies.get(OIDC_COOKIE), request.query.get("state"), request.query.get("code")
        )
        secret, signed_in = await _signin(request).sign_in_by_email(
            email,
            await _current(request),
            user_agent=request.headers.get("User-Agent", ""),
            address=request.remote or "",
        )
    except PairwiseError as exc:
        response = _redirect("/signin#" + urlencode({"error": exc.message}))
        response.del_cookie(OIDC_COOKIE, path=OIDC_CALLBACK)
        return response
    response = _redirect(_home_of(signed_in.account))
    set_session_cookie(request, response, secret)
    response.del_cookie(OIDC_COOKIE, path=OIDC_CALLBACK)
    return response


# --- the session ----------------------------------------------------------------------


@routes.route(
    "GET",
    f"{PREFIX}/signin/session",
    summary="Who is signed in, and the CSRF token their pages send with changes",
    access=Access.SESSION,
    errors=(401,),
    tags=TAGS,
)
async def current_session(request: web.Request) -> web.Response:
    caller = caller_of(request)
    account = account_of(request)
    return json_response(
        {
            "account": account_json(account),
            "session_id": caller.session_id,
            "csrf": csrf.token_for(_csrf_key(request), "session", request.cookies[SESSION_COOKIE]),
            "home": _home_of(account),
        }
    )


@routes.route(
    "POST",
    f"{PREFIX}/signin/signout",
    summary="Sign out of this browser",
    access=Access.SESSION,
    errors=(401, 403),
    tags=TAGS,
)
async def sign_out(request: web.Request) -> web.Response:
    signin, caller = _signin(request), caller_of(request)
    assert caller.session_id is not None
    await signin.sessions.revoke(caller.session_id, signin.clock())
    response = json_response({"signed_out": 1})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


@routes.route(
    "POST",
    f"{PREFIX}/signin/signout-everywhere",
    summary="Sign out of every browser",
    access=Access.SESSION,
    errors=(401, 403),
    tags=TAGS,
)
async def sign_out_everywhere(request: web.Request) -> web.Response:
    signin = _signin(request)
    ended = await signin.sessions.revoke_all(account_of(request).id, signin.clock())
    response = json_response({"signed_out": ended})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


@routes.route(
    "GET",
    f"{PREFIX}/signin/sessions",
    summary="The signed-in person's live sessions",
    access=Access.SESSION,
    errors=(401,),
    tags=TAGS,
)
async def my_sessions(request: web.Request) -> web.Response:
    signin, caller = _signin(request), caller_of(request)
    found = await signin.sessions.of_account(account_of(request).id, signin.clock())
    return json_response({"sessions": [session_json(s, caller.session_id) for s in found]})


@routes.route(
    "DELETE",
    f"{PREFIX}/signin/sessions/{{session_id}}",
    summary="End one of the signed-in person's sessions",
    access=Access.SESSION,
    errors=(401, 403, 404),
    tags=TAGS,
)
async def end_my_session(request: web.Request) -> web.Response:
    signin = _signin(request)
    session_id = path_id(request, "session_id")
    await signin.sessions.revoke(session_id, signin.clock(), account_id=account_of(request).id)
    return json_response({"signed_out": 1})


# --- a participant's home -------------------------------------------------------------


@routes.route(
    "GET",
    f"{PREFIX}/home",
    summary="A signed-in participant's home: their pairs and partners",
    access=Access.PARTICIPANT,
    errors=(401, 403),
    tags=TAGS,
)
async def home(request: web.Request) -> web.Response:
    account = account_of(request)
    signin, meetings = _signin(request), request.app[MEETINGS]
    pairs = await signin.pairs_of(account)
    me = account.identity or ""  # no identity: no pairs, no profile, no meetings
    profiles = await meetings.profiles.of(
        sorted({m.identity for p in pairs for m in p.members} | {me})
    )
    mine = profiles.get(me)
    booked = [m for m in await meetings.store.of_identity(me) if m.status == BOOKED]
    now = signin.clock()
    # Messages from the partner since this person's room page last showed the pair's chat.
    unread = await request.app[CHAT].store.unread([p.room for p in pairs], me)
    return json_response(
        {
            "account": account_json(account),
            # The zone the page shows times in: the viewer's profile's, or (null) the browser's.
            "timezone": mine.timezone if mine else None,
            "pairs": [
                {
                    "id": p.id,
                    "title": p.title,
                    "room_open": p.status == PairStatus.ACTIVE,
                    "role": next(m.role for m in p.members if m.identity == account.identity),
                    "partners": [
                        {"name": m.name, "role": m.role} | _shared_profile(profiles.get(m.identity))
                        for m in p.members
                        if m.identity != account.identity
                    ],
                    "next_meeting": _next_meeting([m for m in booked if m.pair_id == p.id], now),
                    "unread": unread[p.room],
                }
                for p in pairs
            ],
        }
    )


def _shared_profile(profile: Profile | None) -> dict[str, Any]:
    """What a partner may see of someone's matching profile: where they are and what they
    bring. Never what only matching and the programme team use (avoid and prefer lists,
    who they report to, capacity, tags, availability)."""
    if profile is None:
        return {"timezone": None, "languages": [], "skills": [], "goals": []}
    return {
        "timezone": profile.timezone,
        "languages": sorted(profile.languages),
        "skills": sorted(profile.skills),
        "goals": sorted(profile.goals),
    }


def _next_meeting(booked: list[Meeting], now: float) -> dict[str, Any] | None:
    """The booked occurrence still running or to come that starts first (None: none booked)."""
    upcoming = []
    for meeting in booked:
        end = meeting.next_end_after(now)
        if end is not None:
            upcoming.append((end - timedelta(minutes=meeting.minutes), meeting))
    if not upcoming:
        return None
    start, meeting = min(upcoming, key=lambda found: found[0])
    return {"id": meeting.id, "title": meeting.title, "start": start.isoformat(),
            "minutes": meeting.minutes}  # fmt: skip


@routes.route(
    "POST",
    f"{PREFIX}/home/pairs/{{pair_id}}/join",
    summary="A short-lived join token for the participant's pair room (refused once it closed)",
    access=Access.PARTICIPANT,
    status=201,
    errors=(401, 403, 404),
    tags=TAGS,
)
async def join_pair(request: web.Request) -> web.Response:
    token, claims, pair = await _signin(request).room_token(
        account_of(request), request.match_info["pair_id"]
    )
    removed_at = await request.app[REMOVALS].removed_at(pair.room, claims.identity)
    if removed_at is not None and not lifted_by_reactivation(account_of(request), removed_at):
        raise Forbidden("an operator removed you from this pair's room", code="removed")
    base = request.app[SETTINGS].base_url
    return json_response(
        {
            "token": token,
            "join_url": join_url(base, token),
            "log_url": f"{base}/pair#token={token}",
            "expires_at": datetime.fromtimestamp(claims.expires_at, UTC).isoformat(),
        },
        status=201,
    )


# --- inviting pair members ----------------------------------------------------------------


async def invite_members(request: web.Request, pairs: list[Pair], why: str) -> list[Invitation]:
    """Mail each member of `pairs` a sign-in link to their home (`SignIn.invite`): publishing
    a run and "Invite again" both come here. Links to copy come back only to an admin
    (`may_copy_participant_links`), and only with mail off."""
    members = [(m.identity, m.name) for p in pairs for m in p.members]
    return await _signin(request).invite(
        members,
        copy=may_copy_participant_links(caller_of(request)),
        actor=actor_of(request),
        why=why,
    )


# --- deactivating a participant -------------------------------------------------------


async def deactivate_participant(request: web.Request, identity: str) -> dict[str, Any]:
    """Everything a deactivated participant held stops working, audited as the caller: they
    are removed from every room of their pairs (disconnected wherever they are; the tokens
    and personal PINs they hold for those rooms are refused), and their account, when they
    have one, is deactivated with all its sessions. The console's Deactivate and
    `PATCH /api/v1/accounts/participants/{id}` with `active: false` both come here.
    Reactivating restores sign-in, and their home's Join mints new tokens; the old ones
    stay refused (`lifted_by_reactivation`)."""
    signin, actor = _signin(request), actor_of(request)
    rooms = sorted({p.room for p in await signin.pairs.of_identity(identity)})
    # A room an operator already removed them from keeps that removal as it was, so that
    # reactivating (which lifts only the deactivation's own removals) cannot undo it.
    rooms = [r for r in rooms if await request.app[REMOVALS].removed_at(r, identity) is None]
    # The account first: its removals carry its `deactivated_at`, which is how reactivation
    # tells them from an operator's own (`lifted_by_reactivation`).
    account = await signin.accounts.by_identity(identity)
    signed_out, at = 0, None
    if account is not None and account.active:
        signed_out = len(await signin.sessions.of_account(account.id, signin.clock()))
        at = (await signin.deactivate(account.id, actor)).deactivated_at
    removed = [await remove_from_room(request.app, room, identity, actor, at) for room in rooms]
    return {
        "rooms": [r.room for r in removed],
        "disconnected": [r.room for r in removed if r.disconnected],
        "signed_out": signed_out,
    }


# --- operators managing accounts --------------------------------------------------------


def _accounts_routes(kind: Literal["operators", "participants"], access: Access) -> None:
    operators = kind == "operators"

    @routes.route(
        "GET",
        f"{PREFIX}/accounts/{kind}",
        summary=f"List the {kind} who may sign in",
        access=access,
        errors=(401, 403),
        tags=TAGS,
    )
    async def list_accounts(request: web.Request) -> web.Response:
        found = await _signin(request).accounts.list(operators=operators)
        return json_response({"accounts": [account_json(a) for a in found]})

    @routes.route(
        "POST",
        f"{PREFIX}/accounts/{kind}",
        summary=f"Add one of the {kind} (participants: created or updated by identity)",
        body=OperatorIn if operators else ParticipantIn,
        access=access,
        status=201,
        errors=(401, 403, 409, 422),
        tags=TAGS,
    )
    async def create_account(request: web.Request) -> web.Response:
        signin = _signin(request)
        if operators:
            given = await read_body(request, OperatorIn)
            account = await signin.accounts.create_operator(given.email, given.role, given.name)
        else:
            row = await read_body(request, ParticipantIn)
            account = await signin.accounts.upsert_participant(row.identity, row.email, row.name)
        await signin.record(actor_of(request), "account_create", account, {"role": account.role})
        return json_response(account_json(account), status=201)

    @routes.route(
        "PATCH",
        f"{PREFIX}/accounts/{kind}/{{account_id}}",
        summary=f"Change one of the {kind}: email, name, role, or deactivate (active: false)",
        body=AccountPatch,
        access=access,
        errors=(401, 403, 404, 409, 422),
        tags=TAGS,
    )
    async def update_account(request: web.Request) -> web.Response:
        signin = _signin(request)
        account = await _account_of_kind(request, operators)
        patch = await read_body(request, AccountPatch)
        actor = actor_of(request)
        if (
            not operators
            and patch.email is not None
            and normal_email(patch.email) != account.email
            and not may_copy_participant_links(caller_of(request))
        ):
            # Where a participant's sign-in link goes is who can sign in as them.
            raise Forbidden(
                "only an admin changes a participant's sign-in address",
                code="admin_only",
            )
        account = await signin.accounts.update(
            account.id, email=patch.email, name=patch.name, role=patch.role
        )
        changed = patch.model_dump(exclude_none=True)
        if patch.active is False and account.active and account.identity is not None:
            await deactivate_participant(request, account.identity)
            account = await signin.accounts.get(account.id)
        elif patch.active is False and account.active:
            account = await signin.deactivate(account.id, actor)
            changed.pop("active")  # audited as account_deactivate, once
        elif patch.active is True and not account.active:
            account = await signin.accounts.set_active(account.id, True)
        if changed:
            await signin.record(actor, "account_update", account, changed)
        return json_response(account_json(account))

    @routes.route(
        "POST",
        f"{PREFIX}/accounts/{kind}/{{account_id}}/link",
        summary="A sign-in link: to copy (admins only) and to mail with send: true; a "
        "programme manager's is always mailed and never returned (409 mail_off without mail)",
        body=LinkOptions,
        access=access,
        status=201,
        errors=(401, 403, 404, 409),
        tags=TAGS,
    )
    async def create_link(request: web.Request) -> web.Response:
        signin = _signin(request)
        account = await _account_of_kind(request, operators)
        options = await read_body(request, LinkOptions) if request.body_exists else LinkOptions()
        if not account.active:
            raise Forbidden("this account is deactivated", code="account_inactive")
        copy = may_copy_participant_links(caller_of(request))
        if not copy and not signin.mailer.enabled:
            raise Conflict(
                "mail is not configured here (PAIRWISE_SMTP_HOST): an admin can copy the link",
                code="mail_off",
            )
        url = await signin.link_url(account)
        mailed = (options.send or not copy) and signin.mailer.enabled
        if mailed:
            signin.mail_link(account, url)
        await signin.record(actor_of(request), "signin_link", account, {"mailed": mailed})
        # A manager's link goes by mail only: holding it is signing in as the person.
        return json_response({"url": url if copy else None, "mailed": mailed}, status=201)

    @routes.route(
        "DELETE",
        f"{PREFIX}/accounts/{kind}/{{account_id}}/sessions",
        summary=f"Sign one of the {kind} out everywhere",
        access=access,
        errors=(401, 403, 404),
        tags=TAGS,
    )
    async def revoke_sessions(request: web.Request) -> web.Response:
        account = await _account_of_kind(request, operators)
        ended = await _signin(request).revoke_sessions(account.id, actor_of(request))
        return json_response({"signed_out": ended})


async def _account_of_kind(request: web.Request, operators: bool) -> Account:
    account = await _signin(request).accounts.get(path_id(request, "account_id"))
    if account.operator != operators:
        raise NotFound(f"no such {'operator' if operators else 'participant'}")
    return account


_accounts_routes("operators", Access.ADMIN)
_accounts_routes("participants", Access.MANAGER)
