"""Chromium at 390x844: a programme manager deactivates a participant who is in their
pair's room; the participant's room page says an operator removed them, and their session
has ended. Reactivating them shows in the console."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from server.api.access import SESSION_COOKIE
from tests.console.test_console_links_e2e import PHONE, operator_page
from tests.console.test_deactivation import CSV, _pair
from tests.e2e.conftest import Launcher
from tests.e2e.conftest import launcher as launcher  # noqa: F401 - the fixture
from tests.signin.conftest import SignInServer
from tests.signin.conftest import mailbox as mailbox  # noqa: F401 - the fixture
from tests.signin.conftest import make_server as make_server  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow


async def test_a_deactivated_participant_is_put_out_of_the_room(
    make_server: Any,  # noqa: F811
    launcher: Launcher,
) -> None:
    server: SignInServer = await make_server()
    await server.admin(
        "POST", "/api/v1/console/participants/import", {"format": "csv", "text": CSV}
    )
    await _pair(server, "grace", "room-ada")
    ada_account = await server.signin.accounts.by_identity("ada")
    assert ada_account is not None
    secret, _ = await server.signin.start_session(ada_account, user_agent="test", address="")
    ada_context = await launcher.context(viewport=PHONE)
    await ada_context.add_cookies([{"name": SESSION_COOKIE, "value": secret, "url": server.url}])
    ada = await ada_context.new_page()
    await ada.goto(server.url + "/me")
    await ada.locator(".pair-card").get_by_role("button", name="Join").click()
    await ada.wait_for_url(f"{server.url}/join*")
    await ada.get_by_role("button", name="Join meeting").click()
    await expect(ada.locator('.tile[data-identity="ada"]')).to_be_visible()

    manager, page = await operator_page(server, launcher, "mo@example.org", "manager", "/console")
    await page.get_by_role("button", name="Deactivate ada").click()
    await expect(page.locator("#console-status")).to_have_text(
        "ada is deactivated: removed from 1 room and signed out everywhere; "
        "the links they hold stop working."
    )
    await expect(page.get_by_role("button", name="Reactivate ada")).to_be_visible()
    # Put out of the room, and refused when the page tries to come back.
    await expect(ada.get_by_text("an operator removed you from this room")).to_be_visible()
    room = server.services.rooms.get("room-ada")
    assert room is None or "ada" not in room.participants
    status = await ada.evaluate("fetch('/api/v1/signin/session').then((r) => r.status)")
    assert status == 401

    await page.get_by_role("button", name="Reactivate ada").click()
    await expect(page.locator("#console-status")).to_contain_text("ada is active again")
    account = await server.signin.accounts.by_identity("ada")
    assert account is not None and account.active
    await manager.close()
    await ada_context.close()
