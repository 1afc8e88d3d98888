"""The programme console in real Chromium at 390x844, against a real server.

One programme loop, as a new programme manager would run it: sign in, import a CSV with
one bad row (see its error in place, fix it there), set criteria, run matching (watching
its progress), review, swap two pairs, run again, publish; then end a pair and see its
room refuse a join (token mint 403 room_closed, Socket.IO join refused, chat write
refused) while its log stays readable. Every console page is checked with axe-core and
photographed (docs/screenshots/console-*.png with PAIRWISE_UPDATE_SCREENSHOTS=1).

What a viewer and a programme manager see, signed in with real sessions, is in
tests/console/test_console_links_e2e.py.
"""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp
import pytest
from playwright.async_api import BrowserContext, Page, expect

from tests.conftest import ADMIN
from tests.e2e.conftest import ARTIFACTS, ROOT, Launcher, publish_screenshot
from tests.support.participants import SocketParticipant
from tests.support.process import ADMIN_KEY

pytestmark = pytest.mark.slow

AXE = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"
PHONE = {"viewport": {"width": 390, "height": 844}}

CSV = """identity,name,role,timezone,availability,skills,email
mara,Mara Mentor,mentor,Europe/London,Mon 09:00-17:00; Wed 09:00-17:00,python;design,mara@example.org
nils,Nils Mentor,mentor,Europe/Berlin,Mon 10:00-18:00; Thu 10:00-18:00,design;python,nils@example.org
tess,Tess Mentee,mentee,Europe/Lisbon,Mon 09:00-12:00,python,tess@example.org
ugo,Ugo Mentee,mentee,Mars/Olympus,Mon 13:00-17:00,design,ugo@example.org
"""


async def check_axe(page: Page, where: str) -> None:
    """No axe-core violations on the page as it is now."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        # Evaluated, not added as a <script>: the page's CSP (script-src 'self') stays on.
        await page.evaluate(AXE.read_text() + "\n;0")
    result = await page.evaluate("async () => (await axe.run(document)).violations")
    found = [(v["id"], [n["target"] for n in v["nodes"]][:3]) for v in result]
    assert not found, f"{where}: {found}"


async def photograph(page: Page, name: str) -> None:
    path = ARTIFACTS / f"console-{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(path), full_page=True)
    publish_screenshot(path, f"console-{name}.png")


async def visit(page: Page, name: str) -> None:
    """Open a console page from the navigation, with the keyboard."""
    link = page.locator("#nav").get_by_role("link", name=name.title(), exact=True)
    await link.focus()
    await page.keyboard.press("Enter")
    await expect(link).to_have_attribute("aria-current", "page")


async def http(base: str, method: str, path: str, body: Any = None, headers: Any = None) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, base + path, json=body, headers=headers or ADMIN) as response,
    ):
        return response.status, await response.json()


async def signed_in(context: BrowserContext, base_url: str, *, photo: bool = True) -> Page:
    page = await context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    await page.goto(f"{base_url}/console")
    await expect(page.get_by_role("heading", name="Sign in to the console")).to_be_visible()
    await expect(page.get_by_role("link", name="Sign in with your email")).to_have_attribute(
        "href", "/signin"
    )
    await check_axe(page, "sign-in")
    if photo:
        await photograph(page, "signin")
    await page.get_by_label("Admin key").fill(ADMIN_KEY)
    await page.get_by_label("Admin key").press("Enter")
    await expect(page.locator("#nav")).to_be_visible()
    return page


async def test_a_programme_loop_in_the_console(base_url: str, launcher: Launcher) -> None:
    context = await launcher.context(**PHONE)
    page = await signed_in(context, base_url)

    # Import: one bad row, its error shown where the row is, fixed there and sent again.
    await expect(page.locator("#participants")).to_be_visible()
    await page.get_by_role("button", name="Import", exact=True).click()
    await expect(page.locator("#console-error")).to_have_text(
        "Nothing to import: choose a file or paste a CSV (or a JSON list) first."
    )
    await page.get_by_label("Or paste it").fill(CSV)
    await page.get_by_role("button", name="Import", exact=True).click()
    bad = page.locator("fieldset.console-bad-row")
    await expect(bad).to_have_count(1)
    await expect(bad.locator("legend")).to_contain_text("Row 5")
    await expect(bad.locator(".error")).to_contain_text("Mars/Olympus")
    await expect(page.get_by_label("Or paste it")).to_have_value("")  # taken: not sent twice
    await check_axe(page, "participants with a bad row")
    await photograph(page, "participants")
    await bad.get_by_label("timezone").fill("Europe/Rome")
    await page.get_by_role("button", name="Import the fixed rows").click()
    await expect(page.locator("#import-result")).to_contain_text("1 imported, no problems")
    await expect(page.locator("#people tbody tr")).to_have_count(4)

    # Criteria: the form's first criterion, saved and validated by the server.
    await visit(page, "criteria")
    await expect(page.locator("#c-name-0")).to_have_value("skills")
    # The starter counts free time in common, so a pair who can never meet is not a top match.
    await expect(page.locator("#c-rule-1")).to_have_value("shared_hours")
    await page.get_by_role("button", name="Save criteria").click()
    await expect(page.locator("#console-status")).to_have_text("Criteria saved.")
    _, saved = await http(base_url, "GET", "/api/v1/matching/criteria")
    assert [c["rule"] for c in saved["criteria"]] == ["overlap", "shared_hours"], saved
    await check_axe(page, "criteria")
    await photograph(page, "criteria")

    # Matching with its progress, the review, a swap and a second run, then publishing.
    await visit(page, "matching")
    await page.evaluate("""() => {
        window.progressSeen = [];
        new MutationObserver((records) => window.progressSeen.push(...records.map((r) =>
            [r.target.id, r.attributeName, r.target.getAttribute(r.attributeName)]
        ))).observe(document.getElementById("run-form"),
                    { attributes: true, subtree: true, attributeFilter: ["hidden", "value"] });
    }""")
    await page.get_by_role("button", name="Run matching").click()
    drafts = page.locator("#drafts > li")
    await expect(drafts).to_have_count(2)
    seen = await page.evaluate("window.progressSeen")
    # The progress bar was shown, reached 1, and was put away when the review came.
    assert ["run-state", "hidden", None] in seen, seen
    assert ["run-progress", "value", "1"] in seen, seen
    await check_axe(page, "review")
    await photograph(page, "matching")
    first = drafts.nth(0)
    mentee = await first.get_attribute("data-mentee")
    before = await first.locator("h3").inner_text()
    swap = first.get_by_role("button", name="Swap mentors")
    await swap.focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#publish")).to_be_disabled()
    await expect(first.locator(".console-score")).to_have_text("Swapped: run again to score")
    await page.get_by_role("button", name="Run again with fixed pairs").click()
    swapped = page.locator(f'#drafts > li[data-mentee="{mentee}"]')
    await expect(swapped).to_contain_text("Fixed by the operator")
    assert await swapped.locator("h3").inner_text() != before
    await expect(page.locator("#publish")).to_be_enabled()
    await page.get_by_role("button", name="Publish").click()
    await expect(page.locator("#console-status")).to_have_text(
        "Published 2 pairs. They are under Pairs."
    )

    # Pairs: invite again (links to copy), then end one: its room closes.
    await visit(page, "pairs")
    await expect(page.locator("#pair-list tbody tr")).to_have_count(2)
    await check_axe(page, "pairs")
    await page.locator("#pair-list a").first.click()
    await expect(page.locator("#pair-detail")).to_be_visible()
    await page.get_by_role("button", name="Invite again").click()
    # Mail is off and the admin key is an admin: each member's sign-in link, to copy.
    link = page.locator("#invitations input").first
    await expect(link).to_have_value(re.compile("/signin#link="))
    await check_axe(page, "pair detail")
    await photograph(page, "pairs")
    pair_id = page.url.split("#pair/", 1)[1]
    _, pair = await http(base_url, "GET", f"/api/v1/pairs/{pair_id}")
    member = pair["members"][0]
    _, minted = await http(base_url, "POST", "/api/v1/tokens", {
        "room": pair["room"], "identity": member["identity"], "name": member["name"],
        "role": member["role"]})  # fmt: skip
    token = minted["token"]
    inside = await SocketParticipant(base_url, token).connect()
    try:
        await inside.join(media_mode="text")
        assert "error" not in await inside.chat("see you monday", "c1")
        await page.get_by_role("button", name="End pair").click()
        await expect(page.locator("#pair-detail")).to_contain_text("ended (room closed)")
        member = pair["members"][0]
        status, refused = await http(base_url, "POST", "/api/v1/tokens", {
            "room": pair["room"], "identity": member["identity"], "name": member["name"],
            "role": member["role"],
        })  # fmt: skip
        assert (status, refused["error"]["code"]) == (403, "room_closed")
        ack = await inside.chat("anyone?", "c2")
        assert ack["error"]["code"] == "room_closed", ack
    finally:
        await inside.close()
    late = await SocketParticipant(base_url, token).connect()
    try:
        ack = await late.call("join", {"media_mode": "text"})
        assert ack["error"]["code"] == "room_closed", ack
    finally:
        await late.close()
    bearer = {"Authorization": f"Bearer {token}"}
    status, log = await http(base_url, "GET", f"/api/v1/pairs/{pair_id}/export?format=json",
                             headers=bearer)  # fmt: skip
    assert status == 200 and "see you monday" in json.dumps(log)

    # Rooms and activity.
    await page.locator("#pair-detail").get_by_role("link").click()
    await expect(page.locator("#room-now")).to_contain_text("closed (pair ended)")
    await check_axe(page, "rooms")
    await photograph(page, "rooms")
    await visit(page, "activity")
    await expect(page.locator("#activity-feed")).to_contain_text(
        f"ended the pair {pair['title']} (its room closed)."
    )
    # The cohort's steps are there too, each with who did it.
    feed = page.locator("#activity-feed li")
    for told in ("saved the matching criteria (2 criteria).", "ran matching.",
                 "ran matching with 2 fixed pairs.", "published 2 pairs."):  # fmt: skip
        await expect(feed.filter(has_text=f"Someone with the admin key {told}")).to_have_count(1)
    await check_axe(page, "activity")
    await photograph(page, "activity")
    # Nothing is wider than the phone's screen.
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
