"""Audio and video through the SFU in real browsers with fake camera and microphone."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import expect

from tests.e2e.conftest import OpenPage, RoomPage, chat_both_ways, publish_screenshot

pytestmark = [pytest.mark.slow, pytest.mark.browser]

INBOUND = """async () => {
    const pc = window.pairwiseDebug.room.media.pc;
    const totals = {frames: 0, samples: 0};
    if (!pc) return totals;
    (await pc.getStats()).forEach((s) => {
        if (s.type !== "inbound-rtp") return;
        if (s.kind === "video") totals.frames += s.framesDecoded || 0;
        if (s.kind === "audio") totals.samples += s.totalSamplesReceived || 0;
    });
    return totals;
}"""


async def receiving(person: RoomPage, seconds: float = 10) -> dict[str, int]:
    """Wait until video frames and audio samples keep arriving; return how many grew by."""
    first = await person.evaluate(INBOUND)
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        await asyncio.sleep(1)
        now = await person.evaluate(INBOUND)
        grown = {k: now[k] - first[k] for k in now}
        if (
            grown["frames"] > 0 and grown["samples"] > 0
        ) or asyncio.get_running_loop().time() > deadline:
            return grown


async def test_two_people_see_and_hear_each_other(open_page: OpenPage) -> None:
    ada = await open_page("ada", role="mentor", diag=("debug-handle",))
    bo = await open_page("bo", diag=("debug-handle",))
    for person, other in ((ada, "bo"), (bo, "ada")):
        await expect(person.badge(other)).to_have_text("Video")
        await expect(person.tile(other)).to_have_class("tile has-video")
    for person in (ada, bo):
        grown = await receiving(person)
        assert grown["frames"] > 0 and grown["samples"] > 0, (person.identity, grown)
    playing = await bo.evaluate("""() => {
        const v = document.querySelector('.tile[data-identity="ada"] video');
        return {paused: v.paused, width: v.videoWidth, time: v.currentTime};
    }""")
    assert not playing["paused"] and playing["width"] > 0, playing

    await chat_both_ways(ada, bo, "Can you hear me?", "Loud and clear")

    # Muting shows on the other side's tile.
    await ada.page.get_by_role("button", name="Mute").click()
    await expect(bo.tile("ada").locator(".mic")).to_have_text("Muted")

    await expect(ada.tile("bo").locator(".quality")).not_to_have_attribute(
        "data-quality", "unknown"
    )
    path = await ada.screenshot("room-two-videos")
    publish_screenshot(path, "room.png")
