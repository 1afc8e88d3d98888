"""PIN guessing as operators see it: a real SIP caller (a hand-made UDP client) keys wrong
PINs until its address is blocked; `GET /api/v1/phone/guessing` shows the refusals and the
block and never a PIN tried; a viewer reads it on the console's Phone page in Chromium at
390x844 (axe clean), a participant is refused (403)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from playwright.async_api import expect

from server.phone import sip
from tests.console.test_console_e2e import check_axe, photograph
from tests.console.test_console_links_e2e import operator_page
from tests.console.test_console_phone_e2e import caller as caller  # noqa: F401 - the fixture
from tests.e2e.conftest import Launcher
from tests.e2e.conftest import launcher as launcher  # noqa: F401 - the fixture
from tests.signin.conftest import SignInServer
from tests.signin.conftest import mailbox as mailbox  # noqa: F401 - the fixture
from tests.signin.conftest import make_server as make_server  # noqa: F401 - the fixture
from tests.sip.conftest import UdpPeer, eventually, open_peer
from tests.sip.uac import SDP, final_response, request
from tests.support.services import free_port

pytestmark = [pytest.mark.slow, pytest.mark.sip]
GUESSES = ("314159", "271828")  # no room has a PIN: both are wrong
LATE_GUESS = "161803"  # from another address while the page is open


async def test_a_guesser_blocked_and_shown_on_the_phone_page(
    make_server: Any,  # noqa: F811
    launcher: Launcher,  # noqa: F811
    caller: UdpPeer,  # noqa: F811
) -> None:
    sip_port = free_port()
    server: SignInServer = await make_server(
        smtp_host=None, sip_bind=f"127.0.0.1:{sip_port}", sip_pin_failures_per_source=2,
        sip_rtp_port_min=33500, sip_rtp_port_max=33599,
    )  # fmt: skip
    phone = server.services.phone
    assert phone is not None

    # Two calls, a wrong PIN in each (X-Room-Pin); the second uses up the address's failures.
    for n, pin in enumerate(GUESSES, 1):
        call_id = f"guess-{n}"
        caller.send(request("INVITE", call_id, body=SDP, extra=f"X-Room-Pin: {pin}\r\n"), sip_port)
        answered = await final_response(caller)
        assert answered.status == 200, answered.status
        tag = sip.header_param(answered.get("To"), "tag") or ""
        caller.send(request("ACK", call_id, to_tag=tag), sip_port)
        await eventually(lambda n=n: len(phone.refusals.counts(time.time()).recent) == n)
    # Blocked: a third call is refused before any PIN is looked at.
    caller.send(request("INVITE", "guess-3", body=SDP, extra="X-Room-Pin: 111111\r\n"), sip_port)
    refused = await final_response(caller)
    assert refused.status == 403, refused.status

    shown = await server.admin("GET", "/api/v1/phone/guessing")
    # The call refused at the door counts too, as a blocked source's, before any PIN.
    assert shown["last_hour"] == shown["since_start"] == {"wrong_pin": 2, "source_locked": 1}
    assert [(r["source"], r["reason"], r["via"], r["room"]) for r in shown["recent"]] == [
        ("127.0.0.1", "source_locked", "call", None)
    ] + [("127.0.0.1", "wrong_pin", "header", None)] * 2
    assert [b["source"] for b in shown["blocked"]] == ["127.0.0.1"]
    assert shown["blocked"][0]["until"] > time.time()
    assert (shown["per_source"], shown["global_engaged"]) == (2, False)
    assert not any(pin in json.dumps(shown) for pin in (*GUESSES, "111111"))

    # A participant signed in is refused; a viewer reads it on the console's Phone page.
    await server.participant("ada", "ada@example.org", "Ada")
    ada = await server.signed_in("ada@example.org")
    status, _ = await ada.call("GET", "/api/v1/phone/guessing")
    assert status == 403
    await ada.http.close()

    context, page = await operator_page(
        server, launcher, "vi@example.org", "viewer", "/console#phone"
    )
    await expect(page.locator("#nav").get_by_role("link", name="Phone")).to_have_attribute(
        "aria-current", "page"
    )
    guessing = page.locator("#phone-guessing")
    await expect(guessing).to_contain_text(
        "Refused in the last hour: 3 (wrong PIN: 2; too many wrong PINs from its address, not checked: 1)."
    )
    blocked = page.get_by_role("region", name="Blocked addresses (table)")
    await expect(blocked.locator("tbody tr")).to_have_count(1)
    await expect(blocked.locator("tbody td").first).to_have_text("127.0.0.1")
    recent = page.get_by_role("region", name="Last refused PINs (table)").locator("tbody tr")
    await expect(recent).to_have_count(3)
    await expect(recent.first.locator("td").nth(3)).to_have_text(
        "a new call, refused before any PIN"
    )
    await expect(recent.nth(1).locator("td").nth(2)).to_have_text("wrong PIN")
    await expect(recent.nth(1).locator("td").nth(3)).to_have_text("sent by the phone system")
    await expect(page.locator("#phone-trunk")).to_contain_text("No trunk is set up")
    # A guess from another address while the page is open shows up without a click.
    other = await open_peer("127.0.0.2")
    try:
        other.send(
            request("INVITE", "guess-4", body=SDP, extra=f"X-Room-Pin: {LATE_GUESS}\r\n"), sip_port
        )
        answered = await final_response(other)
        assert answered.status == 200, answered.status
        tag = sip.header_param(answered.get("To"), "tag") or ""
        other.send(request("ACK", "guess-4", to_tag=tag), sip_port)
        await expect(guessing).to_contain_text("Refused in the last hour: 4 (")
        await expect(guessing).to_contain_text("wrong PIN: 3")
        await expect(recent).to_have_count(4)
        await expect(recent.first.locator("td").nth(1)).to_have_text("127.0.0.2")
    finally:
        other.close()
    content = await page.content()
    assert not any(pin in content for pin in (*GUESSES, LATE_GUESS, "111111"))
    await check_axe(page, "phone")
    await photograph(page, "phone")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390

    # The pair's log puts a refused PIN that named a room in words (pair.js uses this).
    words = await page.evaluate(
        """import('/static/timeline.js').then((m) => m.timelineWords({kind: 'phone_pin_rejected',
           detail: 'removed via request_uri from 127.0.0.1 (…001)'}))"""
    )
    assert words == (
        "A phone caller was refused: the PIN of someone removed from the room "
        "(in the dialled number, caller …001)"
    )
    await context.close()
