"""The Operators page and "My sessions", in Chromium at 390x844 and 1280x800 with real session
cookies: an admin adds a programme manager, sends them a sign-in link (mailed with mail on,
shown to copy with mail off), makes them a viewer, signs them out everywhere (their next call
answers 401) and deactivates them, and the audit log names the admin for each; a manager
has no such page and the server refuses them the operators' routes; an operator ends
another of their own sessions from "My sessions"."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page, expect

from server.api.access import SESSION_COOKIE
from tests.console.test_console_e2e import check_axe, photograph
from tests.e2e.conftest import Launcher
from tests.e2e.conftest import launcher as launcher  # noqa: F401 - the fixture
from tests.signin.conftest import LINK, SignInServer
from tests.signin.conftest import mailbox as mailbox  # noqa: F401 - the fixture
from tests.signin.conftest import make_server as make_server  # noqa: F401 - the fixture
from tests.support.process import ADMIN_KEY

pytestmark = pytest.mark.slow
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
ADMIN_EMAIL = "root@example.org"


async def signed_in_page(
    server: SignInServer,
    launcher: Launcher,
    email: str,
    role: str,
    path: str,
    viewport: dict[str, int] = PHONE,
) -> tuple[BrowserContext, Page, str]:
    """A browser signed in as a new operator with `role`, at `path`, and its session secret."""
    account = await server.signin.accounts.create_operator(email, role)
    secret, _ = await server.signin.start_session(account, user_agent="test", address="")
    context = await launcher.context(viewport=viewport)
    await context.add_cookies([{"name": SESSION_COOKIE, "value": secret, "url": server.url}])
    page = await context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    await page.goto(server.url + path)
    await expect(page.locator("#who")).to_contain_text(f"{email} · {role}")
    return context, page, secret


async def status_with(server: SignInServer, secret: str, path: str) -> int:
    """The status `path` answers a browser holding the session cookie `secret`."""
    browser = server.browser()
    browser.http.cookie_jar.update_cookies({SESSION_COOKIE: secret})
    status, _ = await browser.call("GET", path)
    await browser.close()
    return status


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP])
async def test_an_admin_manages_an_operator(
    make_server: Any,  # noqa: F811
    launcher: Launcher,  # noqa: F811
    viewport: dict[str, int],
) -> None:
    server: SignInServer = await make_server(smtp_host=None)
    context, page, _ = await signed_in_page(
        server, launcher, ADMIN_EMAIL, "admin", "/console", viewport
    )
    await page.locator("#nav").get_by_role("link", name="Operators").click()
    await expect(page.get_by_role("heading", name="Operators", exact=True)).to_be_visible()

    await page.get_by_label("Email").fill("mo@example.org")
    await page.get_by_label("Name", exact=True).fill("Mo Manager")
    await page.get_by_label("Role", exact=True).select_option("manager")
    await page.get_by_role("button", name="Add", exact=True).click()
    await expect(page.locator("#console-status")).to_contain_text("Added mo@example.org")
    row = page.locator("#operator-list tbody tr").filter(has_text="mo@example.org")
    await expect(row).to_contain_text("Mo Manager")
    await expect(row.get_by_label("Role of mo@example.org")).to_have_value("manager")
    # Added twice: the error alone, not beside the first time's "Added".
    await page.get_by_label("Email").fill("mo@example.org")
    await page.get_by_role("button", name="Add", exact=True).click()
    await expect(page.locator("#console-error")).to_contain_text("mo@example.org exists")
    await expect(page.locator("#console-status")).to_have_text("")

    # With mail off the link is shown to copy (test_a_link_is_mailed has mail on).
    await page.get_by_role("button", name="Sign-in link for mo@example.org").click()
    copy = page.get_by_label("Copy to mo@example.org: their sign-in link (it works once)")
    await expect(copy).to_have_value(LINK)
    secret = (await copy.input_value()).rsplit("link=", 1)[1]
    mo = server.browser()
    assert (await mo.confirm(secret))["account"]["email"] == "mo@example.org"
    assert (await mo.call("GET", "/api/v1/console/me"))[1]["role"] == "manager"
    if viewport == PHONE:
        await check_axe(page, "operators")
        await page.locator("#operator-list .console-scroll").evaluate(
            "(e) => { e.scrollLeft = 0; }"
        )
        await photograph(page, "operators")

    await row.get_by_label("Role of mo@example.org").select_option("viewer")
    await expect(page.locator("#console-status")).to_contain_text("now viewer")
    await expect(row.get_by_label("Role of mo@example.org")).to_have_value("viewer")
    assert (await mo.call("GET", "/api/v1/console/me"))[1]["role"] == "viewer"

    await row.get_by_role("button", name="Sign out everywhere: mo@example.org").click()
    await expect(page.locator("#console-status")).to_contain_text(
        "mo@example.org is signed out of 1 browser"
    )
    assert (await mo.call("GET", "/api/v1/console/me"))[0] == 401
    await mo.close()

    await row.get_by_role("button", name="Deactivate mo@example.org").click()
    await expect(row).to_contain_text("deactivated")
    await expect(row.get_by_role("button", name="Reactivate mo@example.org")).to_be_visible()
    await expect(row.get_by_role("button", name="Sign-in link for mo@example.org")).to_have_count(0)
    account = await server.signin.accounts.by_email("mo@example.org")
    assert account is not None and not account.active
    await check_axe(page, "operators after changes")
    # Their own row cannot lock them out: no Deactivate, the role fixed.
    own = page.locator("#operator-list tbody tr").filter(has_text=f"{ADMIN_EMAIL} (you)")
    await expect(own.get_by_role("button", name=f"Deactivate {ADMIN_EMAIL}")).to_have_count(0)
    await expect(own.get_by_label(f"Role of {ADMIN_EMAIL}")).to_be_disabled()

    # The audit log names the admin for every change, the manager as its subject.
    audit = await page.evaluate("fetch('/api/v1/privacy/audit').then((r) => r.json())")
    mine = [
        (e["action"], e["detail"]) for e in audit["entries"] if e["subject"] == "mo@example.org"
    ]
    actions = [a for a, _ in mine]
    for expected in ("account_create", "signin_link", "sessions_revoke", "account_deactivate"):
        assert expected in actions, mine
    assert any(a == "account_update" and d.get("role") == "viewer" for a, d in mine), mine
    actors = {e["actor"] for e in audit["entries"] if e["subject"] == "mo@example.org"}
    assert actors == {ADMIN_EMAIL}, actors
    await context.close()


async def test_the_admin_key_has_operators_but_no_sessions(
    make_server: Any,  # noqa: F811
    launcher: Launcher,  # noqa: F811
) -> None:
    """The key has no session: "My sessions" is not offered (its 401 would sign the key out),
    while Operators works with the key as with an admin's session."""
    server: SignInServer = await make_server()
    await server.signin.accounts.create_operator("mo@example.org", "manager")
    context = await launcher.context(viewport=PHONE)
    page = await context.new_page()
    await page.goto(server.url + "/console")
    await page.get_by_label("Admin key").fill(ADMIN_KEY)
    await page.get_by_label("Admin key").press("Enter")
    await expect(page.locator("#nav")).to_be_visible()
    await expect(page.get_by_role("link", name="My sessions")).to_be_hidden()
    await page.goto(server.url + "/console#sessions")
    await expect(page.get_by_role("heading", name="Participants")).to_be_visible()
    await page.locator("#nav").get_by_role("link", name="Operators").click()
    row = page.locator("#operator-list tbody tr").filter(has_text="mo@example.org")
    await expect(row.get_by_role("button", name="Deactivate mo@example.org")).to_be_visible()
    await expect(page.locator("#nav")).to_be_visible()  # still signed in
    await context.close()


async def test_a_link_is_mailed(make_server: Any, launcher: Launcher) -> None:  # noqa: F811
    """With mail on, "Sign-in link" mails the link and shows nothing to copy."""
    server: SignInServer = await make_server()
    context, page, _ = await signed_in_page(
        server, launcher, ADMIN_EMAIL, "admin", "/console#operators", DESKTOP
    )
    await server.signin.accounts.create_operator("mo@example.org", "manager")
    await page.reload()
    await page.get_by_role("button", name="Sign-in link for mo@example.org").click()
    await expect(page.locator("#console-status")).to_contain_text("on its way", timeout=3000)
    messages = await server.mailbox.wait_for(1)
    assert messages[0]["To"] == "mo@example.org"
    assert await page.locator("#operator-link input").count() == 0
    await context.close()


async def test_a_manager_has_no_operators_page(make_server: Any, launcher: Launcher) -> None:  # noqa: F811
    server: SignInServer = await make_server()
    context, page, _ = await signed_in_page(
        server, launcher, "mo@example.org", "manager", "/console#operators"
    )
    await expect(page.get_by_role("heading", name="Participants")).to_be_visible()
    await expect(page.locator("#operators")).to_be_hidden()
    texts = await page.locator("#nav").get_by_role("link").all_inner_texts()
    assert "Operators" not in texts, texts
    token = await page.evaluate(
        "fetch('/api/v1/signin/session').then((r) => r.json()).then((s) => s.csrf)"
    )
    statuses = await page.evaluate(
        """async (token) => [
          (await fetch('/api/v1/accounts/operators')).status,
          (await fetch('/api/v1/accounts/operators', {method: 'POST',
            headers: {'X-CSRF-Token': token, 'Content-Type': 'application/json'},
            body: JSON.stringify({email: 'me2@example.org', role: 'admin'})})).status,
        ]""",
        token,
    )
    assert statuses == [403, 403]
    assert await server.signin.accounts.by_email("me2@example.org") is None
    await context.close()


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP])
async def test_my_sessions_ends_another_session(
    make_server: Any,  # noqa: F811
    launcher: Launcher,  # noqa: F811
    viewport: dict[str, int],
) -> None:
    server: SignInServer = await make_server()
    context, page, here = await signed_in_page(
        server, launcher, "vi@example.org", "viewer", "/console", viewport
    )
    account = await server.signin.accounts.by_email("vi@example.org")
    assert account is not None
    laptop, _ = await server.signin.start_session(
        account,
        user_agent="Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/133.0",
        address="192.0.2.7",
    )
    # Someone else's session is not theirs to see or end.
    other = await server.signin.accounts.create_operator("mo@example.org", "manager")
    theirs, _ = await server.signin.start_session(other, user_agent="x", address="198.51.100.1")
    await page.get_by_role("link", name="My sessions").click()
    await expect(page.get_by_role("heading", name="My sessions")).to_be_visible()
    rows = page.locator("#session-list tbody tr")
    await expect(rows).to_have_count(2)
    await expect(rows.filter(has_text="this browser")).to_have_count(1)
    laptop_row = rows.filter(has_text="192.0.2.7")
    await expect(laptop_row).to_contain_text("Firefox on Linux")
    assert "198.51.100.1" not in await page.content()
    if viewport == PHONE:
        await check_axe(page, "sessions")
        await photograph(page, "sessions")

    await laptop_row.get_by_role("button", name="Sign out").click()
    await expect(rows).to_have_count(1)
    await expect(page.locator("#console-status")).to_contain_text("That browser is signed out")
    assert await status_with(server, laptop, "/api/v1/signin/session") == 401
    assert await status_with(server, here, "/api/v1/signin/session") == 200
    assert await status_with(server, theirs, "/api/v1/signin/session") == 200
    await check_axe(page, "sessions after")

    await page.get_by_role("button", name="Sign out everywhere").click()
    await expect(page.get_by_role("heading", name="Sign in to the console")).to_be_visible()
    assert await status_with(server, here, "/api/v1/signin/session") == 401
    assert await status_with(server, theirs, "/api/v1/signin/session") == 200
    await context.close()
