"""Screen share in Chromium: one page shares a (fake) screen, the other shows it large.

The sharer's Chromium picks its capture source by itself
(`--auto-select-desktop-capture-source`) and grants without a prompt
(`--use-fake-ui-for-media-stream`); the capture is Chromium's fake one. The other page
must decode the share as a second video, apart from the sharer's camera tile, and take
it away when sharing stops.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import BrowserContext, async_playwright, expect

from server.media.aiortc_internals import DirectReceive, LayeredVideoBuffer
from server.media.aiortc_internals.base import JITTER_ATTR
from tests.e2e.conftest import GRANTING_FLAGS, OpenPage, RoomPage
from tests.support.services import require_program

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SHARING_FLAGS = [
    *GRANTING_FLAGS,
    "--auto-select-desktop-capture-source=Entire screen",
    "--enable-usermedia-screen-capturing",
]

FRAMES = "(el) => el.getVideoPlaybackQuality().totalVideoFrames"

# A server event handed to the page's socket listeners, as if the server had sent it.
DELIVER = """([event, payload]) => {
    for (const listener of window.pairwiseDebug.room.socket.socket.listeners(event)) listener(payload);
}"""


@pytest.fixture
async def sharing_context() -> AsyncIterator[BrowserContext]:
    executable = require_program("chromium", "/usr/bin/chromium")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=SHARING_FLAGS)
        yield await browser.new_context(viewport={"width": 1280, "height": 800})
        await browser.close()


def new_connections(earlier: weakref.WeakSet[DirectReceive]) -> list[DirectReceive]:
    return [d for d in gc.get_objects() if isinstance(d, DirectReceive) and d not in earlier]


def share_of(page: RoomPage, identity: str) -> Any:
    return page.page.locator(f'#screens .screen-share[data-identity="{identity}"]')


async def decoding(page: RoomPage, video: Any, more_than: int = 10) -> int:
    """Wait until `video` has shown more than `more_than` frames; returns the count."""
    for _ in range(200):
        frames = int(await video.evaluate(FRAMES))
        if frames > more_than:
            return frames
        await page.page.wait_for_timeout(100)
    raise AssertionError(f"the video showed only {frames} frames")


async def test_a_shared_screen_is_shown_large_to_the_other_and_goes_when_stopped(
    open_page: OpenPage, sharing_context: BrowserContext
) -> None:
    # connections of earlier tests in this process may still be in memory: not counted
    earlier = weakref.WeakSet(d for d in gc.get_objects() if isinstance(d, DirectReceive))
    ada = await open_page("ada", role="mentor", context=sharing_context)
    bo = await open_page("bo", diag=("debug-handle",))
    await expect(bo.tile("ada")).to_have_class("tile has-video", timeout=15_000)
    # Ada's camera decoded at bo before the share starts: the tile's class comes with the
    # track, not its first frame, and in a full CI run (2026-12-04) the camera had shown
    # none yet by the time the share had shown ten.
    camera = bo.tile("ada").locator("video")
    await decoding(bo, camera)
    routes = {d: d.fast.routes for d in new_connections(earlier)}

    share = ada.page.get_by_role("button", name="Share screen")
    await share.click()
    await expect(ada.page.get_by_role("button", name="Stop sharing")).to_be_visible()

    shown = share_of(bo, "ada")
    await expect(shown).to_be_visible(timeout=15_000)
    await expect(shown).to_contain_text("Ada is sharing their screen")
    video = shown.locator("video")
    await decoding(bo, video)
    width = await video.evaluate("(el) => el.videoWidth")
    camera_width = await camera.evaluate("(el) => el.videoWidth")
    assert width > 0 and camera_width > 0
    # The SFU (in this process) takes the share, one VP8 stream, from the datagram to the
    # frame in C (`tap_video`): one more route on ada's connection, and its one layer
    # buffer has counted the share's packets.
    grown = [d for d, n in routes.items() if d.fast.routes == n + 1]
    assert len(grown) == 1, [(n, d.fast.routes) for d, n in routes.items()]
    shares = [
        buffer
        for receiver in grown[0].receivers
        if isinstance(buffer := getattr(receiver, JITTER_ATTR), LayeredVideoBuffer)
        and buffer._replace
        and len(buffer.layers) == 1
    ]
    # the share (and the camera: Chromium sends this small one without simulcast)
    assert shares, "no single-stream video on ada's connection"
    assert max(layer.packets_received for b in shares for layer in b.layers.values()) > 50
    # The camera tile still shows the camera: its video keeps playing beside the share.
    before = int(await camera.evaluate(FRAMES))
    await decoding(bo, camera, before + 10)

    # The SFU pauses the share to bo alone (bo's link cannot carry it: downlink_pause.py):
    # its place says why instead of a frozen picture, the camera tile is not touched, and
    # it shows again when resumed. (The event reaches the page's own socket listeners as
    # the server's would: this test has no handle on the server.)
    paused = {"identity": "ada", "source": "screen", "paused": True, "reason": "bandwidth"}
    await bo.evaluate(DELIVER, ["media_paused", paused])
    await expect(shown.locator(".screen-state")).to_have_text("Paused: your connection is slow")
    await expect(video).to_be_hidden()
    await expect(shown).to_have_attribute(
        "aria-label", "Ada is sharing their screen, paused for your connection"
    )
    await expect(bo.tile("ada")).to_have_attribute("data-video", "playing")
    await bo.evaluate(DELIVER, ["media_paused", {**paused, "paused": False}])
    await expect(video).to_be_visible()
    await expect(shown.locator(".screen-state")).to_be_hidden()

    await ada.page.get_by_role("button", name="Stop sharing").click()
    await expect(shown).to_have_count(0, timeout=15_000)
    await expect(ada.page.get_by_role("button", name="Share screen")).to_be_visible()
    before = int(await camera.evaluate(FRAMES))
    await decoding(bo, camera, before + 10)


async def ada_shares_to_bo(
    open_page: OpenPage, context: BrowserContext
) -> tuple[RoomPage, RoomPage]:
    """Ada (in `context`, which can share) shares her screen; bo's page decodes it."""
    ada = await open_page("ada", role="mentor", context=context, diag=("debug-handle",))
    bo = await open_page("bo", diag=("debug-handle",))
    await expect(bo.tile("ada")).to_have_class("tile has-video", timeout=15_000)
    await ada.page.get_by_role("button", name="Share screen").click()
    await expect(share_of(bo, "ada")).to_be_visible(timeout=15_000)
    await decoding(bo, share_of(bo, "ada").locator("video"))
    return ada, bo


# Whether ada's screen sender has her shared track (replaceTrack settles a moment later).
SENDS_SCREEN = "(on) => Boolean(window.pairwiseDebug.room.media.senders.screen?.track) === on"


async def test_a_share_paused_by_audio_only_says_why_and_comes_back(
    open_page: OpenPage, sharing_context: BrowserContext
) -> None:
    ada, bo = await ada_shares_to_bo(open_page, sharing_context)
    shown = share_of(bo, "ada")
    video = shown.locator("video")
    state = shown.locator(".screen-state")

    # Bo chooses audio only: the SFU sends him no video, the share included. Its place
    # says so (not a still picture), with the way back.
    await bo.page.get_by_role("button", name="Audio only").click()
    await expect(state).to_be_visible()
    await expect(state).to_contain_text("Paused: you chose audio only")
    await expect(video).to_be_hidden()
    await expect(shown).to_have_attribute(
        "aria-label", "Ada is sharing their screen, paused, you chose audio only"
    )
    await state.get_by_role("button", name="Turn video back on").click()
    await expect(state).to_be_hidden()
    await expect(video).to_be_visible()
    await decoding(bo, video, int(await video.evaluate(FRAMES)) + 10)
    await expect(bo.page.get_by_role("button", name="Audio only")).to_have_attribute(
        "aria-pressed", "false"
    )

    # Ada chooses audio only: the SFU holds her share with her camera, and her page stops
    # sending it. Bo's page says whose share is paused and why; hers says it is not shared
    # (she still shares: "Stop sharing" stays, and her video back sends it again).
    await ada.page.wait_for_function(SENDS_SCREEN, arg=True)
    await ada.page.get_by_role("button", name="Audio only").click()
    await expect(state).to_have_text("Ada's share is paused (audio only)")
    await expect(video).to_be_hidden()
    notice = ada.page.locator("#screens .screen-notice")
    await expect(notice).to_be_visible()
    await expect(notice).to_contain_text(
        "Your screen is not being shared while you are in audio only."
    )
    await expect(ada.page.get_by_role("button", name="Stop sharing")).to_be_visible()
    await ada.page.wait_for_function(SENDS_SCREEN, arg=False, timeout=10_000)
    await notice.get_by_role("button", name="Turn video back on").click()
    await expect(notice).to_have_count(0)
    await expect(state).to_be_hidden()
    await expect(video).to_be_visible()
    await decoding(bo, video, int(await video.evaluate(FRAMES)) + 10)
    await ada.page.wait_for_function(SENDS_SCREEN, arg=True, timeout=10_000)


# Records which element picture-in-picture and full screen were asked for (headless
# Chromium opens no picture-in-picture window): "share" for the shared screen's figure or
# video, "tile:<identity>" for a camera tile's video.
RECORD = """() => {
    window.asked = [];
    const what = (el) => el.closest(".screen-share") ? `share:${el.tagName.toLowerCase()}`
        : `tile:${el.closest(".tile")?.dataset.identity}`;
    Object.defineProperty(document, "pictureInPictureEnabled", { get: () => true });
    HTMLVideoElement.prototype.requestPictureInPicture = function () {
        window.asked.push(`pip ${what(this)}`);
        return Promise.resolve({});
    };
    const full = Element.prototype.requestFullscreen;
    Element.prototype.requestFullscreen = function (...args) {
        window.asked.push(`fullscreen ${what(this)}`);
        return full.apply(this, args);
    };
}"""


async def asked(page: RoomPage, count: int) -> list[str]:
    """What the page has asked for (RECORD), once it has asked `count` things."""
    await page.page.wait_for_function("(n) => window.asked.length >= n", arg=count, timeout=10_000)
    return list(await page.evaluate("() => window.asked"))


async def test_picture_in_picture_and_full_screen_show_the_share(
    open_page: OpenPage, sharing_context: BrowserContext
) -> None:
    ada, bo = await ada_shares_to_bo(open_page, sharing_context)
    shown = share_of(bo, "ada")
    await bo.evaluate(RECORD)

    # P (the shortcut) floats the share, not ada's camera tile.
    await bo.evaluate("() => document.activeElement.blur()")
    await bo.page.keyboard.press("p")
    assert await asked(bo, 1) == ["pip share:video"]

    # Full screen by the keyboard: Tab reaches the share's button, Enter takes the share
    # full screen (its figure: the caption and a paused state go with it), and back.
    await bo.evaluate("() => { window.asked.length = 0; }")
    full = shown.get_by_role("button", name="Full screen")
    await bo.page.locator("body").focus()
    for _ in range(40):
        if await full.evaluate("(el) => el === document.activeElement"):
            break
        await bo.page.keyboard.press("Tab")
    else:
        raise AssertionError("Tab never reached the share's Full screen button")
    await bo.page.keyboard.press("Enter")
    assert await asked(bo, 1) == ["fullscreen share:figure"]
    exit_full = shown.get_by_role("button", name="Exit full screen")
    await expect(exit_full).to_be_visible()
    await exit_full.press("Enter")
    await expect(full).to_be_visible()
    assert await bo.evaluate("() => document.fullscreenElement") is None

    # A double-click on the share does the same.
    await shown.locator("video").dblclick()
    assert await asked(bo, 2) == ["fullscreen share:figure", "fullscreen share:figure"]


# As RECORD, for a window that stays open: what picture-in-picture shows ("share", or
# "tile:<identity>" for a camera tile's video), each time it is asked to show something.
FLOATING = """() => {
    window.floated = [];
    let floating = null;
    const what = (el) => el.closest(".screen-share") ? "share" : `tile:${el.closest(".tile")?.dataset.identity}`;
    Object.defineProperty(document, "pictureInPictureEnabled", { get: () => true });
    Object.defineProperty(document, "pictureInPictureElement", { get: () => floating });
    HTMLVideoElement.prototype.requestPictureInPicture = function () {
        floating = this;
        window.floated.push(what(this));
        return Promise.resolve({});
    };
}"""


async def floated(page: RoomPage, count: int) -> list[str]:
    """What picture-in-picture was asked to show (FLOATING), once asked `count` times."""
    await page.page.wait_for_function(
        "(n) => window.floated.length >= n", arg=count, timeout=15_000
    )
    return list(await page.evaluate("() => window.floated"))


async def test_picture_in_picture_open_before_a_share_follows_it_and_comes_back(
    open_page: OpenPage, sharing_context: BrowserContext
) -> None:
    """Bo floats Ada's camera; Ada starts sharing: the window shows the share (what the
    room features now), with no click; she stops: it shows her camera again. Before, the
    window kept the camera through the whole share."""
    ada = await open_page("ada", role="mentor", context=sharing_context)
    bo = await open_page("bo", diag=("debug-handle",))
    await expect(bo.tile("ada")).to_have_class("tile has-video", timeout=15_000)
    await bo.evaluate(FLOATING)
    await bo.evaluate("() => document.activeElement.blur()")
    await bo.page.keyboard.press("p")
    assert await floated(bo, 1) == ["tile:ada"]

    await ada.page.get_by_role("button", name="Share screen").click()
    await expect(share_of(bo, "ada")).to_be_visible(timeout=15_000)
    assert await floated(bo, 2) == ["tile:ada", "share"]

    await ada.page.get_by_role("button", name="Stop sharing").click()
    assert await floated(bo, 3) == ["tile:ada", "share", "tile:ada"]
    await expect(share_of(bo, "ada")).to_have_count(0)
    await expect(bo.page.locator("#screens")).to_be_hidden()
