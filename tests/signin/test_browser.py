"""Chromium, end to end at 390x844: a participant asks for a link, reads it from the mail the
real SMTP server received, confirms it, lands on /me and joins the room; a page on another
site cannot use their session."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import expect

from tests.e2e.conftest import ARTIFACTS, Launcher, publish_screenshot
from tests.e2e.conftest import launcher as launcher  # noqa: F401 - the fixture
from tests.signin.conftest import SignInServer
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow
PHONE = {"width": 390, "height": 844}


async def test_sign_in_by_email_land_on_me_and_join(
    make_server: Any, launcher: Launcher, aiohttp_server: Any
) -> None:
    server: SignInServer = await make_server()
    pair = await server.ada_paired_with_grace()
    context = await launcher.context(viewport=PHONE)
    page = await context.new_page()
    await page.goto(server.url + "/signin")
    await page.get_by_label("Your email address").fill("ada@example.org")
    await page.get_by_role("button", name="Email me a link").click()
    await expect(page.get_by_role("status")).to_contain_text("a sign-in link is on its way")

    [mail] = await server.mailbox.wait_for(1)
    url, _ = server.mailbox.link_in(mail)
    await page.goto(url)
    await expect(page.get_by_text("Sign in as ada@example.org?")).to_be_visible()
    assert "link=" not in page.url, "the secret stays out of the address bar"
    # Opening the link signed nobody in.
    status = await page.evaluate("fetch('/api/v1/signin/session').then(r => r.status)")
    assert status == 401
    await _screenshot(page, "signin-confirm")
    await page.get_by_role("button", name="Sign in").click()

    await page.wait_for_url(server.url + "/me")
    card = page.locator(".pair-card")
    await expect(card).to_contain_text("With Grace Hopper (mentor)")
    await expect(page.locator("#sessions")).to_contain_text("this browser")
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], "the home scrolls sideways on a phone"
    await _screenshot(page, "me")

    # A page on another site posts a form to sign the visitor out everywhere: refused.
    evil = await aiohttp_server(_evil_app(server.url), host="127.0.0.2")
    async with page.expect_response(lambda r: "signout-everywhere" in r.url) as answer:
        await page.goto(str(evil.make_url("/")))
    assert (await answer.value).status in (401, 403)
    await page.wait_for_url("**/api/v1/signin/signout-everywhere")
    account = await server.signin.accounts.by_identity("ada")
    assert account is not None
    assert len(await server.signin.sessions.of_account(account.id, server.signin.clock())) == 1

    # Join: a token minted from the session, straight into the room.
    await page.goto(server.url + "/me")
    await page.get_by_role("button", name="Join").click()
    await page.wait_for_url(f"{server.url}/join*")
    await page.get_by_role("button", name="Join meeting").click()
    await expect(page.locator('.tile[data-identity="ada"]')).to_be_visible()
    # The page shows her own tile before the server's join answer: wait for the room.
    await eventually(lambda: server.services.rooms.get("room-ada"), what="the room")

    # The pair ends: /me says so, and no Join is offered.
    await server.signin.pairs.set_status(pair["id"], "unpublished")
    await page.goto(server.url + "/me")
    await expect(card).to_contain_text("This pair's mentoring has ended.")
    await expect(card.get_by_role("button", name="Join")).to_have_count(0)

    # Sign out: back to /signin, and /me sends there too.
    await page.get_by_role("button", name="Sign out", exact=True).click()
    await page.wait_for_url(server.url + "/signin")
    await page.goto(server.url + "/me")
    await page.wait_for_url(server.url + "/signin")
    await context.close()


def _evil_app(target: str) -> web.Application:
    """Another site's page: a form that posts itself to the server as soon as it loads."""
    html = f"""<!doctype html><html><body onload="document.forms[0].submit()">
<form method="post" action="{target}/api/v1/signin/signout-everywhere">
<input name="x" value="1"></form></body></html>"""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    return app


async def _screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path))
    publish_screenshot(path, f"{name}.png")
