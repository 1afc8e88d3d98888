"""Arrival times are the kernel's (server/media/aiortc_internals/arrival.py): datagrams
that wait in the socket while the event loop is stalled keep the spacing they arrived
with, and a datagram from a socket that is not the nominated pair's gets the clock now.

Two real aioice connections on loopback; the datagrams come from a plain UDP socket
sent to the receiving side's nominated local address, as a peer's would.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import aioice
import pytest

from server.media.aiortc_internals.arrival import arrival_clock

GAP_S = 0.05


@pytest.fixture
async def connected() -> AsyncIterator[aioice.Connection]:
    """The receiving side of two connected aioice connections."""
    a = aioice.Connection(ice_controlling=True, components=1)
    b = aioice.Connection(ice_controlling=False, components=1)
    await asyncio.gather(a.gather_candidates(), b.gather_candidates())
    for here, there in ((a, b), (b, a)):
        for candidate in there.local_candidates:
            await here.add_remote_candidate(candidate)
        await here.add_remote_candidate(None)
        here.remote_username, here.remote_password = there.local_username, there.local_password
    await asyncio.gather(a.connect(), b.connect())
    yield b
    await asyncio.gather(a.close(), b.close())


class Stamps:
    """Arrival stamps (`clock`'s) of the datagrams `connection` delivers, and a `peer`
    socket sending to its nominated local address."""

    def __init__(self, connection: aioice.Connection, peer: socket.socket) -> None:
        self.all: list[int] = []
        self.clock = arrival_clock(connection)
        self.peer = peer
        self.local = connection._nominated[1].protocol.transport.get_extra_info("sockname")[:2]
        self._grown = asyncio.Event()
        connection.data_received = self._received  # type: ignore[method-assign]

    def _received(self, data: bytes, component: int) -> None:
        self.all.append(self.clock.now_ns(component))
        self._grown.set()

    async def stamping(self) -> None:
        """Send datagrams until one gets a kernel stamp (Linux starts stamping a socket
        a moment after the first call)."""
        async with asyncio.timeout(5):
            while self.clock.stamped == 0:
                self.peer.sendto(b"\x80\x00 warm-up", self.local)
                await self.reach(len(self.all) + 1)

    async def reach(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.all) < count:
                self._grown.clear()
                await self._grown.wait()


@pytest.fixture
async def stamps(connected: aioice.Connection) -> AsyncIterator[Stamps]:
    """Stamps of `connected`'s datagrams, from when the kernel stamps them."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        stamps = Stamps(connected, peer)
        await stamps.stamping()
        yield stamps


def send_while_the_loop_stalls(
    peer: socket.socket, local: tuple[str, int], count: int
) -> list[int]:
    """Send `count` datagrams `GAP_S` apart without giving the event loop a turn (the
    fault: a stalled server process); their send times."""
    sent = []
    for n in range(count):
        peer.sendto(b"\x80\x00 datagram %d" % n, local)
        sent.append(time.time_ns())
        time.sleep(GAP_S)
    return sent


async def test_datagrams_read_after_a_stall_keep_the_spacing_they_arrived_with(
    stamps: Stamps,
) -> None:
    stamped, start = stamps.clock.stamped, len(stamps.all)
    sent = send_while_the_loop_stalls(stamps.peer, stamps.local, 4)
    await stamps.reach(start + 4)
    arrived = stamps.all[start:]
    gaps = [later - earlier for earlier, later in zip(arrived, arrived[1:], strict=False)]
    assert all(abs(gap - GAP_S * 1e9) < 10e6 for gap in gaps), gaps
    assert all(abs(a - s) < 5e6 for a, s in zip(arrived, sent, strict=True))
    assert stamps.clock.stamped == stamped + 4


async def test_a_datagram_from_another_socket_gets_the_clock_now(
    connected: aioice.Connection, stamps: Stamps
) -> None:
    stamped = stamps.clock.stamped
    # Another datagram delivered for the component (as from a relayed candidate)
    # finds the nominated socket's stamp unchanged: it gets the time it is read.
    before = time.time_ns()
    connected.data_received(b"\x80\x00 relayed", 1)
    assert stamps.all[-1] >= before
    assert stamps.clock.stamped == stamped
