"""A camera or microphone refused mid-call (issue 14), in real Chromium.

The fault: bo's permission for the device is taken back mid-call with CDP
`Browser.setPermission` (as a person does from the address bar). Bo's Chromium runs
without the fake-UI flag, so its permissions are real (granted to the page up front):
revoking one ends the tracks of that capture (Chromium ends the camera and microphone of
one getUserMedia call together, as it does when a device is unplugged mid-capture) and
getUserMedia for that kind is refused until it is allowed again. The page asks for each
kind on its own, carries on at the best rung the devices allow, and climbs back once the
permission comes back, with no click. Both pages are checked from getStats.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.e2e.conftest import Launcher, OpenPage, RoomPage
from tests.e2e.test_continuity import DEBUG, both_decode, decodes, make_pair, timeline

pytestmark = [pytest.mark.slow, pytest.mark.browser]

# Audio packets bo's microphone sends that reach ada (inbound-rtp packetsReceived; a
# receiver conceals with samples of its own when packets stop, so samples would not tell).
AUDIO_PACKETS = """({key, packets}) => {
    if (!window.__audioSampler) {
        window.__audioPackets = 0;
        window.__audioSampler = setInterval(async () => {
            const pc = window.pairwiseDebug?.room.media.pc;
            if (!pc) return;
            let n = 0;
            (await pc.getStats()).forEach((s) => {
                if (s.type === "inbound-rtp" && s.kind === "audio") n += s.packetsReceived || 0;
            });
            window.__audioPackets = n;
        }, 200);
    }
    window.__audioBase = window.__audioBase || {};
    if (!window.__audioPackets) return false;
    if (!(key in window.__audioBase)) window.__audioBase[key] = window.__audioPackets;
    return window.__audioPackets - window.__audioBase[key] >= packets;
}"""


async def hears(person: RoomPage, key: str, timeout_s: float, packets: int = 50) -> None:
    """Wait until `person` receives `packets` more audio packets (Opus: 50 a second)."""
    await person.page.wait_for_function(
        AUDIO_PACKETS, arg={"key": key, "packets": packets}, polling=250, timeout=timeout_s * 1000
    )


async def set_permission(page: Page, name: str, setting: str, origin: str) -> None:
    """CDP Browser.setPermission for this page's browser context only."""
    target = await (await page.context.new_cdp_session(page)).send("Target.getTargetInfo")
    browser = page.context.browser
    assert browser is not None
    session = await browser.new_browser_cdp_session()
    await session.send(
        "Browser.setPermission",
        {
            "permission": {"name": name},
            "setting": setting,
            "origin": origin,
            "browserContextId": target["targetInfo"]["browserContextId"],
        },
    )


async def call_with_real_permissions(
    open_page: OpenPage, launcher: Launcher, base_url: str, room: str
) -> tuple[RoomPage, RoomPage]:
    ada = await open_page("ada", role="mentor", room=room, diag=DEBUG)
    context = await launcher.context(camera_allowed=False, viewport={"width": 1280, "height": 800})
    await context.grant_permissions(["camera", "microphone"], origin=base_url)
    bo = await open_page("bo", room=room, diag=DEBUG, context=context)
    await expect(ada.badge("bo")).to_have_text("Video")
    await both_decode(ada, bo, 20)
    return ada, bo


def bo_steps(entries: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["kind"], e["detail"]) for e in entries if e["identity"] == "bo"]


async def test_camera_refused_mid_call_then_allowed_again(
    open_page: OpenPage, launcher: Launcher, base_url: str
) -> None:
    """Bo's camera permission is taken back mid-call: bo goes to audio only (ada hears him
    and sees "Video paused"; bo still sees ada); allowed again, both decode each other's
    video within 15 s. The log shows video→audio for `camera_unavailable` and back."""
    pair_id = await make_pair(base_url, "pair-cam")
    ada, bo = await call_with_real_permissions(open_page, launcher, base_url, "pair-cam")

    await set_permission(bo.page, "camera", "denied", base_url)
    await expect(ada.badge("bo")).to_have_text("Audio only")
    await expect(ada.tile("bo").locator(".tile-state")).to_have_text("Video paused")
    await expect(bo.page.locator("#banner")).to_contain_text("Your camera stopped")
    await hears(ada, "camera-refused", 10)  # bo's microphone was asked for again on its own
    await decodes(bo, "ada", 10)

    await set_permission(bo.page, "camera", "granted", base_url)
    await both_decode(ada, bo, 15)
    await expect(ada.badge("bo")).to_have_text("Video")
    await expect(ada.tile("bo").locator(".tile-state")).to_be_hidden()
    steps = bo_steps(await timeline(base_url, pair_id))
    assert ("media_mode", "video→audio: camera_unavailable") in steps, steps
    assert steps[-1] == ("media_mode", "audio→video: camera_available"), steps


async def test_microphone_refused_mid_call_then_allowed_again(
    open_page: OpenPage, launcher: Launcher, base_url: str
) -> None:
    """Bo's microphone permission is taken back mid-call. Chromium ends the camera with
    it; the page gets the camera back on its own, so the best rung is still video: ada
    keeps decoding bo's video and no audio arrives. Allowed again, ada hears bo within
    10 s and both still decode each other. No rung changed, so the log holds no step
    down and no failure for bo (a lost microphone is not a fallback)."""
    pair_id = await make_pair(base_url, "pair-mic")
    ada, bo = await call_with_real_permissions(open_page, launcher, base_url, "pair-mic")
    await hears(ada, "before", 10)

    await set_permission(bo.page, "microphone", "denied", base_url)
    await expect(bo.page.get_by_role("button", name="Unmute")).to_be_visible()
    await both_decode(ada, bo, 10)  # the camera came back at once, on the same sender
    silent = await ada.evaluate("() => window.__audioPackets")
    await decodes(ada, "bo", 5, frames=40)  # two seconds of video later, still no audio
    assert await ada.evaluate("() => window.__audioPackets") - silent < 10

    await set_permission(bo.page, "microphone", "granted", base_url)
    await hears(ada, "allowed-again", 10)
    await both_decode(ada, bo, 10)
    await expect(ada.badge("bo")).to_have_text("Video")
    steps = bo_steps(await timeline(base_url, pair_id))
    assert not [s for s in steps if s[0] in ("media_mode", "media_failed")][1:], steps
