"""Red team: the console's Activity page tells the audit log in sentences with people's
names and pair titles inside them. The whole sentence sat in one `dir="auto"` span, so a
name with U+202E (right-to-left override) reversed the rest of the sentence after it
("... added <name> as viewer." read backwards), and the existing isolation check passed
because the span has `dir="auto"`. Each name is now its own `<bdi>`. A name with HTML is
shown as text (never markup), and a 200-character name wraps at 390 px."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from server.api.access import SESSION_COOKIE
from tests.e2e.conftest import Launcher
from tests.e2e.conftest import launcher as launcher  # noqa: F401 - the fixture
from tests.signin.conftest import SignInServer
from tests.signin.conftest import mailbox as mailbox  # noqa: F401 - the fixture
from tests.signin.conftest import make_server as make_server  # noqa: F401 - the fixture

pytestmark = [pytest.mark.slow, pytest.mark.browser]
RLO, PDI = "\u202e", "\u2069"
XSS = "<img src=x onerror=window.__pwned=1>"

# Whether the word `after` the override still reads left to right: the left edge of its
# first character is left of its last one's (one word: a line break cannot fall inside).
IN_ORDER = """(root, after) => {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode, at = node.data.indexOf(after);
    if (at < 0) continue;
    const edge = (i) => { const r = document.createRange(); r.setStart(node, i);
      r.setEnd(node, i + 1); return r.getBoundingClientRect().left; };
    return edge(at) < edge(at + after.length - 1);
  }
  return null;
}"""


async def test_activity_names_cannot_reverse_or_inject_into_their_sentence(
    make_server: Any,  # noqa: F811
    launcher: Launcher,  # noqa: F811
) -> None:
    server: SignInServer = await make_server()
    await server.signin.accounts.create_operator("ana@example.org", "admin", "Ana")
    for email, name in (
        ("eve@example.org", f"Eve {RLO}"),
        ("pdi@example.org", f"Mallory {PDI}{RLO}"),  # tries to close the isolation first
        ("xss@example.org", XSS),
        ("long@example.org", "L" * 200),
    ):
        await server.admin(
            "POST", "/api/v1/accounts/operators", {"email": email, "role": "viewer", "name": name}
        )
    ana = await server.signed_in("ana@example.org")
    session = ana.cookie(SESSION_COOKIE)
    await ana.close()

    context = await launcher.context(viewport={"width": 390, "height": 844})
    await context.add_cookies([{"name": SESSION_COOKIE, "value": session, "url": server.url}])
    page = await context.new_page()
    await page.goto(server.url + "/console#activity")
    feed = page.locator("#activity-feed")
    await expect(feed).to_contain_text(f"added {XSS} as viewer.")
    await expect(feed).to_contain_text("Mallory")
    assert await page.evaluate("window.__pwned") is None
    assert await feed.locator("img").count() == 0
    for name in ("Eve", "Mallory"):
        item = feed.locator("li", has_text=name)
        in_order = await item.evaluate(IN_ORDER, "viewer")
        assert in_order is True, f"{name}'s override reversed the rest of the sentence"
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await context.close()
