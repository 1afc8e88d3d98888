"""Chromium at 390x844: a participant's home (/me) shows the partner's profile as a partner
may see it (never the private fields matching keeps), their local time, the pair's next
booked meeting on the viewer's own clock, and "Chat" lands in the room's text chat without
asking for a camera or microphone, where a message reaches the partner."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import expect

from tests.e2e.conftest import ARTIFACTS, Launcher, publish_screenshot
from tests.e2e.conftest import launcher as launcher  # noqa: F401 - the fixture
from tests.e2e.room_checks import NO_HORIZONTAL_SCROLL, axe_violations
from tests.signin.conftest import SignInServer
from tests.support.participants import issue_token

pytestmark = [pytest.mark.slow, pytest.mark.browser]
PHONE = {"width": 390, "height": 844}
SECRETS = ("Dr Secret Boss", "blocked-person", "preferred-person", "internal-tag", "Skunkworks")
# Counts every camera or microphone request the page makes (none is wanted in text chat).
COUNT_MEDIA_REQUESTS = """
window.mediaRequests = 0;
if (navigator.mediaDevices) {
  const ask = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = (c) => { window.mediaRequests += 1; return ask(c); };
}
"""


async def test_home_shows_profile_next_meeting_and_chat(
    make_server: Any, launcher: Launcher
) -> None:
    server: SignInServer = await make_server()
    await server.admin(
        "POST",
        "/api/v1/matching/profiles",
        [
            {
                "identity": "grace",
                "name": "Grace Hopper",
                "role": "mentor",
                "timezone": "Asia/Tokyo",
                "languages": ["en", "ja"],
                "skills": ["compilers"],
                "goals": ["teaching"],
                "tags": ["internal-tag"],
                "reports_to": "Dr Secret Boss",
                "department": "Skunkworks",
                "avoid": ["blocked-person"],
                "prefer": ["preferred-person"],
                "capacity": 2,
            },
            {
                "identity": "ada",
                "name": "Ada Lovelace",
                "role": "mentee",
                "timezone": "America/New_York",
                "skills": ["compilers"],
            },
        ],
    )
    made = await server.ada_paired_with_grace()
    # Grace proposes 14:00 UTC the day after tomorrow; Ada accepts: booked.
    day = datetime.now(UTC).date() + timedelta(days=2)
    start = datetime(day.year, day.month, day.day, 14, 0, tzinfo=UTC)
    meetings = server.services.meetings
    assert meetings is not None
    pair = await server.signin.pairs.get(made["id"])
    proposed = await meetings.propose(
        pair, "grace", title="Catch-up", options=[start], minutes=45, timezone="Asia/Tokyo"
    )
    await meetings.accept(proposed, pair, "ada", 0)

    context = await launcher.context(camera_allowed=False, viewport=PHONE, locale="en-GB")
    await context.add_init_script(COUNT_MEDIA_REQUESTS)
    page = await context.new_page()
    account = await server.signin.accounts.by_email("ada@example.org")
    assert account is not None
    await page.goto(await server.signin.link_url(account))
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(server.url + "/me")

    card = page.locator(".pair-card")
    profile = card.locator(".partner-profile")
    await expect(profile).to_contain_text("About Grace Hopper")
    await expect(profile).to_contain_text("(Asia/Tokyo)")
    await expect(profile).to_contain_text("en, ja")
    await expect(profile).to_contain_text("compilers")
    await expect(profile).to_contain_text("teaching")
    # Her local time now, on Tokyo's clock (either side of a minute turning over).
    shown = await profile.locator(".local-time").inner_text()
    tokyo = [datetime.now(ZoneInfo("Asia/Tokyo")) + timedelta(minutes=m) for m in (-1, 0, 1)]
    assert shown in {t.strftime("%H:%M") for t in tokyo}, shown
    # The meeting on Ada's clock (New York), not the organiser's or UTC.
    meeting = card.locator(".next-meeting time")
    local = start.astimezone(ZoneInfo("America/New_York"))
    await expect(meeting).to_contain_text(f"{local:%H:%M} (America/New_York)")
    await expect(meeting).to_contain_text(f"{local.day} {local:%b}")
    assert await meeting.get_attribute("datetime") == start.isoformat()
    # Nothing private, on the page or in what the page was sent.
    text = await page.locator("body").inner_text()
    sent = await page.evaluate("fetch('/api/v1/home').then(r => r.text())")
    for secret in SECRETS:
        assert secret not in text and secret not in sent, secret
    for key in ("avoid", "prefer", "reports_to", "tags", "capacity", "availability"):
        assert f'"{key}"' not in sent, key
    assert await axe_violations(page, "me phone") == []
    assert await page.evaluate(NO_HORIZONTAL_SCROLL), "the home scrolls sideways on a phone"
    await _screenshot(page, "me-partner")

    # Grace is in the room's chat already (she too came in text mode).
    other = await launcher.context(camera_allowed=False, viewport=PHONE)
    await other.add_init_script(COUNT_MEDIA_REQUESTS)
    grace = await asyncio.to_thread(
        issue_token, server.url, "room-ada", "grace", "Grace Hopper", "mentor"
    )
    # Before joining, the page names the pair's room by its title, never by its id.
    before = await other.new_page()
    await before.goto(f"{server.url}/join#token={grace}")
    await expect(before.locator("#joining-as")).to_have_text(
        "Joining Grace Hopper & Ada Lovelace as Grace Hopper (mentor)."
    )
    await expect(before.locator("#room-name")).to_have_text("Grace Hopper & Ada Lovelace")
    assert "room-ada" not in await before.locator("#prejoin").inner_text()
    await before.close()
    partner = await other.new_page()
    await partner.goto(f"{server.url}/join#token={grace}&mode=text")
    # Generous: the first room page of a run on a busy machine loads slowly.
    await expect(partner.locator("#chat-input")).to_be_visible(timeout=30_000)
    # The room's header names the pair (its default title), isolated, not the room's id.
    await expect(partner.locator("#room-name > bdi")).to_have_text("Grace Hopper & Ada Lovelace")

    # Grace writes twice while Ada is away from the room: /me counts them, with words.
    unread = card.locator(".unread-line")
    assert await unread.get_attribute("data-count") == "0"
    await expect(unread).to_have_text("No unread messages.")
    # In its card, as plain text (not the room's red chat badge pinned to a corner).
    line, box = await unread.bounding_box(), await card.bounding_box()
    assert (
        line
        and box
        and box["y"] <= line["y"]
        and line["y"] + line["height"] <= box["y"] + box["height"]
    )
    # Where she is signed in: the browser by name, not its user agent string.
    await expect(page.locator("#sessions .agent")).to_have_text(
        re.compile(r"^Chrome on Linux · since ")
    )
    for text in ("Are you free Thursday?", "Or Friday?"):
        await partner.locator("#chat-input").fill(text)
        await partner.locator("#chat-form").get_by_role("button", name="Send").click()
        await expect(partner.locator("#chat-log")).to_contain_text(text)
    await page.reload()
    await expect(card.locator(".unread-line")).to_have_text("2 unread messages from Grace Hopper")
    assert await axe_violations(page, "me with unread messages") == []

    # Chat: straight into the room's text chat, the chat open on the phone, no media asked.
    await card.get_by_role("button", name="Chat").click()
    await page.wait_for_url(f"{server.url}/join*")
    box = page.locator("#chat-input")
    await expect(box).to_be_visible(timeout=30_000)
    await expect(page.locator("#prejoin")).to_be_hidden()
    await box.fill("Shall we move Thursday?")
    await page.locator("#chat-form").get_by_role("button", name="Send").click()
    await expect(partner.locator("#chat-log")).to_contain_text("Shall we move Thursday?")
    assert await page.evaluate("window.mediaRequests") == 0
    await _screenshot(page, "room-text-chat-from-me")
    assert await partner.evaluate("window.mediaRequests") == 0

    # Ada saw Grace's messages in the room: her home counts none unread any more.
    await expect(page.locator("#chat-log")).to_contain_text("Or Friday?")
    await page.wait_for_function(
        "fetch('/api/v1/home').then((r) => r.json()).then((h) => h.pairs[0].unread === 0)",
        polling=100,
    )
    await page.goto(server.url + "/me")
    await expect(card.locator(".unread-line")).to_have_text("No unread messages.")
    await context.close()
    await other.close()


async def test_home_without_a_booked_meeting_offers_to_book(
    make_server: Any, launcher: Launcher
) -> None:
    """No profiles, nothing booked: /me still works, says so, and "Book one" opens /pair."""
    server: SignInServer = await make_server()
    await server.ada_paired_with_grace()
    context = await launcher.context(viewport=PHONE)
    page = await context.new_page()
    account = await server.signin.accounts.by_email("ada@example.org")
    assert account is not None
    await page.goto(await server.signin.link_url(account))
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(server.url + "/me")
    card = page.locator(".pair-card")
    await expect(card.locator(".next-meeting")).to_contain_text("none booked")
    await expect(card.locator(".partner-profile")).to_have_count(0)
    assert await axe_violations(page, "me phone, nothing booked") == []
    await card.get_by_role("button", name="Book one").click()
    await page.wait_for_url(f"{server.url}/pair*")
    await context.close()


async def _screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    publish_screenshot(path, f"{name}.png")
