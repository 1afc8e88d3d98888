"""What a partner's tile says when their connection drops, and names that cannot
reorder the text around them (bidirectional isolation)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from playwright.async_api import expect

from server.app import create_app
from server.config import Settings
from tests.e2e.conftest import OpenPage, RoomPage

pytestmark = [pytest.mark.slow, pytest.mark.browser]

GRACE_SECONDS = 6


@pytest.fixture
async def base_url(aiohttp_server: Any, make_settings: Callable[..., Settings]) -> str:
    """The server with a short grace for dropped participants, so the test sees it end."""
    server = await aiohttp_server(create_app(make_settings(room_grace_seconds=GRACE_SECONDS)))
    return str(server.make_url("")).rstrip("/")


async def lose(person: RoomPage) -> None:
    """The page dies without a goodbye (its renderer crashes: the WebSocket and the media
    connection drop at once, as when a laptop lid closes). Closing a tab is leaving
    (tests/e2e/test_leaving.py)."""
    cdp = await person.page.context.new_cdp_session(person.page)
    crashed = asyncio.get_running_loop().create_future()
    person.page.once("crash", lambda _: crashed.set_result(None))
    asyncio.ensure_future(cdp.send("Page.crash")).add_done_callback(lambda t: t.exception())
    await asyncio.wait_for(crashed, 10)


async def test_dropped_partner_shows_reconnecting_then_goes(open_page: OpenPage) -> None:
    """Fault: bo's page dies without leaving (`lose`). Ada's tile of bo says
    "Reconnecting…" (not a vanished tile, not a frozen frame) for the server's grace, then
    goes; bo joining again within the grace brings the tile back to live video."""
    ada = await open_page("ada", role="mentor", diag=("debug-handle",))
    bo = await open_page("bo")
    await expect(ada.tile("bo")).to_have_class("tile has-video")

    await lose(bo)
    state = ada.tile("bo").locator(".tile-state")
    await expect(state).to_have_text("Reconnecting…")
    await expect(ada.tile("bo")).not_to_have_class("tile has-video")
    await expect(ada.tile("bo")).to_have_count(0, timeout=(GRACE_SECONDS + 10) * 1000)

    bo = await open_page("bo")
    await expect(ada.tile("bo")).to_have_class("tile has-video", timeout=15_000)
    await lose(bo)
    await expect(state).to_have_text("Reconnecting…")
    bo = await open_page("bo")
    await expect(ada.tile("bo")).to_have_class("tile has-video", timeout=15_000)
    await expect(ada.tile("bo").locator(".tile-state")).to_be_hidden()


async def test_right_to_left_override_in_a_name_stays_inside_it(open_page: OpenPage) -> None:
    """No fault: a display name with U+202E (right-to-left override) is isolated on the
    tiles, in the chat author line and in "… is typing", so it cannot reorder the text
    after it (e.g. "(you)" or the message time)."""
    evil = "\u202eEve"
    ada = await open_page("ada", role="mentor")
    eve = await open_page("eve", name=evil)
    await expect(ada.tile("eve")).to_be_visible()
    await eve.say("hello")
    await expect(ada.message("hello")).to_be_visible()
    await eve.composer().fill("still typing")
    await expect(ada.page.locator("#chat-typing")).to_contain_text("is typing")

    isolated = """([selector, name]) => [...document.querySelectorAll(selector)].map((el) => {
        const bdi = [...el.querySelectorAll("bdi")].find((b) => b.textContent === name);
        return Boolean(bdi) && getComputedStyle(bdi).unicodeBidi === "isolate";
    })"""
    for page, selector in (
        (ada, '.tile[data-identity="eve"] .tile-name'),
        (eve, '.tile[data-identity="eve"] .tile-name'),
        (ada, "#chat-log .msg-author"),
        (ada, "#chat-typing"),
    ):
        found = await page.evaluate(isolated, [selector, evil])
        assert found and all(found), (selector, found)
    # The "(you)" after the name is outside the isolate.
    mine = await eve.evaluate(
        """() => document.querySelector('.tile[data-identity="eve"] .tile-name').lastChild.textContent"""
    )
    assert mine == " (you)", mine
