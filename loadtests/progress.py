"""The live progress line: connected, messages, errors, latency, server CPU."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from typing import TextIO


@dataclass
class Snapshot:
    t: float
    phase: str
    joined: int
    target: int
    sent: int
    in_flight: int
    errors: int
    p50_ms: float | None
    p99_ms: float | None
    server_cpu: float | None
    server_mb: float | None
    client_cpu: float | None


def render(s: Snapshot) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    parts = [
        f"{s.t:6.1f}s {s.phase:<8}",
        f"joined {s.joined}/{s.target}",
        f"sent {s.sent}",
        f"in flight {s.in_flight}",
        f"errors {s.errors}",
        f"latency p50/p99 {ms(s.p50_ms)}/{ms(s.p99_ms)} ms",
    ]
    if s.server_cpu is not None:
        parts.append(f"server cpu {s.server_cpu:.0f}%")
    if s.server_mb is not None:
        parts.append(f"{s.server_mb:.0f} MB")
    if s.client_cpu is not None:
        parts.append(f"load cpu {s.client_cpu:.0f}%")
    return " | ".join(parts)


class Progress:
    """Rewrites one line on a terminal; prints a line every `every` seconds otherwise."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False, every: float = 5.0):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.interactive = self.stream.isatty()
        self.every = every
        self._last_printed = -1e9
        self._width = 0

    def update(self, snapshot: Snapshot) -> None:
        if self.quiet:
            return
        line = render(snapshot)
        if self.interactive:
            columns = shutil.get_terminal_size((120, 20)).columns
            line = line[: columns - 1]
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
            self.stream.flush()
        elif snapshot.t - self._last_printed >= self.every:
            self._last_printed = snapshot.t
            print(line, file=self.stream, flush=True)

    def note(self, message: str) -> None:
        """A line of its own (a phase change, a warning), above the progress line."""
        if self.quiet:
            return
        if self.interactive and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        print(message, file=self.stream, flush=True)

    def finish(self) -> None:
        if self.interactive and self._width and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0
