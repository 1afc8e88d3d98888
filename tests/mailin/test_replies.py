"""Replying to the chat digest by email, end to end: a real digest from the app reaches a
real SMTP server, the test answers it over SMTP to the app's own inbound endpoint
(aiosmtpd), and the answer is in the pair's chat, live to the partner's Socket.IO client,
and unread for them. Anything not sent to a valid address of an open pair's member, too
large, or not written by a person, is refused with a 5xx and logged, and nothing is posted.
"""

from __future__ import annotations

import logging
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import aiosmtplib
import pytest
from sqlalchemy import update

from server.mailin.endpoint import InboundSmtp
from server.rooms.chat import ChatMessage
from server.store.schema import pair_members
from tests.meetings.conftest import T0, MakeNode, Node, People, SmtpSink
from tests.meetings.test_digest import say
from tests.support.participants import SocketParticipant

ANA, BEN, CY = "ana@example.org", "ben@example.org", "cy@example.org"
DOMAIN = "reply.pairwise.example.org"


def people() -> People:
    return People({p: p.replace("@", "@mail.") for p in (ANA, BEN, CY)})


async def inbound_node(make_node: MakeNode, **overrides: Any) -> Node:
    node: Node = await make_node(
        people=people(), inbound_smtp_port=0, inbound_domain=DOMAIN, **overrides
    )
    return node


def endpoint(node: Node) -> InboundSmtp:
    assert node.services.mailin is not None
    return node.services.mailin


async def digest_for(node: Node, smtp: SmtpSink, to: str) -> EmailMessage:
    """Run the digest scan once the chat has waited; the digest that went to `to`."""
    assert node.services.digest is not None
    node.clock.now += 15 * 60
    sent = await node.services.digest.scan()
    messages = await smtp.take(sent)
    (mail,) = [m for m in messages if m["To"] == to.replace("@", "@mail.")]
    return mail


def reply(to: str, text: str, sender: str = "ben@mail.example.org", **headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = "Re: Unread chat in Pairwise (1)"
    message["Message-ID"] = make_msgid(domain="mail.example.org")
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(text)
    return message


async def send(node: Node, message: EmailMessage, **options: Any) -> Any:
    return await aiosmtplib.send(
        message, hostname="127.0.0.1", port=endpoint(node).port, start_tls=False, **options
    )


async def history(node: Node, room: str = "room-1") -> list[ChatMessage]:
    return await node.services.chat.store.history(room, 100)


async def partner(node: Node, room: str, identity: str) -> SocketParticipant:
    token = node.services.tokens.issue(room, identity, identity.split("@")[0].title(), "mentor")
    person = await SocketParticipant(str(node.client.make_url("")), token[0]).connect()
    await person.join()
    return person


QUOTED = """Yes, chapter 3 is done.
See you Monday!

--\x20
Ben Example
+44 20 7946 0000

On Fri, 1 Mar 2030 at 12:15, Pairwise <pairwise@localhost>
wrote:

> You have 1 unread chat message(s) in Pairwise.
>
> Ana & Ben:
>   Ana (01 Mar 12:00 UTC): Did you read chapter 3?
"""


async def test_a_reply_to_the_digest_lands_in_the_chat_live_and_unread(
    make_node: MakeNode, smtp: SmtpSink, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    node = await inbound_node(make_node, database_url=database_url)
    pair = await node.pair(ANA, BEN, room="room-1")
    await say(node, "room-1", ANA, "Did you read chapter 3?", T0)
    digest = await digest_for(node, smtp, BEN)
    address = digest["Reply-To"]
    assert address.startswith(f"reply+{pair['id']}.") and address.endswith(f"@{DOMAIN}")
    assert "Reply to this email to answer in the chat." in digest.get_content()
    assert digest["Auto-Submitted"] == "auto-generated"

    ana = await partner(node, "room-1", ANA)
    try:
        answer = reply(address, QUOTED, In_Reply_To=digest["Message-ID"])
        with caplog.at_level(logging.INFO, logger="pairwise.mailin"):
            _, status = await send(node, answer)
        assert status.startswith("2.0.0 Posted")
        live = await ana.wait_for("chat", {"from": {"identity": BEN, "name": "Ben"}})
        assert live["text"] == "Yes, chapter 3 is done.\nSee you Monday!"
        assert live["room"] == "room-1"
    finally:
        await ana.close()
    stored = await history(node)
    assert [(m.identity, m.text) for m in stored] == [
        (ANA, "Did you read chapter 3?"),
        (BEN, "Yes, chapter 3 is done.\nSee you Monday!"),
    ]
    assert stored[1].id == live["id"]
    posted = [r for r in caplog.records if r.message == "mail reply posted to chat"]
    assert [(r.pair, r.identity, r.message_id) for r in posted] == [  # type: ignore[attr-defined]
        (pair["id"], BEN, live["id"])
    ]
    assert all("chapter" not in r.getMessage() + str(r.__dict__) for r in caplog.records)

    # The sender's server delivers it again (it missed our answer): posted once.
    await send(node, answer)
    assert len(await history(node)) == 2

    # Unread for Ana until she reads it: her own digest carries it.
    mail = await digest_for(node, smtp, ANA)
    assert "Ben (" in mail.get_content() and "Yes, chapter 3 is done." in mail.get_content()


async def test_forged_altered_and_unsigned_addresses_are_refused_and_logged(
    make_node: MakeNode, smtp: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    node = await inbound_node(make_node)
    pair = await node.pair(ANA, BEN, room="room-1")
    other = await node.pair(CY, BEN, room="room-2")
    await say(node, "room-1", ANA, "Did you read chapter 3?", T0)
    address = (await digest_for(node, smtp, BEN))["Reply-To"]
    local, domain = address.split("@")
    _, member, signature = local.removeprefix("reply+").split(".")
    ana_member = endpoint(node).replies.addresses.address(pair["id"], ANA).split(".")[1]
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")

    refused = {
        "forged signature": f"reply+{pair['id']}.{member}.{flipped}@{domain}",
        "altered pair": f"reply+{other['id']}.{member}.{signature}@{domain}",
        "altered member": f"reply+{pair['id']}.{ana_member}.{signature}@{domain}",
        "no signature": f"reply+{pair['id']}.{member}@{domain}",
        "unsigned": f"ben@{domain}",
        "another domain": f"{local}@pairwise.example.net",
        "not base32": f"reply+{pair['id']}.a.{signature}@{domain}",
    }
    with caplog.at_level(logging.WARNING, logger="pairwise.mailin"):
        for why, to in refused.items():
            with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as caught:
                await send(node, reply(to, "Let me in"))
            (error,) = caught.value.recipients
            assert error.code == 550, why
            assert "Not posted:" in error.message and "reply address" in error.message, why
    reasons = [r.reason for r in caplog.records if r.message == "mail reply refused"]  # type: ignore[attr-defined]
    assert reasons == ["forged", "forged", "forged", "unsigned", "unsigned", "unsigned", "forged"]
    assert [m.text for m in await history(node)] == ["Did you read chapter 3?"]
    assert await history(node, "room-2") == []

    # The real address, in capitals as some mail systems write it, still works.
    await send(node, reply(address.upper(), "Done"))
    assert [m.text for m in await history(node)][-1] == "Done"


async def test_an_ended_pair_a_departed_or_removed_member_cannot_reply(
    make_node: MakeNode, smtp: SmtpSink
) -> None:
    node = await inbound_node(make_node)
    one = await node.pair(ANA, BEN, room="room-1")
    two = await node.pair(CY, BEN, room="room-2")
    three = await node.pair(ANA, CY, room="room-3")
    addresses = endpoint(node).replies.addresses

    async def refused(to: str, words: str) -> None:
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as caught:
            await send(node, reply(to, "Hello?"))
        (error,) = caught.value.recipients
        assert error.code == 550 and words in error.message

    assert node.services.sessionlog is not None
    await node.services.sessionlog.pairs.set_status(one["id"], "unpublished")
    await refused(addresses.address(one["id"], BEN), "mentoring has ended")

    async with node.services.database.begin() as conn:  # as erasure replaces an identity
        await conn.execute(
            update(pair_members)
            .where(pair_members.c.pair_id == two["id"], pair_members.c.identity == BEN)
            .values(identity="erased-1")
        )
    await refused(addresses.address(two["id"], BEN), "no longer in the pair")

    await node.services.removals.remove("room-3", CY)
    await refused(addresses.address(three["id"], CY), "removed from the pair's room")
    await refused(addresses.address("0" * 32, CY), "pair does not exist")  # signed, no pair
    for room in ("room-1", "room-2", "room-3"):
        assert await history(node, room) == []


async def test_oversized_too_long_empty_and_automatic_mail_is_refused(
    make_node: MakeNode, smtp: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    node = await inbound_node(make_node, inbound_max_bytes=4096, chat_max_chars=200)
    pair = await node.pair(ANA, BEN, room="room-1")
    address = endpoint(node).replies.addresses.address(pair["id"], BEN)

    # Announced too large (SIZE at MAIL): refused before the body is sent.
    big = reply(address, "x" * 5000)
    with (
        caplog.at_level(logging.WARNING, logger="pairwise.mailin"),
        pytest.raises(aiosmtplib.SMTPSenderRefused) as announced,
    ):
        await send(node, big)
    assert announced.value.code == 552 and "at most 4096 bytes" in announced.value.message

    # Not announced: read to the end, stored no further than the limit, then refused.
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=endpoint(node).port, start_tls=False)
    async with client:
        await client.mail("ben@mail.example.org")
        await client.rcpt(address)
        with pytest.raises(aiosmtplib.SMTPDataError) as read:
            await client.data(big.as_bytes())
        assert read.value.code == 552 and "at most 4096 bytes" in read.value.message
    reasons = [r.reason for r in caplog.records if r.message == "mail reply refused"]  # type: ignore[attr-defined]
    assert reasons == ["too_large", "too_large"]

    async def refused(message: EmailMessage, code: int, words: str, **options: Any) -> None:
        with pytest.raises(aiosmtplib.SMTPDataError) as caught:
            await send(node, message, **options)
        assert caught.value.code == code and words in caught.value.message

    await refused(reply(address, "y " * 150), 552, "at most 200 characters")
    await refused(reply(address, "> only the quote\n> of the digest\n"), 550, "no text of its own")
    await refused(
        reply(address, "Away until Monday", Auto_Submitted="auto-replied"), 550, "automatic"
    )
    await refused(reply(address, "Away", Precedence="bulk"), 550, "automatic")
    await refused(reply(address, "Bounce"), 550, "automatic", sender="")
    assert await history(node) == []

    # Within every limit: posted.
    await send(node, reply(address, "y " * 90))
    assert len(await history(node)) == 1


async def test_one_reply_address_per_message(make_node: MakeNode, smtp: SmtpSink) -> None:
    node = await inbound_node(make_node)
    one = await node.pair(ANA, BEN, room="room-1")
    two = await node.pair(CY, BEN, room="room-2")
    addresses = endpoint(node).replies.addresses
    to = [addresses.address(one["id"], BEN), addresses.address(two["id"], BEN)]
    message = reply(", ".join(to), "To both of you")
    refused, _ = await send(node, message)
    assert list(refused) == [to[1]] and refused[to[1]][0] == 452  # sent again later
    assert [m.text for m in await history(node, "room-1")] == ["To both of you"]
    assert await history(node, "room-2") == []


async def test_stopping_closes_the_connections_of_senders(
    make_node: MakeNode, smtp: SmtpSink
) -> None:
    node = await inbound_node(make_node)
    idle = aiosmtplib.SMTP(hostname="127.0.0.1", port=endpoint(node).port, start_tls=False)
    await idle.connect()
    assert (await idle.ehlo()).code == 250
    await endpoint(node).stop()  # as when the application shuts down
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await idle.noop()
    with pytest.raises(OSError):
        await aiosmtplib.SMTP(hostname="127.0.0.1", port=endpoint(node).port).connect()


async def test_an_html_only_reply_loses_its_quoted_original(
    make_node: MakeNode, smtp: SmtpSink
) -> None:
    node = await inbound_node(make_node)
    pair = await node.pair(ANA, BEN, room="room-1")
    message = reply(endpoint(node).replies.addresses.address(pair["id"], BEN), "")
    message.set_content(
        '<div dir="ltr">Sounds good &amp; thanks!<br>Ben</div><br>'
        '<div class="gmail_quote"><div class="gmail_attr">On Fri, 1 Mar 2030 Pairwise wrote:'
        "</div><blockquote>You have 1 unread chat message(s)</blockquote></div>",
        subtype="html",
    )
    await send(node, message)
    assert [m.text for m in await history(node)] == ["Sounds good & thanks!\nBen"]


async def test_no_endpoint_and_no_reply_address_unless_configured(
    make_node: MakeNode, smtp: SmtpSink
) -> None:
    node = await make_node(people=people())
    assert node.services.mailin is None
    await node.pair(ANA, BEN, room="room-1")
    await say(node, "room-1", ANA, "Hi", T0)
    digest = await digest_for(node, smtp, BEN)
    assert digest["Reply-To"] is None and "reply+" not in digest.get_content()


async def test_a_digest_of_several_pairs_gives_each_its_own_address(
    make_node: MakeNode, smtp: SmtpSink
) -> None:
    node = await inbound_node(make_node)
    one = await node.pair(ANA, BEN, room="room-1")
    two = await node.pair(CY, BEN, room="room-2")
    await say(node, "room-1", ANA, "From Ana", T0)
    await say(node, "room-2", CY, "From Cy", T0)
    digest = await digest_for(node, smtp, BEN)
    assert digest["Reply-To"] is None  # one Reply-To cannot answer two chats
    text = digest.get_content()
    addresses = endpoint(node).replies.addresses
    for pair, room in ((one, "room-1"), (two, "room-2")):
        to = addresses.address(pair["id"], BEN)
        assert f"(answer by email to {to})" in text
        await send(node, reply(to, f"Answer to {room}"))
        assert [m.text for m in await history(node, room)][-1] == f"Answer to {room}"
