"""The endpoint in a real server process: `python -m server serve` with the settings an
operator writes listens, posts a signed reply, refuses what is not a reply address and logs
both (never the reply's text, not even aiosmtpd at DEBUG), and stops cleanly while a sender is still
connected."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Callable
from email.message import EmailMessage

import aiosmtplib
import pytest

from server.mailin.addresses import ReplyAddresses
from tests.support.process import ADMIN_KEY, SECRET_KEY, ServerProcess
from tests.support.services import free_port

pytestmark = pytest.mark.slow

DOMAIN = "reply.example.org"
# Not hexadecimal, so no pair id, token or hash in a log line can contain it by chance
# ("4711" once did: a pair id held it).
SECRET_WORD = "quokka-sings"


def create_pair(base_url: str) -> str:
    members = [
        {"identity": "ana", "name": "Ana", "role": "mentor"},
        {"identity": "ben", "name": "Ben", "role": "mentee"},
    ]
    request = urllib.request.Request(
        base_url + "/api/v1/pairs",
        data=json.dumps({"members": members, "room": "room-1"}).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return str(json.loads(resp.read())["id"])


def mail(to: str, text: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "someone@example.net"
    message["To"] = to
    message.set_content(text)
    return message


async def test_the_server_posts_refuses_logs_and_stops_with_a_sender_connected(
    server_process: Callable[..., ServerProcess],
) -> None:
    port = free_port()
    server = await asyncio.to_thread(
        server_process,
        PAIRWISE_INBOUND_SMTP_PORT=str(port),
        PAIRWISE_INBOUND_DOMAIN=DOMAIN,
        PAIRWISE_LOG_FORMAT="json",
        PAIRWISE_LOG_LEVEL="DEBUG",
    )
    pair_id = await asyncio.to_thread(create_pair, server.url)
    to = ReplyAddresses(SECRET_KEY, DOMAIN).address(pair_id, "ben")
    _, status = await aiosmtplib.send(
        mail(to, f"Private words {SECRET_WORD}"), hostname="127.0.0.1", port=port, start_tls=False
    )
    assert status.startswith("2.0.0 Posted")
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as caught:
        await aiosmtplib.send(
            mail(f"ben@{DOMAIN}", "Let me in"), hostname="127.0.0.1", port=port, start_tls=False
        )
    assert caught.value.recipients[0].code == 550

    idle = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
    await idle.connect()
    code, banner = await idle.ehlo()
    assert code == 250 and banner.startswith(DOMAIN)
    assert await asyncio.to_thread(server.stop) == 0
    idle.close()
    log = server.log()
    assert '"event": "mail reply posted to chat"' in log and f'"pair": "{pair_id}"' in log
    assert '"reason": "unsigned"' in log
    # No logger writes the reply's text, aiosqlite's statement log (parameters) included.
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    leaks = [line for line in lines if SECRET_WORD in json.dumps(line)]
    assert leaks == []
