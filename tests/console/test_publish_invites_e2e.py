"""Publishing invites, end to end in Chromium at 390x844 with a real SMTP server: a programme
manager signed in with their session imports two people (with emails), runs matching and
publishes; each member gets a mail with a sign-in link; the mentee and the mentor each open
theirs in their own browser, sign in, land on /me, join the pair's room and see and hear each
other (WebRTC getStats: video frames decoded and audio energy received, both ways). "Invite
again" mails both once more.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page, expect

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

# Every RTCPeerConnection the room page makes, for getStats (an init script: the page's CSP
# does not apply, and the page needs no test switch in its address).
KEEP_PEER_CONNECTIONS = """(() => {
    const Native = window.RTCPeerConnection;
    window.testPeerConnections = [];
    window.RTCPeerConnection = class extends Native {
        constructor(...args) { super(...args); window.testPeerConnections.push(this); }
    };
})();"""

# Counts, within 20 s, video frames and audible audio arriving from `partner`: only the
# tracks on the partner's tile count (the room's connection carries nothing else of theirs).
# Sampling getStats is the only way to see media arrive, so the page polls it.
RECEIVING = """async (partner) => {
    const count = async () => {
        const tile = document.querySelector(`.tile[data-identity="${partner}"] video`);
        const theirs = new Set((tile?.srcObject?.getTracks() || []).map((t) => t.id));
        const now = {frames: 0, samples: 0, energy: 0};
        for (const pc of window.testPeerConnections) {
            if (pc.connectionState === "closed") continue;
            (await pc.getStats()).forEach((s) => {
                if (s.type !== "inbound-rtp" || !theirs.has(s.trackIdentifier)) return;
                if (s.kind === "video") now.frames += s.framesDecoded || 0;
                if (s.kind === "audio") {
                    now.samples += s.totalSamplesReceived || 0;
                    now.energy += s.totalAudioEnergy || 0;
                }
            });
        }
        return now;
    };
    const first = await count();
    const deadline = Date.now() + 20000;
    let now = first;
    while (Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        now = await count();
        if (now.frames - first.frames > 15 && now.samples - first.samples > 48000
            && now.energy > first.energy) return {ok: true, first, now};
    }
    return {ok: false, first, now};
}"""


async def home_and_join(
    launcher: Launcher, server: SignInServer, url: str, email: str, partner: str
) -> tuple[BrowserContext, Page]:
    """Open the mailed link in a browser of one's own, sign in, land on /me, join the room."""
    context = await launcher.context(viewport=PHONE)
    await context.add_init_script(script=KEEP_PEER_CONNECTIONS)
    page = await context.new_page()
    await page.goto(url)
    await expect(page.get_by_text(f"Sign in as {email}?")).to_be_visible()
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(server.url + "/me")
    card = page.locator(".pair-card")
    await expect(card).to_contain_text(partner)
    await card.get_by_role("button", name="Join").click()
    await page.wait_for_url(f"{server.url}/join*")
    await page.get_by_role("button", name="Join meeting").click()
    return context, page


async def expect_reached(page: Page, identity: str, *, invited: bool, signed_in: bool) -> None:
    """The Participants page's Invited and Signed in cells for `identity`: a time or not yet."""
    nav = page.locator("#nav")
    await nav.get_by_role("link", name="Pairs").click()  # away and back: Participants reloads
    await expect(nav.get_by_role("link", name="Pairs")).to_have_attribute("aria-current", "page")
    await nav.get_by_role("link", name="Participants").click()
    row = page.locator("#people tbody tr").filter(
        has=page.get_by_role("cell", name=identity, exact=True)
    )
    cells = row.get_by_role("cell")
    for index, reached in ((5, invited), (6, signed_in)):
        if reached:
            await expect(cells.nth(index)).to_have_text(re.compile(r"\d"))
        else:
            await expect(cells.nth(index)).to_have_text("not yet")


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
        "Published 1 pair. They are under Pairs. 2 people were mailed a sign-in link."
    )
    told = page.locator("#publish-invitations")
    await expect(told).to_contain_text("Tess Mentee: a sign-in link to their page is on its way")
    assert "signin#link=" not in await page.content()

    mails = await server.mailbox.wait_for(2)
    to = {m["To"]: m for m in mails}
    assert set(to) == {"mara@example.org", "tess@example.org"}
    # The console shows who was invited, when, and that nobody has signed in yet.
    for identity in ("mara", "tess"):
        await expect_reached(page, identity, invited=True, signed_in=False)

    # Tess and Mara each open their own link, sign in, land on /me and join the room.
    tess_url, _ = server.mailbox.link_in(to["tess@example.org"])
    mara_url, _ = server.mailbox.link_in(to["mara@example.org"])
    tess_context, tess = await home_and_join(
        launcher, server, tess_url, "tess@example.org", "Mara Mentor (mentor)"
    )
    mara_context, mara = await home_and_join(
        launcher, server, mara_url, "mara@example.org", "Tess Mentee (mentee)"
    )
    # Each sees the other's tile, and each receives the other's video and sound.
    await expect(tess.locator('.tile[data-identity="mara"]')).to_be_visible()
    await expect(mara.locator('.tile[data-identity="tess"]')).to_be_visible()
    for page_, partner in ((tess, "mara"), (mara, "tess")):
        got = await page_.evaluate(RECEIVING, partner)
        assert got["ok"], (partner, got)
    await tess_context.close()
    await mara_context.close()
    # Now the console shows both signed in.
    for identity in ("mara", "tess"):
        await expect_reached(page, identity, invited=True, signed_in=True)

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
