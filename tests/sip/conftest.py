"""A phone gateway on loopback with real rooms, a real PIN store, and sipp to call it."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client import CollectorRegistry

from server.pairs.store import PairStore
from server.phone.call import Call, CallState
from server.phone.gateway import PhoneGateway
from server.phone.pins import PinStore
from server.phone.settings import PhoneSettings
from server.rooms.events import EventBus, RoomEvent
from server.rooms.registry import RoomRegistry
from server.store import Database
from server.store.schema import metadata
from tests.support.room_audio import LocalRoomAudio
from tests.support.services import require_program
from tests.support.waiting import eventually

SCENARIOS = Path(__file__).parent / "scenarios"
E = TypeVar("E", bound=RoomEvent)


@dataclass
class SippResult:
    returncode: int
    errors: str


async def run_sipp(
    sipp_path: str,
    port: int,
    scenario: str,
    service: str,
    workdir: Path,
    *,
    hold_ms: int = 500,
    args: tuple[str, ...] = (),
) -> SippResult:
    """One call of `scenario` (in tests/sip/scenarios) dialling `service` at 127.0.0.1:port."""
    errors = workdir / f"{scenario}-{time.monotonic_ns()}.errors"
    proc = await asyncio.create_subprocess_exec(
        sipp_path, f"127.0.0.1:{port}", "-sf", str(SCENARIOS / scenario), "-s", service,
        "-m", "1", "-d", str(hold_ms), "-i", "127.0.0.1", "-mi", "127.0.0.1", "-nostdin",
        "-timeout", "30s", "-timeout_error", "-trace_err", "-error_file", str(errors), *args,
        cwd=workdir, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    returncode = await proc.wait()
    return SippResult(returncode, errors.read_text() if errors.exists() else "")


_ENDING_TASKS = ("phone-bye", "phone-cancelled", "phone-max-length")  # uas.py names them


@dataclass
class Phone:
    gateway: PhoneGateway
    registry: RoomRegistry
    bus: EventBus
    pins: PinStore
    room_audio: LocalRoomAudio
    metrics: CollectorRegistry
    workdir: Path
    sipp_path: str
    database: Database
    events: list[RoomEvent] = field(default_factory=list)

    def of_type(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    async def sipp(
        self, scenario: str, service: str, *, hold_ms: int = 500, args: tuple[str, ...] = ()
    ) -> SippResult:
        """Run one call of `scenario` against the gateway; sipp's exit code and errors,
        once the gateway has also ended the call on its side."""
        result = await run_sipp(
            self.sipp_path,
            self.gateway.port,
            scenario,
            service,
            self.workdir,
            hold_ms=hold_ms,
            args=args,
        )
        # The gateway answers a BYE or CANCEL (or sends one) first, then ends the call
        # (stops its media, tells the room) in a task of its own: sipp, answered, may
        # exit before that is done (seen on uvloop, where its exit is noticed sooner).
        ending = [t for t in self.gateway.uas._tasks if t.get_name() in _ENDING_TASKS]
        await asyncio.gather(*ending, return_exceptions=True)
        return result

    def start_sipp(self, scenario: str, service: str, **kwargs: Any) -> asyncio.Task[SippResult]:
        return asyncio.create_task(self.sipp(scenario, service, **kwargs))

    async def confirmed_call(self) -> Call:
        """The one call in progress, once the caller's ACK arrived."""
        return await eventually(
            lambda: next(
                (c for c in self.gateway.calls.values() if c.state == CallState.CONFIRMED), None
            )
        )

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics.get_sample_value(name, labels) or 0.0


PhoneFactory = Callable[..., Awaitable[Phone]]


@pytest.fixture
async def make_phone(tmp_path: Path) -> AsyncIterator[PhoneFactory]:
    sipp_path = require_program("sipp", "/usr/bin/sipp")
    started: list[tuple[Phone, Database]] = []

    async def make(
        room_audio_for: Callable[[RoomRegistry, EventBus], Any] | None = None, **settings: Any
    ) -> Phone:
        """A gateway on `PhoneSettings(**settings)`; its room audio is `LocalRoomAudio`
        unless `room_audio_for(registry, bus)` makes another (the SFU's)."""
        database = Database(f"sqlite+aiosqlite:///{tmp_path / f'phone{len(started)}.db'}")
        async with database.begin() as conn:
            await conn.run_sync(metadata.create_all)
        bus = EventBus()
        registry = RoomRegistry(bus)
        pins = PinStore(database)
        room_audio = room_audio_for(registry, bus) if room_audio_for else LocalRoomAudio()
        metrics = CollectorRegistry()
        config = PhoneSettings(
            **{"host": "127.0.0.1", "port": 0, "rtp_host": "127.0.0.1", **settings}
        )
        gateway = PhoneGateway(
            config,
            registry,
            bus,
            pins,
            room_audio,
            metrics,
            require_open_room=PairStore(database).require_open_room,  # as the app wires it
        )
        phone = Phone(
            gateway, registry, bus, pins, room_audio, metrics, tmp_path, sipp_path, database
        )

        async def record(event: RoomEvent) -> None:
            phone.events.append(event)

        bus.subscribe(record, name="test-recorder")
        await gateway.start()
        started.append((phone, database))
        return phone

    yield make
    for phone, database in started:
        await phone.gateway.stop()
        await phone.bus.close()
        phone.registry.close_all()
        await database.close()


@pytest.fixture
async def phone(make_phone: PhoneFactory) -> Phone:
    return await make_phone()


class UdpPeer(asyncio.DatagramProtocol):
    """A raw UDP socket for a test: send datagrams, collect what comes back."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait((data, addr))

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def send(self, data: bytes, port: int) -> None:
        assert self.transport is not None
        self.transport.sendto(data, ("127.0.0.1", port))

    async def next(self, timeout: float = 5.0) -> bytes:
        data, _ = await asyncio.wait_for(self.received.get(), timeout)
        return data

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def open_peer(host: str) -> UdpPeer:
    """A UDP socket on `host` (any 127.x.y.z is this machine: a caller from elsewhere)."""
    loop = asyncio.get_running_loop()
    _, peer = await loop.create_datagram_endpoint(
        UdpPeer, local_addr=(host, 0), family=socket.AF_INET
    )
    return peer


@pytest.fixture
async def udp_peer() -> AsyncIterator[UdpPeer]:
    # RTP ports are even by convention; sipp does not mind, the gateway does not care.
    peer = await open_peer("127.0.0.1")
    yield peer
    peer.close()


@pytest.fixture
async def stranger() -> AsyncIterator[UdpPeer]:
    """A socket on a second loopback address (127.0.0.2): a third party on the network."""
    peer = await open_peer("127.0.0.2")
    yield peer
    peer.close()
