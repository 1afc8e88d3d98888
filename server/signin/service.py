"""Signing in, as one service: accounts, one-time links by email, sessions, and the room
tokens a signed-in participant gets on demand.

Asking for a link gives the same answer, after the same work, for a known and an unknown
address: the request only queues `_mail_link` (`request_link` is not even a coroutine),
and the lookup, the link and the SMTP conversation happen in the background. So neither the
answer nor its timing says whether an address has an account, and a slow SMTP server never
holds a request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

from server.auth import JoinToken, Role, TokenIssuer
from server.errors import Conflict, Forbidden
from server.mail import Mailer, MailFailed, MailOff
from server.pairs.model import Pair
from server.pairs.store import PairStore
from server.privacy import audit
from server.signin.accounts import Account, AccountStore
from server.signin.links import LinkRefused, LinkStore
from server.signin.oidc import OidcClient
from server.signin.sessions import Session, SessionStore
from server.store import Database

log = logging.getLogger("pairwise.signin")

# A room token minted from a session lasts a long meeting; the session mints a new one for
# the next meeting, so nothing long-lived ever sits in a link or a browser's storage.
ROOM_TOKEN_SECONDS = 4 * 3600
DAY = 86400.0


@dataclass(frozen=True)
class Invitation:
    """What became of inviting one pair member: `mailed` (a sign-in link to their home is on
    its way), `copy` (mail is off: `url` is the link, for an admin to pass on), `mail_off`
    (mail is off and the caller may not copy links), `no_account` or `inactive`."""

    identity: str
    name: str
    status: str
    url: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"identity": self.identity, "name": self.name, "status": self.status,
                "url": self.url}  # fmt: skip


def lifted_by_reactivation(account: Account, removed_at: float) -> bool:
    """Whether reactivating `account` undid a removal from a room made at `removed_at`:
    deactivating a participant removes them from every room they are in, stamped with the
    account's `deactivated_at`; reactivating lets their home mint them new tokens again.
    An operator's own removal stays, made before the deactivation (which leaves it as it
    was) or after the reactivation; the tokens issued before a removal stay refused."""
    return account.active and account.deactivated_at == removed_at


@dataclass(frozen=True)
class SignedIn:
    """A live session and the active account it belongs to."""

    account: Account
    session: Session


class SignIn:
    def __init__(
        self,
        database: Database,
        mailer: Mailer,
        tokens: TokenIssuer,
        *,
        base_url: str,
        link_minutes: float,
        session_days: float,
        idle_days: float,
        oidc: OidcClient | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self._db = database
        self.accounts = AccountStore(database)
        self.links = LinkStore(database, link_minutes * 60)
        self.sessions = SessionStore(database, session_days * DAY, idle_days * DAY)
        self.pairs = PairStore(database)
        self.mailer = mailer
        self._tokens = tokens
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self.oidc = oidc
        self._background: set[asyncio.Task[None]] = set()

    # -- links -------------------------------------------------------------------------

    def request_link(self, email: str) -> None:
        """Mail a sign-in link to `email` if it is an active account's, in the background.
        Nothing here awaits: the caller answers at once, the same for every address."""
        self._spawn(self._mail_link(email))

    async def link_url(self, account: Account) -> str:
        """A new one-time link for `account` (the secret rides in the fragment, so it never
        reaches a server's or proxy's log)."""
        secret = await self.links.issue(account.id, self.clock())
        return f"{self.base_url}/signin#link={secret}"

    def mail_link(self, account: Account, url: str) -> None:
        """Mail `url` (a link an operator made) to the account, in the background."""
        self._spawn(self._send(account, url))

    async def invite(
        self, members: Iterable[tuple[str, str]], *, copy: bool, actor: str, why: str
    ) -> list[Invitation]:
        """Invite each (identity, name) to their home: a sign-in link to /me, mailed in the
        background. With mail off, the links come back only when `copy` (the caller is an
        admin: `access.may_copy_participant_links`); nobody else ever sees one. Audited."""
        done: list[Invitation] = []
        for identity, name in members:
            account = await self.accounts.by_identity(identity)
            if account is None or not account.active:
                status = "no_account" if account is None else "inactive"
                done.append(Invitation(identity, name, status))
                continue
            if not self.mailer.enabled and not copy:
                done.append(Invitation(identity, account.name, "mail_off"))
                continue
            url = await self.link_url(account)
            if self.mailer.enabled:
                self._spawn(self._send_invitation(account, url, why))
                done.append(Invitation(identity, account.name, "mailed"))
            else:
                done.append(Invitation(identity, account.name, "copy", url))
            await self.record(actor, "invite", account, {"mailed": self.mailer.enabled})
        return done

    async def _send_invitation(self, account: Account, url: str, why: str) -> None:
        minutes = round(self.links.lifetime_seconds / 60)
        message = self.mailer.message(
            account.email,
            "You have a Pairwise mentoring pair",
            f"Hello {account.name},\n\n{why}\n\nSign in with this link to reach your "
            f"page, where you see your pair and join its room:\n\n{url}\n\n"
            f"The link works once, for {minutes} minutes. After that, ask for a new one at "
            f"{self.base_url}/signin with this address ({account.email}).\n",
        )
        try:
            await self.mailer.send(message)
        except (MailOff, MailFailed) as exc:
            log.warning("invitation not mailed", extra={"reason": str(exc)})

    async def _mail_link(self, email: str) -> None:
        account = await self.accounts.by_email(email)
        if account is None or not account.active:
            return
        await self._send(account, await self.link_url(account))

    async def _send(self, account: Account, url: str) -> None:
        minutes = round(self.links.lifetime_seconds / 60)
        message = self.mailer.message(
            account.email,
            "Your Pairwise sign-in link",
            f"Hello {account.name},\n\nSign in to Pairwise with this link:\n\n{url}\n\n"
            f"It works once, for {minutes} minutes. If you did not ask for it, ignore this "
            "mail: nobody can sign in without opening the link.\n",
        )
        try:
            await self.mailer.send(message)
        except (MailOff, MailFailed) as exc:
            log.warning("sign-in link not mailed", extra={"reason": str(exc)})

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("sign-in mail failed", exc_info=task.exception())

    async def drain(self) -> None:
        """Wait for the mail being sent (tests, and a clean shutdown)."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    # -- confirming a link: starting a session ---------------------------------------------

    async def preview(self, secret: str) -> Account:
        """Whom a link signs in, without using it: the confirm page shows this."""
        account = await self.accounts.get(await self.links.peek(secret, self.clock()))
        if not account.active:
            raise LinkRefused()
        return account

    async def confirm(
        self,
        secret: str,
        current: SignedIn | None,
        *,
        replace: bool,
        user_agent: str,
        address: str,
    ) -> tuple[str, SignedIn]:
        """Use the link up and start a session. A browser already signed in as somebody else
        keeps that session unless `replace` (the person saw whose it is and chose)."""
        account = await self.preview(secret)
        if current is not None and current.account.id != account.id and not replace:
            raise Conflict(
                f"this browser is signed in as {current.account.email}", code="signed_in_as_other"
            )
        await self.links.consume(secret, self.clock())
        if current is not None:
            await self.sessions.revoke(current.session.id, self.clock())
        return await self.start_session(account, user_agent=user_agent, address=address)

    async def sign_in_by_email(
        self, email: str, current: SignedIn | None, *, user_agent: str, address: str
    ) -> tuple[str, SignedIn]:
        """A session for the active account of an email an identity provider vouched for;
        an unknown email is refused (single sign-on creates nobody)."""
        account = await self.accounts.by_email(email)
        if account is None or not account.active:
            raise Forbidden(
                f"{email[:100]} has no account here: ask your programme manager",
                code="no_account",
            )
        if current is not None and current.account.id != account.id:
            raise Conflict(
                f"this browser is signed in as {current.account.email}: sign out first",
                code="signed_in_as_other",
            )
        if current is not None:
            await self.sessions.revoke(current.session.id, self.clock())
        return await self.start_session(account, user_agent=user_agent, address=address)

    async def start_session(
        self, account: Account, *, user_agent: str, address: str
    ) -> tuple[str, SignedIn]:
        if not account.active:
            raise LinkRefused()
        secret, session = await self.sessions.create(account.id, self.clock(), user_agent, address)
        return secret, SignedIn(account, session)

    async def authenticate(self, secret: str) -> SignedIn | None:
        """The signed-in person behind a session cookie, or None."""
        session = await self.sessions.verify(secret, self.clock())
        if session is None:
            return None
        account = await self.accounts.get(session.account_id)
        return SignedIn(account, session) if account.active else None

    # -- operators managing accounts (each change is audited with who made it) -----------

    async def deactivate(self, account_id: int, actor: str) -> Account:
        """Deactivate an account: every session it has ends at once."""
        account = await self.accounts.set_active(account_id, False, self.clock())
        ended = await self.sessions.revoke_all(account_id, self.clock())
        await self.record(actor, "account_deactivate", account, {"sessions_ended": ended})
        return account

    async def revoke_sessions(self, account_id: int, actor: str) -> int:
        account = await self.accounts.get(account_id)
        ended = await self.sessions.revoke_all(account_id, self.clock())
        await self.record(actor, "sessions_revoke", account, {"sessions_ended": ended})
        return ended

    async def record(
        self, actor: str, action: str, account: Account, detail: dict[str, Any]
    ) -> None:
        async with self._db.begin() as conn:
            await audit.record(
                conn, actor, action, account.identity or account.email, detail, self.clock()
            )

    # -- a participant's home ----------------------------------------------------------

    async def pairs_of(self, account: Account) -> list[Pair]:
        if account.identity is None:
            return []
        return await self.pairs.of_identity(account.identity)

    async def room_token(self, account: Account, pair_id: str) -> tuple[str, JoinToken, Pair]:
        """A short-lived join token for the account's own pair, refused for a closed room."""
        pair = await self.pairs.get(pair_id)
        member = next((m for m in pair.members if m.identity == account.identity), None)
        if account.identity is None or member is None:
            raise Forbidden("you are not a member of this pair", code="not_a_member")
        await self.pairs.require_open_room(pair.room)
        token, claims = self._tokens.issue(
            pair.room, member.identity, member.name, Role(member.role), ROOM_TOKEN_SECONDS
        )
        return token, claims, pair
