"""Chromium at 390x844, signed in with real session cookies: with mail off, "Invite again"
shows an admin the members' sign-in links to copy and tells a programme manager that mail
is not configured, with no link anywhere on their page; a viewer sees health, exports and
the phone gateway only, and the server refuses them publishing (403)."""

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

pytestmark = pytest.mark.slow
PHONE = {"width": 390, "height": 844}


async def operator_page(
    server: SignInServer, launcher: Launcher, email: str, role: str, path: str
) -> tuple[BrowserContext, Page]:
    """A browser signed in as a new operator with `role`, at `path`."""
    account = await server.signin.accounts.create_operator(email, role)
    secret, _ = await server.signin.start_session(account, user_agent="test", address="")
    context = await launcher.context(viewport=PHONE)
    await context.add_cookies([{"name": SESSION_COOKIE, "value": secret, "url": server.url}])
    page = await context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    await page.goto(server.url + path)
    await expect(page.locator("#who")).to_contain_text(f"{email} · {role}")
    return context, page


async def test_invite_again_without_mail(make_server: Any, launcher: Launcher) -> None:  # noqa: F811
    server: SignInServer = await make_server(smtp_host=None)
    await server.participant("ada", "ada@example.org", "Ada")
    await server.participant("grace", "grace@example.org", "Grace")
    pair = await server.admin(
        "POST",
        "/api/v1/pairs",
        {
            "members": [
                {"identity": "grace", "name": "Grace", "role": "mentor"},
                {"identity": "ada", "name": "Ada", "role": "mentee"},
            ],
            "room": "room-ada",
        },
    )
    where = f"/console#pair/{pair['id']}"

    manager, page = await operator_page(server, launcher, "mo@example.org", "manager", where)
    await page.get_by_role("button", name="Invite again").click()
    told = page.locator("#invitations")
    await expect(told).to_contain_text("Ada: not sent: mail is not configured here")
    await expect(told).to_contain_text("Grace: not sent")
    assert await told.locator("input").count() == 0
    assert "signin#link=" not in await page.content()
    await manager.close()

    admin, page = await operator_page(server, launcher, "root@example.org", "admin", where)
    await page.get_by_role("button", name="Invite again").click()
    copy = page.get_by_label("Copy to Ada: their sign-in link (it works once)")
    await expect(copy).to_have_value(LINK)
    # The copied link is Ada's: it signs her in.
    url = await copy.input_value()
    ada = server.browser()
    assert (await ada.confirm(url.rsplit("link=", 1)[1]))["account"]["identity"] == "ada"
    await ada.close()
    await admin.close()


async def test_a_viewer_reads_health_and_exports_only(
    make_server: Any,  # noqa: F811
    launcher: Launcher,
) -> None:
    server: SignInServer = await make_server()
    viewer, page = await operator_page(
        server, launcher, "vi@example.org", "viewer", "/console#matching"
    )
    nav = page.locator("#nav")
    await expect(page.get_by_role("heading", name="Health and exports")).to_be_visible()
    assert await nav.get_by_role("link").all_inner_texts() == ["Phone", "Health", "Exports"]
    await check_axe(page, "exports")
    await photograph(page, "exports")
    await expect(page.locator("#publish")).to_be_hidden()
    await expect(page.locator("#publish")).to_be_disabled()
    csv = page.get_by_role("link", name="The programme's log (CSV)")
    async with page.expect_download() as download:
        await csv.click()
    got = await download.value
    assert got.suggested_filename == "program.csv"
    assert (await got.path()).read_text().strip(), "the export downloaded empty"
    # The server refuses a viewer's session what the page hides.
    token = await page.evaluate(
        "fetch('/api/v1/signin/session').then((r) => r.json()).then((s) => s.csrf)"
    )
    status = await page.evaluate(
        """(token) => fetch('/api/v1/matching/runs/x/publish',
            {method: 'POST', headers: {'X-CSRF-Token': token}}).then((r) => r.status)""",
        token,
    )
    assert status == 403
    # Health opens with the viewer's session, no admin key; the admin-only privacy setting
    # is not shown to them.
    await nav.get_by_role("link", name="Health").click()
    await expect(page.locator("#cards")).to_contain_text("Pairs matched")
    await expect(page.locator("#key-form")).to_be_hidden()
    await expect(page.locator("#privacy")).to_be_hidden()
    await viewer.close()

    manager, page = await operator_page(server, launcher, "mo@example.org", "manager", "/console")
    await expect(page.get_by_role("heading", name="Participants")).to_be_visible()
    texts = await page.locator("#nav").get_by_role("link").all_inner_texts()
    assert texts == [
        "Participants", "Criteria", "Matching", "Pairs", "Rooms", "Phone", "Health", "Exports"
    ]  # fmt: skip
    # Signing out ends the session, not only the page.
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", name="Sign in to the console")).to_be_visible()
    status = await page.evaluate("fetch('/api/v1/signin/session').then((r) => r.status)")
    assert status == 401
    await manager.close()


async def test_a_participant_reaches_no_console_page(make_server: Any, launcher: Launcher) -> None:  # noqa: F811
    """A signed-in participant opening any console page gets the sign-in form and no data:
    the server refuses their session every console call (tests/security/test_route_roles.py
    has every route), and the page shows nothing without one."""
    server: SignInServer = await make_server()
    account = await server.participant("ada", "ada@example.org", "Ada")
    await server.participant("grace", "grace@example.org", "Grace")
    ada = await server.signin.accounts.get(account["id"])
    secret, _ = await server.signin.start_session(ada, user_agent="test", address="")
    context = await launcher.context(viewport=PHONE)
    await context.add_cookies([{"name": SESSION_COOKIE, "value": secret, "url": server.url}])
    page = await context.new_page()
    for where in ("participants", "pairs", "rooms/room-ada", "activity", "matching"):
        await page.goto(f"{server.url}/console#{where}")
        await expect(page.get_by_role("heading", name="Sign in to the console")).to_be_visible()
        await expect(page.locator("#nav")).to_be_hidden()
        assert "grace@example.org" not in await page.content()
    status = await page.evaluate("fetch('/api/v1/console/participants').then((r) => r.status)")
    assert status == 403
    # Her session still works where it belongs.
    assert await page.evaluate("fetch('/api/v1/home').then((r) => r.status)") == 200
    await context.close()
