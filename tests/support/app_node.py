"""One in-process server as the meetings and webhooks tests drive it: its test client, its
services, the jobs' injected clock, and calls as a pair member."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from aiohttp.test_utils import TestClient

from server.jobs.clock import ManualClock
from tests.support.parts import ServerParts


@dataclass
class AppNode:
    client: TestClient
    services: ServerParts
    clock: ManualClock

    OK: ClassVar[tuple[int, ...]] = (200, 201)  # what `ok` accepts

    async def run_jobs(self) -> int:
        assert self.services.jobs is not None
        return await self.services.jobs.run_due()

    def member(self, room: str, identity: str, role: str = "mentee") -> dict[str, str]:
        token = self.services.tokens.issue(room, identity, identity.title(), role)[0]  # type: ignore[arg-type]
        return {"Authorization": f"Bearer {token}"}

    async def call(
        self, method: str, path: str, headers: dict[str, str], body: Any = None
    ) -> tuple[int, Any]:
        resp = await self.client.request(method, path, headers=headers, json=body)
        if resp.content_type == "application/json":
            return resp.status, await resp.json()
        return resp.status, await resp.text()

    async def ok(self, method: str, path: str, headers: dict[str, str], body: Any = None) -> Any:
        status, payload = await self.call(method, path, headers, body)
        assert status in self.OK, (status, payload)
        return payload
