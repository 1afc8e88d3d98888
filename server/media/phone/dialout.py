"""Dial-out ("call me"): the gateway calls a member's number through the trunk.

The member types their number in the room; `check_number` refuses what is not E.164
or not under an allowed prefix (toll fraud: with no prefixes configured nothing may
be dialled). `place_call` sends the INVITE to the trunk (PCMU, PCMA and
telephone-event offered), answers a 401/407 digest challenge once (digest.py), ACKs
the answer and returns the answered `Call`, whose media then runs like a dial-in's.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from server.errors import Forbidden, InvalidInput
from server.media.phone import sip
from server.media.phone.call import Call, CallState, Dialog
from server.media.phone.digest import DigestError, answer_challenge, challenge_header
from server.media.phone.rtp import RtpStats, open_endpoint
from server.media.phone.sdp import SdpError, build_offer, negotiate, parse_offer
from server.media.phone.sip import SipMessage

if TYPE_CHECKING:
    from server.media.phone.uas import UserAgentServer

# ASCII digits only: `\d` would also take Arabic-Indic or full-width ones into the INVITE.
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
ANSWER_SECONDS = 60.0  # ringing at most this long before giving up (CANCEL is not sent)


class DialOutFailed(Exception):
    """The trunk did not connect the call (`status`: its final answer, 0 for none)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status


@dataclass(frozen=True)
class Trunk:
    uri: str  # sip:host[:port]
    username: str | None = None
    password: str | None = None

    @property
    def hostport(self) -> str:
        return self.uri.split(":", 1)[1].split(";", 1)[0].lstrip("/")

    @property
    def address(self) -> tuple[str, int]:
        host, _, port = self.hostport.partition(":")
        return host, int(port or 5060)


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


async def place_call(uas: UserAgentServer, trunk: Trunk, number: str) -> Call:
    """Call `number` through `trunk`; the answered, ACKed call (`DialOutFailed` else)."""
    settings = uas.settings
    host, port = trunk.address
    peer = (await _resolve(host), port)
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
    offer = build_offer(address, endpoint.local_port)
    responses = uas.expect_responses(call_id)
    started = time.monotonic()
    try:
        cseq, credentials = 1, None
        while True:
            invite = SipMessage(
                method="INVITE",
                uri=target,
                headers=[
                    ("Via", uas.via(address, peer)),
                    ("Max-Forwards", "70"),
                    ("From", from_header),
                    ("To", f"<{target}>"),
                    ("Call-ID", call_id),
                    ("CSeq", f"{cseq} INVITE"),
                    ("Contact", uas.contact(address, peer)),
                    ("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO"),
                    ("User-Agent", "Pairwise phone gateway"),
                    ("Content-Type", "application/sdp"),
                    *([credentials] if credentials else []),
                ],
                body=offer,
            )
            final = await _final(uas, invite, peer, responses)
            if final.status >= 300:
                uas.send(_ack(invite, final, invite.uri, invite.branch), peer)
            challenged = final.status in (401, 407) and credentials is None
            if challenged and trunk.username and trunk.password is not None:
                try:
                    _, credentials = answer_challenge(
                        final.status,
                        final.get(challenge_header(final.status)),
                        "INVITE",
                        target,
                        trunk.username,
                        trunk.password,
                    )
                except DigestError as exc:
                    raise DialOutFailed(final.status, str(exc)) from None
                cseq += 1
                continue
            if final.status >= 300:
                raise DialOutFailed(final.status, final.reason)
            break
        try:
            answer = negotiate(parse_offer(final.body))
        except SdpError as exc:
            raise DialOutFailed(final.status, f"unusable answer: {exc}") from None
        contact = final.get("Contact")
        remote_target = (
            contact.split("<", 1)[1].split(">", 1)[0] if "<" in contact else contact.split(";")[0]
        ).strip() or target
        uas.send(_ack(invite, final, remote_target, sip.new_branch()), peer)
    except BaseException:
        endpoint.close()
        raise
    finally:
        uas.forget_responses(call_id)
    dialog = Dialog(
        call_id=call_id,
        local_tag=local_tag,
        remote_from=final.get("To"),
        local_to=from_header,
        remote_target=remote_target,
        peer=peer,
        remote_tag=sip.header_param(final.get("To"), "tag") or "",
        invite_cseq=cseq,
        local_cseq=cseq,
    )
    call = Call(
        dialog=dialog,
        invite=invite,
        answer=answer,
        endpoint=endpoint,
        stats=stats,
        caller=_masked(number),
        started=started,
        media_timeout=settings.media_timeout_seconds,
        state=CallState.CONFIRMED,
    )
    call.answered_at = call.confirmed_at = time.monotonic()
    calls.append(call)
    return call


async def _final(
    uas: UserAgentServer,
    invite: SipMessage,
    peer: tuple[str, int],
    responses: asyncio.Queue[SipMessage],
) -> SipMessage:
    """Send the INVITE (resent every T1, doubling, until any answer) and wait for its
    final response to this CSeq."""
    data = invite.serialise()
    uas.send(data, peer)
    interval, provisional = 0.5, False
    deadline = time.monotonic() + ANSWER_SECONDS
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise DialOutFailed(0, "no answer")
        try:
            response = await asyncio.wait_for(
                responses.get(), min(left, interval) if not provisional else left
            )
        except TimeoutError:
            if not provisional:
                uas.send(data, peer)
                interval = min(interval * 2, 4.0)
            continue
        if response.cseq != invite.cseq:
            continue  # an answer to the earlier, challenged INVITE
        if response.status < 200:
            provisional = True
            continue
        return response


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


async def _resolve(host: str) -> str:
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=2)  # SOCK_DGRAM
    return str(infos[0][4][0])
