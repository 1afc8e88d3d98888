"""A real Pairwise server as a subprocess, started with `make run`'s command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.services import free_port

ADMIN_KEY = "test-admin-key-0123456789abcdefghijkl"
SECRET_KEY = "test-secret-key-0123456789abcdefghijk"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ServerProcess:
    data_dir: Path
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    with_keys: bool = True
    # The jobs' clock this many seconds ahead of the wall clock (tests/support/jobs_clock_ahead.py).
    jobs_clock_ahead: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ServerProcess:
        keys = {"PAIRWISE_ADMIN_KEY": ADMIN_KEY, "PAIRWISE_SECRET_KEY": SECRET_KEY}
        base = {k: v for k, v in os.environ.items() if k not in keys}
        env = {
            **base,
            **(keys if self.with_keys else {}),
            "PAIRWISE_DATA_DIR": str(self.data_dir),
            "PAIRWISE_PORT": str(self.port),
            **self.env,
        }
        self.log_path = self.data_dir / f"server-{self.port}.log"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        ahead = ["-m", "tests.support.jobs_clock_ahead", str(self.jobs_clock_ahead)]
        self.proc = subprocess.Popen(
            [sys.executable, *(ahead if self.jobs_clock_ahead else ["-m", "server"]), "serve"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.kill()  # not left running: no fixture knows of a server that never started
        raise RuntimeError(f"server did not answer /healthz in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)
