"""The meetings part of the pair page in real Chromium at phone size: one member proposes
on their own clock, the other accepts on theirs, both see it booked. What fails is said
right after the form or buttons used, and nothing takes space while nothing failed."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Page, Route, expect

from server.auth import TokenIssuer
from tests.e2e.conftest import Launcher, base_url, launcher  # noqa: F401 - fixtures
from tests.e2e.room_checks import axe_violations
from tests.support.process import ADMIN_KEY, SECRET_KEY

pytestmark = [pytest.mark.slow, pytest.mark.browser]
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
NY, LONDON = ZoneInfo("America/New_York"), ZoneInfo("Europe/London")


def shown(instant: datetime, zone: ZoneInfo) -> str:
    """A time as the page shows it: "Mon 6 Jan 2031, 15:00 (Europe/London)"."""
    local = instant.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b %Y, %H:%M} ({zone.key})"


async def pair_pages(launcher: Launcher, base_url: str) -> tuple[dict[str, Any], Page, Page]:  # noqa: F811
    """Ana (New York) and Ben (London) paired, each on the pair page on a phone."""
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
    return pair, pages["ana"], pages["ben"]


def a_monday_at_ten_in_new_york() -> datetime:
    """A Monday four to five weeks from now, 10:00 in New York (the server refuses times
    more than a year ahead, so the date moves with today)."""
    day = date.today() + timedelta(days=28)
    day += timedelta(days=-day.weekday() % 7)
    return datetime(day.year, day.month, day.day, 10, tzinfo=NY)


async def test_propose_and_accept_in_the_pair_page(launcher: Launcher, base_url: str) -> None:  # noqa: F811
    import aiohttp

    pair, ana, ben = await pair_pages(launcher, base_url)
    # Nothing failed: nothing is said, and no empty place is kept for it.
    await expect(ana.locator("#meetings [role=alert], #meetings .error")).to_have_count(0)
    # A meeting is at most a year ahead: the page says so and lists nothing.
    far = date.today() + timedelta(days=400)
    await ana.get_by_label("When").fill(f"{far.isoformat()}T10:00")
    await ana.get_by_role("button", name="Propose").click()
    # Said right after the form she used, on her phone's screen.
    said = ana.locator("#meetings form + [role=alert]")
    await expect(said).to_contain_text("Could not propose the meeting: ")
    await expect(said).to_contain_text("at most 366 days ahead")
    await expect(said).to_be_in_viewport(ratio=1)
    await expect(ana.locator("#meeting-list li")).to_have_count(0)
    start = a_monday_at_ten_in_new_york()
    await ana.get_by_label("When").fill(f"{start.date().isoformat()}T10:00")
    await ana.get_by_role("button", name="Propose").click()
    await expect(ana.locator("#meeting-list li[data-status=proposed]")).to_have_count(1)
    await expect(ana.locator("#meetings [role=alert]")).to_have_count(0)
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


async def refuse(route: Route) -> None:
    await route.fulfill(
        status=500, json={"error": {"code": "internal", "message": "internal server error"}}
    )


async def test_what_failed_is_said_after_the_buttons_used_and_goes_on_the_next_try(
    launcher: Launcher,  # noqa: F811
    base_url: str,  # noqa: F811
) -> None:
    _, ana, ben = await pair_pages(launcher, base_url)
    start = a_monday_at_ten_in_new_york()
    await ana.get_by_label("When").fill(f"{start.date().isoformat()}T10:00")
    await ana.get_by_role("button", name="Propose").click()
    await expect(ana.locator("#meeting-list li[data-status=proposed]")).to_have_count(1)

    # Ben's accept is lost on the way: said after that meeting's buttons, and nothing changed.
    await ben.reload()
    await ben.route("**/meetings/*/accept", lambda route: route.abort("internetdisconnected"))
    accept = ben.get_by_role("button", name=f"Accept {shown(start, LONDON)}")
    await accept.click()
    item = ben.locator("#meeting-list li[data-status=proposed]")
    said = item.locator(".log-inline + [role=alert]")
    await expect(said).to_have_text("Could not accept that time: the server could not be reached")
    await expect(said).to_be_in_viewport(ratio=1)
    await expect(ben.locator("#meetings [role=alert]")).to_have_count(1)
    assert await axe_violations(ben, "a meeting's action failed") == []
    # His next try goes through: booked, and the words are gone.
    await ben.unroute("**/meetings/*/accept")
    await accept.click()
    await expect(ben.locator("#meeting-list li[data-status=booked]")).to_have_count(1)
    await expect(ben.locator("#meetings [role=alert]")).to_have_count(0)

    # The calendar feed link fails on the server: said after its button, which stays.
    await ben.route("**/api/v1/me/calendar", refuse)
    feed = ben.get_by_role("button", name="Calendar feed link")
    await feed.click()
    said = ben.locator("#meetings p:has(> button) + [role=alert]")
    await expect(said).to_have_text("Could not make your calendar feed link: internal server error")
    await ben.unroute("**/api/v1/me/calendar")
    await feed.click()
    await expect(ben.get_by_label("Your calendar feed (keep it private):")).to_have_value(
        re.compile(r"^http.*\.ics")
    )
    await expect(ben.locator("#meetings [role=alert]")).to_have_count(0)

    # A cancel that went through but whose refresh failed: the refresh is what is said.
    await ben.route(
        "**/meetings",
        lambda route: refuse(route) if route.request.method == "GET" else route.continue_(),
    )
    await ben.get_by_role("button", name="Cancel").click()
    said = ben.locator("#meetings h2 + [role=alert]")
    await expect(said).to_have_text("Could not show the meetings again: internal server error")
    await ben.unroute("**/meetings")
    await ben.reload()
    await expect(ben.locator("#meeting-list li[data-status=cancelled]")).to_have_count(1)
