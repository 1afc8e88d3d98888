"""The pair page on a phone (Chromium, 390x844), for a member of two pairs: names, never
login ids; the join link only for the room the member's link is for; no rating chosen for
them; a real checkbox; no rating asked for a meeting they missed; readable labels."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from playwright.async_api import expect

from server.app import create_app
from server.config import Settings
from tests.e2e.conftest import Launcher
from tests.e2e.room_checks import NO_HORIZONTAL_SCROLL, axe_violations
from tests.e2e.test_feedback import call
from tests.support.participants import SocketParticipant, issue_token
from tests.support.process import ADMIN_KEY

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PHONE = {"width": 390, "height": 844}


async def meet(base_url: str, room: str, people: list[tuple[str, str]]) -> None:
    """A meeting in `room` with these (identity, name): they join, then all leave."""
    joined = []
    for identity, name in people:
        token = await asyncio.to_thread(issue_token, base_url, room, identity, name, "mentee")
        person = await SocketParticipant(base_url, token).connect()
        await person.join()
        joined.append(person)
    for person in joined:
        await person.call("leave", {})
        await person.close()


@pytest.fixture
async def base_url(aiohttp_server: Any, make_settings: Callable[..., Settings]) -> str:
    """A room closes (and its session ends) as soon as the last person leaves."""
    server = await aiohttp_server(create_app(make_settings(room_grace_seconds=0)))
    return str(server.make_url("")).rstrip("/")


async def test_pair_page_for_a_member_of_two_pairs(base_url: str, launcher: Launcher) -> None:
    ada, bo, cy = ("ada", "Ada Lovelace"), ("bo", "Bo Chen"), ("cy", "Cy Diaz")
    pairs = {}
    for room, members in (("pair-a", [ada, bo]), ("pair-b", [ada, cy])):
        body = {
            "room": room,
            "title": f"Pair {room[-1].upper()}",
            "members": [{"identity": i, "name": n, "role": "mentee"} for i, n in members],
        }
        pairs[room] = await asyncio.to_thread(call, base_url + "/api/v1/pairs", "POST", body)
    await meet(base_url, "pair-a", [ada, bo])
    await meet(base_url, "pair-a", [bo])  # Ada missed this one
    token = await asyncio.to_thread(
        issue_token, base_url, "pair-a", "ada", "Ada Lovelace", "mentee"
    )
    context = await launcher.context(viewport=PHONE, has_touch=True, is_mobile=True)
    page = await context.new_page()
    await page.goto(f"{base_url}/pair?pair={pairs['pair-a']['id']}#token={token}")

    await expect(page.get_by_role("heading", level=1)).to_have_text("Pair A")
    join = page.get_by_role("link", name="Join the room")
    await expect(join).to_be_visible()
    session = page.locator(".log-session", has_text="Ada Lovelace, Bo Chen")
    await expect(session).to_contain_text("Ada Lovelace, Bo Chen")
    await expect(session.locator(".strip-name")).to_have_text(["Ada Lovelace", "Bo Chen"])
    text = await page.locator("#pair").inner_text()
    assert "ada" not in text.replace("Ada", "").split() and ", bo" not in text, text
    font = await session.locator(".strip-name").first.evaluate(
        "(e) => parseFloat(getComputedStyle(e).fontSize)"
    )
    assert font >= 12, font
    rating = session.get_by_label("Rating")
    assert await rating.input_value() == ""  # nothing chosen for the member
    box = session.locator('input[type="checkbox"]')
    size = await box.bounding_box()
    assert size and size["width"] <= 24 and size["height"] <= 24, size  # a box to tick
    await box.check()
    assert await page.evaluate(NO_HORIZONTAL_SCROLL)
    assert await axe_violations(page, "/pair") == []

    # The meeting Ada missed asks her for nothing.
    missed = page.locator(".log-session", has_not_text="Ada Lovelace")
    await expect(missed).to_contain_text("You were not in this meeting.")
    await expect(missed.locator("form")).to_have_count(0)
    # Each meeting link opens its own pair: the join link goes to that pair's room, also
    # for the other pair, and a link naming another pair shows (and joins) the token's.
    await join.click()
    # The pre-join page names the pair's room by the pair's title, not its id.
    await expect(page.locator("#joining-as")).to_contain_text("Joining Pair A as Ada Lovelace")
    token_b = await asyncio.to_thread(
        issue_token, base_url, "pair-b", "ada", "Ada Lovelace", "mentee"
    )
    for shown, link in (
        ("Pair B", f"/pair#token={token_b}"),
        ("Pair A", f"/pair?pair={pairs['pair-b']['id']}#token={token}"),
    ):
        tab = await context.new_page()  # a tab of its own: its own session storage
        await tab.goto(base_url + link)
        await expect(tab.get_by_role("heading", level=1)).to_have_text(shown)
        await tab.get_by_role("link", name="Join the room").click()
        await expect(tab.locator("#joining-as")).to_contain_text(f"Joining {shown} as Ada")
        await tab.close()

    # /program on the same phone: nothing scrolls the page sideways.
    await page.goto(f"{base_url}/program")
    await page.get_by_label("Admin key").fill(ADMIN_KEY)
    await page.get_by_role("button", name="Show program health").click()
    await expect(page.locator("#cards")).not_to_be_empty()
    assert await page.evaluate(NO_HORIZONTAL_SCROLL), await page.evaluate(
        "() => document.documentElement.scrollWidth"
    )
    await context.close()
