"""Process helpers the benchmarks share."""

from __future__ import annotations

import json
import socket
import subprocess
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


def _cpu_seconds(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
        children = sum(sum(c.cpu_times()[:2]) for c in process.children(recursive=True))
    except psutil.Error:
        return 0.0
    return times.user + times.system + children


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
        used = _cpu_seconds(process)
        if used > cpu:
            cpu, progressed = used, now
        elif now - progressed > STALLED_S:
            raise NotReady(
                f"{url}: not ready after {now - started:.0f} s and no CPU used for "
                f"{STALLED_S:g} s: the server is stuck" + _tail(log)
            )
        time.sleep(POLL_S)
