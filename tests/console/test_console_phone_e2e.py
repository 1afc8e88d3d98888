"""The console's Rooms page at 390x844 with real phone callers: an operator issues the room's
dial-in PIN and a member's personal PIN from the page, callers dial in with them (a
hand-made SIP client and sipp), the page shows them among who is in the room now, the
operator removes one (the gateway hangs up on them: sipp's scenario ends on its BYE), and
the other hangs up (their BYE): the page no longer lists them."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from server.app import create_app
from server.config import Settings
from server.phone import sip
from tests.console.test_console_e2e import PHONE, check_axe, http, photograph, signed_in
from tests.e2e.conftest import Launcher
from tests.e2e.conftest import launcher as launcher  # noqa: F401 - the fixture
from tests.sip.conftest import UdpPeer, eventually, open_peer, run_sipp
from tests.sip.uac import SDP, final_response, request
from tests.support.parts import ServerParts
from tests.support.services import free_port, require_program

pytestmark = [pytest.mark.slow, pytest.mark.sip]
NUMBER = "+1 555 0100"


@pytest.fixture
async def caller() -> AsyncIterator[UdpPeer]:
    peer = await open_peer("127.0.0.1")
    yield peer
    peer.close()


async def test_phone_callers_in_the_rooms_page(
    aiohttp_server: Any,
    make_settings: Callable[..., Settings],
    launcher: Launcher,  # noqa: F811
    caller: UdpPeer,
    tmp_path: Path,
) -> None:
    sipp = require_program("sipp", "/usr/bin/sipp")
    sip_port = free_port()
    settings = make_settings(
        sip_bind=f"127.0.0.1:{sip_port}", sip_dialin_number=NUMBER,
        sip_rtp_port_min=33400, sip_rtp_port_max=33499,
    )  # fmt: skip
    server = await aiohttp_server(create_app(settings))
    base_url = str(server.make_url("")).rstrip("/")
    status, _ = await http(base_url, "POST", "/api/v1/pairs", {
        "members": [{"identity": "mara", "name": "Mara Mentor", "role": "mentor"},
                    {"identity": "tess", "name": "Tess Mentee", "role": "mentee"}],
        "room": "room-phone"})  # fmt: skip
    assert status == 201

    context = await launcher.context(**PHONE)
    page = await signed_in(context, base_url, photo=False)
    await page.goto(f"{base_url}/console#rooms/room-phone")
    now = page.locator("#room-now")
    await expect(now).to_contain_text("Nobody is in the room now.")

    # The PINs, issued from the page and shown there.
    pins = page.locator("#room-pins")
    await pins.get_by_role("button", name="Issue the room PIN").click()
    shown = pins.get_by_text(re.compile(r"^Room PIN \d+"))
    await expect(shown).to_have_text(re.compile(rf"^Room PIN \d{{6}} · call \{NUMBER}$"))
    room_pin = (await shown.inner_text()).split()[2]
    await pins.get_by_role("button", name="Personal PIN for Tess Mentee").click()
    personal = pins.get_by_text(re.compile(r"^Tess Mentee: PIN \d+$"))
    await expect(personal).to_be_visible()
    tess_pin = (await personal.inner_text()).rsplit(" ", 1)[1]
    assert tess_pin != room_pin
    _, stored = await http(base_url, "GET", "/api/v1/rooms/room-phone/pin")
    assert stored["pin"] == room_pin

    # A caller with the room PIN (a SIP client written here) and Tess with hers (sipp).
    caller.send(request("INVITE", "uac-1", body=SDP, extra=f"X-Room-Pin: {room_pin}\r\n"), sip_port)
    ok = await final_response(caller)
    assert ok.status == 200, ok.status
    tag = sip.header_param(ok.get("To"), "tag") or ""
    caller.send(request("ACK", "uac-1", to_tag=tag), sip_port)
    tess = asyncio.create_task(
        run_sipp(sipp, sip_port, "call_wait_for_bye.xml", tess_pin, tmp_path,
                 args=("-set", "rtpport", str(free_port())))
    )  # fmt: skip
    rows = now.locator("tbody tr")
    look = page.get_by_role("button", name="Show who is in")
    rooms = ServerParts(server.app).rooms

    def in_room() -> int:
        room = rooms.get("room-phone")
        return 0 if room is None else len(room.participants)

    await eventually(lambda: in_room() == 2, timeout=20)  # both calls answered, in the room
    await look.click()
    await expect(rows).to_have_count(2)
    tess_row = rows.filter(has_text="Tess Mentee")
    await expect(tess_row.locator("td").nth(2)).to_have_text("phone")
    await expect(tess_row.locator("td").nth(1)).to_have_text("mentee")
    other = rows.filter(has_not_text="Tess Mentee")
    await expect(other.locator("td").nth(2)).to_have_text("phone")
    await check_axe(page, "rooms with phone callers")
    await photograph(page, "rooms-phone")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390

    # Removing Tess from the page hangs up her call (sipp's scenario ends on the BYE).
    await tess_row.get_by_role("button", name="Remove Tess Mentee").click()
    await expect(page.locator("#console-status")).to_have_text(
        "Tess Mentee was removed and their call hung up; their links and PIN for this room "
        "stop working."
    )
    result = await asyncio.wait_for(tess, 30)
    assert result.returncode == 0, result.errors
    await expect(rows).to_have_count(1)
    await expect(rows.filter(has_text="Tess Mentee")).to_have_count(0)

    # The other caller hangs up (BYE): the page, left alone, shows nobody in (it looks again
    # by itself while shown), with no click.
    caller.send(request("BYE", "uac-1", to_tag=tag, cseq=2), sip_port)
    bye = await final_response(caller)
    assert (bye.status, bye.cseq) == (200, (2, "BYE"))
    await expect(now).to_contain_text("Nobody is in the room now.")
    await expect(now).to_contain_text("This list updates by itself every few seconds.")
    await context.close()
