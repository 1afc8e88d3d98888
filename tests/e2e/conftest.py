"""Real headless Chromium (Debian's) against a real server: fixtures and a page object."""

from __future__ import annotations

import asyncio
import os
import shutil
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from server.app import create_app
from server.config import Settings
from tests.support.netns import TestHost, create_test_host
from tests.support.participants import issue_token
from tests.support.services import require_program

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"

# From ../shared/notes/webrtc.md. The fake-UI flag grants camera/mic without a prompt; the
# "denied" browser leaves it out so getUserMedia is refused as a person would refuse it.
# The fake camera at 15 fps, not the notes' 30: every page encodes it and decodes the
# others', and no test here reads a frame rate. Measured on 2026-12-07 (2 cores): the
# whole `make test` took 26.5 min at 15 fps; the last CI run, at 30 fps, 35.2 min.
BASE_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream=fps=15",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
]
GRANTING_FLAGS = [*BASE_FLAGS, "--use-fake-ui-for-media-stream"]

expect.set_options(timeout=10_000)


@pytest.fixture
async def base_url(aiohttp_server: Any, make_settings: Callable[..., Settings]) -> str:
    server = await aiohttp_server(create_app(make_settings()))
    return str(server.make_url("")).rstrip("/")


class Launcher:
    """Browsers for one test; every context (a participant) starts with a fresh profile."""

    def __init__(self, playwright: Any, executable: str):
        self._playwright = playwright
        self._executable = executable
        self._browsers: dict[bool, Browser] = {}
        self._others: list[Browser] = []

    async def context(self, *, camera_allowed: bool = True, **options: Any) -> BrowserContext:
        browser = self._browsers.get(camera_allowed)
        if browser is None:
            browser = await self._playwright.chromium.launch(
                executable_path=self._executable,
                args=GRANTING_FLAGS if camera_allowed else BASE_FLAGS,
            )
            self._browsers[camera_allowed] = browser
        return await browser.new_context(**options)

    async def context_in(self, executable: str, origin: str, **options: Any) -> BrowserContext:
        """A participant whose Chromium runs through `executable` (e.g. a script that
        execs it inside a network namespace) and reaches the server at `origin`, which
        it treats as secure so the camera and microphone are offered on plain HTTP."""
        browser = await self._playwright.chromium.launch(
            executable_path=executable,
            args=[*GRANTING_FLAGS, f"--unsafely-treat-insecure-origin-as-secure={origin}"],
        )
        self._others.append(browser)
        return await browser.new_context(**options)

    async def close(self) -> None:
        for browser in [*self._browsers.values(), *self._others]:
            await browser.close()


@pytest.fixture
async def launcher() -> AsyncIterator[Launcher]:
    executable = require_program("chromium", "/usr/bin/chromium")
    async with async_playwright() as playwright:
        launcher = Launcher(playwright, executable)
        yield launcher
        await launcher.close()


class RoomPage:
    """One participant's page, driven the way a person would use it."""

    def __init__(self, page: Page, identity: str, name: str):
        self.page = page
        self.identity = identity
        self.name = name
        # What the page did on the wire and said in its console, for a join that sticks.
        self.events: list[str] = []
        started = asyncio.get_running_loop().time()

        def note(text: str) -> None:
            self.events.append(f"{asyncio.get_running_loop().time() - started:.1f}s {text}")
            del self.events[:-30]

        page.on("console", lambda message: note(f"console {message.type}: {message.text}"))
        page.on("requestfailed", lambda r: note(f"failed {r.url} ({r.failure})"))

        def websocket(ws: Any) -> None:
            note(f"websocket open {ws.url}")
            ws.on("socketerror", lambda error: note(f"websocket error {error}"))
            ws.on("close", lambda _: note("websocket closed"))

        page.on("websocket", websocket)

    async def join(self) -> RoomPage:
        button = self.page.get_by_role("button", name="Join meeting")
        # Enabled once the server answers the page's socket: slower from a namespace's
        # browser on a loaded machine than Playwright's 5 s default.
        try:
            await expect(button).to_be_enabled(timeout=20_000)
        except AssertionError:
            # Seen in full runs only (2 of 3 on 2026-12-04), always a namespace's browser:
            # its page never heard from the server's socket in 20 s, though the page itself
            # loaded; alone the same tests pass. A page whose modules failed to load (the
            # network changed under it: other tests adding veth pairs) now reloads itself
            # (web/page-load.js, tests/e2e/test_page_load_recovery.py), so a page still
            # stuck here is one whose code ran, or one that gave up after its own reloads.
            # What the page said is kept for whoever looks into it; the person's next
            # step, a reload, is taken once.
            said = await self.page.evaluate(
                "() => [document.getElementById('check-server')?.textContent,"
                " document.getElementById('conn-status')?.textContent,"
                " document.querySelector('.page-load')?.textContent]"
            )
            warnings.warn(
                f"{self.identity}'s join page stuck (it said {said}; its events:"
                f" {self.events}): reloaded once, though the page reloads itself when"
                " its code fails to load",
                stacklevel=2,
            )
            await self.page.reload()
            await expect(button).to_be_enabled(timeout=30_000)
        await button.click()
        try:
            # The click takes at once: the button says "Joining…" until the page gives way
            # to the room (a role locator matches neither that nor a hidden button).
            await expect(button).to_have_count(0, timeout=5_000)
        except AssertionError:
            # Seen once in a full run (CI, 2026-12-06): the click returned, yet the page
            # still offered "Join meeting" 20 s later, never having started to join. What
            # the page said is kept; the person's next step, a second click, is taken once.
            warnings.warn(
                f"{self.identity}'s click on Join meeting did not take (its events:"
                f" {self.events}): clicked again",
                stacklevel=2,
            )
            await button.click()
        # A namespace's first browser of the run took over 10 s here once (a full run).
        await expect(self.tile(self.identity)).to_be_visible(timeout=20_000)
        return self

    def tile(self, identity: str) -> Any:
        return self.page.locator(f'.tile[data-identity="{identity}"]')

    def badge(self, identity: str) -> Any:
        return self.tile(identity).locator(".badge")

    def messages(self) -> Any:
        return self.page.locator("#chat-log .msg")

    def message(self, text: str) -> Any:
        return self.page.locator("#chat-log .msg", has=self.page.get_by_text(text, exact=True))

    def composer(self) -> Any:
        return self.page.get_by_role("textbox", name="Message")

    async def say(self, text: str) -> None:
        box = self.composer()
        await box.fill(text)
        await box.press("Enter")

    async def evaluate(self, script: str, arg: Any = None) -> Any:
        return await self.page.evaluate(script, arg)

    async def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        await self.page.screenshot(path=str(path))
        return path


OpenPage = Callable[..., Awaitable[RoomPage]]


async def chat_both_ways(first: RoomPage, second: RoomPage, text: str, reply: str) -> None:
    """`first` writes `text`, `second` sees it and answers `reply`, `first` sees that."""
    await first.say(text)
    await expect(second.message(text)).to_be_visible()
    await second.say(reply)
    await expect(first.message(reply)).to_be_visible()


@pytest.fixture
async def open_page(base_url: str, launcher: Launcher) -> OpenPage:
    """A participant's join page: `await open_page("ada", join=True, diag=["debug-handle"])`."""

    async def open_(
        identity: str,
        *,
        name: str | None = None,
        room: str = "pair-1",
        role: str = "mentee",
        join: bool = True,
        diag: tuple[str, ...] = (),
        camera_allowed: bool = True,
        viewport: dict[str, int] | None = None,
        context: BrowserContext | None = None,
        origin: str | None = None,
        **context_options: Any,
    ) -> RoomPage:
        """`context` and `origin`: a browser of the test's own (in a network namespace)
        and the address it reaches the server at."""
        name = name or identity.title()
        token = await asyncio.to_thread(issue_token, base_url, room, identity, name, role)
        if context is None:
            context = await launcher.context(
                camera_allowed=camera_allowed,
                viewport=viewport or {"width": 1280, "height": 800},
                **context_options,
            )
        page = await context.new_page()
        person = RoomPage(page, identity, name)
        query = "&".join(f"diag={flag}" for flag in diag)
        await page.goto(f"{origin or base_url}/join{'?' + query if query else ''}#token={token}")
        if join:
            await person.join()
        return person

    return open_


def publish_screenshot(path: Path, name: str) -> None:
    """Copy an artifact into docs/screenshots (committed, shown in the README) when
    PAIRWISE_UPDATE_SCREENSHOTS=1, so an ordinary test run leaves the tree clean."""
    if os.environ.get("PAIRWISE_UPDATE_SCREENSHOTS") != "1":
        return
    target = ROOT / "docs" / "screenshots" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)


@pytest.fixture
async def test_host() -> AsyncIterator[TestHost]:
    """A network namespace joined to this machine by a veth pair (tests/support/netns.py),
    removed after the test."""
    host = create_test_host()
    try:
        yield host
    finally:
        host.remove()
