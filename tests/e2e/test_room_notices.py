"""What the room shows on screen: an action of yours that the server refused is said in a
visible notice (not to screen readers alone), a partner who chose audio only is not shown
as a fault, and every page gets its icon (no 404 for /favicon.ico)."""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import expect

from tests.e2e.conftest import OpenPage, RoomPage
from tests.e2e.room_checks import axe_violations

PHONE = {"width": 390, "height": 844}
REFUSED = "Could not lower your hand: too many changes at once; wait a moment"

# Reactions and hands have an allowance each (server/signaling/gestures.py: 5 at once,
# then 1 a second). A burst of hearts until the server refuses one: the hand still goes
# up. Then a burst of clicks on the raised hand, in the page (a round trip through
# Playwright could let a token come back): each asks to lower it (the page changes the
# button on the answer), and the server refuses those past the allowance.
HEARTS_THEN_HAND = """async () => {
  const heart = document.querySelector('#react-menu [data-reaction="heart"]');
  for (let i = 0; i < 8; i += 1) heart.click();
  const said = (words) => [...document.querySelectorAll('[role="alert"]')]
    .some((alert) => alert.textContent.startsWith(words));
  while (!said("Slow down")) await new Promise((wait) => setTimeout(wait, 10));
  const hand = document.getElementById("ctl-hand");
  hand.click();
  while (hand.getAttribute("aria-pressed") !== "true") {
    await new Promise((wait) => setTimeout(wait, 10));
  }
  for (let i = 0; i < 8; i += 1) hand.click();
}"""

FRAMES_DECODED = """(identity) => {
  const video = document.querySelector(`.tile[data-identity="${identity}"] video`);
  return video ? video.getVideoPlaybackQuality().totalVideoFrames : 0;
}"""


async def frames_grow(person: RoomPage, identity: str) -> None:
    before = await person.evaluate(FRAMES_DECODED, identity)
    await person.page.wait_for_function(
        f"(identity) => ({FRAMES_DECODED})(identity) > {before + 10}", arg=identity
    )


@pytest.mark.parametrize("viewport", [None, PHONE], ids=["desktop", "phone"])
@pytest.mark.slow
@pytest.mark.browser
async def test_a_refused_hand_is_said_on_screen_then_goes_away(
    open_page: OpenPage, viewport: dict[str, int] | None
) -> None:
    ada = await open_page("ada", name="Ada Lovelace", role="mentor", viewport=viewport)
    page = ada.page
    await page.evaluate(HEARTS_THEN_HAND)

    # Said where one looks, as an alert (screen readers say it as it appears).
    notice = page.get_by_role("alert").filter(has_text="Could not lower your hand")
    await expect(notice).to_have_text(REFUSED)
    await expect(notice).to_be_visible()
    await expect(page.locator("#ctl-hand")).to_have_attribute("aria-pressed", "false")
    size = page.viewport_size
    box = await notice.bounding_box()
    controls = await page.get_by_role("navigation", name="Meeting controls").bounding_box()
    assert size and box and controls
    assert box["width"] >= 100 and box["height"] >= 20, box  # readable, not a 1x1 region
    assert box["x"] >= 0 and box["x"] + box["width"] <= size["width"], (box, size)
    assert box["y"] >= 0 and box["y"] + box["height"] <= controls["y"], (box, controls)
    await ada.screenshot(f"room-notice-{'phone' if viewport else 'desktop'}")
    assert await axe_violations(page, "refused hand notice") == []

    # It goes away by itself, and nothing else of the room went with it.
    await expect(notice).to_have_count(0, timeout=15_000)
    await expect(page.locator("#ctl-hand")).to_have_attribute("aria-pressed", "false")
    await expect(ada.tile("ada")).to_be_visible()


@pytest.mark.slow
@pytest.mark.browser
async def test_audio_only_by_choice_is_not_shown_as_paused_video(open_page: OpenPage) -> None:
    ada = await open_page("ada", role="mentor", diag=("debug-handle",))
    bo = await open_page("bo")
    tile = bo.tile("ada")
    await expect(tile).to_have_attribute("data-video", "playing", timeout=20_000)
    button = ada.page.get_by_role("button", name="Audio only")

    # Ada's choice: Bo sees her initials and "Audio only", no "Video paused".
    await button.click()
    await expect(bo.badge("ada")).to_have_text("Audio only")
    await expect(tile).to_have_attribute("data-video", "off")
    await expect(tile.locator(".tile-state")).to_be_hidden()
    await expect(tile.locator(".avatar")).to_be_visible()
    await expect(tile).to_have_attribute("aria-label", re.compile(r"Audio only$"))
    # On Ada's page, Bo's video stops because of her choice: it says so.
    await expect(ada.tile("bo").locator(".tile-state")).to_have_text("Paused: you chose audio only")

    # Back to video: Bo sees her camera again.
    await button.click()
    await expect(tile).to_have_attribute("data-video", "playing", timeout=20_000)
    await expect(tile.locator(".tile-state")).to_be_hidden()
    await expect(ada.tile("bo")).to_have_attribute("data-video", "playing", timeout=20_000)
    await frames_grow(bo, "ada")

    # A real stall: Ada's page still sends video, but her camera's sender carries no frames
    # (as in test_network_faults.py); Bo's tile says "Video paused" instead of freezing.
    await ada.evaluate("() => pairwiseDebug.room.media.senders.video.replaceTrack(null)")
    await expect(tile.locator(".tile-state")).to_have_text("Video paused", timeout=15_000)
    await expect(tile).to_have_attribute("data-video", "paused")


async def test_the_favicon_is_the_apps_icon(client: TestClient) -> None:
    response = await client.get("/favicon.ico")
    assert response.status == 200
    assert response.content_type == "image/png"
    assert (await response.read()).startswith(b"\x89PNG")
