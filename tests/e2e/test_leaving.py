"""Leaving a meeting by closing the page, and staying in it through a dropped connection.

Before, closing the tab looked like a network drop: the others saw "Reconnecting…" on the
tile for the room's whole grace period (30.5 s measured). Now the page says goodbye on
`pagehide` (web/client/socket.js) and the server takes it as a leave. A real drop still
gets the grace, and a hand raised before it is still up after the reconnect.
"""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from tests.e2e.conftest import OpenPage

pytestmark = [pytest.mark.slow, pytest.mark.browser]

DEBUG = ("debug-handle",)
# Well inside the room's grace (30 s): a tile that waits for it fails this.
GONE_MS = 5_000


async def test_closing_or_leaving_the_page_takes_the_tile_away(open_page: OpenPage) -> None:
    """Ada closes her tab (`page.close()`, which fires `pagehide`): Bo's tile of her goes
    within seconds, with no "Reconnecting…". The same when she navigates away."""
    bo = await open_page("bo", role="mentor")
    ada = await open_page("ada")
    await expect(bo.tile("ada")).to_be_visible()
    await ada.page.close()
    await expect(bo.tile("ada")).to_have_count(0, timeout=GONE_MS)

    ada = await open_page("ada")
    await expect(bo.tile("ada")).to_be_visible()
    await ada.page.goto("about:blank")
    await expect(bo.tile("ada")).to_have_count(0, timeout=GONE_MS)


async def test_a_page_back_from_the_back_forward_cache_joins_again(open_page: OpenPage) -> None:
    """A page kept in the back/forward cache left when it was hidden (`pagehide` with
    `persisted`); shown again (`pageshow` with `persisted`), it reconnects and joins.
    Chromium keeps no page with a WebSocket or WebRTC in that cache, so the events are
    dispatched here as the browser would send them."""
    bo = await open_page("bo", role="mentor")
    ada = await open_page("ada", diag=DEBUG)
    await expect(bo.tile("ada")).to_be_visible()
    await ada.evaluate(
        "() => window.dispatchEvent(new PageTransitionEvent('pagehide', {persisted: true}))"
    )
    await expect(bo.tile("ada")).to_have_count(0, timeout=GONE_MS)
    await ada.evaluate(
        "() => window.dispatchEvent(new PageTransitionEvent('pageshow', {persisted: true}))"
    )
    await expect(bo.tile("ada")).to_be_visible()
    assert await ada.evaluate("() => window.pairwiseDebug.state().connected")


async def test_a_raised_hand_stays_up_through_a_dropped_connection(open_page: OpenPage) -> None:
    """Ada raises her hand, then her connection drops (the WebSocket closes with no
    goodbye) and comes back a moment later. Bo's page is told she dropped, with the grace
    (not that she left), then sees her back with her hand still up; Ada's own button
    still says her hand is up."""
    bo = await open_page("bo", role="mentor", diag=DEBUG)
    ada = await open_page("ada", diag=DEBUG)
    await bo.evaluate(
        """() => { window.__left = [];
        window.pairwiseDebug.room.socket.on("participant_left", (e) => window.__left.push(e)); }"""
    )
    hand = ada.page.locator("#ctl-hand")
    await ada.page.locator("#ctl-react").click()  # the reactions menu holds the hand
    await hand.click()
    await expect(hand).to_have_attribute("aria-pressed", "true")
    await expect(bo.tile("ada")).to_have_attribute("data-hand", "true")

    await ada.evaluate("() => window.pairwiseDebug.dropSocket()")
    await bo.page.wait_for_function("() => window.__left.length > 0")
    await expect(bo.tile("ada").locator(".tile-state")).to_be_hidden(timeout=15_000)
    assert await bo.evaluate("() => window.__left") == [
        {"identity": "ada", "reason": "disconnected", "grace_seconds": 30}
    ]
    await expect(bo.tile("ada")).to_have_attribute("data-hand", "true")
    # Ada is back (Bo's tile says so): what the server says about her hand, which her
    # page asks after every join.
    await ada.evaluate("() => window.pairwiseDebug.room.reactions.load()")
    await expect(hand).to_have_attribute("aria-pressed", "true")
    await expect(hand).to_have_text("Lower hand")
    await expect(bo.tile("ada")).to_have_attribute("data-hand", "true")


async def test_a_hand_raised_before_its_tile_exists_shows_when_the_tile_comes(
    open_page: OpenPage,
) -> None:
    """Ada raises her hand and her connection drops; Cy joins within the grace. The server
    tells Cy's page the hand is up (`hands`) while Ada has no tile there yet; when Ada is
    back and her tile comes, it shows her hand (before, the hand was dropped for want of
    a tile)."""
    bo = await open_page("bo", role="mentor")
    ada = await open_page("ada", diag=DEBUG)
    await ada.page.locator("#ctl-react").click()
    await ada.page.locator("#ctl-hand").click()
    await expect(bo.tile("ada")).to_have_attribute("data-hand", "true")

    # Ada's socket drops and stays down (no automatic reconnect) until the test says.
    await ada.evaluate(
        """() => { window.pairwiseDebug.room.socket.socket.io.reconnection(false);
        window.pairwiseDebug.dropSocket(); }"""
    )
    await expect(bo.tile("ada")).to_have_class("tile reconnecting")
    cy = await open_page("cy", diag=DEBUG)
    await cy.page.wait_for_function("() => window.pairwiseDebug.room.reactions.hands.has('ada')")
    await expect(cy.tile("ada")).to_have_count(0)

    await ada.evaluate("() => window.pairwiseDebug.room.socket.reconnect()")
    await expect(cy.tile("ada")).to_be_visible()
    await expect(cy.tile("ada")).to_have_attribute("data-hand", "true")
    await expect(cy.tile("ada").locator(".hand")).to_be_visible()
    await expect(cy.tile("ada")).to_have_attribute("aria-label", re.compile("hand raised$"))
