"""Chromium at 390x844 with a real SMTP server (aiosmtpd, started by the test): an operator
asks for a link from the console's sign-in page, opens it from the mail that arrived, and
lands in the console signed in with an HttpOnly, SameSite session cookie; the same link
again, or an expired one, shows a page that says the link does not work. Then, signed in
as that admin, she adds and deactivates an operator, and the Activity page tells it in
sentences that name them ("Ana (admin) deactivated Bo."), with no internal codes."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.async_api import Page, expect

from server.api.access import SESSION_COOKIE
from tests.console.test_console_e2e import check_axe
from tests.e2e.conftest import Launcher
from tests.e2e.conftest import launcher as launcher  # noqa: F401 - the fixture
from tests.signin.conftest import SignInServer
from tests.signin.conftest import mailbox as mailbox  # noqa: F401 - the fixture
from tests.signin.conftest import make_server as make_server  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow
PHONE = {"width": 390, "height": 844}
# An audit code as the log keeps it (account_deactivate, console.import, ...).
CODE = re.compile(r"\b[a-z]+[_.][a-z_.]+\b")


async def refused_link_page(page: Page, url: str, where: str) -> None:
    await page.goto(url)
    await expect(
        page.get_by_role("heading", name="This sign-in link does not work")
    ).to_be_visible()
    await expect(page.get_by_role("alert")).to_have_text(
        "this sign-in link is used up or has expired: ask for a new one"
    )
    await expect(page.get_by_role("link", name="Ask for a new link")).to_be_visible()
    await expect(page.get_by_role("button", name="Sign in")).to_be_hidden()
    await check_axe(page, where)


async def test_an_operator_signs_in_from_the_mail_and_reads_activity(
    make_server: Any,  # noqa: F811
    launcher: Launcher,  # noqa: F811
) -> None:
    server: SignInServer = await make_server()
    ana = await server.signin.accounts.create_operator("ana@example.org", "admin", "Ana")
    context = await launcher.context(viewport=PHONE)
    page = await context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())

    # From the console's sign-in form to /signin, a link by mail, back in the console.
    await page.goto(server.url + "/console")
    await page.get_by_role("link", name="Sign in with your email").click()
    await page.get_by_label("Your email address").fill("ana@example.org")
    await page.get_by_role("button", name="Email me a link").click()
    [mail] = await server.mailbox.wait_for(1)
    assert mail["To"] == "ana@example.org"
    url, _ = server.mailbox.link_in(mail)
    await page.goto(url)
    await expect(page.get_by_text("Sign in as ana@example.org?")).to_be_visible()
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(server.url + "/console")
    await expect(page.locator("#who")).to_have_text("ana@example.org · admin")
    await expect(page.locator("#nav")).to_be_visible()
    [cookie] = [c for c in await context.cookies() if c["name"] == SESSION_COOKIE]
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Lax", cookie
    assert cookie["secure"] is False  # plain http here; Secure behind TLS (test_signin_flow)
    assert SESSION_COOKIE not in await page.evaluate("document.cookie")

    # The same link again, and a link past its 15 minutes: a page that says so.
    await refused_link_page(page, url, "used link")
    expired = await server.signin.link_url(ana)
    later = time.time() + 16 * 60
    server.signin.clock = lambda: later
    try:
        await refused_link_page(page, expired, "expired link")
    finally:
        server.signin.clock = time.time

    # Still signed in: add an operator, then deactivate them, from the Operators page.
    await page.goto(server.url + "/console#operators")
    await page.get_by_label("Email", exact=True).fill("bo@example.org")
    await page.get_by_label("Name", exact=True).fill("Bo")
    await page.get_by_label("Role", exact=True).select_option("viewer")
    await page.get_by_role("button", name="Add", exact=True).click()
    await expect(page.locator("#console-status")).to_contain_text("Added bo@example.org")
    await page.get_by_role("button", name="Deactivate bo@example.org").click()
    await expect(page.locator("#console-status")).to_contain_text("bo@example.org is deactivated")

    await page.goto(server.url + "/console#activity")
    feed = page.locator("#activity-feed")
    await expect(feed).to_contain_text("Ana (admin) deactivated Bo.")
    await expect(feed).to_contain_text("Ana (admin) added Bo as viewer.")
    text = await feed.inner_text()
    assert text.count("deactivated Bo") == 1, text  # one entry per action
    assert not CODE.findall(text), CODE.findall(text)
    await check_axe(page, "activity")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await context.close()
