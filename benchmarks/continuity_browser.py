"""Continuity in Chromium: two real browsers in a call, one fault at a time, timed.

The same faults as tests/e2e/test_continuity.py and tests/e2e/test_network_faults.py,
measured instead of asserted. For each: *down* is the fault → ada's tile of bo stops
showing live video ("Video paused" / "Reconnecting…"); *back* is the fault clearing →
both pages decode each other's video again (15 new frames each, from getStats); the
path is bo's session-log entries from the fault on; chat is one message bo writes during
the fault, acknowledged, stored and shown to ada (or lost).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from playwright.async_api import BrowserContext, Page, async_playwright

from server.app import create_app
from server.config import load_settings
from server.media.api import SFU
from tests.e2e.conftest import BASE_FLAGS, GRANTING_FLAGS
from tests.e2e.test_continuity import DECODING, make_pair, timeline
from tests.e2e.test_continuity_devices import set_permission
from tests.support.netns import TestHost, create_test_host
from tests.support.participants import issue_token
from tests.support.process import ADMIN_KEY, SECRET_KEY

TITLE = "Continuity in Chromium: faults mid-call, down and back up to video"
CHROMIUM = "/usr/bin/chromium"
PLAYING = """(identity) => document.querySelector(`.tile[data-identity="${identity}"]`)
    ?.dataset.video === "playing" """


@dataclass
class Row:
    fault: str
    held_s: float
    down_s: float | None
    back_s: float | None  # None: not measured (the path says why)
    path: str
    chat: str


TEXT_CHOICE = "text by choice (camera and microphone off before joining), then Start video"
RESTART = "server restarted mid-call (in-process: stopped, started on the same port and data)"
UDP_START = "UDP blocked from the start, no TURN (namespace, nftables) 15 s"


async def attempt(fault: str, held_s: float, row: Callable[[], Awaitable[Row]]) -> Row:
    """A row, or one saying why it could not be measured (the other rows still count)."""
    try:
        return await row()
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        print(f"-- {fault}: not measured: {type(exc).__name__}: {first}", flush=True)
        return Row(fault, held_s, None, None, f"not measured: {type(exc).__name__}: {first}", "—")


class Call:
    def __init__(self, base: str, pair_id: str, room: str, ada: Page, bo: Page):
        self.base, self.pair_id, self.room, self.ada, self.bo = base, pair_id, room, ada, bo
        self.waits = 0

    async def decoding(self, page: Page, other: str, timeout_s: float = 60) -> None:
        self.waits += 1
        await page.wait_for_function(
            DECODING,
            arg={"identity": other, "key": f"b{self.waits}", "frames": 15},
            polling=100,
            timeout=timeout_s * 1000,
        )

    async def both_decode(self) -> None:
        await asyncio.gather(self.decoding(self.ada, "bo"), self.decoding(self.bo, "ada"))


async def join(
    context: BrowserContext, origin: str, base: str, room: str, who: str, text: bool = False
) -> Page:
    """`text`: camera and microphone switched off before joining (text by choice)."""
    token = await asyncio.to_thread(issue_token, base, room, who, who.title())
    page = await context.new_page()
    await page.goto(f"{origin}/join?diag=debug-handle#token={token}")
    button = page.get_by_role("button", name="Join meeting")
    if text:
        camera = page.get_by_role("button", name="Camera on")
        await camera.wait_for(timeout=60_000)
        await camera.click()
        await page.get_by_role("button", name="Microphone on").click()
    await page.wait_for_function(
        "() => !document.getElementById('join-button').disabled", timeout=60_000
    )
    await button.click()
    await page.wait_for_selector(f'.tile[data-identity="{who}"]')
    return page


async def measure(
    fault: str,
    call_: Call,
    inject: Callable[[], Awaitable[None]],
    clear: Callable[[], Awaitable[None]],
    hold_s: float,
    chat: bool = True,
) -> Row:
    loop = asyncio.get_running_loop()
    entries_before = len(await timeline(call_.base, call_.pair_id))
    started = loop.time()
    await inject()
    text = f"written during: {fault}"
    if chat:
        await call_.bo.get_by_role("textbox", name="Message").fill(text)
        await call_.bo.get_by_role("textbox", name="Message").press("Enter")
    down: float | None = None
    try:
        await call_.ada.wait_for_function(
            f"() => !({PLAYING})('bo')", polling=100, timeout=(hold_s or 5) * 1000
        )
        down = loop.time() - started
    except Exception:  # the partner's video never visibly stopped (a quick rebuild)
        down = None
    rest = hold_s - (loop.time() - started)
    if rest > 0:
        await asyncio.sleep(rest)  # the fault lasts this long: a duration, not a wait
    # An instant fault (a closed connection, a reload) has nothing to clear: back is
    # counted from the fault itself.
    cleared = loop.time() if hold_s else started
    await clear()
    await call_.both_decode()
    back = loop.time() - cleared
    outcome = "—"
    if chat:
        # The server broadcasts a message only once it is stored: ada seeing it means stored.
        await call_.ada.wait_for_selector(f'#chat-log .msg:has-text("{text}")', timeout=30_000)
        await call_.bo.wait_for_function(
            "() => !document.querySelector('#chat-log .msg.pending')", timeout=30_000
        )
        outcome = "1 sent: acked, stored, shown to ada; 0 lost"
    entries = (await timeline(call_.base, call_.pair_id))[entries_before:]
    path = ", ".join(
        f"{e['kind']} {e['detail']}".strip()
        for e in entries
        if e["identity"] == "bo" and e["kind"] not in ("presence",)
    )
    print(f"-- {fault}: down {down}, back {back:.1f} s", flush=True)
    return Row(fault, hold_s, down, back, path or "(no entry)", outcome)


async def run(quick: bool) -> str:
    rows: list[Row] = []
    connects: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            data_dir=Path(tmp) / "data",
            admin_key=ADMIN_KEY,
            secret_key=SECRET_KEY,
            media_workers=0,  # the SFU in this process: the benchmark reads its peers
        )
        server = InProcess(settings)
        port = await server.start(0)
        base = f"http://127.0.0.1:{port}"
        host: TestHost | None = None
        try:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=GRANTING_FLAGS)
                # Without the fake-UI flag: permissions are real, and can be taken back.
                real = await pw.chromium.launch(executable_path=CHROMIUM, args=BASE_FLAGS)
                n = 0
                previous: Call | None = None

                async def permitted() -> BrowserContext:
                    context = await real.new_context()
                    await context.grant_permissions(["camera", "microphone"], origin=base)
                    return context

                async def new_call(
                    bo_context: BrowserContext | None = None,
                    bo_origin: str | None = None,
                    bo_text: bool = False,
                    decoding: bool = True,
                ) -> Call:
                    nonlocal n, previous
                    if previous is not None:  # one call at a time: 2 cores, 2 videos each way
                        await previous.ada.context.close()
                        await previous.bo.context.close()
                    n += 1
                    room = f"pair-bench{n}"
                    pair_id = await make_pair(base, room)
                    ada = await join(await browser.new_context(), base, base, room, "ada")
                    bo = await join(
                        bo_context or await browser.new_context(),
                        bo_origin or base,
                        base,
                        room,
                        "bo",
                        text=bo_text,
                    )
                    c = Call(base, pair_id, room, ada, bo)
                    previous = c
                    if not decoding:
                        return c
                    await c.both_decode()
                    for peer in server.sfu.rooms[room].peers.values():  # offer in → connected
                        if peer.connected_at is not None:
                            connects.append(peer.connected_at - peer.created_at)
                    previous = c
                    return c

                c = await new_call()
                button = c.bo.get_by_role("button", name="Audio only")
                rows.append(
                    await measure(
                        "audio only on, then off (a choice)", c, button.click, button.click, 5
                    )
                )
                c = await new_call()
                rows.append(
                    await measure(
                        "browser offline (Playwright set_offline)",
                        c,
                        lambda: c.bo.context.set_offline(True),
                        lambda: c.bo.context.set_offline(False),
                        12,
                    )
                )
                c = await new_call()
                rows.append(
                    await measure(
                        "the page's RTCPeerConnection closed (pc.close())",
                        c,
                        lambda: c.bo.evaluate("() => window.pairwiseDebug.room.media.pc.close()"),
                        _nothing,
                        0,
                        chat=False,
                    )
                )
                c = await new_call()
                rows.append(await measure("tab reloaded", c, c.bo.reload, _nothing, 0, chat=False))
                c = await new_call()
                rows.append(
                    await measure(
                        "the SFU closes its side of bo's connection (Sfu.disconnect)",
                        c,
                        lambda: server.sfu.disconnect(c.room, "bo"),
                        _nothing,
                        0,
                        chat=False,
                    )
                )
                for device, name in (("camera", "camera"), ("microphone", "microphone")):
                    c = await new_call(await permitted())
                    rows.append(
                        await measure(
                            f"{name} permission taken back, then allowed (CDP)",
                            c,
                            _permission(c.bo, device, "denied", base),
                            _permission(c.bo, device, "granted", base),
                            10,
                        )
                    )
                if os.geteuid() == 0:
                    host = create_test_host()
                    script = Path(tmp) / "chromium-in-namespace"
                    script.write_text(
                        f'#!/bin/sh\nexec ip netns exec {host.name} {CHROMIUM} "$@"\n'
                    )
                    script.chmod(0o755)
                    origin = f"http://{host.host_ip}:{port}"
                    ns_browser = await pw.chromium.launch(
                        executable_path=str(script),
                        args=[
                            *GRANTING_FLAGS,
                            f"--unsafely-treat-insecure-origin-as-secure={origin}",
                        ],
                    )
                    for fault, make in (
                        ("10 % random loss both ways (nftables)", lambda h: h.drop_random(10)),
                        ("300 kbit/s cap both ways (tc tbf)", lambda h: h.limit_rate(300)),
                    ):
                        c = await new_call(await ns_browser.new_context(), origin)
                        h = host
                        rows.append(
                            await measure(
                                fault, c, _sync(lambda make=make, h=h: make(h)), _sync(h.heal), 15
                            )
                        )

                    async def blocked_from_start(h: TestHost = host) -> Row:
                        h.block_udp()
                        ctx = await ns_browser.new_context()
                        c = await new_call(ctx, origin, decoding=False)
                        return await measure(UDP_START, c, _nothing, _sync(h.heal), 15)

                    rows.append(await attempt(UDP_START, 15, blocked_from_start))
                    host.heal()
                    for held in (15,) if quick else (15, 30):
                        c = await new_call(await ns_browser.new_context(), origin)
                        h = host
                        rows.append(
                            await measure(
                                f"UDP blocked (namespace, nftables) {held} s",
                                c,
                                _sync(h.block_udp),
                                _sync(h.heal),
                                held,
                            )
                        )
                    await ns_browser.close()

                async def text_then_video() -> Row:
                    c = await new_call(bo_text=True, decoding=False)
                    start_video = c.bo.get_by_role("button", name="Start video")
                    await start_video.wait_for(timeout=60_000)
                    return await measure(TEXT_CHOICE, c, _nothing, start_video.click, 0, False)

                async def restarted() -> Row:
                    c = await new_call()
                    return await measure(RESTART, c, server.stop, _sync_start(server, port), 5)

                rows.append(await attempt(TEXT_CHOICE, 0, text_then_video))
                rows.append(await attempt(RESTART, 5, restarted))
                await real.close()
                await browser.close()
        finally:
            if host is not None:
                host.remove()
            await server.stop()
    lines = [
        "Two Chromium participants (fake camera and microphone) through the SFU of one",
        "in-process server with the product's default thresholds; the fault is on bo.",
        "*Down*: fault → ada's tile of bo stops showing live video (— when it never did:",
        "the rebuild was quicker than a frame gap shows). *Back*: fault cleared → both decode",
        "15 new frames of each other's video (getStats). *Path*: bo's session-log entries",
        "from the fault on. *Chat*: one message bo wrote during the fault.\n",
        "| fault | held | down | back to video | path (session log) | chat |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        down = "—" if r.down_s is None else f"{r.down_s:.1f} s"
        back = "—" if r.back_s is None else f"{r.back_s:.1f} s"
        lines.append(f"| {r.fault} | {r.held_s:.0f} s | {down} | {back} | {r.path} | {r.chat} |")
    connects.sort()
    lines += [
        "",
        "What the rows show. *Loss and the rate cap*: Chromium keeps video going under 10 %",
        "random loss (NACK/RTX and FEC) and under a 300 kbit/s cap both ways (its congestion",
        "control brings the bitrate under the cap; fewer frames a second), and the loss the",
        "SFU measures stays under its 20 % rule, so nothing steps down: video at a lower rate",
        "is the best rung those networks allow, and a step to audio would only lose the",
        "picture. *Camera or microphone refused*: taking one permission back ends both",
        "tracks of the capture in Chromium; the page asks for each on its own and goes to",
        "audio (`camera_unavailable`) or stays on video without sound (no rung changes, so no",
        "log entry), then climbs back when the permission returns. *Server restarted*: the",
        "pages reconnect their sockets, rejoin and rebuild media by themselves (the path is",
        "the ended session's: the rejoin opens a new one). *UDP blocked from the start*",
        "without TURN: text, then video",
        "once UDP returns; with TURN over TCP (video through the relay) it is tested",
        "(tests/e2e/test_continuity_udp_start.py), not timed here.",
        f"ICE and DTLS, the server's offer in → `connected`, over the {len(connects)} first",
        "connections above (the machine shared with other work, load average "
        f"{os.getloadavg()[0]:.0f} at the end): median {connects[len(connects) // 2]:.2f} s, "
        f"max {connects[-1]:.2f} s. `PAIRWISE_MEDIA_ICE_TIMEOUT_SECONDS` is 5 s.",
    ]
    return "\n".join(lines) + "\n"


class InProcess:
    """The server in this process, stoppable and startable again on the same port with the
    same data folder: a restart as the pages see it (sockets and media connections drop,
    the session log survives)."""

    def __init__(self, settings: Any) -> None:
        self._settings = settings
        self._runner: web.AppRunner | None = None
        self.sfu: Any = None

    async def start(self, port: int) -> int:
        app = create_app(self._settings)
        self.sfu = app[SFU]
        assert self.sfu is not None
        self._runner = web.AppRunner(app, shutdown_timeout=2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "0.0.0.0", port)
        await site.start()
        return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()


def _sync_start(server: InProcess, port: int) -> Callable[[], Awaitable[None]]:
    async def start() -> None:
        await server.start(port)

    return start


def _permission(page: Page, name: str, setting: str, origin: str) -> Callable[[], Awaitable[None]]:
    return lambda: set_permission(page, name, setting, origin)


async def _nothing() -> None:
    return None


def _sync(fn: Callable[[], Any]) -> Callable[[], Awaitable[None]]:
    async def run_() -> None:
        await asyncio.to_thread(fn)

    return run_
