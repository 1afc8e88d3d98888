"""Registration at the trunk (RFC 3261 §10): the gateway tells the trunk's registrar
where it is, so calls to the trunk's number reach dial-in.

A trunk that only knows registered users sends no calls until this runs. The loop
registers (answering a 401/407 digest challenge with digest.py's `retry_with_digest`, as
dial-out does),
refreshes at half the Expires the registrar granted (its number, not ours: registrars
often shorten it), and on failure retries after a backoff that doubles up to a ceiling,
so a wrong password costs the trunk one attempt every few minutes, not a flood. Later
REGISTERs reuse the last challenge with the nonce count advanced (qop=auth) and fall
back to a fresh challenge when the registrar wants one. `stop` unregisters (Expires: 0),
briefly, so a stopped gateway is not sent calls it cannot take.

The state is what operators see (`GET /api/v1/phone/trunk`, the
`pairwise_phone_trunk_registered` gauge).
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import TYPE_CHECKING

from server.phone import sip
from server.phone.digest import (
    Challenge,
    Credentials,
    DigestError,
    answering,
    retry_with_digest,
)
from server.phone.sip import SipMessage

if TYPE_CHECKING:
    from server.phone.metrics import PhoneMetrics
    from server.phone.trunk import TrunkLink
    from server.phone.uas import UserAgentServer

log = logging.getLogger("pairwise.phone")

T1, T2 = 0.5, 4.0  # RFC 3261 timers: a non-INVITE request is resent at T1, doubling to T2
TRANSACTION_SECONDS = 64 * T1  # Timer F: no final answer by then is a failure
UNREGISTER_SECONDS = 2.0  # how long stopping waits for the registrar to drop us
MIN_REFRESH_SECONDS = 1.0


class RegistrationState(StrEnum):
    REGISTERING = "registering"  # the first attempt is under way
    REGISTERED = "registered"
    FAILED = "failed"  # the last attempt failed; the next one is scheduled
    UNREGISTERED = "unregistered"  # stopped


class RegistrationFailed(Exception):
    """The registrar refused us or did not answer (`status` 0)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}".strip())
        self.status = status


@dataclass
class RegistrationStatus:
    """What an operator needs: are calls reaching us, and if not, why and until when."""

    state: RegistrationState = RegistrationState.REGISTERING
    registrar: str = ""
    expires_at: float | None = None  # Unix seconds the binding lapses unless refreshed
    next_attempt_at: float | None = None  # Unix seconds of the next REGISTER
    last_status: int | None = None  # the registrar's last final answer (0: none came)
    last_error: str | None = None
    failures: int = 0  # failed attempts in a row
    registrations: int = 0  # successful REGISTERs (first and refreshes)


def granted_expires(response: SipMessage, contact_host_port: str, asked: int) -> int:
    """The binding's lifetime the registrar granted: our Contact's `expires`, else the
    Expires header, else what we asked (RFC 3261 §10.2.4)."""
    for value in response.get_all("Contact"):
        for contact in value.split(","):
            if contact_host_port in contact:
                found = sip.header_param(contact, "expires")
                if found and found.isdigit():
                    return int(found)
    header = response.get("Expires").strip()
    return int(header) if header.isdigit() else asked


def refresh_after(granted: int) -> float:
    """Re-register at half the granted time: a lost REGISTER is resent for up to 32 s,
    so with Expires of an hour the binding never lapses, and a short one is refreshed
    long before it does."""
    return max(MIN_REFRESH_SECONDS, granted / 2)


class TrunkRegistration:
    def __init__(
        self,
        uas: UserAgentServer,
        link: TrunkLink,
        metrics: PhoneMetrics,
        expires: int = 600,
        retry_seconds: float = 5.0,
        retry_max_seconds: float = 300.0,
    ) -> None:
        self._uas = uas
        self._link = link
        self._trunk = trunk = link.trunk
        self._metrics = metrics
        self._expires = expires
        self._retry = retry_seconds
        self._retry_max = retry_max_seconds
        self._call_id = f"{secrets.token_hex(12)}@pairwise"
        self._tag = sip.new_tag()
        self._cseq = 0
        self._challenge: tuple[int, Challenge] | None = None  # (401 | 407, the last one)
        self._nc = 0
        self._task: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()  # the trunk connection the last REGISTER went on
        self.status = RegistrationStatus(registrar=trunk.hostport)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="phone-trunk-register")

    async def stop(self) -> None:
        """Stop refreshing and, if registered, unregister (bounded: a dead registrar
        must not hold up shutdown)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        was_registered = self.status.state == RegistrationState.REGISTERED
        self._set_state(RegistrationState.UNREGISTERED)
        self.status.expires_at = self.status.next_attempt_at = None
        if was_registered:
            try:
                async with asyncio.timeout(UNREGISTER_SECONDS):
                    await self._register(0)
            except (RegistrationFailed, OSError, TimeoutError) as exc:
                log.warning("trunk unregister failed", extra={"reason": str(exc)[:80]})
        self._uas.forget_responses(self._call_id)

    async def _run(self) -> None:
        while True:
            try:
                granted = await self._register(self._expires)
            except (RegistrationFailed, OSError) as exc:
                self._failed(exc)
                delay = min(self._retry * 2 ** (self.status.failures - 1), self._retry_max)
                delay *= 1 + random.random() / 4  # many gateways must not retry in step
                self.status.next_attempt_at = time.time() + delay
                await asyncio.sleep(delay)
                continue
            if granted <= 0:  # the registrar dropped the binding at once: try later
                self._failed(RegistrationFailed(200, "registrar granted Expires: 0"))
                await asyncio.sleep(self._retry)
                continue
            status = self.status
            status.failures, status.last_error = 0, None
            status.registrations += 1
            status.expires_at = time.time() + granted
            wait = refresh_after(granted)
            status.next_attempt_at = time.time() + wait
            if status.state != RegistrationState.REGISTERED:
                log.info(
                    "registered at the trunk",
                    extra={"registrar": status.registrar, "expires": granted},
                )
            self._set_state(RegistrationState.REGISTERED)
            self._metrics.trunk_registrations.labels("registered").inc()
            try:
                # Over TCP/TLS the binding dies with its connection: register again at once.
                async with asyncio.timeout(wait):
                    await self._closed.wait()
            except TimeoutError:
                continue
            self._failed(RegistrationFailed(0, "the trunk connection closed"))

    def _failed(self, exc: RegistrationFailed | OSError) -> None:
        status = self.status
        status.failures += 1
        status.last_error = str(exc)[:200]
        status.expires_at = None
        self._challenge = None  # the next attempt starts from a fresh challenge
        if isinstance(exc, RegistrationFailed):
            status.last_status = exc.status
        self._set_state(RegistrationState.FAILED)
        self._metrics.trunk_registrations.labels("failed").inc()
        log.warning(
            "trunk registration failed",
            extra={
                "registrar": status.registrar,
                "reason": status.last_error,
                "failures": status.failures,
            },
        )

    def _set_state(self, state: RegistrationState) -> None:
        self.status.state = state
        self._metrics.trunk_registered.set(1 if state == RegistrationState.REGISTERED else 0)

    async def _register(self, expires: int) -> int:
        """One registration (or, with `expires` 0, its removal): the granted Expires."""
        trunk = self._trunk
        peer = await self._link.peer()
        address = self._uas.advertised_address(peer[0])
        contact = self._uas.contact(address, peer)
        uri = f"sip:{trunk.hostport}"
        for _ in range(2):  # a challenge answered inside, then once more after a 423
            try:
                response, answered = await retry_with_digest(
                    partial(self._transaction, uri, contact, expires),
                    "REGISTER",
                    uri,
                    trunk.username,
                    trunk.password,
                    self._reused_credentials(uri),
                )
            except DigestError as exc:
                raise RegistrationFailed(exc.status, str(exc)) from None
            if answered is not None:
                self._challenge, self._nc = answered, 1
            if 200 <= response.status < 300:
                return 0 if expires == 0 else granted_expires(response, contact[5:-1], expires)
            if response.status == 423 and expires:  # Interval Too Brief
                minimum = response.get("Min-Expires").strip()
                if minimum.isdigit() and int(minimum) > expires:
                    expires = int(minimum)
                    continue
            if response.status in (401, 407):
                refused = "credentials refused" if answered else "the trunk wants credentials"
                raise RegistrationFailed(response.status, refused)
            raise RegistrationFailed(response.status, response.reason)
        raise RegistrationFailed(0, "the registrar kept asking")

    def _reused_credentials(self, uri: str) -> Credentials | None:
        """The last challenge answered again, the nonce count advanced (a registrar that
        wants a fresh one says so with a 401 and gets it)."""
        trunk = self._trunk
        if self._challenge is None or not trunk.username or trunk.password is None:
            return None
        self._nc += 1  # the same nonce again: the count says this is a new request
        status, challenge = self._challenge
        return answering(
            status, challenge, "REGISTER", uri, trunk.username, trunk.password, self._nc
        )

    async def _transaction(
        self,
        uri: str,
        contact: str,
        expires: int,
        credentials: Credentials | None,
    ) -> SipMessage:
        """Send one REGISTER (resent at T1 doubling to T2 over UDP) and return its final
        answer; `RegistrationFailed(0)` after Timer F, or at once when the TCP/TLS
        connection it went on closes (its answer cannot come on it any more)."""
        self._cseq += 1
        trunk = self._trunk
        peer = await self._link.peer()  # a challenge's answer may need the connection again
        self._closed = closed = self._link.closed  # of the connection it goes on
        responses = self._uas.expect_responses(self._call_id, peer)
        address = self._uas.advertised_address(peer[0])
        aor = f"<sip:{trunk.username or 'pairwise'}@{trunk.hostport}>"
        request = SipMessage(
            method="REGISTER",
            uri=uri,
            headers=[
                ("Via", self._uas.via(address, peer)),
                ("Max-Forwards", "70"),
                ("From", f"{aor};tag={self._tag}"),
                ("To", aor),
                ("Call-ID", self._call_id),
                ("CSeq", f"{self._cseq} REGISTER"),
                ("Contact", contact),
                ("Expires", str(expires)),
                ("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO"),
                ("User-Agent", "Pairwise phone gateway"),
                *([credentials] if credentials else []),
            ],
        )
        data = request.serialise()
        reliable = self._link.reliable
        self._uas.send(data, peer)
        interval = T1
        deadline = time.monotonic() + TRANSACTION_SECONDS
        lost = asyncio.ensure_future(closed.wait())
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RegistrationFailed(0, "no answer from the registrar")
                answer = asyncio.ensure_future(responses.get())
                await asyncio.wait(
                    (answer, lost),
                    timeout=left if reliable else min(left, interval),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if not answer.done():
                    answer.cancel()
                    if lost.done():
                        raise RegistrationFailed(0, "the trunk connection closed")
                    self._uas.send(data, peer)
                    interval = min(interval * 2, T2)
                    continue
                response = answer.result()
                if response.cseq == (self._cseq, "REGISTER") and response.status >= 200:
                    self.status.last_status = response.status
                    return response
        finally:
            lost.cancel()
