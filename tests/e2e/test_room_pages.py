"""Every page a person opens, at 1280x800 and at 390x844 in Chromium: axe-core finds no
violation, nothing scrolls sideways, no text is drawn smaller than 11 px (SVG labels
included, as scaled to the screen), and each view is photographed for docs/screenshots."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from playwright.async_api import Page, expect
from sqlalchemy import insert

from server.phone.session_log import KIND as PIN_REJECTED
from server.store.schema import session_timeline
from tests.e2e.conftest import Launcher, publish_screenshot
from tests.e2e.room_checks import NO_HORIZONTAL_SCROLL, axe_violations
from tests.e2e.test_room_pair import meet
from tests.signin.conftest import SignInServer
from tests.signin.conftest import mailbox as mailbox  # noqa: F401 - the fixture
from tests.signin.conftest import make_server as make_server  # noqa: F401 - the fixture
from tests.support.participants import issue_token
from tests.support.process import ADMIN_KEY

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CODE = re.compile(r"\b[a-z]+_[a-z_]+\b")  # no_video_rtp, camera_unavailable, ...
SCRIPT_WORDS = re.compile(r"\b(null|undefined|NaN|\[object Object\])")
SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}

SMALLEST_TEXT = """() => {
  // The size a reader sees: an SVG's text is scaled with its viewBox.
  const small = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!node.textContent.trim() || !el || el.closest("[hidden], .visually-hidden, title")) continue;
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height) continue;
    let size = parseFloat(getComputedStyle(el).fontSize);
    const owner = el.closest("svg");
    if (owner && el.getScreenCTM) size *= Math.abs(el.getScreenCTM().a);
    if (size < 11) small.push(`${el.tagName.toLowerCase()} "${node.textContent.trim().slice(0, 20)}" ${size.toFixed(1)}px`);
  }
  return small;
}"""


async def check(
    page: Page, view: str, size: str, problems: list[str], *, photo: bool = True
) -> None:
    """Everything this file asserts of one view, collected so one run names them all."""
    problems += await axe_violations(page, f"{view} {size}")
    if not await page.evaluate(NO_HORIZONTAL_SCROLL):
        wide = await page.evaluate("() => document.documentElement.scrollWidth")
        problems.append(f"{view} {size}: {wide} px wide")
    problems += [f"{view} {size}: small text {t}" for t in await page.evaluate(SMALLEST_TEXT)]
    text = await page.locator("body").inner_text()
    problems += [f"{view} {size}: internal code {code}" for code in CODE.findall(text)]
    problems += [f"{view} {size}: shows {word}" for word in SCRIPT_WORDS.findall(text)]
    if photo:
        publish_screenshot(await shoot(page, f"{view}-{size}"), f"{view}-{size}.png")


async def shoot(page: Page, name: str) -> Any:
    from tests.e2e.conftest import ARTIFACTS

    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def test_every_page_is_accessible_and_fits_a_phone(
    make_server: Any,  # noqa: F811
    launcher: Launcher,
) -> None:
    server: SignInServer = await make_server(room_grace_seconds=0)
    await server.participant("ada", "ada@example.org", "Ada Lovelace")
    pair = await server.admin(
        "POST",
        "/api/v1/pairs",
        {
            "title": "Ada and Grace",
            "members": [
                {"identity": "grace", "name": "Grace Hopper", "role": "mentor"},
                {"identity": "ada", "name": "Ada Lovelace", "role": "mentee"},
            ],
            "room": "room-ada",
        },
    )
    await meet(server.url, "room-ada", [("ada", "Ada Lovelace"), ("grace", "Grace Hopper")])
    await meet(server.url, "room-ada", [("grace", "Grace Hopper")])
    # A removed person's PIN refused during a meeting, as phone/session_log.py records it.
    last = (await server.admin("GET", f"/api/v1/pairs/{pair['id']}/sessions"))["sessions"][0]
    async with server.services.database.begin() as conn:
        await conn.execute(
            insert(session_timeline).values(
                session_id=last["id"], ts=last["started_at"] + 1, kind=PIN_REJECTED,
                identity=None, detail="removed via dtmf from 192.0.2.7 (…042)",
            )
        )  # fmt: skip
    token = await asyncio.to_thread(
        issue_token, server.url, "room-ada", "ada", "Ada Lovelace", "mentee"
    )
    problems: list[str] = []
    for size, viewport in SIZES.items():
        phone = size == "phone"
        context = await launcher.context(viewport=viewport, has_touch=phone, is_mobile=phone)
        page = await context.new_page()

        await page.goto(server.url + "/")
        await expect(page.get_by_role("heading", level=1)).to_be_visible()
        await check(page, "home", size, problems)

        await page.goto(server.url + "/signin")
        await expect(page.get_by_label("Your email address")).to_be_visible()
        await check(page, "signin", size, problems)

        account = await server.signin.accounts.by_email("ada@example.org")
        assert account is not None
        await page.goto(await server.signin.link_url(account))
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(server.url + "/me")
        await expect(page.locator(".pair-card")).to_contain_text("Grace Hopper")
        await check(page, "me", size, problems)

        await page.goto(f"{server.url}/join#token={token}")
        await expect(page.get_by_role("button", name="Join meeting")).to_be_enabled()
        # (room-prejoin-phone.png is test_room_chat's)
        await check(page, "room-prejoin", size, problems, photo=not phone)

        await page.goto(f"{server.url}/pair?pair={pair['id']}#token={token}")
        await expect(page.locator(".log-session")).to_have_count(2)
        await expect(page.locator("#meetings")).not_to_be_empty()
        await expect(page.get_by_role("list", name="Also in the log")).to_contain_text(
            "A phone caller was refused: the PIN of someone removed from the room "
            "(keyed, caller …042)"
        )
        await check(page, "pair", size, problems)

        await page.goto(server.url + "/program")
        await page.get_by_label("Admin key").fill(ADMIN_KEY)
        await page.get_by_role("button", name="Show program health").click()
        await expect(page.locator("#cards")).not_to_be_empty()
        await check(page, "program", size, problems)

        await page.goto(server.url + "/console")
        # The admin key given to /program signs this tab in to the console too.
        await expect(page.get_by_role("heading", name="Participants", level=1)).to_be_visible()
        await check(page, "console", size, problems, photo=False)  # docs/console.md has its own
        await context.close()
    assert problems == [], "\n".join(problems)
