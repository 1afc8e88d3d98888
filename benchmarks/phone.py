"""Phone legs: concurrent sipp calls bridged into rooms through the SIP gateway.

sipp places every call at once (PIN in the Request-URI, two callers per room, so each
hears the other through the room mix) and plays a PCMU tone for the whole call. The
gateway runs in this process: its CPU time over a window with every leg up, minus the
idle gateway's over the same time (the baseline, measured in the same run), divided by
the legs, is the cost of one leg; a core divided by that is legs per core. Call setup
is timed from the INVITE's arrival to the 200 OK leaving, and to the first audio
packet leaving (the "you are joining" prompt: safe latching sends nothing before the
caller's first RTP, so this includes the caller starting its media after the ACK).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

from server.phone import g711
from server.phone.call import CallState
from server.phone.gateway import PhoneGateway
from server.phone.pins import PinStore
from server.phone.settings import PhoneSettings
from server.rooms.events import EventBus
from server.rooms.registry import RoomRegistry
from server.store import Database
from server.store.schema import metadata, phone_participant_pins, phone_room_pins
from tests.support.room_audio import LocalRoomAudio

TITLE = "Phone legs (SIP dial-in)"
ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "tests" / "sip" / "scenarios" / "call_audio.xml"
TONE_SECONDS = 1
PACKETS_PER_TONE = 50  # 20 ms PCMU packets
WINDOW_SECONDS = 4.0


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


@dataclass
class Size:
    """One size's measures."""

    legs: int
    concurrent: int = 0
    returncode: int = 0
    expected: int = 0
    clean: int = 0
    ended: int = 0
    received: int = 0
    lost: int = 0
    setup_ms: list[float] = field(default_factory=list)
    caller_ms: list[float] = field(default_factory=list)
    audio_ms: list[float] = field(default_factory=list)
    idle: float = 0.0
    busy: float = 0.0
    packets: int = 0  # RTP packets received and sent by every call during the window
    window: float = WINDOW_SECONDS

    @property
    def per_leg(self) -> float:
        """Share of a core one leg costs: (busy − idle baseline) / legs up."""
        return (self.busy - self.idle) / max(self.concurrent, 1) * 100

    @property
    def paced(self) -> float:
        """Packets handled in the window over what full-rate legs would have handled (50 in
        and 50 out a second each): below 1 when the shared machine starved the gateway or
        sipp, which makes `per_leg` look cheaper than it is."""
        return self.packets / max(1.0, self.concurrent * 100 * self.window)

    @property
    def per_full_leg(self) -> float:
        """`per_leg` scaled to a leg at full packet rate: the figure legs per core uses."""
        return self.per_leg / self.paced if self.paced > 0 else float("nan")


async def run(quick: bool) -> str:
    sizes = [await measure(legs, quick) for legs in ((10,) if quick else (50, 100))]
    load = os.getloadavg()
    hold, loops = hold_and_tone(quick)

    def row(label: str, cell: Callable[[Size], str]) -> str:
        return f"| {label} | " + " | ".join(cell(size) for size in sizes) + " |"

    def p50_99(values: list[float]) -> str:
        return f"{percentile(values, 50):.2f} / {percentile(values, 99):.2f}"

    return "\n".join(
        [
            f"sipp places every call at once (`sipp -r N`), PIN in the Request-URI, two "
            f"callers per room hearing each other through the room mix, each playing PCMU for "
            f"{loops} s of a {hold} s call. Gateway in-process with `LocalRoomAudio` (no SFU, "
            "so no Opus encoding is included; the field notes measured about 2% of a core per "
            "leg in a 4-person WebRTC room, mostly Opus). The gateway is one asyncio loop, so "
            "it uses one core: CPU is its process time over 4 s with every leg up, minus "
            "the idle gateway's (the baseline, same run). First audio: the gateway sends "
            "nothing before the caller's first RTP (safe latching), so this includes sipp "
            "starting its media after the ACK.",
            "",
            "| measure | " + " | ".join(f"{size.legs} legs" for size in sizes) + " |",
            "|---|" + "---|" * len(sizes),
            row("legs up the whole measuring window", lambda s: f"{s.concurrent} of {s.legs}"),
            row(
                "calls completed (sipp exit code)",
                lambda s: "all" if s.returncode == 0 else f"exit {s.returncode}",
            ),
            row(
                "calls held without loss (every frame, 0 lost)",
                lambda s: f"{s.clean} of {s.ended}",
            ),
            row("frames received / lost", lambda s: f"{s.received} / {s.lost}"),
            row(
                "call setup, gateway (INVITE in → 200 out) p50 / p99 ms",
                lambda s: p50_99(s.setup_ms),
            ),
            row(
                "call setup, caller (INVITE → 200, sipp rtd, 1 ms resolution) p50 / p99 ms",
                lambda s: p50_99(s.caller_ms),
            ),
            row("INVITE in → first audio packet out p50 / p99 ms", lambda s: p50_99(s.audio_ms)),
            row("gateway CPU, idle baseline", lambda s: f"{s.idle * 100:.2f}% of a core"),
            row("gateway CPU with every leg up", lambda s: f"{s.busy * 100:.1f}% of a core"),
            row("CPU per phone leg (busy − idle) / legs", lambda s: f"{s.per_leg:.2f}% of a core"),
            row(
                "packets handled / full rate (50 in + 50 out per leg-second)",
                lambda s: f"{s.paced:.2f}",
            ),
            row("CPU per leg at full rate", lambda s: f"{s.per_full_leg:.2f}% of a core"),
            row(
                "**legs per core** (100% / CPU per leg at full rate)",
                lambda s: f"**{100 / s.per_full_leg:.0f}**" if s.per_full_leg > 0 else "n/a",
            ),
            "",
            f"Load average at the end of the run: {load[0]:.1f} (1 min), {load[1]:.1f} (5 min) "
            f"on {os.cpu_count()} cores; the machine is shared, so the per-leg CPU is taken "
            "against the idle gateway in the same run, and setup tails grow with other work.",
            "",
            "Target: 50 concurrent legs on one core, 0 lost frames, setup p99 under 50 ms.",
        ]
    )


def hold_and_tone(quick: bool) -> tuple[int, int]:
    """The call's length and its tone's, in seconds. The tone ends well before the BYE,
    so every packet sent can be counted: sipp's own RTP player falls a few seconds
    behind with many streams on 2 cores."""
    hold = 10 if quick else 14
    return hold, hold - 7


async def measure(legs: int, quick: bool) -> Size:
    hold, loops = hold_and_tone(quick)
    size = Size(legs, expected=loops * PACKETS_PER_TONE)
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
        pending_calls_per_source=legs * 2,  # every call comes from sipp's one address
    )
    gateway = PhoneGateway(settings, registry, bus, pins, LocalRoomAudio(), CollectorRegistry())
    await gateway.start()
    try:
        cpu, wall = time.process_time(), time.monotonic()
        await asyncio.sleep(WINDOW_SECONDS)
        size.idle = (time.process_time() - cpu) / (time.monotonic() - wall)

        proc = await asyncio.create_subprocess_exec(
            "sipp", f"127.0.0.1:{gateway.port}", "-sf", str(work / "scenario.xml"),
            "-inf", str(work / "pins.csv"), "-m", str(legs), "-l", str(legs), "-r", str(legs),
            "-d", str(hold * 1000), "-i", "127.0.0.1", "-mi", "127.0.0.1", "-nostdin",
            "-timeout", f"{hold + 60}s", "-timeout_error", "-trace_rtt", "-rtt_freq", "1",
            "-trace_err", cwd=work,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        # Measure while the calls are surely still up: a loaded machine may never have
        # every leg up at once, and waiting past the hold would measure ended calls.
        await all_confirmed(gateway, legs, deadline=time.monotonic() + hold - WINDOW_SECONDS - 3)
        up_before = confirmed_calls(gateway)
        packets = packets_handled(gateway)
        cpu, wall = time.process_time(), time.monotonic()
        await asyncio.sleep(WINDOW_SECONDS)
        size.window = time.monotonic() - wall
        size.busy = (time.process_time() - cpu) / size.window
        size.packets = packets_handled(gateway) - packets
        size.concurrent = min(up_before, confirmed_calls(gateway))  # up the whole window
        size.returncode = await proc.wait()
    finally:
        await gateway.stop()
        await bus.close()
        registry.close_all()
        await database.close()

    ended = gateway.ended_calls[-legs:]
    size.ended = len(ended)
    size.clean = sum(
        c.stats.audio_frames_received == size.expected and c.stats.packets_lost == 0 for c in ended
    )
    size.lost = sum(c.stats.packets_lost for c in ended)
    size.received = sum(c.stats.audio_frames_received for c in ended)
    size.setup_ms = [(c.answered_at - c.started) * 1000 for c in ended if c.answered_at]
    size.audio_ms = [
        (c.stats.first_sent_at - c.started) * 1000 for c in ended if c.stats.first_sent_at
    ]
    size.caller_ms = caller_setup_times(work)
    shutil.rmtree(work, ignore_errors=True)
    return size


def packets_handled(gateway: PhoneGateway) -> int:
    return sum(c.stats.packets_received + c.stats.packets_sent for c in gateway.calls.values())


def confirmed_calls(gateway: PhoneGateway) -> int:
    return sum(c.state == CallState.CONFIRMED for c in gateway.calls.values())


async def all_confirmed(gateway: PhoneGateway, legs: int, deadline: float) -> None:
    """Wait until `legs` calls are up (or the deadline passes: the table says how many)."""
    confirmed = 0
    while confirmed < legs and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # noqa: ASYNC110 - polling the call table is the point
        confirmed = confirmed_calls(gateway)


def caller_setup_times(work: Path) -> list[float]:
    """sipp's per-call response times (ms) from its `-trace_rtt` file."""
    values: list[float] = []
    for path in work.glob("*_rtt.csv"):
        for line in path.read_text().splitlines()[1:]:
            fields = line.split(";")  # Date_ms;response_time_ms;rtd_no
            if len(fields) >= 2 and re.fullmatch(r"[0-9.]+", fields[1]):
                values.append(float(fields[1]))
    return values
