"""The fallback ladder a person can follow: no camera permission, media that cannot
connect, and a phone-sized screen."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import expect

from tests.e2e.conftest import OpenPage, chat_both_ways

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PHONE = {"width": 390, "height": 844}
NO_HORIZONTAL_SCROLL = "() => document.documentElement.scrollWidth <= window.innerWidth"


async def test_camera_refused_joins_in_text_and_can_chat(open_page: OpenPage) -> None:
    ada = await open_page("ada")
    bo = await open_page("bo", camera_allowed=False, join=False)
    await expect(
        bo.page.get_by_text("Your browser blocked the camera and microphone")
    ).to_be_visible()
    await expect(bo.page.get_by_text("You will join in text chat.")).to_be_visible()
    await bo.join()

    banner = bo.page.locator("#banner")
    await expect(banner).to_contain_text("You are in text chat")
    await expect(banner).to_contain_text("Allow them from the camera icon")
    await expect(banner.get_by_role("button", name="Try again")).to_be_visible()
    await expect(ada.badge("bo")).to_have_text("Text chat")
    await expect(ada.badge("ada")).to_have_text("Video")

    await chat_both_ways(bo, ada, "My camera is blocked, but I'm here.", "No problem, let's chat.")


async def test_media_that_cannot_connect_starts_in_text_and_keeps_trying(
    open_page: OpenPage,
) -> None:
    """Fault: relay-only ICE (`?diag=force-relay`) with no TURN server, so no candidate
    pair can ever form. The pre-join check finds it, the page says honestly that it will
    join in text, and in the room the ladder keeps trying in the background."""
    ada = await open_page("ada")
    bo = await open_page("bo", diag=("force-relay", "debug-handle"), join=False)
    network = bo.page.locator("#check-network")
    # Before joining, the pre-join check already says video cannot connect from here.
    await expect(network).to_have_attribute("data-state", "failed", timeout=20_000)
    await expect(network).to_contain_text("cannot connect from this network")
    await expect(network).to_contain_text("You can still join in chat")
    join_mode = bo.page.locator("#join-mode")
    await expect(join_mode).to_contain_text("You will join in text chat")
    await expect(join_mode).not_to_contain_text("You will join with camera and microphone")
    await bo.join()
    banner = bo.page.locator("#banner")
    await expect(banner).to_contain_text("You are in text chat")
    await expect(banner).to_contain_text("keeps trying in the background")
    await expect(banner).not_to_contain_text("Reconnecting")
    await expect(ada.badge("bo")).to_have_text("Text chat")
    await expect(ada.badge("ada")).to_have_text("Video")
    # Never a permanent text mode: attempts go on in the background, with backoff.
    await bo.page.wait_for_function(
        """() => window.pairwiseDebug.state().trace
            .filter((line) => line.includes("connect video")).length >= 2""",
        timeout=40_000,
    )
    trace = await bo.evaluate("() => window.pairwiseDebug.state().trace")
    assert any("next try in" in line for line in trace), trace
    await expect(bo.badge("bo")).to_have_text("Text chat")

    await chat_both_ways(bo, ada, "Video failed here, continuing in chat.", "Got it.")
    await bo.screenshot("text-fallback")


async def test_phone_screen_has_no_horizontal_scroll(open_page: OpenPage) -> None:
    ada = await open_page("ada", join=False, viewport=PHONE, has_touch=True, is_mobile=True)
    await expect(ada.page.get_by_role("button", name="Join meeting")).to_be_enabled()
    assert await ada.evaluate(NO_HORIZONTAL_SCROLL)
    await ada.screenshot("pre-join-phone")
    await ada.join()
    bo = await open_page("bo", viewport=PHONE, has_touch=True, is_mobile=True)
    await expect(ada.badge("bo")).to_have_text("Video")
    for person in (ada, bo):  # on a phone the chat is a layer opened from the control bar
        await person.page.get_by_role("button", name="Chat").click()
    await bo.say("A long message that wraps on a narrow screen without pushing anything sideways.")
    await expect(
        ada.message(
            "A long message that wraps on a narrow screen without pushing anything sideways."
        )
    ).to_be_visible()
    await asyncio.sleep(0.5)  # let the layout settle after the video starts
    for person in (ada, bo):
        assert await person.evaluate(NO_HORIZONTAL_SCROLL), person.identity
    # Touch-sized controls: every meeting control at least 44 px tall and wide.
    sizes = await ada.evaluate("""() => [...document.querySelectorAll('.controls button')]
        .map((b) => { const r = b.getBoundingClientRect(); return [r.width, r.height]; })""")
    assert sizes and all(w >= 44 and h >= 44 for w, h in sizes), sizes
    await ada.screenshot("room-phone")


async def test_pre_join_page(open_page: OpenPage) -> None:
    ada = await open_page("ada", name="Ada Lovelace", join=False)
    await expect(ada.page.locator("#check-server")).to_have_attribute("data-state", "ok")
    await expect(ada.page.locator("#check-media")).to_have_attribute("data-state", "ok")
    # The media check really connected to the SFU (a data channel echoed) and let go.
    network = ada.page.locator("#check-network")
    await ada.page.wait_for_function(
        "() => document.getElementById('check-network').dataset.state !== 'pending'",
        timeout=15_000,
    )
    assert await network.get_attribute("data-state") == "ok", await network.get_attribute("title")
    await expect(network).to_have_text("Media connection: working")
    await expect(ada.page.locator("#preview")).to_have_class("preview has-video")
    await expect(ada.page.get_by_role("combobox", name="Microphone")).to_be_enabled()
    # The level meter moves with the fake microphone's beeps.
    await ada.page.wait_for_function(
        "() => Number(document.getElementById('meter-bar').dataset.level) > 0.05"
    )
    await ada.page.get_by_role("button", name="Camera on").click()
    await expect(ada.page.get_by_text("You will join with audio only.")).to_be_visible()
    await ada.page.get_by_role("button", name="Camera off").click()
    await ada.screenshot("pre-join")
