"""UDP blocked from the start (issue 14), with bo's Chromium in a network namespace whose
nftables drop all UDP before the page opens (tests/support/netns.py; the socket over TCP
works). Ada's Chromium stays on this machine.

- With coturn offering TURN over TCP (`turn:…?transport=tcp`, started by the test on the
  host end of the veth pair, tests/reliability/test_turn.py): bo's media goes through
  TURN over TCP and both decode each other's video.
- With no TURN: bo joins in text and keeps trying in the background; once UDP is allowed
  again both decode each other's video, with no click.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from server.app import create_app
from server.config import Settings
from tests.e2e.conftest import Launcher, OpenPage, RoomPage
from tests.e2e.test_continuity import DEBUG, both_decode, make_pair, timeline
from tests.e2e.test_network_faults import bo_in_namespace
from tests.reliability.test_turn import SECRET, SELECTED_PAIR, Turn, turn  # noqa: F401 - fixture
from tests.support.netns import TestHost, create_test_host

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture
async def test_host() -> AsyncIterator[TestHost]:
    host = create_test_host()
    host.block_udp()  # from the start: before any browser or server exists
    try:
        yield host
    finally:
        host.remove()


@pytest.fixture
def server_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
async def server_port(aiohttp_server: Any, server_settings: Settings) -> int:
    """The server on every interface, so the namespace reaches it over the veth pair."""
    server = await aiohttp_server(create_app(server_settings), host="0.0.0.0")
    return int(server.port)


@pytest.fixture
def base_url(server_port: int) -> str:
    return f"http://127.0.0.1:{server_port}"


async def selected_pair(person: RoomPage, timeout_s: float = 15) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while (selected := await person.evaluate(SELECTED_PAIR)) is None:
        assert loop.time() < deadline, await person.evaluate("() => window.pairwiseDebug.state()")
        await asyncio.sleep(0.5)
    return dict(selected)


class TestTurnOverTcp:
    @pytest.fixture
    def server_settings(
        self,
        make_settings: Callable[..., Settings],
        turn: Turn,  # noqa: F811 - the fixture imported above
    ) -> Settings:
        return make_settings(
            ice_servers=[f"turn:{turn.ip}:{turn.port}?transport=tcp"], turn_secret=SECRET
        )

    async def test_udp_blocked_from_the_start_goes_through_turn_over_tcp(
        self,
        open_page: OpenPage,
        launcher: Launcher,
        test_host: TestHost,
        turn: Turn,  # noqa: F811 - the fixture imported above
        server_port: int,
        base_url: str,
        tmp_path: Path,
    ) -> None:
        """Bo's network drops every UDP packet from the start; the server hands out coturn
        over TCP. Bo's media goes through TURN over TCP (his selected candidate is a relay
        reached over TCP) and both decode each other's video; bo is on video in the log."""
        pair_id = await make_pair(base_url, "pair-tcp")
        ada = await open_page("ada", role="mentor", room="pair-tcp", diag=DEBUG)
        bo = await bo_in_namespace(
            open_page, launcher, test_host, server_port, tmp_path, "pair-tcp"
        )
        await both_decode(ada, bo, 25)
        await expect(ada.badge("bo")).to_have_text("Video")
        selected = await selected_pair(bo)
        assert selected["local"] == "relay" and selected["relayProtocol"] == "tcp", selected
        await turn.wait_logged("incoming packet ALLOCATE processed, success")
        steps = [e["detail"] for e in await timeline(base_url, pair_id) if e["identity"] == "bo"]
        assert steps[-1].endswith("→video: connected") or steps[-1].startswith("audio→video"), steps


async def test_udp_blocked_from_the_start_without_turn_is_text_then_video(
    open_page: OpenPage,
    launcher: Launcher,
    test_host: TestHost,
    server_port: int,
    base_url: str,
    tmp_path: Path,
) -> None:
    """Bo's network drops every UDP packet from the start and there is no TURN: bo is in
    text (ada's badge says so) and keeps trying; once UDP is allowed again, both decode
    each other's video within 15 s, with no click. The log shows bo's way up."""
    pair_id = await make_pair(base_url, "pair-noturn")
    ada = await open_page("ada", role="mentor", room="pair-noturn", diag=DEBUG)
    bo = await bo_in_namespace(open_page, launcher, test_host, server_port, tmp_path, "pair-noturn")
    await expect(ada.badge("bo")).to_have_text("Text chat", timeout=20_000)
    # Bo joins before his pre-join check has its answer (12 s), so his ladder is the check:
    # video, video again, audio (~3.5 s each), then text.
    await expect(bo.page.locator("#banner")).to_contain_text(
        "keeps trying in the background", timeout=20_000
    )
    await asyncio.to_thread(test_host.heal)

    await both_decode(ada, bo, 15)
    await expect(ada.badge("bo")).to_have_text("Video")
    steps = [
        (e["kind"], e["detail"]) for e in await timeline(base_url, pair_id) if e["identity"] == "bo"
    ]
    assert ("joined", "text") in steps, steps
    assert steps[-1][0] == "media_mode" and steps[-1][1].startswith("text→video"), steps
