"""Red team against replies by email, through the app's own SMTP endpoint.

Whoever holds a reply address (the member, or anyone their digest was forwarded to) posts
as that member. Two holes: replies had no rate limit (Socket.IO chat has one per member,
so mail was the way to flood a partner's chat and every reader's screen), and reading a
reply ran a regular expression whose time grows with the square of a line's length on the
application's event loop (a 100 KB line froze every call and request for seconds; a
1 MB reply, for minutes)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiosmtplib
import pytest

from server.mailin.replies import REPLY_BURST
from tests.mailin.test_replies import BEN, history, inbound_node, reply, send
from tests.meetings.conftest import MakeNode, SmtpSink, make_node, smtp  # noqa: F401

ANA = "ana@example.org"


async def test_replies_by_mail_are_rate_limited_per_member(
    make_node: MakeNode,  # noqa: F811
    smtp: SmtpSink,  # noqa: F811
) -> None:
    node = await inbound_node(make_node)
    pair = await node.pair(ANA, BEN, room="room-1")
    assert node.services.mailin is not None
    addresses = node.services.mailin.replies.addresses
    ben = addresses.address(pair["id"], BEN)
    tried = REPLY_BURST + 10
    refused: list[Any] = []
    for n in range(tried):
        try:
            await send(node, reply(ben, f"spam {n}"))
        except aiosmtplib.SMTPResponseException as exc:
            refused.append(exc)
    posted = [m.text for m in await history(node)]
    assert posted == [f"spam {n}" for n in range(REPLY_BURST)]
    # A temporary refusal: a person's reply held back is sent again by their mail server.
    assert len(refused) == tried - REPLY_BURST
    assert all(exc.code == 451 and "4.7.1" in exc.message for exc in refused), refused[0]
    # Ana's own address has a budget of its own.
    await send(node, reply(addresses.address(pair["id"], ANA), "hello"))
    assert [m.text for m in await history(node)][-1] == "hello"


@pytest.mark.parametrize("line", ["On " + "wrote " * 17000, "le " + "a écrit " * 12000])
async def test_a_long_line_does_not_stall_the_server(
    make_node: MakeNode,  # noqa: F811
    smtp: SmtpSink,  # noqa: F811
    line: str,
) -> None:
    """The line arrives base64-encoded (SMTP's own lines stay short); the app's loop keeps
    answering while the reply is read."""
    node = await inbound_node(make_node)
    pair = await node.pair(ANA, BEN, room="room-1")
    assert node.services.mailin is not None
    ben = node.services.mailin.replies.addresses.address(pair["id"], BEN)
    gaps: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(0.02)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(tick())
    try:
        async with asyncio.timeout(3):
            await send(node, reply(ben, f"Fine by me.\n\n{line}\n"))
    except aiosmtplib.SMTPResponseException:
        pass  # refused as too long for the chat: what matters is that it came in time
    finally:
        done.set()
        await ticking
    assert max(gaps) < 1.0, f"the event loop stalled for {max(gaps):.1f} s"


async def test_the_log_never_holds_a_working_reply_address(
    make_node: MakeNode,  # noqa: F811
    smtp: SmtpSink,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A refused reply to a valid address (an auto-reply, one with no text, one over the
    rate) was logged with the whole address: whoever reads the log could post as Ben."""
    node = await inbound_node(make_node)
    pair = await node.pair(ANA, BEN, room="room-1")
    assert node.services.mailin is not None
    ben = node.services.mailin.replies.addresses.address(pair["id"], BEN)
    signature = ben.split("@")[0].rsplit(".", 1)[1]
    with caplog.at_level(logging.DEBUG, logger="pairwise"):
        for message in (
            reply(ben, "I am out of office", Auto_Submitted="auto-replied"),
            reply(ben, "> only a quote"),
        ):
            with pytest.raises(aiosmtplib.SMTPResponseException):
                await send(node, message)
    refused = [r for r in caplog.records if r.message == "mail reply refused"]
    assert [r.reason for r in refused] == ["automatic", "empty"]  # type: ignore[attr-defined]
    assert refused[0].address.startswith(f"reply+{pair['id']}.")  # type: ignore[attr-defined]
    # Ours (aiosmtpd's mail.log, which writes each line at DEBUG, is at WARNING in the
    # server process: tests/mailin/test_process.py).
    for record in (r for r in caplog.records if r.name.startswith("pairwise")):
        assert signature not in record.getMessage() + str(record.__dict__), record
