"""Item 9: a name or title with U+202E (right-to-left override) cannot reverse the text
around it on the pair page (names, agenda, goals, notes, meeting titles, the media strip's
tooltips) and the program page (the room is tests/e2e's)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.async_api import expect

from server.app import create_app
from server.config import Settings
from tests.conftest import ADMIN
from tests.e2e.conftest import Launcher, launcher  # noqa: F401 - the fixture
from tests.security.conftest import Target
from tests.support.process import ADMIN_KEY

pytestmark = [pytest.mark.slow, pytest.mark.browser]

RLO = "\u202e"

# Every text node carrying the override, and whether an element isolates it.
ISOLATION = """() => {
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const found = [];
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (node.data.includes("\\u202e")) {
      found.push([node.data, node.parentElement.closest('bdi, [dir="auto"]') !== null]);
    }
  }
  return found;
}"""


@pytest.fixture
async def site(aiohttp_server: Any, make_settings: Callable[..., Settings]) -> Any:
    import aiohttp

    from tests.support.parts import ServerParts

    server = await aiohttp_server(create_app(make_settings()))
    async with aiohttp.ClientSession() as http:
        yield Target(
            str(server.make_url("")).rstrip("/"), ServerParts(server.app), http, server.app
        )


async def test_names_with_a_direction_override_cannot_reverse_the_page(
    site: Target,
    launcher: Launcher,  # noqa: F811
) -> None:
    members = [
        {"identity": "ada", "name": f"Ada {RLO}gpj.exe", "role": "mentor"},
        {"identity": "bo", "name": "Bo", "role": "mentee"},
    ]
    pair = await site.ok(
        "POST", "/api/v1/pairs", ADMIN, {"members": members, "title": f"{RLO}Ada and Bo"}
    )
    pid, room = pair["id"], pair["room"]
    sid = await site.session(pair)
    ada = site.bearer(site.token(room, "ada", "mentor"))
    bo = site.bearer(site.token(room, "bo", "mentee"))
    await site.ok("POST", f"/api/v1/pairs/{pid}/agenda", ada, {"text": f"{RLO}salary talk"})
    await site.ok("POST", f"/api/v1/pairs/{pid}/goals", ada, {"title": f"{RLO}a goal"})
    await site.ok("POST", f"/api/v1/pairs/{pid}/sessions/{sid}/notes", ada, {"text": f"{RLO}note"})
    await site.ok(
        "POST", f"/api/v1/pairs/{pid}/sessions/{sid}/feedback", bo, {"rating": 2, "good_fit": False}
    )
    soon = datetime.fromtimestamp(time.time() + 7 * 86400, UTC).isoformat()
    meeting = {"title": f"{RLO}weekly", "times": [soon], "timezone": "Europe/London"}
    await site.ok("POST", f"/api/v1/pairs/{pid}/meetings", ada, meeting)

    context = await launcher.context()
    page = await context.new_page()
    await page.goto(f"{site.url}/pair#token={site.token(room, 'ada', 'mentor')}")
    await expect(page.locator("#agenda")).to_contain_text("salary talk")
    await expect(page.locator("#sessions")).to_contain_text("note")
    await expect(page.locator("#meeting-list")).to_contain_text("weekly")
    found = await page.evaluate(ISOLATION)
    assert len(found) >= 6, found  # heading, title, member name, agenda, goal, note, meeting
    assert [text for text, isolated in found if not isolated] == []

    await page.goto(f"{site.url}/program")
    await page.locator("#admin-key").fill(ADMIN_KEY)
    await page.locator("#admin-key").press("Enter")
    await expect(page.locator("#flagged")).to_contain_text("Ada and Bo")
    found = await page.evaluate(ISOLATION)
    assert found
    assert [text for text, isolated in found if not isolated] == []
    await context.close()
