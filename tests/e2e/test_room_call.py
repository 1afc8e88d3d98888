"""The call, as a mentor and a mentee use it on a laptop (Chromium, a real server, real
media): the 1:1 layout, device switching mid-call, reactions, raised hands, the people
list, meeting info, shortcuts, picture-in-picture, then a third person for the group
views; axe-core finds nothing on any of these views."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from tests.e2e.conftest import OpenPage, RoomPage, publish_screenshot
from tests.e2e.room_checks import NO_HORIZONTAL_SCROLL, axe_violations

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PHONE = {"width": 390, "height": 844}

FRAMES_DECODED = """(identity) => {
  const video = document.querySelector(`.tile[data-identity="${identity}"] video`);
  return video ? video.getVideoPlaybackQuality().totalVideoFrames : 0;
}"""

BOXES = """() => {
  const box = (el) => { const r = el.getBoundingClientRect(); return {x: r.x, y: r.y, w: r.width, h: r.height}; };
  const stage = document.getElementById("tiles");
  return {
    stage: box(stage),
    tiles: Object.fromEntries([...stage.querySelectorAll(".tile")].map((t) => [t.dataset.identity, {
      ...box(t), place: t.dataset.place, fit: getComputedStyle(t.querySelector("video")).objectFit,
      vw: t.querySelector("video").videoWidth, vh: t.querySelector("video").videoHeight,
    }])),
  };
}"""


async def frames_grow(person: RoomPage, identity: str) -> None:
    before = await person.evaluate(FRAMES_DECODED, identity)
    await person.page.wait_for_function(
        f"(identity) => ({FRAMES_DECODED})(identity) > {before + 10}", arg=identity
    )


async def check_axe(person: RoomPage, view: str, found: list[str]) -> None:
    found += await axe_violations(person.page, view)


async def test_one_to_one_then_a_group(open_page: OpenPage) -> None:
    ada = await open_page("ada", name="Ada Lovelace", role="mentor", diag=("debug-handle",))
    bo = await open_page("bo", name="Bo Chen")
    page = ada.page
    await expect(ada.tile("bo")).to_have_attribute("data-video", "playing", timeout=20_000)
    await expect(bo.tile("ada")).to_have_attribute("data-video", "playing", timeout=20_000)
    # "playing" comes with the first frame shown; the checks below need one decoded
    # (getVideoPlaybackQuality counts it a moment later than the element has it).
    for person, other in ((ada, "bo"), (bo, "ada")):
        await person.page.wait_for_function(
            f"(identity) => ({FRAMES_DECODED})(identity) > 0", arg=other, timeout=20_000
        )
    violations: list[str] = []

    # 1:1: the partner is large and uncropped, my own video small.
    await expect(page.locator("#tiles")).to_have_attribute("data-layout", "one-to-one")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Meeting: pair-1")
    boxes = await ada.evaluate(BOXES)
    stage, partner, me = boxes["stage"], boxes["tiles"]["bo"], boxes["tiles"]["ada"]
    assert partner["w"] * partner["h"] >= 0.6 * stage["w"] * stage["h"], boxes
    # Letterboxed, the whole 4:3 frame (whichever simulcast layer the SFU sends now).
    assert partner["fit"] == "contain" and partner["vw"] > 0, boxes
    assert partner["vw"] * 3 == partner["vh"] * 4, boxes
    assert me["w"] * me["h"] <= 0.1 * stage["w"] * stage["h"] and me["place"] == "float", boxes
    await check_axe(ada, "1:1", violations)
    shot = await ada.screenshot("room-desktop")
    publish_screenshot(shot, "room-desktop.png")
    publish_screenshot(shot, "room.png")  # the README's

    # My small video moves: dragged to the top left it settles in that corner.
    self_tile = ada.tile("ada")
    box = await self_tile.bounding_box()
    assert box
    await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    await page.mouse.down()
    await page.mouse.move(stage["x"] + 40, stage["y"] + 40, steps=5)
    await page.mouse.up()
    await expect(self_tile).to_have_attribute("data-corner", "top-left")
    moved = await self_tile.bounding_box()
    assert moved and moved["x"] < stage["x"] + 30 and moved["y"] < stage["y"] + 30, moved

    # Device switching mid-call: a new camera and microphone track on the same senders,
    # no new connection; Bo keeps decoding Ada's video.
    before = await ada.evaluate(
        """() => { const m = pairwiseDebug.room.media; return {gen: m.generation,
          video: m.senders.video.track.id, audio: m.senders.audio.track.id}; }"""
    )
    await page.keyboard.press("d")
    dialog = page.get_by_role("dialog", name="Camera, microphone and speaker")
    await expect(dialog).to_be_visible()
    for label in ("Camera", "Microphone"):
        select = dialog.get_by_label(label)
        await expect(select).to_be_enabled()
        values = await select.evaluate("(s) => [...s.options].map((o) => o.value)")
        other = [v for v in values if v != await select.input_value()] or values
        await select.evaluate(
            "(s, v) => { s.value = v; s.dispatchEvent(new Event('change')); }", other[0]
        )
        await expect(page.locator("#settings-status")).to_contain_text("Now using")
        await page.locator("#settings-status").evaluate("(p) => { p.textContent = ''; }")
    after = await ada.evaluate(
        """() => { const m = pairwiseDebug.room.media; const s = m.senders;
          return {gen: m.generation, video: s.video.track.id, audio: s.audio.track.id,
            live: s.video.track.readyState, local: m.local.stream.getVideoTracks()[0].id}; }"""
    )
    assert after["gen"] == before["gen"], (before, after)
    assert after["video"] != before["video"] and after["audio"] != before["audio"], after
    assert after["local"] == after["video"] and after["live"] == "live", after
    await frames_grow(bo, "ada")
    # Speaker output: every tile plays through the chosen device (setSinkId).
    speaker = dialog.get_by_label("Speaker")
    choices = await speaker.evaluate("(s) => [...s.options].map((o) => o.value)")
    await speaker.select_option(choices[-1])
    await page.wait_for_function(
        "(sink) => [...document.querySelectorAll('.tile video')].every((v) => v.sinkId === sink)",
        arg=choices[-1],
    )
    # Noise suppression off and on again, on the live microphone track.
    noise = dialog.get_by_label("Noise suppression")
    await noise.uncheck()
    await page.wait_for_function(
        "() => pairwiseDebug.room.media.senders.audio.track.getSettings().noiseSuppression === false"
    )
    await noise.check()
    await page.wait_for_function(
        "() => pairwiseDebug.room.media.senders.audio.track.getSettings().noiseSuppression === true"
    )
    await check_axe(ada, "devices dialog", violations)
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()

    # Meeting info at any time (not only when media fails), and the shortcuts' help.
    await page.keyboard.press("i")
    info = page.get_by_role("dialog", name="Meeting info")
    await expect(info).to_contain_text("pair-1")
    await expect(info).to_contain_text("/join")
    await expect(info).to_contain_text("Join by phone")
    await check_axe(ada, "meeting info", violations)
    await page.keyboard.press("Escape")
    await page.keyboard.press("?")
    help_dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    await expect(help_dialog.locator("tbody tr")).to_have_count(10)
    await check_axe(ada, "shortcuts help", violations)
    await page.keyboard.press("Escape")
    await page.keyboard.press("m")
    await expect(page.get_by_role("button", name="Unmute")).to_be_visible()
    await page.keyboard.press("m")
    await expect(page.get_by_role("button", name="Mute")).to_be_visible()

    # Reactions and a raised hand reach the other side, with the sender's name.
    await bo.page.get_by_role("button", name="React").click()
    await check_axe(bo, "reactions menu", violations)
    await bo.page.get_by_role("button", name="Applause").click()
    await expect(page.locator('.reaction-bubble[data-reaction="clap"]')).to_contain_text("Bo Chen")
    await bo.page.get_by_role("button", name="Raise hand").click()
    await expect(ada.tile("bo")).to_have_attribute("data-hand", "true")
    await page.keyboard.press("u")
    people = page.locator("#people-list")
    await expect(people.locator("li")).to_have_count(2)
    await expect(people.locator('li[data-identity="bo"]')).to_contain_text("Hand raised")
    await expect(people.locator('li[data-identity="ada"]')).to_contain_text("Ada Lovelace (you)")
    await check_axe(ada, "people", violations)
    await page.keyboard.press("u")
    await bo.page.keyboard.press("r")  # the shortcut lowers it again
    await expect(ada.tile("bo")).to_have_attribute("data-hand", "false")

    # Picture-in-picture of the partner's video.
    await page.get_by_role("button", name="More").click()
    await check_axe(ada, "more menu", violations)
    await page.get_by_role("button", name="Picture-in-picture").click()
    await page.wait_for_function(
        "() => document.pictureInPictureElement?.closest('.tile')?.dataset.identity === 'bo'"
    )
    await page.keyboard.press("p")
    await page.wait_for_function("() => document.pictureInPictureElement === null")

    # A third person: speaker view features who the SFU says is speaking, grid shows all.
    cy = await open_page("cy", name="Cy Diaz", viewport=PHONE, has_touch=True, is_mobile=True)
    await expect(ada.tile("cy")).to_have_attribute("data-video", "playing", timeout=20_000)
    await expect(page.locator("#tiles")).to_have_attribute("data-layout", "speaker")
    # The fake microphones beep alike, so which of three is loudest is a coin toss (the
    # SFU keeps the last speaker until another is the loudest for 0.6 s). Ada and Cy mute:
    # Bo alone is heard, and the SFU names Bo, highlighted and featured on Ada's stage.
    for muting in (ada, cy):
        await muting.page.keyboard.press("m")
        await expect(muting.page.get_by_role("button", name="Unmute")).to_be_visible()
    speaking = page.locator('.tile[data-speaking="true"]')
    await expect(ada.tile("bo")).to_have_attribute("data-speaking", "true", timeout=20_000)
    await expect(speaking).to_have_count(1)
    await expect(ada.tile("bo")).to_have_attribute("data-place", "featured")
    # Bo mutes: a muted person is not highlighted as talking (nobody is till someone speaks).
    await bo.page.keyboard.press("m")
    await expect(bo.page.get_by_role("button", name="Unmute")).to_be_visible()
    await expect(speaking).to_have_count(0)
    await expect(ada.tile("bo")).to_have_attribute("data-place", "featured")
    await bo.page.keyboard.press("m")
    await page.keyboard.press("m")
    await expect(page.get_by_role("button", name="Mute")).to_be_visible()
    strip = await page.locator('.tile[data-place="strip"]').count()
    assert strip == 2
    await check_axe(ada, "speaker view", violations)
    await page.keyboard.press("w")
    await expect(page.locator("#tiles")).to_have_attribute("data-layout", "grid")
    await expect(page.locator('.tile[data-place="grid"]')).to_have_count(3)
    grid = await ada.evaluate(BOXES)
    areas = [t["w"] * t["h"] for t in grid["tiles"].values()]
    assert max(areas) < 1.05 * min(areas), grid  # everyone the same size
    await check_axe(ada, "grid view", violations)
    publish_screenshot(await ada.screenshot("room-group-desktop"), "room-group-desktop.png")
    # The same meeting on Cy's phone: the speaker view fits the screen.
    await expect(cy.page.locator("#tiles")).to_have_attribute("data-layout", "speaker")
    for other in ("ada", "bo"):
        await expect(cy.tile(other)).to_have_attribute("data-video", "playing", timeout=20_000)
    await expect(cy.page.locator("#banner")).to_be_hidden()
    assert await cy.evaluate(NO_HORIZONTAL_SCROLL)
    await check_axe(cy, "speaker view on a phone", violations)
    publish_screenshot(await cy.screenshot("room-group-phone"), "room-group-phone.png")
    await cy.page.get_by_role("button", name="Leave").click()
    await expect(page.locator("#tiles")).to_have_attribute("data-layout", "one-to-one")
    assert violations == []


async def test_the_noise_suppression_choice_is_kept(open_page: OpenPage) -> None:
    """Noise suppression switched off stays off for every later capture of the microphone
    (here a reload: the same path as a device lost and back, or Try again)."""
    ada = await open_page("ada", name="Ada Lovelace", diag=("debug-handle",))
    bo = await open_page("bo", name="Bo Chen")
    page = ada.page
    suppressing = (
        "() => pairwiseDebug.room.media.senders.audio?.track?.getSettings().noiseSuppression"
    )
    await page.wait_for_function(f"() => ({suppressing})() === true")
    await page.keyboard.press("d")
    noise = page.get_by_role("dialog", name="Camera, microphone and speaker").get_by_label(
        "Noise suppression"
    )
    await noise.uncheck()
    await page.wait_for_function(f"() => ({suppressing})() === false")
    await page.reload()  # back in the room by itself (a reload keeps the tab in the meeting)
    await expect(ada.tile("bo")).to_be_visible()
    await expect(bo.tile("ada")).to_have_attribute("data-video", "playing", timeout=20_000)
    await page.wait_for_function(f"() => ({suppressing})() === false")
    await page.keyboard.press("d")
    await expect(noise).not_to_be_checked()


# Ada's camera is a canvas that sends a frame only when her page says (`window.__frame()`):
# her video track is live from the start, its first frame comes when the test wants.
FRAMES_ON_CUE = """
(() => {
  const original = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async (constraints = {}) => {
    if (!constraints.video) return original(constraints);
    const canvas = Object.assign(document.createElement("canvas"), { width: 320, height: 180 });
    const context = canvas.getContext("2d");
    const stream = canvas.captureStream(0);
    const [track] = stream.getVideoTracks();
    let shade = 0;
    window.__frame = () => {
      shade = (shade + 40) % 256;
      context.fillStyle = `rgb(${shade}, 90, 160)`;
      context.fillRect(0, 0, canvas.width, canvas.height);
      track.requestFrame();
    };
    if (constraints.audio) {
      const audio = await original({ audio: constraints.audio });
      audio.getAudioTracks().forEach((t) => stream.addTrack(t));
    }
    return stream;
  };
})();
"""

# Bo's tile of ada holds a live, enabled video track whose element has no frame yet.
TRACK_WITHOUT_FRAME = """() => {
  const video = document.querySelector('.tile[data-identity="ada"] video');
  const tracks = video?.srcObject?.getVideoTracks() || [];
  return tracks.some((t) => t.readyState === "live" && t.enabled) && video.readyState < 2;
}"""


async def test_a_tile_says_playing_only_once_a_frame_is_there(open_page: OpenPage) -> None:
    """Before, a tile showed itself playing (`has-video`, `data-video="playing"`) as soon
    as the track arrived: black, with the initials hidden, until the first frame, which
    under load took a second or more. Now it keeps the initials, says neither playing nor
    paused, and shows the video from its first decoded frame."""
    ada = await open_page("ada", role="mentor", join=False)
    await ada.page.add_init_script(FRAMES_ON_CUE)
    await ada.page.reload()
    await ada.join()
    bo = await open_page("bo")
    await bo.page.wait_for_function(TRACK_WITHOUT_FRAME, timeout=20_000)
    tile = bo.tile("ada")
    assert await tile.get_attribute("data-video") != "playing"
    await expect(tile).not_to_have_class(re.compile(r"\bhas-video\b"))
    await expect(tile.locator(".avatar")).to_be_visible()
    await expect(tile.locator(".tile-state")).to_be_hidden()  # not "Video paused"

    # frames come: the tile plays from the first one
    await ada.page.evaluate("() => { window.__frames = setInterval(window.__frame, 66); }")
    await expect(tile).to_have_attribute("data-video", "playing", timeout=20_000)
    assert (
        await bo.page.evaluate(
            "() => document.querySelector('.tile[data-identity=\"ada\"] video').readyState"
        )
        >= 2
    )
    await expect(tile.locator(".avatar")).to_be_hidden()


# Overlaps between the partner's tile bar items (name, badge, state, quality) and my own
# floating video, on the page: [item class, its box's right, the float's left] for each.
BAR_UNDER_FLOAT = """() => {
  const float = document.querySelector('.tile[data-place="float"]').getBoundingClientRect();
  const featured = document.querySelector('.tile[data-place="featured"]');
  const hits = [];
  for (const item of featured.querySelectorAll(".tile-bar > *")) {
    const r = item.getBoundingClientRect();
    if (!r.width) continue;  // hidden
    if (r.right > float.left && r.left < float.right && r.bottom > float.top && r.top < float.bottom) {
      hits.push([item.className, r.left, r.right, float.left, float.right]);
    }
  }
  return hits;
}"""


async def test_on_a_phone_the_partners_name_and_state_stay_clear_of_my_video(
    open_page: OpenPage,
) -> None:
    """At 390x844 my own video floats in a bottom corner of the partner's tile, where its
    bar is: the state "Paused: your connection is slow" (downlink_pause.py) was hidden
    behind it, cut after "Paused: your co". The bar now ends where my video begins and
    wraps, in either bottom corner. The pause ends with a new track of hers."""
    ada = await open_page("ada", role="mentor")
    bo = await open_page(
        "bo", viewport=PHONE, has_touch=True, is_mobile=True, diag=("debug-handle",)
    )
    tile = bo.tile("ada")
    await expect(tile).to_have_attribute("data-video", "playing", timeout=20_000)
    await bo.evaluate("() => window.pairwiseDebug.room.media.tiles.setLinkPaused('ada', true)")
    await expect(tile).to_have_attribute("data-video", "paused")
    await expect(tile.locator(".tile-state")).to_have_text("Paused: your connection is slow")
    float_ = bo.page.locator('.tile[data-place="float"]')
    for corner in ("bottom-right", "bottom-left"):
        await float_.evaluate("(el, corner) => { el.dataset.corner = corner; }", corner)
        assert await bo.evaluate(BAR_UNDER_FLOAT) == [], corner
        assert await bo.evaluate(NO_HORIZONTAL_SCROLL), corner
    # Ada reloads her page: the SFU forwards her new camera track unpaused, and bo's tile
    # plays it (it kept the old pause, and the video hidden behind it, until bo's own
    # reconnect or another pause and resume).
    await ada.page.reload()
    await expect(tile).to_have_attribute("data-video", "playing", timeout=30_000)
    await expect(tile.locator(".tile-state")).to_be_hidden()
