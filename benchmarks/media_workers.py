"""SFU worker processes: 1:1 video rooms one node holds with 1 and with 2 media workers.

A 1:1 room is two participants, each publishing pre-encoded 640x480@30 VP8 (~500 kbps)
and Opus and receiving the other's: benchmarks.sfu's publisher tracks and its
header-only `Subscriber` on one RTCPeerConnection, negotiated with the real server over
Socket.IO (benchmarks.sfu `serve pairwise`, with `PAIRWISE_MEDIA_WORKERS` in its
environment). Both participants of a room live in the same load process, so a frame's
latency is its receive time minus its partner's send time on one clock.

The number of rooms steps up (doubling from `START`, then halving the gap between the
largest size that held and the smallest that did not) against a server with each worker
count, the counts taking turns so that both see the same machine. A size *holds*
(`holds`) when every participant receives its partner's video at a median of at least
`MIN_FPS` frames per one-second bucket over the steady window, and the p99 of every
frame's latency in the window is at most `MAX_P99_MS`. A size that does not hold is run
once more before it counts as failed (the machine is shared).

    python -m benchmarks media_workers                 # writes docs/benchmarks.md
    python -m benchmarks.media_workers [--workers 1,2] [--quick]   # prints only
    python -m benchmarks.media_workers --server-cpus 0,1 --load-cpus 2-7   # pinned
    python -m benchmarks.media_workers rooms PORT FIRST COUNT FRAMES  # a load process

On a machine with as many cores as workers and no more, the load generator (on the same
cores) leaves a second worker no core of its own: the ratio measures the machine. Pinned,
the server and its workers run only on `--server-cpus` and the load only on
`--load-cpus` (Linux CPU affinity, inherited by every process and thread they start), so
with 2 server CPUs and the load on others each worker has a core.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from benchmarks.procs import wait_media_workers, wait_ready
from benchmarks.sfu import (
    FPS,
    HEIGHT,
    ROOT,
    VIDEO_KBPS,
    WIDTH,
    Subscriber,
    _expect,
    _free_port,
    _pairwise_connector,
    _spawn,
    _tell,
    add_published_tracks,
    encode_audio,
    encode_video,
    latencies,
    pinned,
)

TITLE = "SFU worker processes: 1:1 video rooms per node with 1 and 2 workers"

MIN_FPS = 28.0  # of FPS, each participant's median over one-second buckets
MAX_P99_MS = 150.0  # every received frame in the window, publisher send → receive
START = 4  # rooms in the first step
MAX_ROOMS = 128  # a search stops here even if the size holds
ROOMS_PER_PROCESS = 6  # 12 participants (12 publishers + 12 receivers) per load process
CONNECT_AT_ONCE = 4  # rooms negotiating at the same time in one load process


# -- the rules (pure) ------------------------------------------------------------------


def per_second(arrivals: Sequence[float], start: float, stop: float) -> list[int]:
    """Frames arriving in each whole second of [start, stop) (a partial last second is
    left out)."""
    buckets = [0] * int(stop - start)
    for at in arrivals:
        index = int(at - start) if at >= start else -1
        if 0 <= index < len(buckets):
            buckets[index] += 1
    return buckets


def p99(values: Sequence[float]) -> float | None:
    return float(np.percentile(values, 99)) if len(values) else None


@dataclass(frozen=True)
class Verdict:
    held: bool
    why: str  # "holds", or what failed


def holds(fps_medians: Sequence[float], p99_ms: float | None, participants: int) -> Verdict:
    """Whether a size held: every one of `participants` reported, each received its
    partner's video at a median of at least MIN_FPS per second, and the p99 latency over
    every frame is at most MAX_P99_MS."""
    if len(fps_medians) < participants:
        return Verdict(False, f"{participants - len(fps_medians)} participants missing")
    slow = sum(1 for fps in fps_medians if fps < MIN_FPS)
    if slow:
        return Verdict(
            False, f"{slow} of {participants} below {MIN_FPS:g} fps (min {min(fps_medians):g})"
        )
    if p99_ms is None:
        return Verdict(False, "no latency samples")
    if p99_ms > MAX_P99_MS:
        return Verdict(False, f"p99 {p99_ms:.0f} ms > {MAX_P99_MS:g}")
    return Verdict(True, "holds")


def resolution(rooms: int) -> int:
    """How close the search brings the largest held and the smallest failed size: a
    tenth, at least 2 rooms (1 while none held, so a single room is tried)."""
    return max(2, rooms // 10) if rooms else 1


def next_rooms(tried: Mapping[int, bool], start: int = START, most: int = MAX_ROOMS) -> int | None:
    """The next number of rooms to try, given the verdicts so far (rooms → held), or None
    when the search is done. Doubles while every size holds, then halves the gap between
    the largest size that held below the smallest that failed and that failed size."""
    if not tried:
        return start
    failed = [n for n, ok in tried.items() if not ok]
    if not failed:
        top = max(tried)
        return None if top >= most else min(most, top * 2)
    high = min(failed)
    low = max((n for n, ok in tried.items() if ok and n < high), default=0)
    if high - low <= resolution(low):
        return None
    return (low + high) // 2


def largest_held(tried: Mapping[int, bool]) -> int:
    """The largest size that held below the smallest that failed (0: none held)."""
    failed = [n for n, ok in tried.items() if not ok]
    ceiling = min(failed) if failed else float("inf")
    return max((n for n, ok in tried.items() if ok and n < ceiling), default=0)


# -- the load side ---------------------------------------------------------------------


class Participant(Subscriber):
    """One side of a 1:1 room: publishes the pre-encoded frames and counts its partner's
    (the header-only receive path of benchmarks.sfu's Subscriber)."""

    def __init__(self, video: list[tuple[bytes, bool]], audio: list[bytes]) -> None:
        super().__init__()
        self.sent: dict[int, float] = {}
        add_published_tracks(self.pc, video, audio, self.sent)


async def rooms(
    port: int, first: int, count: int, frames: tuple[list[tuple[bytes, bool]], list[bytes]]
) -> None:
    """A load process with rooms first..first+count-1, two participants each: prints
    READY once everyone receives video; a line from stdin starts the window, the next
    ends it and prints each participant's fps median and frame latencies (JSON)."""
    video, audio = frames
    base = f"http://127.0.0.1:{port}"
    sockets: list[Any] = []
    pairs = [(Participant(video, audio), Participant(video, audio)) for _ in range(count)]

    async def join(number: int, pair: tuple[Participant, Participant]) -> None:
        connect = await _pairwise_connector(base, sockets, room=f"room{number}")
        for side, participant in zip("ab", pair, strict=True):
            await connect(f"{side}{number}", participant.pc, publish=True)

    for at in range(0, count, CONNECT_AT_ONCE):
        await asyncio.gather(
            *(join(first + i, pairs[i]) for i in range(at, min(at + CONNECT_AT_ONCE, count)))
        )
    everyone = [p for pair in pairs for p in pair]
    deadline = time.monotonic() + 60
    # Frames arrive in aiortc callbacks that signal nothing to wait on.
    while any(len(p.video) < 5 for p in everyone) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    await asyncio.sleep(2.0)
    print("READY", flush=True)
    waiting = sum(1 for p in everyone if len(p.video) < 5)
    if waiting:
        states = collections.Counter(p.pc.connectionState for p in everyone)
        print(
            f"{waiting} participants without video at the window's start; connections: "
            + ", ".join(f"{n} {state}" for state, n in states.items()),
            file=sys.stderr,
        )
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    started = time.monotonic()
    audio_before = [p.audio for p in everyone]
    await loop.run_in_executor(None, sys.stdin.readline)
    stopped = time.monotonic()
    result: dict[str, list[float]] = {"fps": [], "audio_pps": [], "latency_ms": []}
    for a, b in pairs:
        for receiver, sender in ((a, b), (b, a)):
            arrivals = [at for at, _ in receiver.video]
            result["fps"].append(statistics.median(per_second(arrivals, started, stopped) or [0]))
            lat = latencies(receiver.video, sender.sent, started, stopped)
            result["latency_ms"] += [round(x * 1000, 2) for x in lat]
    result["audio_pps"] = [
        (p.audio - before) / (stopped - started)
        for p, before in zip(everyone, audio_before, strict=True)
    ]
    print(json.dumps(result), flush=True)
    for p in everyone:
        await p.pc.close()
    for sio in sockets:
        await sio.disconnect()


# -- the harness -----------------------------------------------------------------------


def workers_supported() -> bool:
    """Whether this server has the PAIRWISE_MEDIA_WORKERS setting (without it the
    variable is ignored and the SFU runs in the main process)."""
    from server.config import Settings

    return "media_workers" in Settings.model_fields


def _sample(processes: Sequence[psutil.Process]) -> dict[int, tuple[float, float]]:
    """pid → (CPU seconds, user + system; seconds runnable without a CPU, main thread)."""
    from loadtests.runner import cpu_wait_seconds

    out = {}
    for process in processes:
        with contextlib.suppress(psutil.Error):  # it may have just ended
            out[process.pid] = (sum(process.cpu_times()[:2]), cpu_wait_seconds(process.pid) or 0.0)
    return out


def _stop(procs: Sequence[subprocess.Popen[Any]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@dataclass
class Step:
    """One size against one worker count."""

    workers: int
    rooms: int
    verdict: Verdict = Verdict(False, "not run")
    fps_min: float = 0.0
    fps_median: float = 0.0
    audio_min: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    main_cores: float = 0.0
    worker_cores: list[float] = field(default_factory=list)
    load_cores: float = 0.0
    load_max_process: float = 0.0
    # The largest share of the window a process (its main thread) was runnable but had
    # no CPU: among the server's (main, workers) and among the load's.
    server_wait: float = 0.0
    load_wait: float = 0.0
    load_avg: float = 0.0
    seconds: float = 0.0

    @property
    def server_cores(self) -> float:
        return self.main_cores + sum(self.worker_cores)


@dataclass(frozen=True)
class Cpus:
    """Where the server and the load may run (None: anywhere)."""

    server: set[int] | None = None
    load: set[int] | None = None

    def describe(self) -> str:
        if not (self.server or self.load):
            return f"on the same {os.cpu_count()} cores"
        return (
            f"the server on CPUs {_cpu_list(self.server)}, the load on CPUs {_cpu_list(self.load)}"
        )


def _cpu_list(cpus: set[int] | None) -> str:
    return ",".join(str(c) for c in sorted(cpus)) if cpus else "any"


def parse_cpus(text: str) -> set[int]:
    """`0,1` or `2-7` or `0,2-3` (as taskset -c): a CPU set on this machine."""
    cpus: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    unknown = cpus - set(range(os.cpu_count() or 1))
    if unknown:
        raise argparse.ArgumentTypeError(f"no such CPU here: {sorted(unknown)}")
    return cpus


def measure(workers: int, count: int, window: float, frames: Path, cpus: Cpus = Cpus()) -> Step:
    """One server with `workers` media workers, `count` rooms, one steady window."""
    began = time.monotonic()
    step = Step(workers, count)
    port = _free_port()
    data_dir = tempfile.mkdtemp(prefix="bench-workers-")
    logs = Path(data_dir) / "logs"
    logs.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PAIRWISE_MEDIA_WORKERS": str(workers),
        # Setting up dozens of connections at once on a shared 2-core machine can take
        # longer than the default 5 s; what is measured is steady forwarding.
        "PAIRWISE_MEDIA_ICE_TIMEOUT_SECONDS": "30",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.sfu", "serve", "pairwise", str(port), data_dir],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(logs / "server.log").open("w"),
        preexec_fn=pinned(cpus.server),
    )
    load: list[subprocess.Popen[str]] = []
    try:
        wait_ready(f"http://127.0.0.1:{port}", server)
        wait_media_workers(f"http://127.0.0.1:{port}")  # else early rooms share the first
        for first in range(0, count, ROOMS_PER_PROCESS):
            n = min(ROOMS_PER_PROCESS, count - first)
            args = ["rooms", str(port), str(first), str(n), str(frames)]
            log = (logs / f"load-{first}.log").open("w")
            load.append(_spawn(args, env, "benchmarks.media_workers", stderr=log, cpus=cpus.load))
        for proc in load:
            _expect(proc, "READY")
        main = psutil.Process(server.pid)
        workers_ = main.children(recursive=True)
        loaders = [psutil.Process(proc.pid) for proc in load]
        for proc in load:
            _tell(proc)
        before = _sample([main, *workers_, *loaders])
        started = time.monotonic()
        time.sleep(window)
        after = _sample([main, *workers_, *loaders])
        elapsed = time.monotonic() - started
        step.load_avg = os.getloadavg()[0]
        for proc in load:
            _tell(proc)
        results = [json.loads(_expect(proc, "{")) for proc in load]
    finally:
        _stop([*load, server])
        _show_errors(logs)
        shutil.rmtree(data_dir, ignore_errors=True)

    def used(processes: Sequence[psutil.Process], which: int) -> list[float]:
        return [
            (after[p.pid][which] - before[p.pid][which]) / elapsed
            for p in processes
            if p.pid in before and p.pid in after
        ]

    step.main_cores = sum(used([main], 0))
    # The server's children are its workers (and, idle, multiprocessing's helpers).
    step.worker_cores = sorted((c for c in used(workers_, 0) if c > 0.005), reverse=True)
    step.load_cores = sum(used(loaders, 0))
    step.load_max_process = max(used(loaders, 0), default=0.0)
    step.server_wait = max(used([main, *workers_], 1), default=0.0)
    step.load_wait = max(used(loaders, 1), default=0.0)
    fps = [x for r in results for x in r["fps"]]
    lat = [x for r in results for x in r["latency_ms"]]
    audio = [x for r in results for x in r["audio_pps"]]
    step.fps_min = min(fps, default=0.0)
    step.fps_median = statistics.median(fps) if fps else 0.0
    step.audio_min = min(audio, default=0.0)
    step.p50_ms = float(np.percentile(lat, 50)) if lat else None
    step.p99_ms = p99(lat)
    step.verdict = holds(fps, step.p99_ms, 2 * count)
    step.seconds = time.monotonic() - began
    return step


def _show_errors(logs: Path) -> None:
    """Print the last lines of any process's log that has a traceback or an error."""
    for log in sorted(logs.glob("*.log")):
        lines = log.read_text(errors="replace").splitlines()
        if any(word in line for line in lines for word in ("Traceback", "ERROR", "without video")):
            print(f"   {log.name}:", *lines[-8:], sep="\n   ", flush=True)


def _show(step: Step) -> str:
    workers = " + ".join(f"{c:.2f}" for c in step.worker_cores) or "—"
    return (
        f"| {step.workers} | {step.rooms} | {2 * step.rooms} | {step.verdict.why} | "
        f"{step.fps_median:.1f} ({step.fps_min:.1f}) | {step.audio_min:.0f} | "
        f"{_ms(step.p50_ms)} / {_ms(step.p99_ms)} | {step.main_cores:.2f} | {workers} | "
        f"{step.server_cores:.2f} | {step.load_cores:.2f} ({step.load_max_process:.2f}) | "
        f"{100 * step.server_wait:.0f} / {100 * step.load_wait:.0f} | {step.load_avg:.1f} |"
    )


def _ms(value: float | None) -> str:
    return f"{value:.0f}" if value is not None else "n/a"


async def search(
    settings: Sequence[int], window: float, start: int, most: int, cpus: Cpus = Cpus()
) -> tuple[list[Step], dict[int, dict[int, bool]]]:
    """The step search for each worker count, the counts taking turns."""
    # Encoded once and kept: on a busy machine the encoding alone took over a minute.
    frames = Path(tempfile.gettempdir()) / f"pairwise-bench-{WIDTH}x{HEIGHT}@{VIDEO_KBPS}.pickle"
    if not frames.exists():
        frames.write_bytes(pickle.dumps((encode_video(4 * FPS), encode_audio(100))))
    steps: list[Step] = []
    tried: dict[int, dict[int, bool]] = {w: {} for w in settings}
    while True:
        pending = [(w, n) for w in settings if (n := next_rooms(tried[w], start, most)) is not None]
        if not pending:
            break
        for workers, count in pending:
            for attempt in (1, 2):  # a size that fails runs once more
                print(f"-- workers={workers} rooms={count} (run {attempt})", flush=True)
                try:
                    step = await asyncio.to_thread(measure, workers, count, window, frames, cpus)
                except (RuntimeError, OSError, ValueError) as exc:  # a process gave up
                    step = Step(workers, count, Verdict(False, f"error: {exc}"[:120]))
                print(_show(step), flush=True)
                steps.append(step)
                if step.verdict.held:
                    break
            tried[workers][count] = step.verdict.held
    return steps, tried


async def run(quick: bool, settings: Sequence[int] = (1, 2), cpus: Cpus = Cpus()) -> str:
    window = 5.0 if quick else 10.0
    start, most = (2, 4) if quick else (START, MAX_ROOMS)
    supported = workers_supported()
    steps, tried = await search(settings, window, start, most, cpus)
    held = {w: largest_held(tried[w]) for w in settings}
    lines = [
        f"1:1 rooms: two participants each publishing {WIDTH}x{HEIGHT}@{FPS} VP8 "
        f"(~{VIDEO_KBPS} kbps, pre-encoded) + Opus and receiving the other's, over Socket.IO "
        f"and the SFU of one server process (`PAIRWISE_MEDIA_WORKERS`); {ROOMS_PER_PROCESS} "
        "rooms per load process (both sides of a room in one process, aiortc publishing, "
        f"receiving only RTP headers after SRTP). A size *holds* when every participant "
        f"receives its partner's video at a median ≥ {MIN_FPS:g} of {FPS} fps (one-second "
        f"buckets) and the p99 send → receive latency of all frames is ≤ {MAX_P99_MS:g} ms "
        f"over a {window:.0f} s steady window. Rooms double from {start}, then the gap "
        "between held and failed is halved down to a tenth; the worker counts take turns "
        "at each step; a size that fails runs once more. CPU is user + system time over "
        "the window (psutil), in cores: the main process (signaling), each worker, and "
        "all load processes (in brackets, the busiest one). *CPU wait* is the largest "
        "share of the window one process (main thread) was runnable but had no CPU, among "
        "the server's processes and among the load's (Linux schedstat): other work on the "
        "machine. Note that Linux groups processes by session (autogroup), so a run gets "
        "its share of the cores against every other session however many processes it has, "
        f"and `nice` does not change that share. Run {cpus.describe()}.",
        "",
    ]
    if not supported:
        lines += [
            "**This server has no `media_workers` setting: `PAIRWISE_MEDIA_WORKERS` was "
            "ignored and every row ran the SFU in the main process.**",
            "",
        ]
    lines += [
        "| workers | rooms | participants | verdict | fps median (min) | audio pkt/s min | "
        "latency p50 / p99 ms | main cores | worker cores | server cores | load cores "
        "(busiest process) | CPU wait % server / load | load avg |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(_show(s) for s in sorted(steps, key=lambda s: (s.workers, s.rooms))),
        "",
    ]
    best: dict[int, Step] = {}
    for w in settings:
        name = f"{w} worker{'s' if w != 1 else ''}"
        at = [s for s in steps if s.workers == w and s.rooms == held[w] and s.verdict.held]
        if not at:
            lines.append(f"- {name}: no size held.")
            continue
        s = best[w] = at[-1]
        lines.append(
            f"- {name}: **{held[w]} rooms held** ({2 * held[w]} participants). At that size "
            f"the server used {s.server_cores:.2f} cores (main {s.main_cores:.2f}, busiest "
            f"worker {max(s.worker_cores, default=0.0):.2f}) and the load generator "
            f"{s.load_cores:.2f}: together {s.server_cores + s.load_cores:.2f} of the "
            f"machine's {os.cpu_count()} cores; {s.server_cores / held[w]:.3f} server and "
            f"{s.load_cores / held[w]:.3f} load cores per room."
        )
    if len(best) == 2:
        (one, a), (two, b) = sorted(best.items())
        per_core = (b.rooms / b.server_cores) / (a.rooms / a.server_cores)
        lines += [
            f"- **Ratio {two} workers / {one}: {b.rooms / a.rooms:.2f}x rooms held** "
            "(target for 2 / 1: ≥ 1.8x).",
            f"- Rooms per server core: {a.rooms / a.server_cores:.1f} with {one}, "
            f"{b.rooms / b.server_cores:.1f} with {two} ({per_core:.2f}x). The load generator "
            f"costs {a.load_cores / a.server_cores:.1f}x the server's CPU per room (with {one}), "
            f"{cpus.describe()}"
            + (
                ": once the server and the load together fill the machine, another worker "
                "has no core of its own to run on, so on this machine the ratio of rooms held "
                "measures the machine more than the workers. Pinned on a machine with more "
                "cores (`--server-cpus`, `--load-cpus`), each worker would have a core."
                if not (cpus.server or cpus.load)
                else "."
            ),
        ]
    lines.append(
        f"- Load average (1 min) at the end of the run: {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cores."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "rooms":
        port, first, count = (int(x) for x in sys.argv[2:5])
        frames = pickle.loads(Path(sys.argv[5]).read_bytes())  # (video, audio), encoded once
        asyncio.run(rooms(port, first, count, frames))
    else:
        parser = argparse.ArgumentParser(prog="python -m benchmarks.media_workers")
        parser.add_argument("--quick", action="store_true")
        parser.add_argument(
            "--workers", type=lambda v: [int(n) for n in v.split(",")], default=[1, 2]
        )
        parser.add_argument("--server-cpus", type=parse_cpus, help="e.g. 0,1 (as taskset -c)")
        parser.add_argument("--load-cpus", type=parse_cpus, help="e.g. 2-7")
        args = parser.parse_args()
        cpus = Cpus(args.server_cpus, args.load_cpus)
        print(asyncio.run(run(args.quick, args.workers, cpus)))
