"""Phone legs: concurrent sipp calls bridged into rooms through the SIP gateway.

sipp places every call at once (PIN in the Request-URI, two callers per room, so each
hears the other through the room mix) and plays a PCMU tone for the whole call. The
gateway runs in this process: its CPU time over a window with every leg up, minus the
idle gateway's over the same time, divided by the legs, is the cost of one leg.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

from server.media.phone import g711
from server.media.phone.bridge import LocalRoomAudio
from server.media.phone.call import CallState
from server.media.phone.gateway import PhoneGateway, PhoneSettings
from server.media.phone.pins import PinStore
from server.rooms.events import EventBus
from server.rooms.registry import RoomRegistry
from server.store import Database
from server.store.schema import metadata, phone_participant_pins, phone_room_pins

TITLE = "Phone legs (SIP dial-in)"
ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "tests" / "sip" / "scenarios" / "call_audio.xml"
TONE_SECONDS = 1
PACKETS_PER_TONE = 50  # 20 ms PCMU packets
WINDOW_SECONDS = 4.0


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def run(quick: bool) -> str:
    legs = 10 if quick else 50
    hold = 8 if quick else 12
    # The tone ends well before the BYE, so every packet sent can be counted: sipp's
    # own RTP player falls a few seconds behind with 50 streams on 2 cores.
    loops = hold - 7
    work = Path(tempfile.mkdtemp(prefix="pairwise-bench-phone-"))
    database = Database(f"sqlite+aiosqlite:///{work / 'pins.db'}")
    async with database.begin() as conn:
        await conn.run_sync(
            lambda sync: metadata.create_all(sync, tables=[phone_room_pins, phone_participant_pins])
        )
    pins = PinStore(database)
    room_pins = [await pins.ensure_room_pin(f"bench-{i}") for i in range(legs // 2)]
    (work / "pins.csv").write_text("SEQUENTIAL\n" + "".join(f"{p}\n{p}\n" for p in room_pins))
    tone = np.sin(2 * np.pi * 440 * np.arange(8000 * TONE_SECONDS) / 8000) * 8000
    (work / "tone.ulaw").write_bytes(g711.encode("PCMU", tone.astype(np.int16)))
    scenario = (
        SCENARIO.read_text()
        .replace("sip:[service]@", "sip:[field0]@")
        .replace("tone.ulaw,1,0", f"tone.ulaw,{loops},0")
    )
    (work / "scenario.xml").write_text(scenario)

    bus = EventBus()
    registry = RoomRegistry(bus)
    settings = PhoneSettings(
        host="127.0.0.1",
        port=0,
        rtp_host="127.0.0.1",
        invite_rate=10_000,
        invite_burst=10_000,
        max_calls=legs * 2,
    )
    gateway = PhoneGateway(settings, registry, bus, pins, LocalRoomAudio(), CollectorRegistry())
    await gateway.start()
    try:
        cpu, wall = time.process_time(), time.monotonic()
        await asyncio.sleep(WINDOW_SECONDS)
        idle = (time.process_time() - cpu) / (time.monotonic() - wall)

        proc = await asyncio.create_subprocess_exec(
            "sipp",
            f"127.0.0.1:{gateway.port}",
            "-sf",
            str(work / "scenario.xml"),
            "-inf",
            str(work / "pins.csv"),
            "-m",
            str(legs),
            "-l",
            str(legs),
            "-r",
            str(legs),
            "-d",
            str(hold * 1000),
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
            "-nostdin",
            "-timeout",
            f"{hold + 60}s",
            "-timeout_error",
            "-trace_rtt",
            "-rtt_freq",
            "1",
            "-trace_err",
            cwd=work,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await all_confirmed(gateway, legs, deadline=time.monotonic() + 20)
        concurrent = len(gateway.calls)
        cpu, wall = time.process_time(), time.monotonic()
        await asyncio.sleep(WINDOW_SECONDS)
        busy = (time.process_time() - cpu) / (time.monotonic() - wall)
        returncode = await proc.wait()
    finally:
        await gateway.stop()
        await bus.close()
        registry.close_all()
        await database.close()

    ended = gateway.ended_calls[-legs:]
    expected = loops * PACKETS_PER_TONE
    clean = sum(
        c.stats.audio_frames_received == expected and c.stats.packets_lost == 0 for c in ended
    )
    lost = sum(c.stats.packets_lost for c in ended)
    received = sum(c.stats.audio_frames_received for c in ended)
    setup_ms = [(c.answered_at - c.started) * 1000 for c in ended if c.answered_at]
    caller_ms = caller_setup_times(work)
    shutil.rmtree(work, ignore_errors=True)
    per_leg = (busy - idle) / max(concurrent, 1) * 100
    return "\n".join(
        [
            f"{legs} sipp calls placed at once (`sipp -r {legs}`), PIN in the Request-URI, two "
            f"callers per room hearing each other through the room mix, each playing PCMU for "
            f"{loops} s of a {hold} s call. Gateway in-process with `LocalRoomAudio` (no SFU, "
            "so no Opus encoding is included; the field notes measured about 2% of a core per "
            "leg in a 4-person WebRTC room, mostly Opus).",
            "",
            "| measure | value |",
            "|---|---|",
            f"| legs up at once | {concurrent} of {legs} |",
            f"| calls completed (sipp exit code) | {'all' if returncode == 0 else f'exit {returncode}'} |",
            f"| calls held without loss (all {expected} frames, 0 lost) | {clean} of {len(ended)} |",
            f"| frames received / lost | {received} / {lost} |",
            f"| call setup, gateway (INVITE in → 200 out) p50 / p99 | "
            f"{percentile(setup_ms, 50):.2f} ms / {percentile(setup_ms, 99):.2f} ms |",
            f"| call setup, caller (INVITE → 200, sipp rtd, 1 ms resolution) p50 / p99 | "
            f"{percentile(caller_ms, 50):.2f} ms / {percentile(caller_ms, 99):.2f} ms |",
            f"| gateway CPU, idle baseline | {idle * 100:.2f}% of a core |",
            f"| gateway CPU with every leg up | {busy * 100:.1f}% of a core |",
            f"| CPU per phone leg (busy − idle) / legs | {per_leg:.2f}% of a core |",
            "",
            f"Load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
            "(the machine is shared: setup tails grow with other work).",
            "",
            f"Target: 50 concurrent legs on one core, 0 lost frames, setup p99 under 50 ms. "
            f"Median gateway setup {statistics.median(setup_ms) if setup_ms else float('nan'):.2f} ms.",
        ]
    )


async def all_confirmed(gateway: PhoneGateway, legs: int, deadline: float) -> None:
    """Wait until `legs` calls are up (or the deadline passes: the table says how many)."""
    confirmed = 0
    while confirmed < legs and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # noqa: ASYNC110 - polling the call table is the point
        confirmed = sum(c.state == CallState.CONFIRMED for c in gateway.calls.values())


def caller_setup_times(work: Path) -> list[float]:
    """sipp's per-call response times (ms) from its `-trace_rtt` file."""
    values: list[float] = []
    for path in work.glob("*_rtt.csv"):
        for line in path.read_text().splitlines()[1:]:
            fields = line.split(";")  # Date_ms;response_time_ms;rtd_no
            if len(fields) >= 2 and re.fullmatch(r"[0-9.]+", fields[1]):
                values.append(float(fields[1]))
    return values
