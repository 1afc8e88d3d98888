"""The inbound SMTP endpoint (aiosmtpd) that receives replies to the chat digest.

It runs on the application's own event loop (not aiosmtpd's `Controller`, which starts a
thread with a loop of its own): the chat service, the database engine and the Socket.IO
server all belong to this loop. It only ever delivers into a chat, never relays: an
address is checked at RCPT, so mail for anything but a valid reply address is refused
before its body is sent, and again at the end of DATA (the pair may have ended since).

Every refusal is a permanent 5xx with the reason (the sender's mail server turns it into
a bounce the person reads) and a log line; a reply larger than `max_bytes` is refused at
MAIL (its SIZE) or once it has been read (aiosmtpd stops storing it at the limit). The log
never holds the text of a reply, nor a reply address's signature (the address posts).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator
from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP, Envelope, Session

from server.errors import InvalidInput, PairwiseError, RateLimited
from server.mailin.addresses import for_log
from server.mailin.replies import MailReplies

log = logging.getLogger("pairwise.mailin")

IDLE_SECONDS = 60.0


class InboundSmtp:
    def __init__(
        self,
        replies: MailReplies,
        host: str,
        port: int,
        *,
        max_bytes: int,
        hostname: str,
    ) -> None:
        self.replies = replies
        self.host = host
        self.port = port  # the bound port once started (0 asks for a free one)
        self.max_bytes = max_bytes
        self.hostname = hostname
        self._server: asyncio.Server | None = None
        self._sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._session, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("inbound SMTP listening", extra={"host": self.host, "port": self.port})

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for session in list(self._sessions):  # a sender still connected does not hold us up
            if session.transport is not None:
                session.transport.close()
        await self._server.wait_closed()
        self._server = None

    async def context(self, _app: object) -> AsyncIterator[None]:
        """An aiohttp cleanup context: listening while the application runs."""
        await self.start()
        yield
        await self.stop()

    def _session(self) -> SMTP:
        session = _Smtp(
            self,
            data_size_limit=self.max_bytes,
            enable_SMTPUTF8=True,
            hostname=self.hostname,
            ident="Pairwise",
            timeout=IDLE_SECONDS,
        )
        self._sessions.add(session)
        return session

    # -- aiosmtpd handler hooks ----------------------------------------------------------

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if envelope.rcpt_tos:  # one chat per reply; the sender's server sends the rest again
            return "452 4.5.3 One reply address per message, please"
        try:
            await self.replies.recipient(address)
        except PairwiseError as exc:
            return self._refused(session, address, exc)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        address = envelope.rcpt_tos[0]
        raw = envelope.original_content or b""
        try:
            to, message = await self.replies.post(address, envelope.mail_from or "", raw)
        except PairwiseError as exc:
            return self._refused(session, address, exc)
        except Exception:  # the database is away, say: the sender's server tries again
            log.exception("mail reply not posted", extra={"peer": _peer(session)})
            return "451 4.3.0 Not posted yet; try again later"
        log.info(
            "mail reply posted to chat",
            extra={
                "pair": to.pair.id,
                "identity": to.member.identity,
                "message_id": message.id,
                "peer": _peer(session),
            },
        )
        return "250 2.0.0 Posted to the chat"

    def _refused(self, session: Session, address: str, exc: PairwiseError) -> str:
        log.warning(
            "mail reply refused",
            extra={"reason": exc.code, "address": for_log(address), "peer": _peer(session)},
        )
        if isinstance(exc, RateLimited):  # the sender's server tries again later
            return f"451 4.7.1 Not posted yet: {_one_line(exc.message)}"
        if isinstance(exc, InvalidInput) and exc.code == "too_long":
            return f"552 5.3.4 The reply is too long: {exc.message}"
        status = "550 5.6.0" if isinstance(exc, InvalidInput) else "550 5.7.1"
        return f"{status} Not posted: {_one_line(exc.message)}"

    def oversized(self, session: Session | None) -> str:
        log.warning("mail reply refused", extra={"reason": "too_large", "peer": _peer(session)})
        return f"552 5.3.4 Not posted: a reply may be at most {self.max_bytes} bytes"


class _Smtp(SMTP):
    """aiosmtpd's session, with its own size refusals logged and worded for people."""

    def __init__(self, endpoint: InboundSmtp, **options: Any) -> None:
        super().__init__(endpoint, **options)
        self._endpoint = endpoint

    async def push(self, status: AnyStr) -> None:
        # aiosmtpd refuses a SIZE above the limit at MAIL, and DATA beyond it at the end,
        # without asking the handler; both start with 552.
        if isinstance(status, str) and status.startswith("552 Error"):
            await super().push(self._endpoint.oversized(self.session))
            return
        await super().push(status)


def _peer(session: Session | None) -> str:
    peer = session.peer if session is not None else None
    return str(peer[0]) if isinstance(peer, tuple) else str(peer)


def _one_line(text: str) -> str:
    return " ".join(text.split())
