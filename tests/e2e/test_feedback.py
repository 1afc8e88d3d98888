"""Leaving a pair's meeting asks for feedback; the answer lands in the pair's log."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

import pytest
from playwright.async_api import expect

from tests.e2e.conftest import OpenPage
from tests.support.process import ADMIN_KEY

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def call(url: str, method: str = "GET", body: Any = None) -> Any:
    request = urllib.request.Request(
        url,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


async def test_leaving_asks_for_feedback_and_not_a_good_fit_flags_the_pair(
    open_page: OpenPage, base_url: str
) -> None:
    members = [
        {"identity": "ada", "name": "Ada", "role": "mentee"},
        {"identity": "bo", "name": "Bo", "role": "mentor"},
    ]
    pair = await asyncio.to_thread(
        call, base_url + "/api/v1/pairs", "POST", {"members": members, "room": "pair-fb"}
    )
    ada = await open_page("ada", room="pair-fb")
    bo = await open_page("bo", room="pair-fb", role="mentor")
    await expect(bo.tile("ada")).to_be_visible()

    await ada.page.get_by_role("button", name="Leave").click()
    form = ada.page.get_by_role("form", name="How was this meeting?")
    await expect(form).to_be_visible()
    await ada.page.get_by_label("2", exact=True).check()
    await ada.page.get_by_label("Anything to add?").fill("We keep talking past each other.")
    await ada.page.get_by_label("We are not a good fit").check()
    await ada.screenshot("feedback-after-leaving")
    await ada.page.get_by_role("button", name="Send feedback").click()
    await expect(ada.page.get_by_text("Thank you — your feedback")).to_be_visible()

    stored = await asyncio.to_thread(call, f"{base_url}/api/v1/pairs/{pair['id']}/feedback")
    [feedback] = stored["feedback"]
    assert feedback["identity"] == "ada" and feedback["rating"] == 2
    assert feedback["comment"] == "We keep talking past each other."
    assert feedback["good_fit"] is False
    flagged = await asyncio.to_thread(call, f"{base_url}/api/v1/pairs/{pair['id']}")
    assert flagged["flagged"] is True
