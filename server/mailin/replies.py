"""A reply to the chat digest, posted as the member's chat message.

Whom a reply is from comes only from the address it was sent to (`addresses`): a From
header is whatever the sender typed, and a member whose mail is forwarded answers from
another address than the one the digest went to. The address must still lead to a member
of an active pair who was not removed from its room, asked when the reply arrives, so an
address stops working when the pair ends or the member leaves it.

The text goes through `ChatService.post`, the path Socket.IO chat takes: it is stored,
published on the room's event bus (live to whoever reads the chat, on every node, under
the chat privacy rules), unread for the partner until they read it, and in the digest if
they do not. Its client id comes from the Message-ID, so a mail server that delivers the
same reply twice (it did not hear our answer) posts it once.

Replies are rate-limited per address, as Socket.IO chat is per member (a person answers a
digest a few times an hour; a script posting through an address it holds would fill the
partner's chat), and read in a worker thread: a reply of up to `inbound_max_bytes` takes
a while to parse, and the event loop serves every room meanwhile.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import hashlib
from dataclasses import dataclass
from email.message import EmailMessage

from server.errors import Forbidden, InvalidInput, NotFound, PairwiseError, RateLimited
from server.mailin.addresses import ReplyAddresses
from server.mailin.text import reply_text
from server.pairs.model import Member, Pair
from server.pairs.store import PairStore
from server.rooms.chat import ChatMessage, ChatService
from server.rooms.removals import RemovalStore
from server.signaling.ratelimit import Buckets, TokenBucket

# Precedence values and headers that mark mail no person wrote (RFC 3834 and older habits).
_AUTOMATIC_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}
_AUTOMATIC_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder")
# Per reply address: this many at once, then one a minute.
REPLY_BURST = 5
REPLY_RATE_PER_SECOND = 1 / 60


@dataclass(frozen=True)
class Recipient:
    pair: Pair
    member: Member


class MailReplies:
    def __init__(
        self,
        addresses: ReplyAddresses,
        pairs: PairStore,
        removals: RemovalStore,
        chat: ChatService,
    ) -> None:
        self.addresses = addresses
        self._pairs = pairs
        self._removals = removals
        self._chat = chat
        self._buckets = Buckets(REPLY_RATE_PER_SECOND * 60, REPLY_BURST)

    async def recipient(self, address: str) -> Recipient:
        """The pair and member a reply address stands for, if it may post now.

        NotFound or Forbidden, with a code naming why, for any address that may not.
        """
        pair_id, identity = self.addresses.parse(address)
        try:
            pair = await self._pairs.get(pair_id)
        except NotFound:
            raise NotFound("this reply address's pair does not exist", code="no_pair") from None
        await self._pairs.require_open_room(pair.room)
        member = next((m for m in pair.members if m.identity == identity), None)
        if member is None:
            raise Forbidden(
                "the person this reply address was made for is no longer in the pair",
                code="not_member",
            )
        if await self._removals.removed(pair.room, identity):
            raise Forbidden(
                "the person this reply address was made for was removed from the pair's room",
                code="removed",
            )
        return Recipient(pair, member)

    async def post(self, address: str, mail_from: str, raw: bytes) -> tuple[Recipient, ChatMessage]:
        """Post the reply `raw` (a whole message) sent to `address` into its pair's chat."""
        to = await self.recipient(address)
        bucket = self._bucket(to)
        if not bucket.take():
            raise RateLimited("too many replies from this address; try again in a few minutes")
        try:
            message = await asyncio.to_thread(_parse, raw)
            if automatic(message, mail_from):
                raise Forbidden(
                    "automatic mail (an auto-reply, a bounce, a list) is not posted to the chat",
                    code="automatic",
                )
            text = await asyncio.to_thread(reply_text, message)
            if not text:
                raise InvalidInput(
                    "the reply has no text of its own once the quoted email is left out",
                    code="empty",
                )
            posted = await self._chat.post(
                to.pair.room, to.member.identity, to.member.name, text, client_id(message, raw)
            )
        except PairwiseError:
            bucket.give()  # nothing posted: the budget is for what reaches the chat
            raise
        return to, posted

    def _bucket(self, to: Recipient) -> TokenBucket:
        return self._buckets.get((to.pair.id, to.member.identity))


def _parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def automatic(message: EmailMessage, mail_from: str) -> bool:
    """Whether no person wrote this: a bounce (null sender, a delivery report) or an
    auto-reply, which would otherwise answer every digest in the chat."""
    if mail_from in ("", "<>") or message.get_content_type() == "multipart/report":
        return True
    submitted = _header(message, "Auto-Submitted")
    if submitted is not None and submitted.lower() != "no":
        return True
    if (_header(message, "Precedence") or "").lower() in _AUTOMATIC_PRECEDENCE:
        return True
    return any(_header(message, name) is not None for name in _AUTOMATIC_HEADERS)


def client_id(message: EmailMessage, raw: bytes) -> str:
    """The same for every delivery of one reply (its Message-ID, or its bytes if none)."""
    key = (_header(message, "Message-ID") or "").encode(errors="replace") or raw
    return "mail:" + hashlib.sha256(key).hexdigest()[:40]


def _header(message: EmailMessage, name: str) -> str | None:
    """A header's value as sent. Not `message.get`: the header registry parses it first,
    and some malformed values (`Message-ID: <>`) make that raise IndexError."""
    for key, value in message.raw_items():
        if key.lower() == name.lower():
            return " ".join(str(value).split())
    return None
