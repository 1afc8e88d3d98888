"""When a datagram reached this host: the kernel's receive timestamp, not the time
Python got round to reading it.

Both estimates of a publisher's uplink read arrival times: the transport-cc feedback
the publisher's browser runs its delay-based estimator on (transport_feedback.py), and
aiortc's REMB estimator. Stamped with the clock when the event loop reads the datagram,
every stall of the server's process (another room's work, the scheduler giving the
core to a browser on the same machine) shows up as packets delayed and then bunched,
which is what a congested link looks like: the browser lowers its rate and drops its
top simulcast layer while the link itself is idle (CI, 2026-12-04: a VP9 publisher on
loopback held at 360 lines, "limited: bandwidth", while three Chromium pages encoded
on two cores).

Linux stamps each packet as it arrives (on loopback: when the peer sends it) and
keeps the last one read from a socket; `SIOCGSTAMPNS` reads it (the first call turns
stamping on for that socket; `_rtp_receive.ArrivalClock` makes that call in C).
aiortc hands `DirectReceive` each datagram in the same synchronous call that read it
from the socket, so the socket's last stamp is that datagram's. The socket is the
connection's nominated pair's (media flows there once ICE has nominated it); a datagram
from another socket (a relayed candidate, a pair not yet nominated) or a stamp that did
not move, is not in the past, or is more than a second old falls back to the clock now.

The stamps are wall-clock (CLOCK_REALTIME) nanoseconds, as `time.time_ns()`. Linux
starts stamping a socket's packets a moment after the first call, so the first few
datagrams of a connection get the clock now.

Internal 20: aioice's `Connection._nominated` (component → `CandidatePair`, whose
`protocol.transport` is the asyncio datagram transport) and `StunProtocol` handing the
datagram on in the call that read it.
"""

from __future__ import annotations

import inspect
from typing import Any

import aioice.ice

from server.media._rtp_receive import ArrivalClock
from server.media.aiortc_internals.base import needs


def arrival_clock(connection: Any) -> ArrivalClock:
    """The arrival times of the datagrams `connection` (aioice's) delivers, in ns: the
    kernel's stamp of the nominated pair's socket where it is this datagram's (a stamp
    that moved, is not in the future and is at most a second old), else the clock now.
    In C (`_rtp_receive.ArrivalClock`: the datagram's C entry reads it without Python);
    `stamped` counts the datagrams given the kernel's time."""
    return ArrivalClock(connection._nominated, _socket_of)


def _socket_of(pair: Any) -> int:
    """The file descriptor of `pair`'s UDP socket, or -1 (no pair, a relayed one)."""
    transport = getattr(getattr(pair, "protocol", None), "transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    return sock.fileno() if sock is not None else -1


def problems() -> list[str]:
    found = needs(
        inspect.getsource(aioice.ice.Connection),
        "aioice's Connection",
        "self._nominated: dict[int, CandidatePair] = {}",
        "self._nominated[component] = CandidatePair(protocol, remote_candidate)",
    )
    found += needs(
        inspect.getsource(aioice.ice.StunProtocol),
        "aioice's StunProtocol",
        "self.transport = cast(asyncio.DatagramTransport, transport)",
        "self.receiver.data_received(data, self.local_candidate.component)",
    )
    if "protocol" not in inspect.signature(aioice.ice.CandidatePair).parameters:
        found.append("aioice's CandidatePair no longer takes its protocol")
    return found
