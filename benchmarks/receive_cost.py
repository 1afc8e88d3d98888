"""The cost of receiving one simulcast publisher: Pairwise against Janus, same run.

One Chromium page (Debian's, fake camera asked for 1280x720@30 and fake microphone)
publishes three VP8 layers the way the web client does (rids q/h/f, 1/4, 1/2 and full
size, at most 150/500/1,500 kbit/s; web/client/media.js) plus Opus. The page has no
signaling of its own: this benchmark carries its offer and answer, over Socket.IO to
Pairwise (`join` + `media_offer`, as benchmarks.sfu does) and over the HTTP API to
Janus's VideoRoom (benchmarks.janus), so both SFUs receive the same publisher.

Each SFU runs in its own process (`python -m benchmarks.sfu serve MODE ...`; Janus is
exec'ed, so the process measured is Janus itself). Once the publisher's sending rate
has settled, the SFU's CPU time (its threads and children, from schedstat) is read over
a window with the publisher alone, then with one subscriber: benchmarks.sfu's aiortc
subscriber (it reads RTP headers after SRTP, nothing more), given the full layer. For
Pairwise it sends a REMB of 5 Mbit/s every 0.2 s, which its layer choice climbs on; Janus
is asked for the layer in the subscriber's `join` (substream 0: Janus 1.1 takes the rids
of `a=simulcast` as highest first, and the client lists q;h;f). Janus gets no REMB: with
one, Chromium paused its top layer in both rounds tried. What the publisher sent (per
layer: rate, frame rate, height) comes from the page's getStats over the same window,
and what the subscriber got from its RTP headers. Rounds alternate Pairwise and Janus.

    python -m benchmarks receive_cost        # writes docs/benchmarks.md
    python -m benchmarks.receive_cost [--quick]

RECEIVE_COST_WINDOW_S sets the windows' length (5 s with --quick, else 10 s): the CPU of a
5 s window is ~0.1 s, and runs of it spread ±15 %; RECEIVE_COST_MODES (e.g.
"pairwise,janus") runs only those; RECEIVE_COST_SINGLE=1 has the page send its 720p
video as one stream (at most 1,500 kbit/s, no rids: a camera without simulcast, or a
screen share) instead of three layers (printed, not written to the section).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

TITLE = "Receiving one 720p simulcast publisher: Pairwise vs Janus"

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
PAGE_URL = "http://localhost/publisher"  # fulfilled by the benchmark: a secure context
SUBSCRIBER_REMB = 5_000_000
SETTLE_TIMEOUT_S = 60.0

SIMULCAST = """[
        { rid: "q", scaleResolutionDownBy: 4, maxBitrate: 150000 },
        { rid: "h", scaleResolutionDownBy: 2, maxBitrate: 500000 },
        { rid: "f", maxBitrate: 1500000 },
      ]"""
SINGLE = "[{ maxBitrate: 1500000 }]"
PUBLISHER = """
window.bench = {
  async offer() {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: true, video: { width: 1280, height: 720, frameRate: 30 } });
    const pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: "max-bundle" });
    this.pc = pc;
    pc.addTransceiver(stream.getAudioTracks()[0], { direction: "sendonly", streams: [stream] });
    pc.addTransceiver(stream.getVideoTracks()[0], {
      direction: "sendonly", streams: [stream],
      sendEncodings: ENCODINGS,
    });
    await pc.setLocalDescription();
    await this.gathered();
    return pc.localDescription.sdp;
  },
  gathered() {
    return new Promise((resolve) => {
      const done = () => this.pc.iceGatheringState === "complete" && resolve();
      this.pc.addEventListener("icegatheringstatechange", done);
      done();
    });
  },
  async answer(sdp) { await this.pc.setRemoteDescription({ type: "answer", sdp }); },
  async reoffer(sdp) {
    await this.pc.setRemoteDescription({ type: "offer", sdp });
    await this.pc.setLocalDescription();
    await this.gathered();
    return this.pc.localDescription.sdp;
  },
  async outbound() {
    const out = {};
    (await this.pc.getStats()).forEach((s) => {
      if (s.type === "outbound-rtp" && s.kind === "video") {
        out[s.rid || "-"] = { t: s.timestamp, bytes: s.bytesSent, packets: s.packetsSent,
          frames: s.framesEncoded, height: s.frameHeight || 0,
          resent: s.retransmittedBytesSent || 0, limit: s.qualityLimitationReason,
          nacks: s.nackCount || 0, plis: s.pliCount || 0 };
      }
    });
    return out;
  },
};
"""


# -- pure parts (tests/unit/test_bench_receive_cost.py) ------------------------------


@dataclass(frozen=True)
class LayerRate:
    kbps: float  # retransmissions included (getStats' bytesSent counts them)
    fps: float
    packets_per_s: float
    height: int
    resent_kbps: float = 0.0
    limit: str = ""


def layer_rates(
    first: Mapping[str, Mapping[str, Any]], last: Mapping[str, Mapping[str, Any]]
) -> dict[str, LayerRate]:
    """Each layer's rate between two outbound-rtp snapshots (getStats: `t` in ms, byte,
    packet and frame counters); a layer missing from either snapshot is left out."""
    rates: dict[str, LayerRate] = {}
    for rid, end in last.items():
        start = first.get(rid)
        if start is None or end["t"] <= start["t"]:
            continue
        seconds = (end["t"] - start["t"]) / 1000
        rates[rid] = LayerRate(
            kbps=(end["bytes"] - start["bytes"]) * 8 / 1000 / seconds,
            fps=(end["frames"] - start["frames"]) / seconds,
            packets_per_s=(end["packets"] - start["packets"]) / seconds,
            height=int(end["height"]),
            resent_kbps=(end.get("resent", 0) - start.get("resent", 0)) * 8 / 1000 / seconds,
            limit=str(end.get("limit") or ""),
        )
    return rates


def settled(totals: list[float], within: float = 0.1, count: int = 3) -> bool:
    """True when the last `count` rates are all within `within` of their mean."""
    if len(totals) < count:
        return False
    last = totals[-count:]
    mean = sum(last) / count
    return mean > 0 and all(abs(x - mean) <= within * mean for x in last)


# -- the run ------------------------------------------------------------------------


@dataclass
class Window:
    cores: float
    layers: dict[str, LayerRate]
    wakeups: float  # a second, the SFU's threads together
    got_kbps: float | None = None  # the subscriber's video, from its RTP headers
    got_fps: float | None = None


@dataclass
class Row:
    mode: str
    round: int
    alone: Window
    one: Window
    settle_s: float
    load: float


def _per_thread(process: psutil.Process, file: str, read: Callable[[str], int]) -> int:
    """`read` of /proc/PID/task/TID/`file`, summed over every thread of the process and its
    children (a thread gone meanwhile counts nothing)."""
    total = 0
    for proc in [process, *process.children(recursive=True)]:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{proc.pid}/task").iterdir():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    total += read((task / file).read_text())
    return total


def _cpu(process: psutil.Process) -> float:
    """CPU seconds the process and its children have run, summed over their threads from
    Linux's schedstat (nanoseconds; the user and system times of /proc/PID/stat count
    10 ms ticks: 0.03 core over a 5 s window is 15 ticks, ±7 % from rounding alone)."""
    return _per_thread(process, "schedstat", lambda text: int(text.split()[0])) / 1e9


def _wakeups(process: psutil.Process) -> int:
    """Times the process and its children have gone to sleep and been woken, summed over
    their threads (Linux's voluntary context switches; /proc/PID/status alone counts the
    main thread's): each is a wake-up on the way back, which costs this machine more than
    handling a packet (the wake-ups section)."""
    return _per_thread(
        process, "status", lambda text: int(text.split("\nvoluntary_ctxt_switches:")[1].split()[0])
    )


class Page:
    """The publisher's page: offer/answer carried by this benchmark."""

    def __init__(self, page: Any) -> None:
        self.page = page

    async def offer(self) -> str:
        return str(await self.page.evaluate("() => window.bench.offer()"))

    async def answer(self, sdp: str) -> None:
        await self.page.evaluate("(sdp) => window.bench.answer(sdp)", sdp)

    async def reoffer(self, sdp: str) -> str:
        return str(await self.page.evaluate("(sdp) => window.bench.reoffer(sdp)", sdp))

    async def outbound(self) -> dict[str, dict[str, Any]]:
        return dict(await self.page.evaluate("() => window.bench.outbound()"))


async def publish_pairwise(page: Page, base: str, sockets: list[Any]) -> None:
    import socketio

    from benchmarks.sfu import ROOM, SECRET_KEY
    from server.auth import Role, TokenIssuer

    token, _ = TokenIssuer(SECRET_KEY, 3600).issue(ROOM, "publisher", "publisher", Role.MENTEE)
    sio = socketio.AsyncClient(serializer="msgpack", reconnection=False)
    lock = asyncio.Lock()

    async def renegotiate(data: dict[str, Any]) -> None:
        async with lock:
            sdp = await page.reoffer(data["sdp"])
            await sio.call(
                "media_answer",
                {"sdp": sdp, "type": "answer", "revision": data["revision"]},
                timeout=30,
            )

    sio.on("media_renegotiate", renegotiate)
    await sio.connect(base, auth={"token": token}, transports=["websocket"], wait_timeout=10)
    sockets.append(sio)
    await sio.call("join", {"media_mode": "video"}, timeout=10)
    async with lock:
        ack = await sio.call(
            "media_offer", {"sdp": await page.offer(), "type": "offer"}, timeout=30
        )
        await page.answer(ack["sdp"])


async def publish_janus(page: Page, base: str, sockets: list[Any]) -> None:
    from benchmarks import janus

    session = janus.JanusSession(base)
    await session.create()
    sockets.append(session)
    handle = await session.attach()
    await session.message(
        handle,
        {
            "request": "join",
            "ptype": "publisher",
            "room": janus.ROOM_ID,
            "id": janus.PUBLISHER_ID,
            "display": "publisher",
        },
    )
    reply = await session.message(
        handle,
        {"request": "publish", "audio": True, "video": True},
        {"type": "offer", "sdp": await page.offer(), "trickle": False},
    )
    await page.answer(reply["jsep"]["sdp"])


def _subscriber_class() -> Any:
    from benchmarks.sfu import Subscriber

    class Counting(Subscriber):
        """benchmarks.sfu's subscriber, also counting video bytes and its SSRC."""

        def __init__(self) -> None:
            super().__init__()
            self.video_bytes = 0
            self.video_ssrcs: set[int] = set()

        async def _rtp(self, data: bytes, arrival_time_ms: int) -> None:
            await super()._rtp(data, arrival_time_ms)
            if len(data) >= 12 and self._kind(data[1] & 0x7F) == "video":
                self.video_bytes += len(data)
                self.video_ssrcs.add(int.from_bytes(data[8:12], "big"))

    return Counting


async def _remb_loop(subscriber: Any) -> None:
    from server.media import aiortc_internals

    while True:
        for transceiver in subscriber.pc.getTransceivers():
            if transceiver.kind == "video" and subscriber.video_ssrcs:
                aiortc_internals.send_remb(
                    transceiver.receiver, SUBSCRIBER_REMB, sorted(subscriber.video_ssrcs)
                )
        await asyncio.sleep(0.2)


async def _window(
    page: Page, process: psutil.Process, seconds: float, subscriber: Any = None
) -> Window:
    first = await page.outbound()
    cpu, woken, began = _cpu(process), _wakeups(process), time.monotonic()
    frames, sent = (len(subscriber.video), subscriber.video_bytes) if subscriber else (0, 0)
    await asyncio.sleep(seconds)  # the window itself: CPU time is read across it
    elapsed = time.monotonic() - began
    cores, wakeups = (_cpu(process) - cpu) / elapsed, (_wakeups(process) - woken) / elapsed
    window = Window(cores, layer_rates(first, await page.outbound()), wakeups)
    if subscriber is not None:
        window.got_kbps = (subscriber.video_bytes - sent) * 8 / 1000 / elapsed
        window.got_fps = (len(subscriber.video) - frames) / elapsed
    return window


async def _settle(page: Page) -> float:
    """Wait until the publisher's total sending rate stops climbing; returns seconds."""
    started = time.monotonic()
    totals: list[float] = []
    previous = await page.outbound()
    while time.monotonic() - started < SETTLE_TIMEOUT_S:
        await asyncio.sleep(1.0)  # one rate sample a second
        current = await page.outbound()
        rates = layer_rates(previous, current)
        previous = current
        totals.append(sum(r.kbps for r in rates.values()))
        top = rates.get("f") or rates.get("-")  # the full layer, or the one stream
        if top is not None and top.height == 720 and top.fps > 0 and settled(totals):
            break
    return time.monotonic() - started


@contextlib.contextmanager
def _profiled(mode: str, pid: int) -> Any:
    """RECEIVE_COST_PERF=FILE: `perf record` of Pairwise's process over the window with
    the publisher alone (or the one with the subscriber: RECEIVE_COST_PROFILED) (native frames: libsrtp, the system calls, the interpreter);
    RECEIVE_COST_PYSPY=FILE: py-spy's Python stacks over it, only those holding the GIL
    (raw, for flame graphs; py-spy is not a dependency: `pip install py-spy`)."""
    commands = []
    if mode == "pairwise" and os.environ.get("RECEIVE_COST_PERF"):
        out = os.environ["RECEIVE_COST_PERF"]
        commands.append(["perf", "record", "-q", "-F", "997", "-g", "-p", str(pid), "-o", out])
    if mode == "pairwise" and os.environ.get("RECEIVE_COST_PYSPY"):
        spy = str(Path(sys.executable).parent / "py-spy")
        out = os.environ["RECEIVE_COST_PYSPY"]
        commands.append(
            # not stopping the process to sample it (stopped, it woke 5,700 times a second)
            [spy, "record", "--gil", "--nonblocking", "-r", "1000", "-f", "raw"]
            + ["-p", str(pid), "-o", out]
        )
    running = [
        subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for cmd in commands
    ]
    try:
        yield
    finally:
        for profiler in running:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(timeout=60)


def _start(mode: str, port: int, data_dir: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.sfu", "serve", mode, str(port), data_dir],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def measure(mode: str, round_: int, browser: Any, window_s: float) -> Row:
    from benchmarks import procs, sfu

    port = procs.free_port()
    data_dir = tempfile.mkdtemp(prefix="bench-receive-")
    server = _start(mode, port, data_dir)
    sockets: list[Any] = []
    context = None
    subscriber = None
    remb: asyncio.Task[None] | None = None
    try:
        # a loaded machine took over 30 s to start the server once
        await asyncio.to_thread(sfu._wait_port, port, 180)
        base = f"http://127.0.0.1:{port}"
        process = psutil.Process(server.pid)
        context = await browser.new_context()
        await context.route(
            PAGE_URL,
            lambda route: route.fulfill(body="<!doctype html><title>publisher</title>"),
        )
        single = os.environ.get("RECEIVE_COST_SINGLE") == "1"
        encodings = SINGLE if single else SIMULCAST
        await context.add_init_script(PUBLISHER.replace("ENCODINGS", encodings))
        page = Page(await context.new_page())
        await page.page.goto(PAGE_URL)
        pairwise = mode.startswith("pairwise")
        await (publish_pairwise if pairwise else publish_janus)(page, base, sockets)
        settle_s = await _settle(page)
        load = os.getloadavg()[0]
        # RECEIVE_COST_PROFILED=subscribed: the profilers watch the window with the
        # subscriber instead of the one with the publisher alone.
        profile_one = os.environ.get("RECEIVE_COST_PROFILED") == "subscribed"
        with _profiled(mode if not profile_one else "", server.pid):
            alone = await _window(page, process, window_s)
        subscriber = _subscriber_class()()
        if mode == "janus":
            from benchmarks import janus

            # Janus 1.1 reads the rids of `a=simulcast` as highest first: with the web
            # client's q;h;f its substream 0 is f, the full layer (checked by rate).
            connect = await janus.connector(base, sockets, {"substream": 0, "temporal": 2})
        else:
            connect = await sfu._connector(mode, base, sockets)
        await connect("sub0", subscriber.pc, publish=False)
        if pairwise:  # Janus picks the layer asked for; see the notes on REMB
            remb = asyncio.ensure_future(_remb_loop(subscriber))
        # Pairwise climbs a layer at a time (2 s hold each): let it reach the top first.
        await asyncio.sleep(10.0)
        with _profiled(mode if profile_one else "", server.pid):
            one = await _window(page, process, window_s, subscriber)
        return Row(mode, round_, alone, one, settle_s, load)
    finally:
        if remb is not None:
            remb.cancel()
        if subscriber is not None:
            await subscriber.pc.close()
        for s in sockets:
            with contextlib.suppress(Exception):  # a session already gone with its server
                await s.disconnect()
        if context is not None:
            await context.close()
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(data_dir, ignore_errors=True)


def _layers(window: Window) -> str:
    return ", ".join(
        f"{rid} {r.height}p {r.kbps:.0f} kbit/s {r.fps:.0f} fps"
        + (f" ({r.resent_kbps:.0f} resent)" if r.resent_kbps >= 1 else "")
        + (f" [{r.limit}]" if r.limit and r.limit != "none" else "")
        for rid, r in sorted(window.layers.items(), key=lambda x: x[1].height)
    )


def _per_mbit(row: Row) -> str:
    got = (row.one.got_kbps or 0) / 1000
    return f"{(row.one.cores - row.alone.cores) / got:+.3f}" if got > 0.05 else "—"


def _packets(window: Window) -> float:
    return sum(r.packets_per_s for r in window.layers.values())


def _per_packet(window: Window) -> float:
    """Cores per received packet a second: the SFU's CPU time per packet, in seconds."""
    packets = _packets(window)
    return window.cores / packets if packets else float("nan")


async def run(quick: bool) -> str:
    from playwright.async_api import async_playwright

    from tests.e2e.conftest import GRANTING_FLAGS

    have_janus = shutil.which("janus") is not None
    # Pairwise as it runs (uvloop) and on the standard library's loop (server/event_loop.py)
    modes = ["pairwise", "pairwise-asyncio"] + (["janus"] if have_janus else [])
    if os.environ.get("RECEIVE_COST_MODES"):  # e.g. "pairwise,janus" for an A/B of trees
        modes = [m for m in modes if m in os.environ["RECEIVE_COST_MODES"].split(",")]
    rounds = 1 if quick else 2
    window_s = float(os.environ.get("RECEIVE_COST_WINDOW_S") or (5.0 if quick else 10.0))
    rows: list[Row] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=GRANTING_FLAGS)
        for round_ in range(1, rounds + 1):
            for mode in modes:
                print(f"-- {mode} round {round_}", flush=True)
                rows.append(await measure(mode, round_, browser, window_s))
                r = rows[-1]
                print(
                    f"   {r.alone.cores:.3f} / {r.one.cores:.3f} cores, "
                    f"{r.alone.wakeups:.0f} wake-ups/s; {_layers(r.alone)}; "
                    f"with the subscriber: {_layers(r.one)}, it got {r.one.got_kbps:.0f} kbit/s",
                    flush=True,
                )
        await browser.close()
    lines = [
        "One Chromium publisher (fake camera at 1280x720@30, the web client's three VP8 "
        "layers q/h/f at most 150/500/1,500 kbit/s, plus Opus), offer and answer carried "
        "by the benchmark, so Pairwise and Janus (`event_loops = 2`, VideoRoom) receive "
        f"the same page. Each SFU in its own process; {window_s:.0f} s windows once the "
        "publisher's rate has settled. *Cores*: the SFU process's CPU time (its threads, schedstat). "
        "*+1 subscriber*: benchmarks.sfu's aiortc subscriber (RTP headers only), given the "
        f"full layer (Pairwise: a REMB of {SUBSCRIBER_REMB // 1_000_000} Mbit/s from it; "
        "Janus: asked in its `join`). *Marginal*: cores with the subscriber − cores without. "
        "*pairwise-asyncio*: the same server on the standard library's event loop "
        "(`PAIRWISE_EVENT_LOOP=asyncio`) instead of uvloop. *Wake-ups*: the SFU's voluntary "
        "context switches over the window with the publisher alone (every thread's). "
        "Rounds alternate the SFUs.",
        "",
        "| round | SFU | cores, publisher alone | + 1 subscriber | marginal (per forwarded "
        "Mbit/s) | subscriber got "
        "| µs per received packet | wake-ups a second (per packet) "
        "| publisher sent (getStats) | load avg |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        packets = _packets(r.alone)
        per_packet = _per_packet(r.alone) * 1e6
        lines.append(
            f"| {r.round} | {r.mode} | {r.alone.cores:.3f} | {r.one.cores:.3f} | "
            f"{r.one.cores - r.alone.cores:+.3f} ({_per_mbit(r)}) | "
            f"{r.one.got_kbps or 0:.0f} kbit/s, "
            f"{r.one.got_fps or 0:.0f} fps | {per_packet:.0f} | "
            f"{r.alone.wakeups:.0f} ({r.alone.wakeups / packets if packets else 0:.2f}) | "
            f"{_layers(r.alone)}, "
            f"{packets:.0f} packets/s | {r.load:.1f} |"
        )
    lines.append("")
    for round_ in range(1, rounds + 1):
        pair = {r.mode: r for r in rows if r.round == round_}
        if "pairwise" in pair and "janus" in pair:
            p, j = pair["pairwise"], pair["janus"]
            lines.append(
                f"- Round {round_}: receiving the publisher, Pairwise costs "
                f"{p.alone.cores / max(j.alone.cores, 1e-9):.1f}x Janus's CPU "
                f"({_per_packet(p.alone) / max(_per_packet(j.alone), 1e-12):.1f}x per packet "
                f"received); with one subscriber {p.one.cores / max(j.one.cores, 1e-9):.1f}x"
                + (
                    " (but a subscriber got no video: see its row)."
                    if min(p.one.got_kbps or 0, j.one.got_kbps or 0) < 50
                    else "."
                )
            )
        if "pairwise" in pair and "pairwise-asyncio" in pair:
            u, a = pair["pairwise"], pair["pairwise-asyncio"]
            lines.append(
                f"- Round {round_}: on asyncio's loop Pairwise costs "
                f"{_per_packet(a.alone) / max(_per_packet(u.alone), 1e-12):.2f}x what it costs "
                f"on uvloop per packet received; with one subscriber "
                f"{a.one.cores / max(u.one.cores, 1e-9):.2f}x."
            )
    starved = [r for r in rows if (r.one.got_kbps or 0) < 50]
    if starved:
        lines.append(
            f"- {len(starved)} of {len(rows)} subscribers got no video in their window "
            f"({', '.join(f'{r.mode} round {r.round}' for r in starved)}): Chromium had "
            "paused its full layer (bandwidth-limited) after the subscriber joined and sent "
            "only q and h; why the subscriber then got none of those was not looked into."
        )
    if not have_janus:
        lines.append("- Janus: `/usr/bin/janus` is not installed here, so no baseline was run.")
    lines += [
        "- Janus 1.1 reads the rids of `a=simulcast` as highest first: with the web "
        'client\'s `q;h;f` order a subscriber asking Janus for substream 2 (its "highest") '
        "got the 180-line layer, so this benchmark asks for substream 0. A Janus REMB of "
        "5 Mbit/s from the subscriber made Chromium pause its top layer (bandwidth-limited) "
        "in both rounds tried, so Janus's subscriber sends none.",
        "- *Publisher sent* is getStats' `bytesSent` rate, which counts retransmissions "
        "(shown as resent); Chromium's q layer at times shows more than its 150 kbit/s "
        "maximum while its frame rate stays the others': bytes that are not more video (probing padding, presumably).",
        "- The publisher's rate differs between the SFUs because Chromium's estimate of "
        "its uplink comes from each SFU's transport-cc feedback (the arrival times each "
        "reports); the per-packet column takes that out.",
        "- The marginal column is noisy at one subscriber (±0.01 core on this shared "
        "machine); benchmarks.sfu measures forwarding at N up to 128.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    from benchmarks.__main__ import main

    parser = argparse.ArgumentParser(prog="python -m benchmarks.receive_cost")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if os.environ.get("RECEIVE_COST_SINGLE") == "1":  # not the section's publisher: printed
        print(asyncio.run(run(args.quick)))
        sys.exit(0)
    sys.exit(asyncio.run(main(["receive_cost"], args.quick)))
