"""The room as it opens on a phone held sideways, in Chromium.

A phone sideways is wider than the 820 px that made a window a phone (915x412 for a
large one), so the room opened with the chat as a column beside a video 400 px tall.
Now a touch screen (a coarse pointer) no taller than a phone is wide opens as a phone
does: on the video, the chat one tap away, a layer over the stage with a close button
(web/style.css's phone rules read it as panels.js does). A desktop window keeps its
column, and a narrow one still opens as on a phone.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from tests.e2e.conftest import OpenPage
from tests.e2e.room_checks import NO_HORIZONTAL_SCROLL, axe_violations

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PHONE_SIDEWAYS = {"viewport": {"width": 915, "height": 412}, "has_touch": True, "is_mobile": True}


@pytest.mark.parametrize(
    ("name", "options", "chat_open"),
    [
        ("phone-sideways-915x412", PHONE_SIDEWAYS, False),
        (
            "phone-upright-390x844",
            {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True},
            False,
        ),
        ("laptop-1280x800", {"viewport": {"width": 1280, "height": 800}}, True),
        ("narrow-window-700x800", {"viewport": {"width": 700, "height": 800}}, False),
    ],
)
async def test_the_chat_opens_as_a_column_only_where_there_is_room_for_one(
    open_page: OpenPage, name: str, options: dict[str, Any], chat_open: bool
) -> None:
    ada = await open_page("ada", **options)
    chat = ada.page.locator("#chat")
    button = ada.page.get_by_role("button", name="Chat")
    if chat_open:
        await expect(chat).to_be_visible()
        await expect(button).to_have_attribute("aria-expanded", "true")
    else:
        await expect(chat).to_be_hidden()
        await expect(ada.page.locator("#room")).to_have_attribute("data-panel", "none")
        await expect(button).to_have_attribute("aria-expanded", "false")
        # The chat is one tap away, a layer over the whole stage (not a column beside a
        # squeezed video) with its message box on screen and a way to close it.
        await button.click()
        await expect(chat).to_be_visible()
        await expect(ada.composer()).to_be_in_viewport()
        size = ada.page.viewport_size
        box = await chat.bounding_box()
        assert size and box and box["width"] >= size["width"] - 2, (name, box, size)
        close = chat.locator(".panel-close")
        await expect(close).to_be_visible()
        await close.click()
        await expect(chat).to_be_hidden()
    assert await ada.evaluate(NO_HORIZONTAL_SCROLL), name
    assert await axe_violations(ada.page, name) == []
