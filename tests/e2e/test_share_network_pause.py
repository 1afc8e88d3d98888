"""A shared screen held by the network, in Chromium: the sharer's browser lives in a
network namespace (tests/support/netns.py) whose UDP loses 40 % of its packets on the
wire, both ways, while the socket (TCP) goes on.

The server steps the sharer down to audio only (the loss, or video frames that no longer
complete), the SFU holds the share with the camera, and the sharer's page stops sending
it. Before, her page said "Your screen is not being shared while you are in audio only.
It is shared again when your video is back on.", words for her own choice, with nothing
saying the network did it or that it comes back without her.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, async_playwright, expect

from tests.e2e.conftest import OpenPage
from tests.e2e.room_checks import axe_violations

# The fixtures of the server on every interface (the namespace reaches it over the veth).
from tests.e2e.test_network_faults import base_url as base_url
from tests.e2e.test_network_faults import server as server
from tests.e2e.test_network_faults import server_port as server_port
from tests.e2e.test_screenshare import FRAMES, SENDS_SCREEN, SHARING_FLAGS, decoding, share_of
from tests.support.netns import TestHost
from tests.support.services import require_program

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture
def origin(server_port: int, test_host: TestHost) -> str:
    """Where the namespace's browser reaches the server."""
    return f"http://{test_host.host_ip}:{server_port}"


@pytest.fixture
async def sharing_context_in_namespace(
    test_host: TestHost, origin: str, tmp_path: Path
) -> AsyncIterator[BrowserContext]:
    """A Chromium in the namespace that shares its fake screen without a prompt, and
    takes the server's plain-HTTP address as secure (for the camera and the screen)."""
    chromium = require_program("chromium", "/usr/bin/chromium")
    script = tmp_path / "chromium-in-namespace"
    script.write_text(f'#!/bin/sh\nexec ip netns exec {test_host.name} {chromium} "$@"\n')
    script.chmod(0o755)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(script),
            args=[*SHARING_FLAGS, f"--unsafely-treat-insecure-origin-as-secure={origin}"],
        )
        yield await browser.new_context(viewport={"width": 1280, "height": 800})
        await browser.close()


async def test_a_share_held_by_a_network_step_down_says_so_and_comes_back_by_itself(
    open_page: OpenPage,
    sharing_context_in_namespace: BrowserContext,
    origin: str,
    test_host: TestHost,
) -> None:
    """Ada shares; her UDP loses 40 %: she is stepped down to audio only. Her page says it
    is her connection and that the share comes back by itself, with no button (Turn video
    back on is for her own choice); Bo's says her share is paused. The loss stops: Ada is
    back on video with no click, her page sends the share again, and Bo decodes it."""
    ada = await open_page(
        "ada",
        role="mentor",
        context=sharing_context_in_namespace,
        origin=origin,
        diag=("debug-handle",),
    )
    bo = await open_page("bo", diag=("debug-handle",))
    await expect(bo.tile("ada")).to_have_class("tile has-video", timeout=20_000)
    await ada.page.get_by_role("button", name="Share screen").click()
    shown = share_of(bo, "ada")
    video = shown.locator("video")
    await expect(shown).to_be_visible(timeout=15_000)
    await decoding(bo, video)
    await ada.page.wait_for_function(SENDS_SCREEN, arg=True, timeout=10_000)

    test_host.nft("meta l4proto udp numgen random mod 100 < 40 drop")
    await expect(shown.locator(".screen-state")).to_have_text(
        "Ada's share is paused (audio only)", timeout=30_000
    )
    notice = ada.page.locator("#screens .screen-notice")
    await expect(notice).to_contain_text("your connection is too weak for it")
    await expect(notice).to_contain_text(
        "It is shared again by itself when your connection allows."
    )
    await expect(notice.get_by_role("button")).to_have_count(0)
    await expect(ada.page.get_by_role("button", name="Stop sharing")).to_be_visible()
    await ada.page.wait_for_function(SENDS_SCREEN, arg=False, timeout=10_000)
    assert await axe_violations(ada.page, "share held for the network") == []

    test_host.heal()
    await expect(notice).to_have_count(0, timeout=40_000)
    await expect(shown.locator(".screen-state")).to_be_hidden(timeout=20_000)
    await expect(video).to_be_visible()
    await decoding(bo, video, int(await video.evaluate(FRAMES)) + 10)
    await ada.page.wait_for_function(SENDS_SCREEN, arg=True, timeout=10_000)
