"""The endpoint in a real server process: `python -m server serve` with the settings an
operator writes listens, refuses what is not a reply address, logs it, and stops cleanly
while a sender is still connected."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from email.message import EmailMessage

import aiosmtplib
import pytest

from tests.support.process import ServerProcess
from tests.support.services import free_port

pytestmark = pytest.mark.slow


async def test_the_server_listens_refuses_logs_and_stops_with_a_sender_connected(
    server_process: Callable[..., ServerProcess],
) -> None:
    port = free_port()
    server = await asyncio.to_thread(
        server_process,
        PAIRWISE_INBOUND_SMTP_PORT=str(port),
        PAIRWISE_INBOUND_DOMAIN="reply.example.org",
        PAIRWISE_LOG_FORMAT="json",
    )
    message = EmailMessage()
    message["From"] = "someone@example.net"
    message["To"] = "ben@reply.example.org"
    message.set_content("Let me in")
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as caught:
        await aiosmtplib.send(message, hostname="127.0.0.1", port=port, start_tls=False)
    assert caught.value.recipients[0].code == 550
    assert '"reason": "unsigned"' in server.log()

    idle = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
    await idle.connect()
    code, banner = await idle.ehlo()
    assert code == 250 and banner.startswith("reply.example.org")
    assert await asyncio.to_thread(server.stop) == 0
    idle.close()
