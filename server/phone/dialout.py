"""Dial-out ("call me"): the gateway calls a member's number through the trunk.

The member types their number in the room; `check_number` refuses what is not E.164
or not under an allowed prefix (toll fraud: with no prefixes configured nothing may
be dialled). `place_call` sends the INVITE to the trunk (PCMU, PCMA and
telephone-event offered; SDES keys too when the trunk's SRTP setting asks for them)
over the trunk's transport (trunk.py), answers a 401/407 digest challenge once
(digest.py's `retry_with_digest`, as registration does), takes responses only from the
trunk it sent to (uas.py), ACKs the answer and returns the answered `Call`, whose media then runs
like a dial-in's.

Until the answer the call can be cancelled (the member or an operator changed their
mind), and it is when nobody answers within `ANSWER_SECONDS`: RFC 3261 §9.1, a CANCEL
once a provisional answer came (never before one), the INVITE's 487 ACKed, and the RTP
port closed at once. An answer that overtakes the CANCEL is ACKed and hung up. Over
TCP/TLS the call fails as soon as the connection its INVITE went on closes (no answer can
come on it any more). The answer's ACK is kept on the call and sent again for each resent
2xx (uas.py), as a trunk resends its 2xx until an ACK reaches it.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from server.errors import Forbidden, InvalidInput
from server.phone import sip
from server.phone.call import Call, CallState, Dialog
from server.phone.digest import Credentials, DigestError, retry_with_digest
from server.phone.rtp import RtpEndpoint, RtpStats, open_endpoint
from server.phone.sdp import SdpError, answered_keys, build_offer, negotiate, parse_offer
from server.phone.sip import SipMessage
from server.phone.srtp import KEY_AND_SALT, SrtpContext

if TYPE_CHECKING:
    from server.phone.trunk import TrunkLink
    from server.phone.uas import UserAgentServer

# ASCII digits only: `\d` would also take Arabic-Indic or full-width ones into the INVITE.
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
ANSWER_SECONDS = 60.0  # ringing at most this long, then CANCEL
T1, T2 = 0.5, 4.0  # RFC 3261: a request over UDP is resent at T1, doubling up to T2
TRANSACTION_SECONDS = 64 * T1  # Timer B/F: a request with no final answer by then failed
CRYPTO_TAG = 1  # the tag of the one a=crypto line we offer


@dataclass
class Ringing:
    """A "call me" not answered yet: what an operator sees of it, and its cancel switch."""

    room: str
    identity: str
    name: str
    number: str  # masked
    since: float  # Unix seconds the member asked
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)


class DialOutFailed(Exception):
    """The trunk did not connect the call (`status`: its final answer, 0 for none)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status


class DialOutCancelled(DialOutFailed):
    """Cancelled before the answer: the trunk got a CANCEL, nothing was connected."""


def check_number(number: str, prefixes: tuple[str, ...]) -> str:
    """The number to dial, or `InvalidInput` (not E.164) / `Forbidden` (not allowed)."""
    cleaned = re.sub(r"[\s\-().]", "", number)
    if not E164.fullmatch(cleaned):
        raise InvalidInput("number: give it in international form, like +4930123456")
    if not any(cleaned.startswith(prefix) for prefix in prefixes):
        raise Forbidden(
            "calls to this number are not allowed on this server", code="number_not_allowed"
        )
    return cleaned


async def place_call(
    uas: UserAgentServer,
    link: TrunkLink,
    number: str,
    cancelled: asyncio.Event | None = None,
) -> Call:
    """Call `number` through the trunk; the answered, ACKed call. `DialOutCancelled`
    when `cancelled` is set before the answer; `DialOutFailed` for any other failure."""
    settings = uas.settings
    trunk = link.trunk
    peer = await link.peer()
    closed = link.closed  # of the connection the INVITE goes on (never set over UDP)
    stats = RtpStats()
    calls: list[Call] = []
    endpoint = await open_endpoint(
        settings.rtp_host,
        settings.rtp_ports,
        lambda packet: calls[0].receive(packet),
        stats,
        frozenset({peer[0]}),
    )
    call_id = f"{secrets.token_hex(12)}@pairwise"
    local_tag = sip.new_tag()
    address = uas.advertised_address(peer[0])
    target = f"sip:{number}@{trunk.hostport}"
    from_header = f"<sip:{trunk.username or 'pairwise'}@{trunk.hostport}>;tag={local_tag}"
    local_key = secrets.token_bytes(KEY_AND_SALT) if trunk.srtp != "off" else None
    offer = build_offer(
        address,
        endpoint.local_port,
        (CRYPTO_TAG, local_key) if local_key is not None else None,
        secure_profile=trunk.srtp == "required",
    )
    responses = uas.expect_responses(call_id, peer)
    started = time.monotonic()
    sent: list[SipMessage] = []  # our INVITEs: the first, then the one answering a challenge

    async def send(credentials: Credentials | None) -> SipMessage:
        """Send the INVITE (a new CSeq each time) and return its final answer, ACKed when
        it is an error; `DialOutCancelled` / `DialOutFailed` when we gave up on it."""
        invite = SipMessage(
            method="INVITE",
            uri=target,
            headers=[
                ("Via", uas.via(address, peer)),
                ("Max-Forwards", "70"),
                ("From", from_header),
                ("To", f"<{target}>"),
                ("Call-ID", call_id),
                ("CSeq", f"{len(sent) + 1} INVITE"),
                ("Contact", uas.contact(address, peer)),
                ("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO"),
                ("User-Agent", "Pairwise phone gateway"),
                ("Content-Type", "application/sdp"),
                *([credentials] if credentials else []),
            ],
            body=offer,
        )
        sent.append(invite)
        final, gave_up = await _final(
            uas, invite, peer, responses, link.reliable, cancelled, endpoint, closed
        )
        if final is not None and final.status >= 300:
            uas.send(_ack(invite, final, invite.uri, invite.branch), peer)
        if gave_up:
            if final is not None and final.status < 300:  # the answer overtook the CANCEL
                _hang_up_answered(uas, invite, final, peer)
            status = final.status if final is not None else 0
            if gave_up == "cancelled":
                raise DialOutCancelled(status, "cancelled before the answer")
            if gave_up == "connection_closed":
                raise DialOutFailed(status, "the trunk connection closed")
            raise DialOutFailed(status, "no answer")
        assert final is not None
        return final

    try:
        try:
            final, _ = await retry_with_digest(
                send, "INVITE", target, trunk.username, trunk.password
            )
        except DigestError as exc:
            raise DialOutFailed(exc.status, str(exc)) from None
        invite = sent[-1]
        if final.status >= 300:
            raise DialOutFailed(final.status, final.reason)
        try:
            answered = parse_offer(final.body)
            answer = negotiate(answered)
            keys = answered_keys(answered, CRYPTO_TAG, local_key, required=trunk.srtp == "required")
        except SdpError as exc:
            # Answered, so a dialog exists: ACK it and hang up, never leave it open.
            _hang_up_answered(uas, invite, final, peer)
            raise DialOutFailed(final.status, f"unusable answer: {exc}") from None
        answer = replace(answer, srtp=keys)
        if keys is not None:
            endpoint.srtp = SrtpContext(keys)
        remote_target = _remote_target(final, target)
        ack = _ack(invite, final, remote_target, sip.new_branch()).serialise()
        uas.send(ack, peer)
    except BaseException:
        endpoint.close()
        raise
    finally:
        uas.forget_responses(call_id)
    call = Call(
        dialog=_dialog(invite, final, peer, remote_target),
        invite=invite,
        answer=answer,
        endpoint=endpoint,
        stats=stats,
        caller=_masked(number),
        started=started,
        media_timeout=settings.media_timeout_seconds,
        state=CallState.CONFIRMED,
        ack=ack,
    )
    call.answered_at = call.confirmed_at = time.monotonic()
    calls.append(call)
    return call


async def _final(
    uas: UserAgentServer,
    invite: SipMessage,
    peer: tuple[str, int],
    responses: asyncio.Queue[SipMessage],
    reliable: bool,
    cancelled: asyncio.Event | None,
    endpoint: RtpEndpoint,
    closed: asyncio.Event,
) -> tuple[SipMessage | None, str]:
    """Send the INVITE (over UDP resent at T1, doubling, until any answer) and wait for
    its final response to this CSeq: (the response, ""). When `cancelled` is set, or
    nobody answers within `ANSWER_SECONDS`, the RTP port is closed and, once the INVITE
    has had a provisional answer, a CANCEL goes out (resent over UDP until answered);
    then (the final answer that follows — the 487, or a 2xx that overtook the CANCEL —
    or None when none came, "cancelled" | "no_answer"). When the TCP/TLS connection the
    INVITE went on closes (`closed`), its answers cannot come any more: (None,
    "connection_closed") at once, the RTP port closed."""
    data = invite.serialise()
    uas.send(data, peer)
    sent_at = time.monotonic()
    stop = cancelled if cancelled is not None else asyncio.Event()
    gave_up = ""
    provisional = False
    resend_at: float | None = None if reliable else sent_at + T1
    interval = T1
    cancel: bytes | None = None
    cancel_deadline = cancel_resend_at = None
    cancel_interval = T1
    while True:
        now = time.monotonic()
        if closed.is_set():
            endpoint.close()
            return None, "connection_closed"
        if not gave_up and (stop.is_set() or now >= sent_at + ANSWER_SECONDS):
            gave_up = "cancelled" if stop.is_set() else "no_answer"
            endpoint.close()  # the RTP port is free from now on, whatever the trunk does
        if gave_up and cancel is None and provisional:
            cancel = _cancel(invite).serialise()
            uas.send(cancel, peer)
            cancel_deadline = now + TRANSACTION_SECONDS
            cancel_resend_at = None if reliable else now + T1
        if not provisional and now >= sent_at + TRANSACTION_SECONDS:
            return None, gave_up or "no_answer"  # Timer B: the trunk never answered
        if cancel_deadline is not None and now >= cancel_deadline:
            return None, gave_up  # CANCELled, and no final answer to the INVITE came
        if resend_at is not None and now >= resend_at:
            uas.send(data, peer)
            interval = min(interval * 2, T2)
            resend_at = now + interval
        if cancel is not None and cancel_resend_at is not None and now >= cancel_resend_at:
            uas.send(cancel, peer)
            cancel_interval = min(cancel_interval * 2, T2)
            cancel_resend_at = now + cancel_interval
        timers = [resend_at, cancel_deadline, cancel_resend_at]
        if not gave_up:
            timers.append(sent_at + ANSWER_SECONDS)
        if not provisional:
            timers.append(sent_at + TRANSACTION_SECONDS)
        wake = min(t for t in timers if t is not None)
        response = await _next(responses, (closed,) if gave_up else (stop, closed), wake - now)
        if response is None:
            continue
        number, method = response.cseq
        if method == "CANCEL":
            cancel_resend_at = None  # answered: stop resending it
            continue
        if number != invite.cseq[0] or method != "INVITE":
            continue  # an answer to the earlier, challenged INVITE
        if response.status < 200:
            provisional, resend_at = True, None
            continue
        return response, gave_up


async def _next(
    responses: asyncio.Queue[SipMessage], stops: tuple[asyncio.Event, ...], wait: float
) -> SipMessage | None:
    """The next response within `wait` seconds; None when the time is up or a stop is set."""
    if not responses.empty():
        return responses.get_nowait()
    getter = asyncio.ensure_future(responses.get())
    waiters: set[asyncio.Future[Any]] = {getter}
    waiters.update(asyncio.ensure_future(stop.wait()) for stop in stops)
    try:
        await asyncio.wait(waiters, timeout=max(wait, 0), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    if getter.done() and not getter.cancelled():
        return getter.result()
    return None


def _cancel(invite: SipMessage) -> SipMessage:
    """RFC 3261 §9.1: the INVITE's Request-URI, Call-ID, From, To, CSeq number and top
    Via (so the same branch), method CANCEL, no body."""
    return SipMessage(
        method="CANCEL",
        uri=invite.uri,
        headers=[
            ("Via", invite.get("Via")),
            ("Max-Forwards", "70"),
            ("From", invite.get("From")),
            ("To", invite.get("To")),
            ("Call-ID", invite.call_id),
            ("CSeq", f"{invite.cseq[0]} CANCEL"),
            ("User-Agent", "Pairwise phone gateway"),
        ],
    )


def _remote_target(final: SipMessage, fallback: str) -> str:
    contact = final.get("Contact")
    uri = contact.split("<", 1)[1].split(">", 1)[0] if "<" in contact else contact.split(";")[0]
    return uri.strip() or fallback


def _dialog(
    invite: SipMessage, final: SipMessage, peer: tuple[str, int], remote_target: str
) -> Dialog:
    """The dialog our INVITE's 2xx made (we called: our From, their To)."""
    cseq = invite.cseq[0]
    return Dialog(
        call_id=invite.call_id,
        local_tag=sip.header_param(invite.get("From"), "tag") or "",
        remote_from=final.get("To"),
        local_to=invite.get("From"),
        remote_target=remote_target,
        peer=peer,
        remote_tag=sip.header_param(final.get("To"), "tag") or "",
        invite_cseq=cseq,
        local_cseq=cseq,
    )


def _hang_up_answered(
    uas: UserAgentServer, invite: SipMessage, final: SipMessage, peer: tuple[str, int]
) -> None:
    """ACK a 2xx we no longer want, then BYE it."""
    target = _remote_target(final, invite.uri)
    uas.send(_ack(invite, final, target, sip.new_branch()), peer)
    uas.bye(_dialog(invite, final, peer, target))


def _ack(invite: SipMessage, final: SipMessage, uri: str, branch: str) -> SipMessage:
    """ACK for a final answer (RFC 3261 §17.1.1.3 for errors: the INVITE's branch;
    §13.2.2.4 for 2xx: a new transaction to the Contact)."""
    via = invite.get("Via").replace(invite.branch, branch)
    return SipMessage(
        method="ACK",
        uri=uri,
        headers=[
            ("Via", via),
            ("Max-Forwards", "70"),
            ("From", invite.get("From")),
            ("To", final.get("To")),
            ("Call-ID", invite.call_id),
            ("CSeq", f"{invite.cseq[0]} ACK"),
            *[(name, value) for name, value in invite.headers
              if name.lower() in ("authorization", "proxy-authorization")],
        ],
    )  # fmt: skip


def _masked(number: str) -> str:
    return "…" + number[-3:]
