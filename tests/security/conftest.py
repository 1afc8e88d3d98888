"""A running server (the aiohttp test server, on SQLite and on PostgreSQL) and the calls an
attacker makes to it: HTTP with any credentials, Socket.IO with any token."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from server.app import create_app
from server.config import Settings
from server.rooms.events import ParticipantJoined, ParticipantLeft, SessionEnded, SessionStarted
from tests.conftest import ADMIN
from tests.support.parts import ServerParts

T0 = 1_700_000_000.0


@dataclass
class Target:
    """A server under attack: its URL, its parts (to set the stage), an HTTP session."""

    url: str
    services: ServerParts
    http: aiohttp.ClientSession
    app: web.Application

    def token(self, room: str, identity: str, role: str = "mentee") -> str:
        return self.services.tokens.issue(room, identity, identity.title(), role)[0]  # type: ignore[arg-type]

    def bearer(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def call(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: Any = None,
        data: str | bytes | None = None,
    ) -> tuple[int, Any, aiohttp.typedefs.LooseHeaders]:
        """Status, payload (JSON, or text) and headers of one request."""
        kwargs: dict[str, Any] = {"headers": headers}
        if data is not None:
            kwargs["data"] = data
            kwargs["headers"] = {**(headers or {}), "Content-Type": "application/json"}
        elif body is not None:
            kwargs["json"] = body
        async with self.http.request(method, self.url + path, **kwargs) as resp:
            if resp.content_type == "application/json":
                payload = await resp.json()
            else:
                payload = await resp.text()
            return resp.status, payload, resp.headers

    async def ok(self, method: str, path: str, headers: dict[str, str], body: Any = None) -> Any:
        status, payload, _ = await self.call(method, path, headers, body)
        assert status in (200, 201), payload
        return payload

    async def pair(self, mentor: str, mentee: str) -> dict[str, Any]:
        members = [
            {"identity": mentor, "name": mentor.title(), "role": "mentor"},
            {"identity": mentee, "name": mentee.title(), "role": "mentee"},
        ]
        body = {"members": members, "room": f"room-{mentor}-{mentee}"}
        return dict(await self.ok("POST", "/api/v1/pairs", ADMIN, body))

    async def session(self, pair: dict[str, Any], start: float = T0) -> int:
        """A past session of both members, recorded as the room's events would record it."""
        log = self.services.sessionlog
        assert log is not None
        room = pair["room"]
        await log.recorder(SessionStarted(room, ts=start))
        for i, member in enumerate(pair["members"]):
            await log.recorder(
                ParticipantJoined(
                    room,
                    identity=member["identity"],
                    name=member["name"],
                    role=member["role"],
                    media_mode="video",
                    rejoined=False,
                    ts=start + i,
                )
            )
        for member in pair["members"]:
            await log.recorder(
                ParticipantLeft(room, identity=member["identity"], reason="left", ts=start + 1790)
            )
        await log.recorder(SessionEnded(room, started_at=start, ts=start + 1800))
        [summary, *_] = await log.sessions.of_pair(pair["id"])
        return summary.session.id


@pytest.fixture
async def target(
    aiohttp_server: Any, make_settings: Callable[..., Settings], database_url: str
) -> AsyncIterator[Target]:
    # Wrong credentials are the point here: the per-address failure limit must not hide them.
    settings = make_settings(database_url=database_url, auth_failures_per_minute=1_000_000)
    server = await aiohttp_server(create_app(settings))
    async with aiohttp.ClientSession() as http:
        yield Target(
            str(server.make_url("")).rstrip("/"), ServerParts(server.app), http, server.app
        )
