"""The installable web app in real Chromium: /me links a valid manifest (Chromium's own
parser reads it), the service worker registers from the root and activates, shows what is
pushed to it, and the channel checkboxes save and come back after a reload.

Chromium's own `pushManager.subscribe` cannot run here: it asks Google's push service (FCM)
for an endpoint, which needs the internet and Google's servers. So the "Notify me on this
device" button is checked to be offered, not pressed; the subscription it would save goes
through the same route that tests/push/test_push.py drives with a loopback push service,
and the worker's push handler is driven through DevTools' `ServiceWorker.deliverPushMessage`
(what a push service's message becomes inside the browser).
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

import aiohttp
import pytest
from playwright.async_api import expect

from server.push.api import PUSH
from tests.e2e.conftest import Launcher
from tests.e2e.conftest import launcher as launcher  # noqa: F401 - the fixture
from tests.signin.conftest import SignInServer

pytestmark = pytest.mark.slow


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def test_manifest_worker_and_channels_on_me(make_server: Any, launcher: Launcher) -> None:
    server: SignInServer = await make_server()
    await server.participant("ada", "ada@example.org", "Ada Lovelace")
    account = await server.signin.accounts.by_email("ada@example.org")
    assert account is not None
    link = await server.signin.link_url(account)

    context = await launcher.context(permissions=["notifications"])
    page = await context.new_page()
    await page.goto(link)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(server.url + "/me")

    # The manifest: linked, served as a manifest, parsed by Chromium without errors.
    href = await page.locator('link[rel="manifest"]').get_attribute("href")
    assert href == "/manifest.webmanifest"
    cdp = await context.new_cdp_session(page)
    found = await cdp.send("Page.getAppManifest")
    assert found["url"] == server.url + "/manifest.webmanifest"
    assert found["errors"] == [], found["errors"]
    manifest = json.loads(found["data"])
    assert manifest["start_url"] == "/me" and manifest["display"] == "standalone"
    assert manifest["theme_color"] == "#1f6f68"  # --accent in style.css
    async with aiohttp.ClientSession() as http:
        async with http.get(server.url + "/manifest.webmanifest") as resp:
            assert resp.content_type == "application/manifest+json"
        for icon in manifest["icons"]:
            async with http.get(server.url + icon["src"]) as resp:
                assert resp.status == 200 and resp.content_type == "image/png"
                width, height = png_size(await resp.read())
                assert f"{width}x{height}" == icon["sizes"]
        async with http.get(server.url + "/sw.js") as resp:
            assert resp.content_type == "text/javascript"

    # The worker: registered from the root, active, in control of /me after a reload.
    worker = await page.evaluate(
        """async () => {
            const r = await navigator.serviceWorker.ready;
            if (r.active.state !== "activated") {
                await new Promise((done) => r.active.addEventListener("statechange", done));
            }
            if (!navigator.serviceWorker.controller) {  // clients.claim() takes /me over
                await new Promise((done) =>
                    navigator.serviceWorker.addEventListener("controllerchange", done));
            }
            return { scope: r.scope, state: r.active.state, script: r.active.scriptURL };
        }"""
    )
    assert worker == {
        "scope": server.url + "/",
        "state": "activated",
        "script": server.url + "/sw.js",
    }
    await expect(page.get_by_role("button", name="Notify me on this device")).to_be_visible()

    # What a push service delivers is shown as a notification, its URL kept for the click.
    await cdp.send("ServiceWorker.enable")
    registration = await page.evaluate(
        "navigator.serviceWorker.ready.then((r) => r.active.scriptURL)"
    )
    assert registration.endswith("/sw.js")
    ids: list[str] = []
    reported = asyncio.Event()

    def on_registration(event: dict[str, Any]) -> None:
        ids.extend(r["registrationId"] for r in event["registrations"] if not r["isDeleted"])
        if ids:
            reported.set()

    cdp.on("ServiceWorker.workerRegistrationUpdated", on_registration)
    await cdp.send("ServiceWorker.disable")
    await cdp.send("ServiceWorker.enable")  # reports every registration again
    await asyncio.wait_for(reported.wait(), 10)
    payload = {"title": "Reminder: Weekly in 15 minutes", "body": "Starts soon", "url": "/me"}
    await cdp.send(
        "ServiceWorker.deliverPushMessage",
        {"origin": server.url, "registrationId": ids[0], "data": json.dumps(payload)},
    )
    # The worker shows it asynchronously; look until it is there (up to 10 s).
    shown = await page.evaluate(
        """async () => {
            const registration = await navigator.serviceWorker.ready;
            for (let tries = 0; tries < 200; tries++) {
                const shown = await registration.getNotifications();
                if (shown.length) {
                    return shown.map((n) => ({ title: n.title, body: n.body, url: n.data.url }));
                }
                await new Promise((done) => setTimeout(done, 50));
            }
            return null;
        }"""
    )
    assert shown == [{"title": payload["title"], "body": "Starts soon", "url": server.url + "/me"}]

    # Channels: the boxes show the defaults, save on change, and come back after a reload.
    messages_email = page.get_by_label("New messages by email")
    reminders_push = page.get_by_label("Meeting reminders as notifications")
    await expect(messages_email).to_be_checked()
    await expect(reminders_push).to_be_checked()
    await messages_email.uncheck()
    await expect(page.locator("#channels-saved")).to_have_text("Saved.")
    await reminders_push.uncheck()  # its change handler clears "Saved." until this one is
    await expect(page.locator("#channels-saved")).to_have_text("Saved.")
    await page.reload()
    await expect(page.get_by_label("New messages by email")).not_to_be_checked()
    await expect(page.get_by_label("Meeting reminders as notifications")).not_to_be_checked()
    await expect(page.get_by_label("Meeting reminders by email")).to_be_checked()
    push = server.app[PUSH]
    chosen = await push.store.channels("ada")
    assert not chosen["messages"].email and not chosen["reminders"].push
    await context.close()
