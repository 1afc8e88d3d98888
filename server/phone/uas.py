"""The SIP user agent server on UDP: transactions, dialogs, and who may call.

It answers INVITEs from a trunk or PBX (100, 180, then 200 with an SDP answer,
retransmitted until the ACK), takes BYE in both directions, CANCEL before the
answer (200, then 487), OPTIONS pings, key presses sent as INFO, and rejects the
rest with the right final response (400, 403, 405, 415, 481, 488, 503),
retransmitting final errors until their ACK.

What a call *means* (PINs, rooms, audio) is the `CallHandler`'s business.
A datagram that is not SIP, or a request this code cannot make sense of, is
logged and dropped or answered with an error: it never ends the server or
changes the call table.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from server.phone import dtmf, sip
from server.phone.call import Call, CallState, Dialog
from server.phone.guessing import PinGuard
from server.phone.metrics import PhoneMetrics
from server.phone.refusals import PinRefusals, Refusal
from server.phone.rtp import RtpStats, open_endpoint
from server.phone.sdp import (
    ANSWER_DIRECTION,
    Answer,
    NoCommonCodec,
    NoCommonSecurity,
    SdpError,
    build_answer,
    negotiate,
    offered_keys,
    parse_offer,
)
from server.phone.sip import SipMessage, SipParseError
from server.phone.srtp import SrtpContext, keep_local
from server.phone.stream import SipStreamConnection
from server.phone.udp import UdpEndpoint
from server.signaling.ratelimit import Buckets

if TYPE_CHECKING:
    from server.phone.settings import PhoneSettings

log = logging.getLogger("pairwise.phone.sip")

T1, T2, TIMEOUT = 0.5, 4.0, 32.0  # RFC 3261 timers: first retransmit, cap, give up
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO"
USER_AGENT = "Pairwise phone gateway"
ENDED_CALLS_KEPT = 200
TRANSACTION_MEMORY = 32.0  # seconds a non-INVITE response is kept for retransmitted requests


class CallHandler(Protocol):
    async def call_confirmed(self, call: Call) -> None:
        """The caller's ACK arrived: media flows; admit them or ask for a PIN."""

    async def call_ended(self, call: Call) -> None:
        """The call is over (either side hung up, or it never got going)."""


@dataclass(frozen=True)
class _PendingBye:
    """A BYE of ours, resent until the one it went to answers it."""

    peer: tuple[str, int]
    cseq: int
    resending: asyncio.Task[None]


def mask_number(from_header: str) -> str:
    """The caller's number with all but the last three characters hidden ("anonymous"
    when the caller withheld it)."""
    user = sip.uri_user(from_header.split("<", 1)[-1])
    if user.lower() in sip.ANONYMOUS:
        return "anonymous"
    return user if len(user) <= 3 else "…" + user[-3:]


class UserAgentServer(UdpEndpoint):
    def __init__(
        self,
        settings: PhoneSettings,
        handler: CallHandler,
        metrics: PhoneMetrics,
        guard: PinGuard,
        refusals: PinRefusals,
    ) -> None:
        self.settings = settings
        self.handler = handler
        self.metrics = metrics
        self.guard = guard
        self.refusals = refusals  # a blocked source's new calls are counted with its PINs
        # Addresses or networks (`192.0.2.10`, `127.0.0.0/8`); empty allows every source.
        self._allowed_networks = [
            ipaddress.ip_network(entry, strict=False) for entry in settings.allowed_ips
        ]
        self.calls: dict[str, Call] = {}
        self.ended_calls: deque[Call] = deque(maxlen=ENDED_CALLS_KEPT)  # for inspection
        self._invites = Buckets(settings.invite_rate * 60, burst=int(settings.invite_burst))
        self._answered: dict[tuple[str, str, str], tuple[bytes, float]] = {}
        self._unacked: dict[str, asyncio.Task[None]] = {}  # Call-ID → final error retransmits
        self._bye_pending: dict[str, _PendingBye] = {}  # Call-ID → our BYE, resent until answered
        self._tasks: set[asyncio.Task[Any]] = set()
        self._answering: dict[str, asyncio.Task[None]] = {}  # Call-ID → its INVITE handling
        self._deadlines: dict[str, asyncio.TimerHandle] = {}  # Call-ID → max call length
        # (host, port) → its TCP/TLS connection. A peer's UDP socket with the very same
        # host and port would be answered on the connection too: harmless (same peer).
        self._streams: dict[tuple[str, int], SipStreamConnection] = {}
        # Call-ID → the queue for responses to our requests (dial-out, REGISTER), and where
        # those requests went: only that address may answer them.
        self._outgoing: dict[str, tuple[asyncio.Queue[SipMessage], tuple[str, int]]] = {}
        self.listening: dict[str, int] = {}  # TCP | TLS → the port our listener has

    # -- transport -------------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.message_received(data, addr)

    def message_received(
        self, data: bytes, addr: tuple[str, int], stream: SipStreamConnection | None = None
    ) -> None:
        """One SIP message, from a datagram or cut from a TCP/TLS `stream` (stream.py)."""
        try:
            message = sip.parse(data)
        except SipParseError as exc:
            self.metrics.sip_dropped.inc()
            log.info(
                "dropped a datagram that is not SIP",
                extra={"source": addr[0], "reason": str(exc), "size": len(data)},
            )
            return
        try:
            if message.is_request:
                self._request(message, addr)
            else:
                self._response(message, addr, stream)
        except Exception:  # one bad message must never stop the gateway
            self.metrics.sip_dropped.inc()
            log.exception(
                "could not handle a SIP message",
                extra={"source": addr[0], "call_id": message.call_id[:80]},
            )

    def _send(self, message: SipMessage | bytes, addr: tuple[str, int]) -> None:
        data = message if isinstance(message, bytes) else message.serialise()
        stream = self._streams.get(addr)
        if stream is not None:
            stream.write(data)  # a peer on TCP/TLS is answered on its connection
        else:
            self.sendto(data, addr)

    # -- TCP and TLS connections (stream.py) ----------------------------------------------

    def attach_stream(self, stream: SipStreamConnection) -> None:
        self._streams[stream.peer] = stream

    def detach_stream(self, stream: SipStreamConnection) -> None:
        if self._streams.get(stream.peer) is stream:
            del self._streams[stream.peer]

    def stream_count(self, host: str) -> int:
        return sum(1 for peer in self._streams if peer[0] == host)

    def has_call_from(self, peer: tuple[str, int]) -> bool:
        return any(call.dialog.peer == peer for call in self.calls.values())

    def send(self, message: SipMessage | bytes, addr: tuple[str, int]) -> None:
        """Send a message of our own (dial-out's requests) to `addr`."""
        self._send(message, addr)

    def via(self, address: str, peer: tuple[str, int]) -> str:
        """A Via for a request of ours to `peer`, with a new branch."""
        name, port = self._transport_of(peer)
        return f"SIP/2.0/{name} {address}:{port};branch={sip.new_branch()};rport"

    def expect_responses(self, call_id: str, peer: tuple[str, int]) -> asyncio.Queue[SipMessage]:
        """Responses for `call_id` (a dial-out's INVITE, a REGISTER) that come from `peer`,
        where its requests go, are put in this (new) queue until forgotten."""
        queue: asyncio.Queue[SipMessage] = asyncio.Queue(maxsize=64)
        self._outgoing[call_id] = (queue, peer)
        return queue

    def forget_responses(self, call_id: str) -> None:
        self._outgoing.pop(call_id, None)

    def add_call(self, call: Call) -> None:
        """An answered dial-out call: in-dialog requests and hang-ups find it from now on."""
        self.calls[call.call_id] = call
        self.metrics.active_calls.inc()
        self.metrics.call_attempts.labels("dialled_out").inc()
        call.start_media()
        if self.settings.max_call_seconds > 0:
            self._deadlines[call.call_id] = asyncio.get_running_loop().call_later(
                self.settings.max_call_seconds,
                lambda: self.spawn(self.hang_up(call, "max_length"), "phone-max-length"),
            )

    def transport_name(self, peer: tuple[str, int]) -> str:
        return self._transport_of(peer)[0]

    def _transport_of(self, peer: tuple[str, int]) -> tuple[str, int]:
        """How `peer` reaches us: (UDP | TCP | TLS, our port for it)."""
        stream = self._streams.get(peer)
        if stream is None:
            return "UDP", self.local_port
        if stream.outbound:  # our connection's port is ephemeral: name the listener's
            return stream.name, self.listening.get(stream.name, stream.local_port)
        return stream.name, stream.local_port

    def contact(self, address: str, peer: tuple[str, int]) -> str:
        name, port = self._transport_of(peer)
        suffix = "" if name == "UDP" else f";transport={name.lower()}"
        return f"<sip:pairwise@{address}:{port}{suffix}>"

    def spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "phone task failed", exc_info=task.exception(), extra={"task": task.get_name()}
            )

    # -- requests --------------------------------------------------------------------------

    def _request(self, request: SipMessage, addr: tuple[str, int]) -> None:
        method = request.method
        if method == "ACK":
            self._ack(request, addr)
            return
        cached = self._answered.get((request.call_id, request.branch, method))
        if cached is not None and method != "INVITE":
            self._send(cached[0], addr)  # a retransmitted request: same answer
            return
        if method == "INVITE":
            self._invite(request, addr)
        elif method == "CANCEL":
            self._cancel(request, addr)
        elif method == "BYE":
            self._bye(request, addr)
        elif method == "INFO":
            self._info(request, addr)
        elif method == "OPTIONS":
            self._reply(
                request,
                addr,
                self.allowed(addr[0]) and 200 or 403,
                headers=[("Allow", ALLOW), ("Accept", "application/sdp")],
            )
        else:
            self._reply(request, addr, 405, headers=[("Allow", ALLOW)])

    def _reply(
        self,
        request: SipMessage,
        addr: tuple[str, int],
        status: int,
        *,
        headers: list[tuple[str, str]] | None = None,
        to_tag: str | None = None,
    ) -> None:
        """Answer a non-INVITE request, remembering the answer for its retransmissions."""
        message = sip.response(
            request,
            status,
            to_tag=to_tag or sip.new_tag(),
            headers=[("User-Agent", USER_AGENT), *(headers or [])],
        )
        data = message.serialise()
        self._remember((request.call_id, request.branch, request.method), data)
        self._send(data, addr)

    def _remember(self, key: tuple[str, str, str], data: bytes) -> None:
        now = time.monotonic()
        if len(self._answered) > 1000:
            self._answered = {
                k: v for k, v in self._answered.items() if now - v[1] < TRANSACTION_MEMORY
            }
        self._answered[key] = (data, now)

    def allowed(self, host: str) -> bool:
        if not self._allowed_networks:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._allowed_networks)

    def _invite(self, request: SipMessage, addr: tuple[str, int]) -> None:
        received_at = time.monotonic()
        existing = self.calls.get(request.call_id)
        if existing is not None:
            self._invite_for_call(existing, request, addr)
            return
        if request.call_id in self._unacked:
            return  # the rejection is being retransmitted already
        if not self.allowed(addr[0]):
            self._reject(request, addr, 403, "forbidden")
            return
        self._send(sip.response(request, 100), addr)
        if self.guard.refuses(addr[0]):
            # Refused before any PIN is heard: the console counts it with the refused PINs.
            self.refusals.record(Refusal(time.time(), addr[0], "source_locked", "call", ""))
            self._reject(
                request,
                addr,
                403,
                "pin_locked",
                [("Warning", '399 pairwise "too many wrong PINs"')],
            )
            return
        if not self._invites.get(addr[0]).take():
            self._reject(request, addr, 503, "rate_limited", [("Retry-After", "5")])
            return
        if len(self.calls) >= self.settings.max_calls:
            self._reject(request, addr, 486, "busy")
            return
        pending = sum(1 for c in self.calls.values() if c.room is None and c.source == addr[0])
        if pending >= self.settings.pending_calls_per_source:
            # Calls that never key a PIN would otherwise let one address hold every
            # slot (5 INVITEs a second fill 200 in 40 s, each kept a minute by prompts).
            self._reject(request, addr, 503, "pending_per_source", [("Retry-After", "10")])
            return
        try:
            answer = negotiate(parse_offer(request.body))
        except NoCommonSecurity as exc:
            self._reject(request, addr, 488, "no_security", [("Warning", f'305 pairwise "{exc}"')])
            return
        except NoCommonCodec:
            self._reject(
                request,
                addr,
                488,
                "no_codec",
                [("Warning", '305 pairwise "PCMU or PCMA required"')],
            )
            return
        except SdpError as exc:
            log.info("rejected an INVITE with unusable SDP", extra={"reason": str(exc)})
            self._reject(request, addr, 488 if not request.body else 400, "bad_sdp")
            return
        call_id = request.call_id
        task = self.spawn(self._set_up(request, addr, answer, received_at), "phone-invite")
        self._answering[call_id] = task
        task.add_done_callback(lambda _: self._answering.pop(call_id, None))

    def _invite_for_call(self, call: Call, request: SipMessage, addr: tuple[str, int]) -> None:
        """An INVITE with a live call's Call-ID: a re-INVITE (To tag), a retransmission of
        the call's INVITE (answered as before), or neither. Knowing a Call-ID is not
        knowing the dialog: only the caller's own retransmission gets the call's answer
        (its tags, CSeq and RTP port), and a source not allowed gets nothing but 403."""
        if sip.header_param(request.get("To"), "tag"):
            if self._in_dialog(call, request, addr):
                self._reinvite(call, request, addr)
        elif not self.allowed(addr[0]):
            self._reply(request, addr, 403)
        elif call.retransmitted_by(request, addr):
            if call.final_response:
                self._send(call.final_response, addr)
            else:
                self._send(sip.response(request, 180, to_tag=call.dialog.local_tag), addr)
        else:
            # RFC 3261 §8.2.2.2: the same From tag and CSeq by another branch or path is a
            # merged request (482); anything else names a dialog it does not know (481).
            # Answered once, with a tag of its own, never retransmitted (a Call-ID's
            # retransmission state is the live call's).
            merged = (
                sip.header_param(request.get("From"), "tag") == call.dialog.remote_tag
                and request.cseq[0] == call.dialog.invite_cseq
            )
            log.warning(
                "refused an INVITE reusing a live call's Call-ID",
                extra={"source": addr[0], "call_id": call.call_id[:80]},
            )
            self._reply(request, addr, 482 if merged else 481)

    def _stop_answering(self, call_id: str) -> None:
        """Cancel a call's INVITE handling (ringing, or resending the 200)."""
        task = self._answering.get(call_id)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def _reject(
        self,
        request: SipMessage,
        addr: tuple[str, int],
        status: int,
        result: str,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        self.metrics.call_attempts.labels(result).inc()
        log.info(
            "rejected a call",
            extra={
                "status": status,
                "result": result,
                "source": addr[0],
                "call_id": request.call_id[:80],
            },
        )
        self._final_until_ack(request, addr, status, sip.new_tag(), headers)

    def _final_until_ack(
        self,
        request: SipMessage,
        addr: tuple[str, int],
        status: int,
        to_tag: str,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        data = sip.response(
            request, status, to_tag=to_tag, headers=[("User-Agent", USER_AGENT), *(headers or [])]
        ).serialise()
        self._send(data, addr)
        call_id = request.call_id
        task = self.spawn(self._retransmit(data, addr), f"phone-final-{call_id[:40]}")
        self._unacked[call_id] = task
        task.add_done_callback(lambda _: self._unacked.pop(call_id, None))

    async def _retransmit(self, data: bytes, addr: tuple[str, int]) -> None:
        """Resend a final response (or our BYE) until cancelled (its ACK or answer came)."""
        interval, waited = T1, 0.0
        while waited < TIMEOUT:
            await asyncio.sleep(interval)
            waited += interval
            self._send(data, addr)
            interval = min(interval * 2, T2)

    async def _set_up(
        self, request: SipMessage, addr: tuple[str, int], answer: Answer, received_at: float
    ) -> None:
        settings = self.settings
        stats = RtpStats()
        calls: list[Call] = []
        try:
            endpoint = await open_endpoint(
                settings.rtp_host,
                settings.rtp_ports,
                lambda packet: calls[0].receive(packet),
                stats,
                frozenset({answer.remote_address, addr[0]}),
                SrtpContext(answer.srtp) if answer.srtp is not None else None,
            )
        except OSError:
            log.error("no RTP port left for a call", extra={"call_id": request.call_id[:80]})
            self._reject(request, addr, 503, "no_rtp_port")
            return
        local_tag = sip.new_tag()
        contact = request.get("Contact")
        target = (
            contact.split("<", 1)[1].split(">", 1)[0] if "<" in contact else contact.split(";")[0]
        )
        dialog = Dialog(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_from=request.get("From"),
            local_to=f"{request.get('To')};tag={local_tag}",
            remote_target=target.strip() or request.uri,
            peer=addr,
            remote_tag=sip.header_param(request.get("From"), "tag") or "",
            invite_cseq=request.cseq[0],
        )
        call = Call(
            dialog=dialog,
            invite=request,
            answer=answer,
            endpoint=endpoint,
            stats=stats,
            caller=mask_number(request.get("From")),
            display_name=sip.display_name(request.get("From")),
            started=received_at,
            media_timeout=settings.media_timeout_seconds,
        )
        calls.append(call)
        self.calls[call.call_id] = call
        self.metrics.active_calls.inc()
        self._send(sip.response(request, 180, to_tag=local_tag), addr)
        if settings.ring_seconds > 0:
            await asyncio.sleep(settings.ring_seconds)
        if call.state != CallState.RINGING:
            return  # cancelled while ringing
        ok = self._ok_with_answer(request, addr, answer, endpoint.local_port, local_tag)
        call.final_response = ok
        call.state = CallState.ANSWERED
        call.answered_at = time.monotonic()
        self._send(ok, addr)
        try:
            await self._retransmit(ok, addr)
        except asyncio.CancelledError:
            if call.state == CallState.CONFIRMED:
                return
            raise
        if call.state == CallState.ANSWERED:  # never ACKed: the caller is gone
            self.metrics.call_attempts.labels("no_ack").inc()
            await self.hang_up(call, "no_ack")

    def advertised_address(self, peer_host: str) -> str:
        """The address to put in SDP and Contact: configured, bound, or the one that
        routes to the peer when bound to every interface."""
        if self.settings.advertise_host:
            return self.settings.advertise_host
        if self.settings.host not in ("0.0.0.0", ""):
            return self.settings.host
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((peer_host, 9))
            return str(probe.getsockname()[0])

    def _reinvite(self, call: Call, request: SipMessage, addr: tuple[str, int]) -> None:
        """Session refresh, hold, un-hold or a media move: the codec stays (an offer
        without it gets 488); the direction answers the offer's (a=sendonly → a=recvonly,
        a=inactive → a=inactive); a new c=/m= address or port re-latches there (rtp.py)."""
        if request.body.strip():
            try:
                offer = parse_offer(request.body)
            except SdpError:
                offer = None
            if offer is None or call.answer.payload_type not in offer.payload_types:
                self._reply(request, addr, 488, to_tag=call.dialog.local_tag)
                return
            try:
                keys = offered_keys(offer)
            except NoCommonSecurity as exc:
                keys, refusal = None, str(exc)
            else:
                refusal = ""
                if (keys is None) != (call.answer.srtp is None):
                    refusal = "a call keeps its media security: RTP/SAVP stays RTP/SAVP"
            if refusal:
                # Never a silent downgrade to plain RTP (or a switch we cannot make).
                log.warning(
                    "refused a re-INVITE changing media security",
                    extra={"call_id": call.call_id[:80], "source": addr[0]},
                )
                self._reply(
                    request,
                    addr,
                    488,
                    to_tag=call.dialog.local_tag,
                    headers=[("Warning", f'305 pairwise "{refusal}"')],
                )
                return
            if keys is not None and call.answer.srtp is not None:
                call.rekey(keep_local(keys, call.answer.srtp))
            moved = (offer.address, offer.port)
            if (
                offer.address != "0.0.0.0"
                and offer.port
                and moved
                != (
                    call.answer.remote_address,
                    call.answer.remote_port,
                )
            ):
                call.move_media(*moved)
                log.info(
                    "call media moved",
                    extra={"call_id": call.call_id[:80], "address": offer.address},
                )
            call.set_direction(ANSWER_DIRECTION[offer.direction])
            log.info(
                "call direction changed",
                extra={"call_id": call.call_id[:80], "direction": call.answer.direction},
            )
        self._send(self._ok_with_answer(request, addr, call.answer, call.local_rtp_port), addr)

    def _ok_with_answer(
        self,
        request: SipMessage,
        addr: tuple[str, int],
        answer: Answer,
        rtp_port: int,
        to_tag: str | None = None,
    ) -> bytes:
        """The 200 to an INVITE or re-INVITE: our SDP answer and Contact, for `addr`."""
        address = self.advertised_address(addr[0])
        return sip.response(
            request,
            200,
            to_tag=to_tag,
            body=build_answer(answer, address, rtp_port),
            headers=[
                ("Contact", self.contact(address, addr)),
                ("Allow", ALLOW),
                ("User-Agent", USER_AGENT),
                ("Content-Type", "application/sdp"),
            ],
        ).serialise()

    def _in_dialog(self, call: Call, request: SipMessage, addr: tuple[str, int]) -> bool:
        """Check an in-dialog request (BYE, INFO, re-INVITE) against the dialog and the
        allow-list; answer it (403 or 481) when it fails."""
        if not self.allowed(addr[0]):
            log.warning(
                "refused an in-dialog request from a source not allowed",
                extra={"source": addr[0], "method": request.method},
            )
            self._reply(request, addr, 403)
            return False
        if not call.dialog.matches(request):
            self._reply(request, addr, 481)
            return False
        return True

    def _ack(self, request: SipMessage, addr: tuple[str, int]) -> None:
        task = self._unacked.get(request.call_id)
        if task is not None:
            task.cancel()
            return
        call = self.calls.get(request.call_id)
        if call is None or call.state != CallState.ANSWERED:
            return
        try:
            cseq = request.cseq[0]
        except ValueError:
            return
        if (
            not call.dialog.matches(request)
            or cseq != call.dialog.invite_cseq
            or not self.allowed(addr[0])
        ):
            log.info(
                "ignored an ACK that does not match its dialog",
                extra={"source": addr[0], "call_id": request.call_id[:80]},
            )
            return
        call.state = CallState.CONFIRMED
        call.confirmed_at = time.monotonic()
        self.metrics.call_attempts.labels("answered").inc()
        self._stop_answering(call.call_id)  # no more 200 retransmissions
        call.start_media()
        self.spawn(self.handler.call_confirmed(call), f"phone-confirmed-{call.call_id[:40]}")
        if self.settings.max_call_seconds > 0:
            self._deadlines[call.call_id] = asyncio.get_running_loop().call_later(
                self.settings.max_call_seconds,
                lambda: self.spawn(self.hang_up(call, "max_length"), "phone-max-length"),
            )

    def _cancel(self, request: SipMessage, addr: tuple[str, int]) -> None:
        call = self.calls.get(request.call_id)
        if call is None or call.invite.branch != request.branch:
            self._reply(request, addr, 481)
            return
        if not self.allowed(addr[0]):
            self._reply(request, addr, 403)
            return
        self._reply(request, addr, 200)
        if call.state != CallState.RINGING:
            return  # too late: the call was answered, the caller will send BYE
        self.metrics.call_attempts.labels("cancelled").inc()
        self.spawn(self._end(call, "cancelled"), "phone-cancelled")
        self._final_until_ack(call.invite, addr, 487, call.dialog.local_tag)

    def _dialog_call(self, request: SipMessage, addr: tuple[str, int]) -> Call | None:
        """The call an in-dialog request (BYE, INFO) is for, checked (`_in_dialog`); None,
        and the request answered (481, 403), when there is none or it fails the check."""
        call = self.calls.get(request.call_id)
        if call is None:
            self._reply(request, addr, 481)
            return None
        return call if self._in_dialog(call, request, addr) else None

    def _bye(self, request: SipMessage, addr: tuple[str, int]) -> None:
        call = self._dialog_call(request, addr)
        if call is None:
            return
        self._reply(request, addr, 200, to_tag=call.dialog.local_tag)
        self.spawn(self._end(call, "caller_hung_up"), "phone-bye")

    def _info(self, request: SipMessage, addr: tuple[str, int]) -> None:
        """A key press sent as SIP INFO (dtmf.py), or an empty keep-alive INFO."""
        call = self._dialog_call(request, addr)
        if call is None:
            return
        tag = call.dialog.local_tag
        if not request.body.strip():
            self._reply(request, addr, 200, to_tag=tag)
            return
        kind = request.get("Content-Type").partition(";")[0].strip().lower()
        if kind not in dtmf.INFO_TYPES:
            accept = ", ".join(dtmf.INFO_TYPES)
            self._reply(request, addr, 415, to_tag=tag, headers=[("Accept", accept)])
            return
        digit = dtmf.info_digit(kind, request.body)
        if digit is None:
            self._reply(request, addr, 400, to_tag=tag)
            return
        self._reply(request, addr, 200, to_tag=tag)
        call.key(digit)

    # -- responses (to our requests: dial-out, REGISTER, BYE) -------------------------------

    def _response(
        self, message: SipMessage, addr: tuple[str, int], stream: SipStreamConnection | None
    ) -> None:
        number, method = message.cseq
        # An answered dial-out hung up at once has both: its BYE's answer is the BYE's.
        pending = self._bye_pending.get(message.call_id) if method == "BYE" else None
        outgoing = self._outgoing.get(message.call_id)
        call = self.calls.get(message.call_id)
        if outgoing is None and call is not None and call.ack is not None:
            if method == "INVITE" and 200 <= message.status < 300:
                self._ack_again(call, message, addr, stream)
            if pending is None:
                return
        if pending is not None:
            peer = pending.peer
        elif outgoing is not None:
            peer = outgoing[1]
        else:
            return
        if not self._answered_by(peer, addr, stream):
            # Anyone who learnt the Call-ID could otherwise answer for the trunk or the
            # caller: take a call we dialled, fail it, fake a registration, or stop our
            # BYE being resent so the far end's call (and its bill) runs on.
            self.metrics.sip_dropped.inc()
            log.warning(
                "ignored a response from an address we did not send to",
                extra={"source": addr[0], "call_id": message.call_id[:80]},
            )
            return
        if pending is not None:
            if message.status >= 200 and number == pending.cseq:
                del self._bye_pending[message.call_id]
                pending.resending.cancel()
        elif outgoing is not None and not outgoing[0].full():
            outgoing[0].put_nowait(message)

    def _ack_again(
        self,
        call: Call,
        message: SipMessage,
        addr: tuple[str, int],
        stream: SipStreamConnection | None,
    ) -> None:
        """A dial-out's 2xx came again: our ACK was lost, so the trunk resends its 2xx
        (and would end the call after 32 s without one); it gets the same ACK again."""
        peer = call.dialog.peer
        if call.ack is None or not self._answered_by(peer, addr, stream):
            self.metrics.sip_dropped.inc()
            return
        if message.cseq[0] == call.invite.cseq[0]:
            self.send(call.ack, peer)

    def _answered_by(
        self, peer: tuple[str, int], addr: tuple[str, int], stream: SipStreamConnection | None
    ) -> bool:
        """Whether a response from `addr` (on `stream`; None: a datagram) can answer a
        request we sent to `peer`: the same address, and on the connection the request
        went on (a datagram claiming a TCP/TLS peer's address is not it)."""
        return addr[:2] == peer[:2] and self._streams.get(peer) is stream

    # -- ending calls ----------------------------------------------------------------------

    async def hang_up(self, call: Call, reason: str) -> None:
        """End a call from our side with a BYE (retransmitted until answered)."""
        if call.state == CallState.ENDED or self.calls.get(call.call_id) is not call:
            return
        self.bye(call.dialog)
        await self._end(call, reason)

    def bye(self, dialog: Dialog) -> None:
        """Send a BYE in `dialog`, resent until it is answered."""
        dialog.local_cseq += 1
        address = self.advertised_address(dialog.peer[0])
        bye = SipMessage(
            method="BYE",
            uri=dialog.remote_target,
            headers=[
                ("Via", self.via(address, dialog.peer)),
                ("Max-Forwards", "70"),
                ("From", dialog.local_to),
                ("To", dialog.remote_from),
                ("Call-ID", dialog.call_id),
                ("CSeq", f"{dialog.local_cseq} BYE"),
                ("User-Agent", USER_AGENT),
            ],
        ).serialise()
        self._send(bye, dialog.peer)
        resending = self.spawn(self._retransmit(bye, dialog.peer), "phone-bye-retransmit")
        self._bye_pending[dialog.call_id] = _PendingBye(dialog.peer, dialog.local_cseq, resending)
        resending.add_done_callback(lambda _: self._bye_pending.pop(dialog.call_id, None))

    async def _end(self, call: Call, reason: str) -> None:
        if self.calls.get(call.call_id) is not call:
            return
        del self.calls[call.call_id]
        self.ended_calls.append(call)
        call.end_reason = call.end_reason or reason
        self.metrics.active_calls.dec()
        self.metrics.call_finished(call.stats)
        self._stop_answering(call.call_id)
        deadline = self._deadlines.pop(call.call_id, None)
        if deadline is not None:
            deadline.cancel()
        await call.stop_media()
        log.info(
            "call ended",
            extra={
                "call_id": call.call_id[:80],
                "reason": reason,
                "received": call.stats.packets_received,
                "lost": call.stats.packets_lost,
            },
        )
        await self.handler.call_ended(call)

    async def close(self) -> None:
        """Hang up every call and stop retransmitting."""
        for call in list(self.calls.values()):
            if call.state in (CallState.CONFIRMED, CallState.ANSWERED):
                await self.hang_up(call, "gateway_stopped")
            else:
                await self._end(call, "gateway_stopped")
        await asyncio.sleep(0)  # let the BYEs leave
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for stream in list(self._streams.values()):
            stream.close()
        if self.transport is not None:
            self.transport.close()
