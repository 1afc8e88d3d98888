"""Publishing invites, end to end in Chromium at 390x844 with a real SMTP server: a programme
manager signed in with their session imports two people (with emails), runs matching and
publishes; each member gets a mail with a sign-in link; the mentee opens hers, signs in,
lands on /me and joins the pair's room. "Invite again" mails both once more.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from tests.console.test_console_links_e2e import PHONE, operator_page
from tests.e2e.conftest import Launcher
from tests.e2e.conftest import launcher as launcher  # noqa: F401 - the fixture
from tests.signin.conftest import SignInServer
from tests.signin.conftest import mailbox as mailbox  # noqa: F401 - the fixture
from tests.signin.conftest import make_server as make_server  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow

CSV = """identity,name,role,timezone,availability,skills,email
mara,Mara Mentor,mentor,Europe/London,Mon 09:00-17:00,python,mara@example.org
tess,Tess Mentee,mentee,Europe/Lisbon,Mon 09:00-12:00,python,tess@example.org
"""


async def test_publishing_mails_each_member_a_way_home(
    make_server: Any,  # noqa: F811
    launcher: Launcher,
) -> None:
    server: SignInServer = await make_server()
    manager, page = await operator_page(server, launcher, "mo@example.org", "manager", "/console")
    await page.get_by_label("Or paste it").fill(CSV)
    await page.get_by_role("button", name="Import", exact=True).click()
    await expect(page.locator("#import-result")).to_contain_text("2 imported, no problems")
    await page.locator("#nav").get_by_role("link", name="Criteria").click()
    await expect(page.locator("#c-name-0")).to_have_value("skills")  # the page has loaded
    await page.get_by_role("button", name="Save criteria").click()
    await expect(page.locator("#console-status")).to_have_text("Criteria saved.")
    await page.locator("#nav").get_by_role("link", name="Matching").click()
    await page.get_by_role("button", name="Run matching").click()
    await expect(page.locator("#drafts > li")).to_have_count(1)
    assert server.mailbox.messages == [], "nobody is mailed before publishing"
    await page.get_by_role("button", name="Publish").click()
    await expect(page.locator("#console-status")).to_contain_text(
        "Published 1 pairs. They are under Pairs. 2 people were mailed a sign-in link."
    )
    told = page.locator("#publish-invitations")
    await expect(told).to_contain_text("Tess Mentee: a sign-in link to their page is on its way")
    assert "signin#link=" not in await page.content()

    mails = await server.mailbox.wait_for(2)
    to = {m["To"]: m for m in mails}
    assert set(to) == {"mara@example.org", "tess@example.org"}
    url, _ = server.mailbox.link_in(to["tess@example.org"])

    # Tess opens her link, signs in, lands on /me and joins the room.
    context = await launcher.context(viewport=PHONE)
    tess = await context.new_page()
    await tess.goto(url)
    await expect(tess.get_by_text("Sign in as tess@example.org?")).to_be_visible()
    await tess.get_by_role("button", name="Sign in").click()
    await tess.wait_for_url(server.url + "/me")
    card = tess.locator(".pair-card")
    await expect(card).to_contain_text("Mara Mentor (mentor)")
    await card.get_by_role("button", name="Join").click()
    await tess.wait_for_url(f"{server.url}/join*")
    await tess.get_by_role("button", name="Join meeting").click()
    await expect(tess.locator('.tile[data-identity="tess"]')).to_be_visible()
    await context.close()

    # Invite again, from the pair's page: both are mailed once more.
    await page.locator("#nav").get_by_role("link", name="Pairs").click()
    await page.locator("#pair-list a").first.click()
    await page.get_by_role("button", name="Invite again").click()
    await expect(page.locator("#invitations")).to_contain_text(
        "Mara Mentor: a sign-in link to their page is on its way"
    )
    mails = await server.mailbox.wait_for(4)
    assert {m["To"] for m in mails[2:]} == {"mara@example.org", "tess@example.org"}
    await manager.close()
