"""The server's side goes away mid-call (issue 14), with two real Chromium participants.

- The SFU closes its side of one participant's PeerConnection without a word
  (`Sfu.disconnect` on the in-process server: the page only sees DTLS close and the
  connection `closed`): the page must notice and rebuild on its own.
- The server process is restarted (a real `python -m server serve` subprocess stopped
  with SIGTERM, as a deploy does, and started again on the same port and data folder):
  both pages must come back to video by themselves.
Each test asserts from getStats that both decode each other's video again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from server.app import create_app
from server.config import Settings
from tests.e2e.conftest import OpenPage
from tests.e2e.test_continuity import both_decode, call, call_of_two, make_pair, timeline
from tests.support.parts import ServerParts
from tests.support.process import ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def bo_steps(entries: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["kind"], e["detail"]) for e in entries if e["identity"] == "bo"]


class TestSfuClosesItsSide:
    @pytest.fixture
    async def served(self, aiohttp_server: Any, make_settings: Callable[..., Settings]) -> Any:
        return await aiohttp_server(create_app(make_settings()))

    @pytest.fixture
    def base_url(self, served: Any) -> str:
        return str(served.make_url("")).rstrip("/")

    async def test_the_page_rebuilds_when_the_sfu_closes_its_peer(
        self, open_page: OpenPage, served: Any, base_url: str
    ) -> None:
        """The SFU closes bo's PeerConnection and tells nobody: bo's page sees its
        connection closed, rebuilds it with `media_reconnect`, and both decode each other
        again within 10 s; the log shows the reconnect with its reason."""
        pair_id = await make_pair(base_url, "pair-sfu")
        ada, bo = await call_of_two(open_page, "pair-sfu")
        assert await ServerParts(served.app).sfu.disconnect("pair-sfu", "bo")
        await both_decode(ada, bo, 10)
        await expect(ada.badge("bo")).to_have_text("Video")
        steps = bo_steps(await timeline(base_url, pair_id))
        assert ("reconnected", "media: connection_closed") in steps, steps


class TestServerRestart:
    @pytest.fixture
    def server(self, tmp_path: Path) -> Iterator[ServerProcess]:
        server = ServerProcess(tmp_path / "server").start(timeout=90)
        try:
            yield server
        finally:
            server.stop()

    @pytest.fixture
    def base_url(self, server: ServerProcess) -> str:
        return server.url

    async def test_both_back_on_video_after_a_server_restart(
        self, open_page: OpenPage, server: ServerProcess
    ) -> None:
        """The server process is stopped (SIGTERM) mid-call and started again: both
        pages reconnect their sockets, rejoin and rebuild media with no click, and decode
        each other's video within 20 s of the server answering again. The log (kept in
        the data folder across the restart) shows both back in the room on video."""
        pair_id = await make_pair(server.url, "pair-restart")
        ada, bo = await call_of_two(open_page, "pair-restart")
        await bo.say("before the restart")
        await expect(ada.message("before the restart")).to_be_visible()
        await asyncio.to_thread(server.stop)
        await expect(ada.tile("bo")).not_to_have_class("tile has-video")
        await asyncio.to_thread(server.start, 90)

        await both_decode(ada, bo, 20)
        for person, other in ((ada, "bo"), (bo, "ada")):
            await expect(person.badge(other)).to_have_text("Video")
        await bo.say("after the restart")
        await expect(ada.message("after the restart")).to_be_visible()
        await expect(ada.message("before the restart")).to_have_count(1)
        # The restart ended the open session (both left, disconnected) and the rejoin
        # started the next one (the list is newest first), where both are back on video.
        listed = await asyncio.to_thread(call, f"{server.url}/api/v1/pairs/{pair_id}/sessions")
        after, before = [
            await asyncio.to_thread(call, f"{server.url}/api/v1/pairs/{pair_id}/sessions/{s['id']}")
            for s in listed["sessions"][:2]
        ]
        ended = [(e["kind"], e["identity"], e["detail"]) for e in before["timeline"][-3:]]
        assert ended[-1][0] == "ended", ended
        assert {("left", w, "disconnected") for w in ("ada", "bo")} <= set(ended), ended
        for who in ("ada", "bo"):
            mine = [(e["kind"], e["detail"]) for e in after["timeline"] if e["identity"] == who]
            assert mine[0] == ("joined", "text"), mine
            assert mine[-1][0] == "media_mode" and mine[-1][1].startswith("text→video: "), mine
