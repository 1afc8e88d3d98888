"""A real HTTP receiver on loopback that takes webhook deliveries, and a Pairwise app whose
jobs run on a clock the test moves (or in the background, for events from the room bus)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
from aiohttp import web

from server.app import create_app
from server.config import Settings
from server.jobs.clock import ManualClock
from server.webhooks.service import Webhooks
from tests.conftest import ADMIN
from tests.support.app_node import AppNode
from tests.support.parts import ServerParts

T0 = 1_898_683_200.0  # Saturday 2 March 2030, 12:00 UTC
PUBLIC_URL = "https://pairwise.example.org"


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An aiohttp server on 127.0.0.1: every request lands in `requests`; it answers with
    the next status scripted for its path (`script`), then 200."""

    requests: asyncio.Queue[Received] = field(default_factory=asyncio.Queue)
    script: dict[str, list[int]] = field(default_factory=dict)
    base: str = ""
    hang: set[str] = field(default_factory=set)  # paths that answer only when released
    released: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        await self.requests.put(Received(request.path, dict(request.headers), await request.read()))
        if request.path in self.hang:
            await self.released.wait()
        statuses = self.script.get(request.path)
        return web.Response(status=statuses.pop(0) if statuses else 200, text="ok")

    def url(self, path: str = "/hook") -> str:
        return self.base + path

    async def take(self, count: int = 1, timeout: float = 20.0) -> list[Received]:
        return [await asyncio.wait_for(self.requests.get(), timeout) for _ in range(count)]

    def drained(self) -> list[Received]:
        out = []
        while not self.requests.empty():
            out.append(self.requests.get_nowait())
        return out


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", found.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    found.base = f"http://127.0.0.1:{port}"
    yield found
    found.released.set()
    await runner.cleanup()


@dataclass
class Node(AppNode):
    OK: ClassVar[tuple[int, ...]] = (200, 201, 204)

    @property
    def webhooks(self) -> Webhooks:
        assert self.services.webhooks is not None
        return self.services.webhooks

    async def hook(self, url: str, events: list[str], fmt: str = "json") -> dict[str, Any]:
        body = {"url": url, "events": events, "format": fmt}
        return dict(await self.ok("POST", "/api/v1/webhooks", ADMIN, body))

    async def deliveries(self, hook: dict[str, Any]) -> list[dict[str, Any]]:
        found = await self.ok("GET", f"/api/v1/webhooks/{hook['id']}/deliveries", ADMIN)
        return list(found["deliveries"])

    async def pair(
        self,
        mentor: str = "ada",
        mentee: str = "bo",
        room: str = "room-1",
        title: str | None = None,
    ) -> dict[str, Any]:
        members = [
            {"identity": mentor, "name": mentor.title(), "role": "mentor"},
            {"identity": mentee, "name": mentee.title(), "role": "mentee"},
        ]
        body: dict[str, Any] = {"members": members, "room": room}
        if title is not None:
            body["title"] = title
        return dict(await self.ok("POST", "/api/v1/pairs", ADMIN, body))


MakeNode = Callable[..., Any]


@pytest.fixture
async def make_node(aiohttp_client: Any, make_settings: Callable[..., Settings]) -> MakeNode:
    async def make(
        *, clock: ManualClock | None = None, background: bool = False, **overrides: Any
    ) -> Node:
        settings = make_settings(
            public_url=PUBLIC_URL, **{"webhook_allow_private": True, **overrides}
        )
        app = create_app(settings)
        services = ServerParts(app)
        clock = clock or ManualClock(T0)
        assert services.jobs is not None
        services.jobs.clock = clock
        client = await aiohttp_client(app)
        if not background:
            # Jobs run when the test says (`run_jobs`), so moving the clock never finds a
            # job of this node still running with its lease lapsed.
            await services.jobs.stop()
        return Node(client, services, clock)

    return make
