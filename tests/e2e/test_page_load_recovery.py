"""A page whose code failed to load recovers by itself (web/page-load.js): real Chromium,
where the request for one of a page's modules fails as Chromium fails it when the network
changes under a loading page. The page says so, reloads, and works; a failure that lasts
ends in a Reload button, not a loop; the browser coming back online reloads too. The pair
page's meetings, whose code is imported once the pair is shown, say in their section that
they could not load, and load on "Try again" or when the browser is back online, while the
rest of the page works. A part of the pair page whose data failed to load once the token
was accepted is said near the top of the page, in words, with a Try again: not by asking for
the token again; something she did that failed is said beside it, and takes no notice away."""

from __future__ import annotations

import asyncio
import math
from html.parser import HTMLParser

import pytest
from playwright.async_api import BrowserContext, Locator, Page, Request, Route, expect

from server.api.pages import PAGES, WEB
from tests.e2e.conftest import Launcher, OpenPage
from tests.e2e.room_checks import NO_HORIZONTAL_SCROLL, axe_violations
from tests.e2e.test_feedback import call
from tests.support.participants import issue_token

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
RELOADING = "The connection changed while the page loaded — reloading…"
GAVE_UP = "This page could not load. Check your connection, then reload."
MEETINGS_GONE = "The meetings could not load. Check your connection, then try again."
# The page's reloads before it gives up, and longer than its longest wait between them.
TRIES = 3
LONGEST_WAIT_S = 5


# What the server answers when it fails (server/api/http.py).
SERVER_FAILED = {"error": {"code": "internal", "message": "internal server error"}}


class Outage:
    """Requests for one path (only those of `method`, when given) fail (`failures` of them,
    then they go through again): aborted the way Chromium aborts a loading page's requests
    when its network changes or, with `server_failed`, answered as the server answers when
    it fails. The pages loaded meanwhile are counted."""

    def __init__(
        self,
        path: str,
        failures: float = math.inf,
        *,
        method: str | None = None,
        server_failed: bool = False,
    ):
        self.path = path
        self.left = failures
        self.method = method
        self.server_failed = server_failed
        self.documents: list[str] = []

    async def start(self, context: BrowserContext) -> Outage:
        await context.route(f"**{self.path}", self._request)

        def loaded(request: Request) -> None:
            if request.resource_type == "document":
                self.documents.append(request.url)

        context.on("request", loaded)
        return self

    def end(self) -> None:
        self.left = 0

    async def _request(self, route: Route) -> None:
        if self.left <= 0 or self.method not in (None, route.request.method):
            await route.continue_()
            return
        self.left -= 1
        if self.server_failed:
            await route.fulfill(status=500, json=SERVER_FAILED)
        else:
            await route.abort("internetdisconnected")


def notice(page: Page, text: str) -> Locator:
    return page.get_by_role("alert").filter(has_text=text)


class Scripts(HTMLParser):
    """A page's <script> tags, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.found.append(dict(attrs))


@pytest.mark.parametrize("url", sorted(PAGES))
def test_every_page_with_code_listens_before_its_code_loads(url: str) -> None:
    scripts = Scripts()
    scripts.feed((WEB / PAGES[url]).read_text())
    if not scripts.found:
        return  # no code to fail: the home page
    first, *rest = scripts.found
    assert first == {"src": "/static/page-load.js", "defer": None}, url
    assert rest, url


@pytest.mark.slow
@pytest.mark.browser
async def test_the_join_page_reloads_itself_and_the_person_joins(
    open_page: OpenPage, launcher: Launcher
) -> None:
    context = await launcher.context(viewport=PHONE, has_touch=True, is_mobile=True)
    outage = await Outage("/static/client/tiles.js", failures=1).start(context)
    ada = await open_page("ada", context=context, join=False)

    await expect(notice(ada.page, RELOADING)).to_be_visible()
    await expect(ada.page.get_by_role("button", name="Join meeting")).to_be_enabled(timeout=20_000)
    await expect(notice(ada.page, RELOADING)).to_have_count(0)
    assert len(outage.documents) == 2
    assert "#token" not in ada.page.url, "the token kept across the reload, then taken"
    # Loaded: the next failure starts its count again.
    assert await ada.evaluate("() => sessionStorage.getItem('pairwise.page-load:/join')") is None

    await ada.join()
    await expect(ada.page.locator("#conn-status")).to_have_text("Connected")


@pytest.mark.slow
@pytest.mark.browser
async def test_a_lasting_failure_ends_in_a_reload_button(
    open_page: OpenPage, launcher: Launcher
) -> None:
    context = await launcher.context(viewport=PHONE, has_touch=True, is_mobile=True)
    outage = await Outage("/static/client/tiles.js").start(context)
    ada = await open_page("ada", context=context, join=False)
    page = ada.page

    await expect(notice(page, GAVE_UP)).to_be_visible(timeout=30_000)
    reload = page.get_by_role("button", name="Reload")
    await expect(reload).to_be_visible()
    assert await page.evaluate(NO_HORIZONTAL_SCROLL)
    assert await axe_violations(page, "gave up") == []
    await asyncio.sleep(LONGEST_WAIT_S)  # no reload is still to come
    assert len(outage.documents) == 1 + TRIES

    outage.end()
    await reload.click()
    await expect(page.get_by_role("button", name="Join meeting")).to_be_enabled(timeout=20_000)
    assert len(outage.documents) == 2 + TRIES
    await ada.join()
    await expect(page.locator("#conn-status")).to_have_text("Connected")


@pytest.mark.slow
@pytest.mark.browser
async def test_the_console_reloads_itself(base_url: str, launcher: Launcher) -> None:
    context = await launcher.context(viewport=PHONE)
    outage = await Outage("/static/console/ui.js", failures=1).start(context)
    page = await context.new_page()
    await page.goto(base_url + "/console")

    await expect(notice(page, RELOADING)).to_be_visible()
    await expect(page.get_by_role("heading", name="Sign in to the console")).to_be_visible()
    await expect(notice(page, RELOADING)).to_have_count(0)
    assert len(outage.documents) == 2


@pytest.mark.slow
@pytest.mark.browser
async def test_a_page_that_gave_up_reloads_when_the_browser_is_back_online(
    base_url: str, launcher: Launcher
) -> None:
    context = await launcher.context(viewport=PHONE)
    outage = await Outage("/static/session.js").start(context)
    page = await context.new_page()
    await page.goto(base_url + "/signin")
    await expect(notice(page, GAVE_UP)).to_be_visible(timeout=30_000)

    outage.end()
    await context.set_offline(True)
    await context.set_offline(False)
    await expect(page.get_by_label("Your email address")).to_be_visible()
    await expect(page.locator(".page-load")).to_have_count(0)
    assert len(outage.documents) == 2 + TRIES


async def open_pair_page(base_url: str, page: Page) -> Page:
    """Ada's pair page, from her meeting link."""
    members = [
        {"identity": "ada", "name": "Ada", "role": "mentee"},
        {"identity": "bo", "name": "Bo", "role": "mentor"},
    ]
    body = {"members": members, "room": "pair-load", "title": "Ada and Bo"}
    await asyncio.to_thread(call, base_url + "/api/v1/pairs", "POST", body)
    token = await asyncio.to_thread(issue_token, base_url, "pair-load", "ada", "Ada", "mentee")
    await page.goto(f"{base_url}/pair#token={token}")
    return page


async def open_pair_page_during(base_url: str, launcher: Launcher, *outages: Outage) -> Page:
    """Ada's pair page on a phone, opened while the outages last."""
    context = await launcher.context(viewport=PHONE, has_touch=True, is_mobile=True)
    for outage in outages:
        await outage.start(context)
    return await open_pair_page(base_url, await context.new_page())


async def expect_pair_shown(page: Page) -> None:
    """Her token was accepted: the pair is shown, and she is not asked for her token again."""
    await expect(page.get_by_role("heading", name="Ada and Bo", level=1)).to_be_visible()
    await expect(page.locator("#token-form")).to_be_hidden()


def meetings_gone(page: Page) -> Locator:
    return page.locator("#meetings").get_by_role("alert").filter(has_text=MEETINGS_GONE)


async def expect_meetings_mounted(page: Page) -> None:
    meetings = page.locator("#meetings")
    await expect(meetings.get_by_role("button", name="Propose")).to_be_visible()
    await expect(meetings.get_by_role("heading", name="Meetings")).to_have_count(1)
    await expect(meetings.get_by_text(MEETINGS_GONE)).to_have_count(0)


@pytest.mark.slow
@pytest.mark.browser
async def test_the_pair_page_works_without_its_meetings_and_loads_them_on_try_again(
    base_url: str, launcher: Launcher
) -> None:
    outage = Outage("/static/meetings.js")
    page = await open_pair_page_during(base_url, launcher, outage)

    await expect(meetings_gone(page)).to_be_visible()
    await expect_pair_shown(page)
    await page.get_by_label("New agenda item").fill("Our reading list")
    await page.get_by_role("button", name="Add", exact=True).click()
    await expect(page.locator("#agenda")).to_contain_text("Our reading list")
    await expect(page.locator("#goals")).to_contain_text("No goals yet.")

    # Still failing: the one notice again, not a second.
    async with page.expect_event("requestfailed", lambda r: "meetings.js" in r.url):
        await page.get_by_role("button", name="Try again").click()
    await expect(meetings_gone(page)).to_have_count(1)
    await expect(page.locator("#meetings").get_by_role("heading")).to_have_count(1)

    outage.end()
    await page.get_by_role("button", name="Try again").click()
    await expect_meetings_mounted(page)
    await expect(page.locator("#agenda")).to_contain_text("Our reading list")
    assert outage.documents == [page.url.split("#")[0]], "loaded in place, not by a reload"


@pytest.mark.slow
@pytest.mark.browser
async def test_the_pair_pages_meetings_load_when_the_browser_is_back_online(
    base_url: str, launcher: Launcher
) -> None:
    outage = Outage("/static/meetings.js")
    page = await open_pair_page_during(base_url, launcher, outage)
    await expect(meetings_gone(page)).to_be_visible()

    outage.end()
    await page.context.set_offline(True)
    await page.context.set_offline(False)
    await expect_meetings_mounted(page)


@pytest.mark.slow
@pytest.mark.browser
async def test_the_meetings_notice_fits_a_phone_and_passes_axe(
    base_url: str, launcher: Launcher
) -> None:
    page = await open_pair_page_during(base_url, launcher, Outage("/static/meetings.js"))

    await expect(meetings_gone(page)).to_be_visible()
    await expect(page.locator("#meetings").get_by_role("button", name="Try again")).to_be_visible()
    assert await page.evaluate(NO_HORIZONTAL_SCROLL)
    assert await axe_violations(page, "meetings could not load") == []


PART_GONE = "Part of this page could not load ({}). Check your connection, then try again."
UNREACHABLE = "the server could not be reached"


def part_gone(page: Page, why: str = UNREACHABLE) -> Locator:
    """The pair page's own error place saying that a part of it could not load."""
    return page.get_by_role("alert").filter(has_text=PART_GONE.format(why))


def try_again(page: Page) -> Locator:
    return page.locator("#pair-error").get_by_role("button", name="Try again")


@pytest.mark.slow
@pytest.mark.browser
async def test_a_part_of_the_pair_page_that_failed_to_load_says_so_and_loads_on_try_again(
    base_url: str, launcher: Launcher
) -> None:
    outage = Outage("/api/v1/pairs/*/goals")
    page = await open_pair_page_during(base_url, launcher, outage)

    # The page says what failed, in words, where she sees it.
    await expect(part_gone(page)).to_be_visible()
    await expect_pair_shown(page)
    await expect(page.locator("body")).not_to_contain_text("Failed to fetch")
    await expect(page.locator("#agenda")).to_contain_text("Nothing on the agenda yet.")
    await expect(page.locator("#sessions")).to_contain_text("No sessions yet.")
    await expect(page.get_by_role("button", name="Propose")).to_be_visible()
    # The rest drawn, on a phone: seen without scrolling.
    await expect(part_gone(page)).to_be_in_viewport(ratio=1)

    # Still failing: the one notice again, not a second.
    async with page.expect_event("requestfailed", lambda r: "/goals" in r.url):
        await try_again(page).click()
    await expect(part_gone(page)).to_have_count(1)
    await expect(try_again(page)).to_have_count(1)

    outage.end()
    await try_again(page).click()
    await expect(page.locator("#goals")).to_contain_text("No goals yet.")
    await expect(page.locator("#pair-error")).to_be_empty()
    await expect(page.locator("#token-form")).to_be_hidden()
    assert outage.documents == [page.url.split("#")[0]], "loaded in place, not by a reload"


@pytest.mark.slow
@pytest.mark.browser
async def test_a_part_that_failed_on_the_server_keeps_its_words_and_loads_when_back_online(
    base_url: str, launcher: Launcher
) -> None:
    outage = Outage("/api/v1/pairs/*/agenda", server_failed=True)
    page = await open_pair_page_during(base_url, launcher, outage)
    await expect(part_gone(page, "internal server error")).to_be_visible()
    await expect_pair_shown(page)

    outage.end()
    await page.context.set_offline(True)
    await page.wait_for_function("() => !navigator.onLine")  # so that coming back is an event
    await page.context.set_offline(False)
    await expect(page.locator("#agenda")).to_contain_text("Nothing on the agenda yet.")
    await expect(page.locator("#pair-error")).to_be_empty()


@pytest.mark.slow
@pytest.mark.browser
async def test_a_refused_token_still_asks_for_the_token(base_url: str, launcher: Launcher) -> None:
    context = await launcher.context(viewport=PHONE)
    page = await context.new_page()
    await page.goto(f"{base_url}/pair#token=not-a-token")

    form = page.locator("#token-form")
    await expect(form).to_be_visible()
    await expect(form.get_by_role("alert")).not_to_be_empty()
    await expect(page.locator("#pair")).to_be_hidden()
    await expect(page.get_by_text("Part of this page could not load")).to_have_count(0)


@pytest.mark.slow
@pytest.mark.browser
async def test_the_pair_pages_load_failure_fits_a_phone_and_passes_axe(
    base_url: str, launcher: Launcher
) -> None:
    page = await open_pair_page_during(base_url, launcher, Outage("/api/v1/pairs/*/goals"))

    await expect(part_gone(page)).to_be_visible()
    await expect(try_again(page)).to_be_visible()
    assert await page.evaluate(NO_HORIZONTAL_SCROLL)
    assert await axe_violations(page, "part of the pair page could not load") == []


@pytest.mark.slow
@pytest.mark.browser
async def test_an_action_that_failed_is_said_beside_it_and_leaves_the_load_notice(
    base_url: str, launcher: Launcher
) -> None:
    goals = Outage("/api/v1/pairs/*/goals")
    adding = Outage("/api/v1/pairs/*/agenda", method="POST")
    page = await open_pair_page_during(base_url, launcher, goals, adding)
    await expect(part_gone(page)).to_be_visible()

    await page.get_by_label("New agenda item").fill("Our reading list")
    await page.get_by_role("button", name="Add", exact=True).click()
    # Said where she is (the top of a phone's page is out of sight), and apart from the notice
    # of what did not load: both are there, each its own alert, none inside another.
    said = page.locator("#agenda-form + [role=alert]")
    await expect(said).to_have_text(f"Could not add to the agenda: {UNREACHABLE}")
    await expect(said).to_be_in_viewport(ratio=1)
    await expect(part_gone(page)).to_have_count(1)
    await expect(try_again(page)).to_be_visible()
    await expect(page.locator("[role=alert] [role=alert]")).to_have_count(0)
    assert await axe_violations(page, "an action failed beside a load notice") == []

    # Both usable: the notice's Try again loads the goals and leaves her action's words...
    goals.end()
    await try_again(page).click()
    await expect(page.locator("#goals")).to_contain_text("No goals yet.")
    await expect(page.locator("#pair-error")).to_be_empty()
    await expect(said).to_have_text(f"Could not add to the agenda: {UNREACHABLE}")
    # ...and trying the action again does it and takes its words away.
    adding.end()
    await page.get_by_role("button", name="Add", exact=True).click()
    await expect(page.locator("#agenda")).to_contain_text("Our reading list")
    await expect(said).to_have_count(0)


# The space an element takes in the page: how far the next one moves up without it.
SPACE_TAKEN = """(element) => {
  const next = () => element.nextElementSibling.getBoundingClientRect().top;
  const shown = next();
  const display = element.style.display;
  element.style.display = "none";
  const gone = next();
  element.style.display = display;
  return shown - gone;
}"""


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390x844"])
async def test_the_pair_pages_empty_error_place_takes_no_space(
    viewport: dict[str, int], base_url: str, launcher: Launcher
) -> None:
    context = await launcher.context(viewport=viewport)
    page = await open_pair_page(base_url, await context.new_page())
    await expect_meetings_mounted(page)
    await expect(page.locator("#goals")).to_contain_text("No goals yet.")

    place = page.locator("#pair-error")
    await expect(place).to_be_empty()
    assert await place.evaluate(SPACE_TAKEN) == 0
