"""The console's cohort pages in Chromium at 390x844, each value checked against what the
server made: criteria set from the YAML box (the form shows them; bad YAML is refused in
place and changes nothing), the draft review (every pair's score, explanation, shared hours
and slots; the unmatched mentee with the reason), a swap and a second run, publishing;
the Pairs list (status, last meeting, last message, flag) after one pair met, chatted and
was flagged; program health's flagged row clicked through to that pair; and the pair
actions driven from the page (invite again, remove a member, rematch, end)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import socketio
from playwright.async_api import Locator, Page, expect

from tests.console.test_console_e2e import PHONE, check_axe, http, signed_in, visit
from tests.e2e.conftest import Launcher
from tests.support.participants import SocketParticipant
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow

CSV = """identity,name,role,timezone,availability,skills,email
mara,Mara Mentor,mentor,Europe/London,Mon 09:00-17:00; Wed 09:00-17:00,python;design,mara@example.org
nils,Nils Mentor,mentor,Europe/Berlin,Mon 10:00-18:00; Thu 10:00-18:00,design;python,nils@example.org
tess,Tess Mentee,mentee,Europe/Lisbon,Mon 09:00-12:00,python,tess@example.org
ugo,Ugo Mentee,mentee,Europe/Rome,Mon 13:00-17:00,design,ugo@example.org
vic,Vic Mentee,mentee,Pacific/Auckland,Mon 09:00-12:00,python,vic@example.org
wes,Wes Mentee,mentee,Europe/Paris,Mon 12:00-13:00,cooking,wes@example.org
"""
YAML = """criteria:
  - name: skills
    rule: overlap
    field: skills
    weight: high
  - name: hours
    rule: shared_hours
    weight: medium
filters:
  max_timezone_gap_hours: 3
"""


def js_number(value: float) -> str:
    """A number as the page's template strings print it."""
    return str(int(value)) if float(value).is_integer() else repr(value)


NAMES = {line.split(",")[0]: line.split(",")[1] for line in CSV.splitlines()[1:]}


def person(identity: str) -> str:
    """Someone as the review names them: their name, their identity beside it."""
    return f"{NAMES[identity]} ({identity})"


async def run_id(page: Page) -> str:
    await expect(page).to_have_url(re.compile(r"#matching/[^/]+$"))
    return page.url.rsplit("/", 1)[1]


async def check_review(page: Page, base_url: str, run: str) -> dict[str, Any]:
    """Every card and the unmatched list show what the run's results say."""
    # The review shows once the run is done (the address names the run as soon as it starts).
    await expect(page.locator("#run-state")).to_be_hidden()
    await expect(page.locator("#review")).to_be_visible()
    _, results = await http(base_url, "GET", f"/api/v1/matching/runs/{run}/results")
    await expect(page.locator("#drafts > li")).to_have_count(len(results["pairs"]))
    for pair in results["pairs"]:
        card = page.locator(f'#drafts > li[data-mentee="{pair["mentee"]}"]')
        ex = pair["explanation"]
        assert (pair["mentee_name"], pair["mentor_name"]) == (
            NAMES[pair["mentee"]],
            NAMES[pair["mentor"]],
        )
        await expect(card.locator("h3")).to_have_text(
            f"{person(pair['mentee'])} ↔ {person(pair['mentor'])}"
        )
        await expect(card.locator(".console-score")).to_have_text(
            f"Score {js_number(pair['score'])}"
        )
        await expect(card.get_by_text(ex["summary"], exact=True)).to_be_visible()
        await expect(card.get_by_text(re.compile("^Shared hours a week"))).to_have_text(
            f"Shared hours a week: {js_number(ex['shared_hours'])}"
        )
        slots = [
            f"{s['mentee_local']} (mentee) / {s['mentor_local']} (mentor), {s['minutes']} min"
            for s in pair["slots"][:3]
        ]
        await expect(card.get_by_role("list", name="Suggested slots").locator("li")).to_have_text(
            slots
        )
    unmatched = []
    for u in results["unmatched"]:
        ex = u["explanation"] or {}
        best = ex.get("best_option")
        why = (
            f" Best option: {person(best['mentor'])}, score {js_number(best['score'])}: "
            f"{best['why_not']}."
            if best
            else ""
        )
        unmatched.append(f"{person(u['mentee'])}: {ex.get('summary') or u['reason']}{why}")
    await expect(page.locator("#unmatched li")).to_have_text(unmatched)
    return dict(results)


async def pair_row(page: Page, title: str) -> Locator:
    return page.locator("#pair-list tbody tr").filter(has=page.get_by_role("link", name=title))


async def test_review_pairs_health_and_actions(base_url: str, launcher: Launcher) -> None:
    status, imported = await http(
        base_url, "POST", "/api/v1/console/participants/import", {"format": "csv", "text": CSV}
    )
    assert (status, imported["errors"]) == (200, 0), imported
    context = await launcher.context(**PHONE)
    page = await signed_in(context, base_url, photo=False)

    # Criteria from the YAML box: saved, and the form shows them.
    await visit(page, "criteria")
    await page.get_by_text("YAML, for power users").click()
    box = page.get_by_label("Criteria as YAML (or JSON)")
    await box.fill(YAML)
    await page.get_by_role("button", name="Save YAML").click()
    await expect(page.locator("#console-status")).to_have_text("Criteria saved from YAML.")
    await expect(page.locator("#c-name-1")).to_have_value("hours")
    await expect(page.locator("#c-rule-1")).to_have_value("shared_hours")
    await expect(page.locator("#c-weight-0")).to_have_value("high")
    await expect(page.locator("#f-gap")).to_have_value("3")
    _, saved = await http(base_url, "GET", "/api/v1/matching/criteria")
    # Bad YAML: refused where it was typed, the text kept to fix, nothing changed.
    await box.fill("criteria: [name: skills")
    await page.get_by_role("button", name="Save YAML").click()
    error = page.locator("#yaml-error")
    await expect(error).to_contain_text("Not saved: criteria are not valid YAML or JSON")
    await expect(box).to_have_attribute("aria-invalid", "true")
    await expect(box).to_have_value("criteria: [name: skills")
    await expect(page.locator("#console-error")).to_have_text("")
    await box.fill(YAML.replace("weight: high", "weight: huge"))
    await page.get_by_role("button", name="Save YAML").click()
    await expect(error).to_contain_text("Not saved: invalid criteria: criteria.0.weight")
    await check_axe(page, "criteria with a YAML error")
    assert (await http(base_url, "GET", "/api/v1/matching/criteria"))[1] == saved
    await expect(page.locator("#f-gap")).to_have_value("3")

    # The draft review, value by value; vic (Auckland, beyond the 3 h gap) unmatched, and wes
    # (passes, scores least): the review says who was her best option and why not.
    await visit(page, "matching")
    await page.get_by_role("button", name="Run matching").click()
    first = await check_review(page, base_url, await run_id(page))
    assert len(first["pairs"]) == 2
    assert [u["mentee"] for u in first["unmatched"]] == ["vic", "wes"]
    wes = page.locator("#unmatched li", has_text="Wes Mentee")
    await expect(wes).to_contain_text(re.compile(r"Best option: \w+ Mentor \(\w+\), score"))
    await expect(wes).to_contain_text(": at capacity (1/1).")
    assert all(p["slots"] and p["explanation"]["shared_hours"] > 0 for p in first["pairs"])
    # Swap the two pairs' mentors, run again: the swapped pairs scored as the operator fixed them.
    card = page.locator('#drafts > li[data-mentee="tess"]')
    tess_mentor = next(p["mentor"] for p in first["pairs"] if p["mentee"] == "tess")
    await card.get_by_role("button", name="Swap mentors").click()
    await expect(page.locator("#publish")).to_be_disabled()
    await page.get_by_role("button", name="Run again with fixed pairs").click()
    await expect(page.locator("#publish")).to_be_enabled()
    second = await check_review(page, base_url, await run_id(page))
    swapped = {p["mentee"]: p["mentor"] for p in second["pairs"]}
    assert swapped["tess"] != tess_mentor and set(swapped.values()) == {"mara", "nils"}
    await expect(page.locator("#drafts")).to_contain_text("Fixed by the operator")
    await check_axe(page, "review after a swap")
    await page.get_by_role("button", name="Publish").click()
    await expect(page.locator("#console-status")).to_contain_text("Published 2 pairs.")
    # Published: the cards no longer offer to keep, swap, run again or publish.
    await expect(page.locator("#review-title")).to_have_text("Published pairs")
    for gone in ("Swap mentors", "Run again with fixed pairs", "Publish"):
        await expect(page.get_by_role("button", name=gone, exact=True)).to_have_count(0)
    await expect(page.get_by_label("Keep this pair when running again")).to_have_count(0)

    # One pair meets, chats and is flagged as not a good fit; the other does nothing.
    _, listed = await http(base_url, "GET", "/api/v1/console/pairs")
    by_mentee = {
        next(m["identity"] for m in p["members"] if m["role"] == "mentee"): p
        for p in listed["pairs"]
    }
    met, quiet = by_mentee["tess"], by_mentee["ugo"]
    _, minted = await http(base_url, "POST", "/api/v1/tokens", {
        "room": met["room"], "identity": "tess", "name": "Tess Mentee", "role": "mentee"})  # fmt: skip
    tess = await SocketParticipant(base_url, minted["token"]).connect()
    await tess.join(media_mode="text")
    assert "error" not in await tess.chat("hello mentor", "c1")
    # The Rooms page shows her in, and, left alone, no longer once she has left.
    # Found by typing the pair's name (as the suggestions offer it), not its room id.
    await visit(page, "rooms")
    await page.get_by_label("Pair or room").fill(met["title"])
    await page.get_by_role("button", name="Show who is in").click()
    await page.wait_for_url(f"{base_url}/console#rooms/{met['room']}")
    await expect(page.locator("#room-now h2")).to_have_text(f"{met['title']} · open")
    in_now = page.locator("#room-now")
    await expect(in_now.locator("tbody tr")).to_have_count(1)
    await expect(in_now.locator("tbody tr td").first).to_have_text("Tess Mentee")
    await tess.close()
    await expect(in_now).to_contain_text("Nobody is in the room now.")
    bearer = {"Authorization": f"Bearer {minted['token']}"}

    async def logged() -> list[Any]:  # recorded as the join's event arrives
        _, sessions = await http(base_url, "GET", f"/api/v1/pairs/{met['id']}/sessions")
        return list(sessions["sessions"])

    session = (await eventually(logged, timeout=10, what="the session logged"))[0]["id"]
    status, _ = await http(
        base_url, "POST", f"/api/v1/pairs/{met['id']}/sessions/{session}/feedback",
        {"rating": 2, "good_fit": False}, headers=bearer,
    )  # fmt: skip
    assert status in (200, 201)
    _, listed = await http(base_url, "GET", "/api/v1/console/pairs")
    now = {p["id"]: p for p in listed["pairs"]}
    assert now[met["id"]]["flagged"] and now[met["id"]]["last_message"] is not None
    assert now[met["id"]]["last_meeting"] is not None and now[quiet["id"]]["last_meeting"] is None

    await visit(page, "pairs")
    await expect(page.locator("#pair-list tbody tr")).to_have_count(2)
    row = await pair_row(page, met["title"])
    flag = now[met["id"]]["flag_reason"] or "flagged"
    await expect(row.locator("td")).to_have_text([met["title"], "active", "today", "today", flag])
    row = await pair_row(page, quiet["title"])
    await expect(row.locator("td")).to_have_text(
        [quiet["title"], "active", "never", "never", "none"]
    )

    # Program health: the flagged pair's row, clicked (not its link), opens that pair.
    await page.goto(f"{base_url}/program")
    flagged = page.locator(f'#flagged tr[data-pair="{met["id"]}"]')
    await expect(flagged).to_have_count(1)
    # The pair matched today that never met is not "fine": it waits for its first meeting.
    await expect(page.locator("#not-met tbody tr")).to_have_count(1)
    await expect(page.locator(f'#not-met tr[data-pair="{quiet["id"]}"]')).to_have_count(1)
    await flagged.locator("td").nth(1).click()
    await page.wait_for_url(f"{base_url}/console#pair/{met['id']}")
    detail = page.locator("#pair-detail")
    await expect(detail.locator("h2")).to_have_text(met["title"])
    await expect(detail).to_contain_text("Status: active · 1 meeting · last meeting today")

    # The actions, from the pair's page: invite again (mail is off: links for the admin).
    await detail.get_by_role("button", name="Invite again").click()
    links = page.locator("#invitations input")
    await expect(links).to_have_count(2)
    for member in met["members"]:
        field = page.get_by_label(f"Copy to {member['name']}: their sign-in link (it works once)")
        await expect(field).to_have_value(re.compile(r"/signin#link="))
    # Remove a member: her token no longer joins the room.
    await detail.get_by_label("Member to remove").select_option("tess")
    await detail.get_by_role("button", name="Remove", exact=True).click()
    await expect(page.locator("#console-status")).to_have_text(
        "Tess Mentee was removed from the room; their links stop working."
    )
    with pytest.raises(socketio.exceptions.ConnectionError):  # refused at connect
        await SocketParticipant(base_url, minted["token"]).connect()
    # Rematch: the room closes and a run for the mentee opens under Matching.
    await detail.get_by_role("button", name="Rematch").click()
    rematch = await run_id(page)
    await expect(page.locator("#review")).to_be_visible()
    _, run = await http(base_url, "GET", f"/api/v1/matching/runs/{rematch}")
    assert run["status"] == "done"
    # End the other pair from its page.
    await page.goto(f"{base_url}/console#pair/{quiet['id']}")
    await expect(detail.locator("h2")).to_have_text(quiet["title"])
    await detail.get_by_role("button", name="End pair").click()
    await expect(detail).to_contain_text("Status: ended (room closed)")
    await visit(page, "pairs")
    await expect(page.locator("#pair-list")).to_contain_text("No active pairs.")
    await page.get_by_label("Show ended pairs").check()
    for pair in (met, quiet):
        await expect((await pair_row(page, pair["title"])).locator("td").nth(1)).to_have_text(
            "ended (room closed)"
        )
    await check_axe(page, "pairs, ended shown")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await context.close()
