"""A real SMTP server on loopback, a tiny accounts directory, and a Pairwise app whose jobs
run on a clock the test moves."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from server.app import create_app
from server.config import Settings
from server.jobs.clock import ManualClock
from server.meetings.service import Meetings
from tests.conftest import ADMIN
from tests.support.app_node import AppNode
from tests.support.parts import ServerParts

# Friday 1 March 2030, 12:00 UTC: the US changes clocks on 10 March, the UK on 31 March.
T0 = 1_898_683_200.0


class SmtpSink:
    """An SMTP server (aiosmtpd) on loopback; each message it accepts lands in `inbox`."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[EmailMessage] = asyncio.Queue()
        self.port = 0
        self._server: asyncio.Server | None = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        await self.inbox.put(message)
        return "250 OK"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: SMTP(self), "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def take(self, count: int, timeout: float = 20.0) -> list[EmailMessage]:
        """The next `count` messages, waiting for each."""
        return [await asyncio.wait_for(self.inbox.get(), timeout) for _ in range(count)]

    def drained(self) -> list[EmailMessage]:
        out = []
        while not self.inbox.empty():
            out.append(self.inbox.get_nowait())
        return out


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpSink]:
    sink = SmtpSink()
    await sink.start()
    yield sink
    await sink.stop()


@dataclass
class People:
    """The accounts directory: who has an email address (an active account)."""

    emails: dict[str, str] = field(default_factory=dict)

    async def email_of(self, identity: str) -> str | None:
        return self.emails.get(identity)


@dataclass
class Node(AppNode):
    people: People

    @property
    def meetings(self) -> Meetings:
        assert self.services.meetings is not None
        return self.services.meetings

    async def pair(self, mentor: str, mentee: str, room: str = "room-1") -> dict[str, Any]:
        members = [
            {"identity": mentor, "name": mentor.split("@")[0].title(), "role": "mentor"},
            {"identity": mentee, "name": mentee.split("@")[0].title(), "role": "mentee"},
        ]
        return dict(
            await self.ok("POST", "/api/v1/pairs", ADMIN, {"members": members, "room": room})
        )

    async def profiles(self, *rows: dict[str, Any]) -> None:
        await self.ok("POST", "/api/v1/matching/profiles", ADMIN, list(rows))


MakeNode = Callable[..., Any]


@pytest.fixture
async def make_node(
    aiohttp_client: Any, make_settings: Callable[..., Settings], smtp: SmtpSink
) -> MakeNode:
    async def make(
        *, clock: ManualClock | None = None, people: People | None = None, **overrides: Any
    ) -> Node:
        settings = make_settings(
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_tls="none",
            public_url="https://pairwise.example.org",
            **overrides,
        )
        people = people or People()
        app = create_app(settings, directory=people)
        services = ServerParts(app)
        clock = clock or ManualClock(T0)
        assert services.jobs is not None
        services.jobs.clock = clock
        client = await aiohttp_client(app)
        # Jobs run when the test says (`run_jobs`): a job still running in the background
        # when the test moves the clock days ahead would find its lease lapsed and run again.
        await services.jobs.stop()
        return Node(client, services, clock, people)

    return make
