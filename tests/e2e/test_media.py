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


# Frames decoded so far on each other participant's tile: the inbound-rtp stats of the
# video track that tile actually shows, keyed by the tile's identity.
TILE_FRAMES = """async () => {
    const media = window.pairwiseDebug.room.media;
    const decoded = new Map();
    if (media.pc) (await media.pc.getStats()).forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "video") {
            decoded.set(s.trackIdentifier, s.framesDecoded || 0);
        }
    });
    const tiles = {};
    for (const tile of document.querySelectorAll(".tile")) {
        const track = tile.querySelector("video").srcObject?.getVideoTracks()[0];
        if (tile.dataset.identity !== media.me) {
            tiles[tile.dataset.identity] = track ? (decoded.get(track.id) ?? null) : null;
        }
    }
    return tiles;
}"""


async def tile_frames_growth(
    person: RoomPage, identities: list[str], grows: bool = True, seconds: float = 15
) -> dict[str, int]:
    """Frames each tile decoded over a couple of seconds; with `grows`, wait until every
    named tile shows new frames (or `seconds` pass)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        first = await person.evaluate(TILE_FRAMES)
        await asyncio.sleep(1.5)
        now = await person.evaluate(TILE_FRAMES)
        grown = {
            who: (now.get(who) or 0) - (first.get(who) or 0)
            for who in identities
            if now.get(who) is not None and first.get(who) is not None
        }
        done = len(grown) == len(identities) and all(v > 0 for v in grown.values())
        if not grows or done or asyncio.get_running_loop().time() > deadline:
            return grown


async def test_three_people_each_see_both_others_on_the_right_tiles(open_page: OpenPage) -> None:
    people = {
        "ada": await open_page("ada", role="mentor", diag=("debug-handle",)),
        "bo": await open_page("bo", diag=("debug-handle",)),
        "carol": await open_page("carol", diag=("debug-handle",)),
    }
    for identity, person in people.items():
        others = [who for who in people if who != identity]
        for other in others:
            await expect(person.tile(other)).to_have_class("tile has-video")
        grown = await tile_frames_growth(person, others)
        assert sorted(grown) == sorted(others) and all(v > 0 for v in grown.values()), (
            identity,
            grown,
        )

    # Carol stops her camera: on the others' pages exactly carol's tile stops decoding,
    # which shows each tile carries its own person's video (the fake cameras look alike).
    await people["carol"].page.get_by_role("button", name="Stop video").click()
    for identity in ("ada", "bo"):
        person = people[identity]
        other = "bo" if identity == "ada" else "ada"
        await expect(person.tile("carol")).not_to_have_class("tile has-video")
        await asyncio.sleep(1.0)  # frames already in flight when the SFU paused
        grown = await tile_frames_growth(person, ["carol", other], grows=False)
        assert grown["carol"] == 0 and grown[other] > 0, (identity, grown)

    # Ada's connection was re-offered twice (bo and carol joined). Well past the 5 s
    # silence threshold, her frames still reach the SFU: the others still decode her
    # and she is still in video mode. The SFU accepted the browser's own numbering,
    # H264 included (no rewriting of the browser's offer).
    await asyncio.sleep(6)
    for identity in ("bo", "carol"):
        await expect(people[identity].badge("ada")).to_have_text("Video")
        grown = await tile_frames_growth(people[identity], ["ada"])
        assert grown.get("ada", 0) > 0, (identity, grown)
    ada_state = await people["ada"].evaluate("""() => {
        const pc = window.pairwiseDebug.room.media.pc;
        return {sdp: pc.currentRemoteDescription.sdp, trace: window.pairwiseDebug.state().trace};
    }""")
    assert "H264/90000" in ada_state["sdp"], ada_state["sdp"]
    assert not [line for line in ada_state["trace"] if "failed" in line], ada_state["trace"]


async def test_camera_refused_participant_still_sees_and_hears_the_other(
    open_page: OpenPage,
) -> None:
    ada = await open_page("ada", role="mentor", diag=("debug-handle",))
    bo = await open_page("bo", camera_allowed=False, diag=("debug-handle",))
    await expect(bo.page.locator("#banner")).to_contain_text("You are in text chat")
    for person in (ada, bo):
        await expect(person.badge("bo")).to_have_text("Text chat")
    await expect(bo.tile("ada")).to_have_class("tile has-video")
    grown = await receiving(bo)
    assert grown["frames"] > 0 and grown["samples"] > 0, grown
    assert (await tile_frames_growth(bo, ["ada"]))["ada"] > 0
    # Bo publishes nothing: ada's page has no media from bo and bo stays in text mode.
    await expect(ada.tile("bo")).not_to_have_class("tile has-video")
    assert await ada.evaluate(TILE_FRAMES) == {"bo": None}
    await expect(bo.badge("bo")).to_have_text("Text chat")
