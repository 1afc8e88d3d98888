"""Phone legs: callers dialling into rooms through the server's SIP gateway, played by sipp.

One sipp process places every call (the room PINs come from an injection file), plays a
looping G.711 tone and hangs up when the steady phase ends. sipp's own statistics give
the calls that succeeded or failed and each call's setup time (INVITE → 200 OK); the
room's members see the caller arrive as a `phone` participant.
"""

from __future__ import annotations

import asyncio
import csv
import shutil
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CALL_SCENARIO = Path(__file__).resolve().parent / "sipp" / "call.xml"


@dataclass
class PhoneResult:
    calls: int
    successful: int = 0
    failed: int = 0
    setup_ms: list[float] = field(default_factory=list)
    exit_code: int | None = None
    problem: str | None = None


def sipp_path() -> str | None:
    return shutil.which("sipp")


def local_address_towards(host: str, port: int) -> str:
    """The address this machine uses to reach host (for sipp's SDP and Via)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host, port))
        return str(s.getsockname()[0])


def ulaw_tone(seconds: float = 1.0, hz: float = 440.0) -> bytes:
    """G.711 µ-law samples of a quiet tone, for sipp's rtp_stream."""
    t = np.arange(int(8000 * seconds)) / 8000
    x = np.sin(2 * np.pi * hz * t) * 0.1
    magnitude = np.log1p(255 * np.abs(x)) / np.log1p(255)
    code = np.round(magnitude * 127).astype(np.int16)
    ulaw = np.where(x >= 0, 0x80 | (127 - code), 127 - code)
    return bytes(ulaw.astype(np.uint8))


def _read_stats(work: Path) -> tuple[int, int]:
    for path in sorted(work.glob("stats*.csv")):
        rows = list(csv.reader(path.read_text().splitlines(), delimiter=";"))
        if len(rows) >= 2:
            header, last = rows[0], rows[-1]
            values = dict(zip(header, last, strict=False))
            return int(values.get("SuccessfulCall(C)", 0)), int(values.get("FailedCall(C)", 0))
    return 0, 0


def _read_rtt(work: Path) -> list[float]:
    times: list[float] = []
    for path in work.glob("*_rtt.csv"):
        for row in csv.reader(path.read_text().splitlines()[1:], delimiter=";"):
            if len(row) >= 2:
                try:
                    times.append(float(row[1]))
                except ValueError:
                    continue
    return times


async def place_calls(
    host: str,
    port: int,
    pins: list[str],
    hold_s: float,
    calls_per_second: float,
    stop: asyncio.Event,
) -> PhoneResult:
    """Call every PIN once (at `calls_per_second`), hold each call `hold_s`, hang up."""
    result = PhoneResult(calls=len(pins))
    binary = sipp_path()
    if binary is None:
        result.problem = "sipp is not installed"
        return result
    local = local_address_towards(host, port)
    with tempfile.TemporaryDirectory(prefix="pairwise-sipp-") as tmp:
        work = Path(tmp)
        (work / "tone.ulaw").write_bytes(ulaw_tone())
        (work / "pins.csv").write_text("SEQUENTIAL\n" + "".join(f"{p}\n" for p in pins))
        proc = await asyncio.create_subprocess_exec(
            binary,
            f"{host}:{port}",
            "-sf",
            str(CALL_SCENARIO),
            "-inf",
            "pins.csv",
            "-m",
            str(len(pins)),
            "-r",
            f"{calls_per_second:g}",
            "-l",
            str(len(pins)),
            "-d",
            str(int(hold_s * 1000)),
            "-i",
            local,
            "-mi",
            local,
            "-nostdin",
            "-timeout",
            f"{int(hold_s + 60)}s",
            "-timeout_error",
            "-trace_stat",
            "-stf",
            "stats.csv",
            "-fd",
            "1",
            "-trace_rtt",
            "-rtt_freq",
            "1",
            cwd=work,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        waiter = asyncio.ensure_future(proc.wait())
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait([waiter, stopper], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not waiter.done():
            proc.terminate()
            await asyncio.wait_for(waiter, 15)
        stderr = (await proc.stderr.read()).decode(errors="replace") if proc.stderr else ""
        result.exit_code = proc.returncode
        result.successful, result.failed = _read_stats(work)
        result.setup_ms = _read_rtt(work)
        if proc.returncode not in (0, 1) and result.successful == 0:
            result.problem = f"sipp exited with {proc.returncode}: {stderr.strip()[-300:]}"
    return result
