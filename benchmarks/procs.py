"""Process helpers the benchmarks share."""

from __future__ import annotations

import bisect
import json
import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

# A server not ready yet is waited for as long as it works towards it: on a machine
# shared with other work a start took over 60 s (load average 20-50), so no fixed limit
# fits. Stuck is what ends the wait: this long without using any CPU, or answering
# /readyz 503 (a database or Redis it cannot reach) for this long.
STALLED_S = 60.0
POLL_S = 0.2


class NotReady(RuntimeError):
    """A server process exited or stalled before it was ready."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status(url: str) -> tuple[int | None, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, ""
    except urllib.error.HTTPError as exc:
        try:
            checks = json.loads(exc.read()).get("checks", {})
        except ValueError:
            checks = {}
        return exc.code, ", ".join(f"{k} {v}" for k, v in checks.items())
    except OSError:
        return None, ""


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a server and everything it started: its media worker processes run
    the SFU (`PAIRWISE_MEDIA_WORKERS`), so the main process alone is not the server's
    cost. Workers that exited and were reaped count through the main process's
    children times."""
    try:
        process = psutil.Process(pid)
        times = process.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        children = process.children(recursive=True)
    except psutil.Error:
        return 0.0
    for child in children:
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            continue  # exited since: counted once it is reaped
    return total


def tree_pids(pid: int) -> list[int]:
    """The process and its descendants now."""
    try:
        process = psutil.Process(pid)
        return [pid, *(c.pid for c in process.children(recursive=True))]
    except psutil.Error:
        return []


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and its descendants now, summed: a server's media
    workers hold the SFU's memory. Pages they share (the interpreter's libraries) count
    once per process, so this is the most the tree could free, not its unique pages."""
    total = 0
    for member in tree_pids(pid):
        try:
            total += psutil.Process(member).memory_info().rss
        except psutil.Error:
            continue  # exited since
    return total


class TreeCpu:
    """Samples the process trees of one or more servers (a cluster's nodes) every
    `interval` seconds in a thread: their CPU (`tree_cpu_seconds`, summed), so a window
    known only afterwards (a load run's steady phase, in Unix time) can be read with
    `percent(start, end)`, and their RSS (`tree_rss_bytes`, summed), read as its peak
    with `max_rss_mb()`."""

    def __init__(self, *pids: int, interval: float = 0.5) -> None:
        self.pids = pids
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self.rss: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeCpu:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            now = time.time()
            self.samples.append((now, sum(tree_cpu_seconds(pid) for pid in self.pids)))
            self.rss.append(sum(tree_rss_bytes(pid) for pid in self.pids))
            if self._stop.wait(self.interval):
                return

    def percent(self, start: float, end: float) -> float | None:
        """Mean CPU % of a core over [start, end] (the samples nearest inside it)."""
        times = [t for t, _ in self.samples]
        first = bisect.bisect_left(times, start)
        last = bisect.bisect_right(times, end) - 1
        if last <= first:
            return None
        (t0, c0), (t1, c1) = self.samples[first], self.samples[last]
        return 100 * (c1 - c0) / (t1 - t0)

    def max_rss_mb(self) -> float | None:
        """The largest RSS sampled, in MiB."""
        return max(self.rss) / 2**20 if self.rss else None


def _tail(log: Path | None, lines: int = 20) -> str:
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return f"\nlast lines of {log}:\n" + "\n".join(text)


def wait_ready(
    url: str, proc: subprocess.Popen[bytes], log: Path | None = None, path: str = "/readyz"
) -> float:
    """Wait until `url` + `path` answers 200 (for Pairwise's /readyz: its database, and
    Redis when it has one, are reachable) and return the seconds it took. Raises NotReady, naming the log, when the
    process exits first or stalls (see STALLED_S)."""
    started = time.monotonic()
    process = psutil.Process(proc.pid)
    cpu, progressed, unavailable_since = -1.0, started, None
    while True:
        if proc.poll() is not None:
            raise NotReady(
                f"{url}: the server exited with {proc.returncode} before it was ready" + _tail(log)
            )
        status, checks = _status(url + path)
        now = time.monotonic()
        if status == 200:
            return now - started
        if status == 503:
            unavailable_since = unavailable_since or now
            if now - unavailable_since > STALLED_S:
                raise NotReady(
                    f"{url}: {path} 503 for {STALLED_S:g} s ({checks}): a dependency is "
                    "unreachable" + _tail(log)
                )
        else:
            unavailable_since = None
        used = tree_cpu_seconds(process.pid)
        if used > cpu:
            cpu, progressed = used, now
        elif now - progressed > STALLED_S:
            raise NotReady(
                f"{url}: not ready after {now - started:.0f} s and no CPU used for "
                f"{STALLED_S:g} s: the server is stuck" + _tail(log)
            )
        time.sleep(POLL_S)


def wait_media_workers(url: str, timeout: float = 120.0) -> int:
    """Wait until every media worker of the server at `url` is ready (its start no longer
    waits for them, and rooms pinned while only some are up all land on those), and
    return how many it runs (0: the SFU is in the main process)."""
    deadline = time.monotonic() + timeout
    while True:
        with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
            text = resp.read().decode()
        values = dict(
            line.split(" ", 1)
            for line in text.splitlines()
            if line.startswith(
                ("pairwise_media_workers_ready ", "pairwise_media_workers_configured ")
            )
        )
        configured = int(float(values.get("pairwise_media_workers_configured", "0")))
        if int(float(values.get("pairwise_media_workers_ready", "0"))) >= configured:
            return configured
        if time.monotonic() > deadline:
            raise NotReady(f"{url}: media workers not ready after {timeout:g} s")
        time.sleep(POLL_S)


def udp_reader(quiet: float, buffer: int | None = None) -> tuple[tuple[str, int], int]:
    """A forked process that reads datagrams on a loopback UDP port (blocking in `recv`,
    as a subscriber does) until none has come for `quiet` seconds; returns its address
    and its pid (to `os.waitpid` once the sender is done). `buffer`: its SO_RCVBUF."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if buffer is not None:
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)
    receiver.bind(("127.0.0.1", 0))
    addr = receiver.getsockname()
    child = os.fork()
    if child == 0:
        receiver.settimeout(quiet)
        try:
            while True:
                receiver.recv(2048)
        except OSError:
            os._exit(0)
    receiver.close()
    return addr, child
