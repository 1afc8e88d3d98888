"""The meetings part of the pair page in real Chromium at phone size: one member proposes
on their own clock, the other accepts on theirs, both see it booked."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import expect

from server.auth import TokenIssuer
from tests.e2e.conftest import Launcher, base_url, launcher  # noqa: F401 - fixtures
from tests.support.process import ADMIN_KEY, SECRET_KEY

pytestmark = [pytest.mark.slow, pytest.mark.browser]
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
NY, LONDON = ZoneInfo("America/New_York"), ZoneInfo("Europe/London")


def shown(instant: datetime, zone: ZoneInfo) -> str:
    """A time as the page shows it: "Mon 6 Jan 2031, 15:00 (Europe/London)"."""
    local = instant.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b %Y, %H:%M} ({zone.key})"


async def test_propose_and_accept_in_the_pair_page(launcher: Launcher, base_url: str) -> None:  # noqa: F811
    import aiohttp

    members = [
        {"identity": "ana", "name": "Ana", "role": "mentor"},
        {"identity": "ben", "name": "Ben", "role": "mentee"},
    ]
    async with aiohttp.ClientSession() as http:
        body = {"members": members, "room": "pair-m"}
        async with http.post(f"{base_url}/api/v1/pairs", json=body, headers=ADMIN) as r:
            pair = await r.json()
        profiles = [
            {"identity": "ana", "name": "Ana", "role": "mentor", "timezone": "America/New_York"},
            {"identity": "ben", "name": "Ben", "role": "mentee", "timezone": "Europe/London"},
        ]  # each person's zone, as matching knows it
        url = f"{base_url}/api/v1/matching/profiles"
        async with http.post(url, json=profiles, headers=ADMIN) as r:
            assert r.status == 200, await r.text()
    issuer = TokenIssuer(SECRET_KEY, 3600)
    pages = {}
    for who, zone in (("ana", "America/New_York"), ("ben", "Europe/London")):
        role = "mentor" if who == "ana" else "mentee"
        token = issuer.issue("pair-m", who, who.title(), role)[0]  # type: ignore[arg-type]
        context = await launcher.context(viewport={"width": 390, "height": 844}, timezone_id=zone)
        page = await context.new_page()
        await page.goto(f"{base_url}/pair#token={token}")
        await expect(page.get_by_role("heading", name="Meetings")).to_be_visible()
        pages[who] = page
    ana, ben = pages["ana"], pages["ben"]
    # A meeting is at most a year ahead: the page says so and lists nothing.
    far = date.today() + timedelta(days=400)
    await ana.get_by_label("When").fill(f"{far.isoformat()}T10:00")
    await ana.get_by_role("button", name="Propose").click()
    await expect(ana.locator("#meetings [role=alert]")).to_contain_text("at most 366 days ahead")
    await expect(ana.locator("#meeting-list li")).to_have_count(0)
    # A Monday four to five weeks from now, 10:00 in New York (the server refuses times
    # more than a year ahead, so the date moves with today).
    day = date.today() + timedelta(days=28)
    day += timedelta(days=-day.weekday() % 7)
    start = datetime(day.year, day.month, day.day, 10, tzinfo=NY)
    await ana.get_by_label("When").fill(f"{day.isoformat()}T10:00")
    await ana.get_by_role("button", name="Propose").click()
    await expect(ana.locator("#meeting-list li[data-status=proposed]")).to_have_count(1)
    await expect(ana.locator("#meetings [role=alert]")).to_have_text("")
    await ben.reload()
    accept = ben.get_by_role("button", name=f"Accept {shown(start, LONDON)}")
    await accept.click()
    await expect(ben.locator("#meeting-list li[data-status=booked]")).to_have_count(1)
    await ana.reload()
    booked = ana.locator("#meeting-list li[data-status=booked]")
    await expect(booked).to_contain_text(shown(start, NY))
    width = await ana.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # nothing wider than the phone
    async with aiohttp.ClientSession() as http:
        url = f"{base_url}/api/v1/pairs/{pair['id']}/meetings"
        async with http.get(url, headers=ADMIN) as r:
            (meeting,) = (await r.json())["meetings"]
    assert meeting["status"] == "booked" and meeting["timezone"] == "America/New_York"
    assert meeting["occurrences"][0]["start_utc"] == start.astimezone(UTC).isoformat()
