"""The unread-chat digest through a real SMTP server: one email per member whose chat has
waited 15 minutes unread, every pair's in one message, at most hourly, nothing read or
sent before, nothing from an ended pair, and a signed unsubscribe link that works and
cannot be forged."""

from __future__ import annotations

from sqlalchemy import insert

from server.meetings.digest import ChatDigest
from server.store.schema import chat_messages
from tests.meetings.conftest import T0, MakeNode, Node, People, SmtpSink

ANA, BEN, CY = "ana@example.org", "ben@example.org", "cy@example.org"


def people() -> People:
    return People({p: p.replace("@", "@mail.") for p in (ANA, BEN, CY)})


def digest_of(node: Node) -> ChatDigest:
    assert node.services.digest is not None
    return node.services.digest


async def say(node: Node, room: str, identity: str, text: str, ts: float) -> int:
    async with node.services.database.begin() as conn:
        result = await conn.execute(
            insert(chat_messages).values(
                room=room, identity=identity, name=identity.split("@")[0].title(),
                text=text, client_id=f"{identity}-{ts}-{text[:10]}", ts=ts,
            )
        )  # fmt: skip
        return int(result.inserted_primary_key[0])


async def test_one_digest_per_member_batched_rate_limited_and_unsubscribable(
    make_node: MakeNode, smtp: SmtpSink, database_url: str
) -> None:
    node = await make_node(people=people(), database_url=database_url)
    await node.pair(ANA, BEN, room="room-1")
    await node.pair(CY, BEN, room="room-2")
    digest = digest_of(node)
    await say(node, "room-1", ANA, "Did you read chapter 3?", T0)
    await say(node, "room-2", CY, "Line one\r\nBcc: x@example.org", T0 + 60)
    node.clock.now = T0 + 15 * 60 - 1
    assert await digest.scan() == 0  # not unread 15 minutes yet
    node.clock.now = T0 + 15 * 60
    assert await digest.scan() == 1
    (message,) = await smtp.take(1)
    assert message["To"] == "ben@mail.example.org"
    assert message["Subject"] == "Unread chat in Pairwise (2)"
    text = message.get_content()
    assert "Ana (" in text and "Did you read chapter 3?" in text
    assert "Cy (" in text and "Line one  Bcc: x@example.org" in text  # one line, not a header
    assert message["Bcc"] is None
    unsubscribe = message["List-Unsubscribe"].strip("<>")
    assert unsubscribe in text and message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert await digest.scan() == 0  # nothing new

    # A new message: not before the hour since the last digest is up, then only it.
    await say(node, "room-1", ANA, "Also chapter 4", T0 + 16 * 60)
    node.clock.now = T0 + 74 * 60
    assert await digest.scan() == 0
    node.clock.now = T0 + 75 * 60
    assert await digest.scan() == 1
    (message,) = await smtp.take(1)
    assert message["Subject"] == "Unread chat in Pairwise (1)"
    assert "chapter 4" in message.get_content() and "chapter 3" not in message.get_content()

    # Read chat is not sent.
    read = await say(node, "room-1", ANA, "Already seen", T0 + 80 * 60)
    await node.services.chat.store.mark_read("room-1", BEN, read)
    node.clock.now = T0 + 200 * 60
    assert await digest.scan() == 0

    # Unsubscribing: the page alone changes nothing; its button does; a forged link fails.
    path = unsubscribe.removeprefix("https://pairwise.example.org")
    forged = digest.unsubscribe_token(ANA).split(".")[0] + "." + path.rsplit(".", 1)[1]
    for method in ("GET", "POST"):
        assert (await node.client.request(method, f"/digest/unsubscribe/{forged}")).status == 404
    assert (await node.client.get(path)).status == 200
    await say(node, "room-1", ANA, "Hello?", T0 + 201 * 60)
    node.clock.now = T0 + 300 * 60
    assert await digest.scan() == 1
    await smtp.take(1)
    assert (await node.client.post(path)).status == 200
    await say(node, "room-1", ANA, "Still there?", T0 + 301 * 60)
    node.clock.now = T0 + 500 * 60
    assert await digest.scan() == 0
    assert smtp.drained() == []


async def test_an_ended_pairs_chat_is_not_sent(make_node: MakeNode, smtp: SmtpSink) -> None:
    node = await make_node(people=people())
    pair = await node.pair(ANA, BEN, room="room-1")
    await say(node, "room-1", ANA, "Goodbye", T0)
    assert node.services.sessionlog is not None
    await node.services.sessionlog.pairs.set_status(pair["id"], "unpublished")
    node.clock.now = T0 + 3600
    assert await digest_of(node).scan() == 0
    assert smtp.drained() == []
