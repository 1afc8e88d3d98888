"""The room's chat and the phone layout in Chromium: the chat opens at the newest message,
web addresses are safe links, receipts name people (never login ids), and at 390x844 the
Join button is on screen, the room opens unscrolled and the chat layer keeps its composer
above the controls without growing the page."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from playwright.async_api import expect

from server.app import create_app
from server.config import Settings
from tests.e2e.conftest import OpenPage, publish_screenshot
from tests.e2e.room_checks import NO_HORIZONTAL_SCROLL, axe_violations
from tests.support.participants import SocketParticipant, issue_token

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PHONE = {"width": 390, "height": 844}
HISTORY_PAGE = 30  # the server's page; the page reads it from the join, never its own
LINKS = "Read https://example.org/guide?x=1, then www.example.com. Not javascript:alert(1) or data:text/html,hi"


@pytest.fixture
async def base_url(aiohttp_server: Any, make_settings: Callable[..., Settings]) -> str:
    """The history is written quickly before the browser opens (a burst the size of it);
    a partner who drops is gone after 1 s; a page of history is 30 messages."""
    settings = make_settings(chat_burst=100, room_grace_seconds=1, history_limit=HISTORY_PAGE)
    server = await aiohttp_server(create_app(settings))
    return str(server.make_url("")).rstrip("/")


async def socket_person(base_url: str, identity: str, name: str) -> SocketParticipant:
    token = await asyncio.to_thread(issue_token, base_url, "pair-1", identity, name, "mentor")
    person = await SocketParticipant(base_url, token).connect()
    await person.join()
    return person


async def test_chat_opens_at_the_newest_with_safe_links_and_names(
    open_page: OpenPage, base_url: str
) -> None:
    ada = await socket_person(base_url, "ada", "Ada Lovelace")
    for i in range(40):
        assert "id" in await ada.chat(f"Earlier note {i}", f"c-{i}")
    assert "id" in await ada.chat(LINKS, "c-links")
    bo = await open_page("bo", name="Bo Chen")
    page = bo.page
    linked = page.locator("#chat-log .msg", has_text="Read https://example.org/guide")
    await expect(linked).to_be_visible()
    at_end = "() => { const s = document.getElementById('chat-scroll'); return s.scrollHeight > s.clientHeight && s.scrollTop + s.clientHeight >= s.scrollHeight - 2; }"
    await page.wait_for_function(at_end)

    links = await page.evaluate(
        """() => [...document.querySelectorAll('#chat-log a')].map((a) => [a.href, a.rel, a.target, a.textContent])"""
    )
    assert links == [
        [
            "https://example.org/guide?x=1",
            "noopener noreferrer",
            "_blank",
            "https://example.org/guide?x=1",
        ],
        ["https://www.example.com/", "noopener noreferrer", "_blank", "www.example.com"],
    ], links
    await expect(linked).to_contain_text("javascript:alert(1) or data:text/html,hi")

    # 41 messages, a page of 30: the first 11 are a click away, and then nothing more.
    await expect(page.locator("#chat-log .msg", has_text="Earlier note 10")).to_have_count(0)
    await page.locator("#chat-earlier").click()
    await expect(page.locator("#chat-log .msg", has_text="Earlier note 0")).to_have_count(1)
    await expect(page.locator("#chat-earlier")).to_be_hidden()

    # Ada reads Bo's answer, then leaves: the receipt keeps her name, also after a reload.
    await bo.say("Thanks, reading it now")
    mine = await ada.wait_for("chat", {"text": "Thanks, reading it now"})
    await ada.call("read", {"up_to": mine["id"]})
    status = bo.message("Thanks, reading it now").locator(".msg-status")
    await expect(status).to_have_text("Seen by Ada Lovelace")
    await ada.close()
    await expect(bo.tile("ada")).to_have_count(0, timeout=40_000)
    await page.reload()
    await expect(status).to_have_text("Seen by Ada Lovelace", timeout=15_000)
    await page.wait_for_function(at_end)
    assert await axe_violations(page, "chat") == []


async def test_phone_join_room_and_chat_layer(open_page: OpenPage, base_url: str) -> None:
    cy = await socket_person(base_url, "cy", "Cy Diaz")
    ada = await open_page(
        "ada", name="Ada Lovelace", join=False, viewport=PHONE, has_touch=True, is_mobile=True
    )
    page = ada.page
    join = page.get_by_role("button", name="Join meeting")
    await expect(join).to_be_enabled()
    # "In the room" names who is already here before joining.
    await expect(page.locator("#who-is-here")).to_contain_text("Cy Diaz (mentor)")
    box = await join.bounding_box()
    assert box and box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"], box
    assert await page.evaluate("() => window.scrollY") == 0
    assert await ada.evaluate(NO_HORIZONTAL_SCROLL)
    assert await axe_violations(page, "pre-join phone") == []
    publish_screenshot(await ada.screenshot("room-prejoin-phone"), "room-prejoin-phone.png")
    await ada.join()
    await expect(ada.tile("cy")).to_be_visible()
    fits = """() => ({scrollY: window.scrollY, main: document.getElementById('main').scrollTop,
        height: document.documentElement.scrollHeight, inner: window.innerHeight,
        wide: document.documentElement.scrollWidth})"""
    opened = await ada.evaluate(fits)
    assert opened["scrollY"] == 0 and opened["main"] == 0, opened
    assert opened["height"] <= opened["inner"] and opened["wide"] <= PHONE["width"], opened
    # Every control is on the screen, whole, with an icon (the words are hidden here).
    controls = await page.locator(".controls button").evaluate_all(
        """(buttons) => buttons.map((b) => { const r = b.getBoundingClientRect();
            const icon = b.querySelector('svg')?.getBoundingClientRect();
            return {id: b.id, left: r.left, right: r.right, icon: icon ? icon.width : 0}; })"""
    )
    assert len(controls) >= 8, controls
    for control in controls:
        assert control["left"] >= 0 and control["right"] <= PHONE["width"], controls
        assert control["icon"] >= 16, controls
    publish_screenshot(await ada.screenshot("room-phone"), "room-phone.png")
    assert await axe_violations(page, "room phone") == []

    await page.get_by_role("button", name="Chat").click()
    await cy.chat("Hello from the laptop " + "long words " * 40, "c-1")
    composer = ada.composer()
    await expect(composer).to_be_visible()
    with_chat = await ada.evaluate(fits)
    assert with_chat["height"] <= with_chat["inner"], with_chat  # the page does not grow
    assert with_chat["wide"] <= PHONE["width"], with_chat
    composer_box = await composer.bounding_box()
    controls_box = await page.locator(".controls").bounding_box()
    assert composer_box and controls_box
    assert composer_box["y"] + composer_box["height"] <= controls_box["y"] + 1, (
        composer_box,
        controls_box,
    )
    await ada.say("Typed on the phone")
    await cy.wait_for("chat", {"text": "Typed on the phone"})
    assert await axe_violations(page, "chat phone") == []
    publish_screenshot(await ada.screenshot("room-phone-chat"), "room-phone-chat.png")
    # Back to the call from the layer.
    await page.get_by_role("button", name="Back to the call").click()
    await expect(composer).to_be_hidden()
    await cy.close()
