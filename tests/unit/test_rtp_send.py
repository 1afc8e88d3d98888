"""The C send path (server/media/_rtp_send.c) on real sockets and real libsrtp sessions:
packets protected as pylibsrtp protects them, a frame's packets split into GSO runs and
arriving whole and in order, and what the socket does not take handed to asyncio in
order (a socket that is full, a socket that fails, or none to write directly).

A socket fills only where the kernel holds datagrams against it: here in a slow token
bucket's queue on a veth pair into a network namespace (tests/support/netns.py)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, get_args

import pylibsrtp
import pytest

from server import event_loop
from server.event_loop import EventLoopName
from server.media import _rtp_send
from server.media.aiortc_internals import make_wire
from server.media.aiortc_internals.transport import direct_socket
from server.media.rtp_output import HISTORY
from tests.support.netns import TestHost, create_test_host

KEY = bytes(range(30))


def session(direction: int) -> pylibsrtp.Session:
    policy = pylibsrtp.Policy(key=KEY, ssrc_type=direction)
    policy.allow_repeat_tx = True
    return pylibsrtp.Session(policy)


def rtp(seq: int, size: int) -> bytes:
    return bytes((0x80, 96)) + seq.to_bytes(2, "big") + bytes(8) + bytes([seq % 256]) * size


class Receiver:
    def __init__(self, family: int = socket.AF_INET, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(2)
        self.inbound = session(pylibsrtp.Policy.SSRC_ANY_INBOUND)

    def read(self, count: int) -> list[bytes]:
        return [self.inbound.unprotect(self.sock.recv(2048)) for _ in range(count)]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.sock.close()


@pytest.fixture
def sender() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    yield sock
    sock.close()


def wire_to(
    address: Any, sock: socket.socket | None, through_asyncio: list[bytes] | None = None
) -> _rtp_send.Wire:
    def sendto(datagram: bytes, addr: Any) -> None:
        assert through_asyncio is not None, "nothing should have gone through asyncio"
        assert addr == address
        through_asyncio.append(datagram)

    return make_wire(session(pylibsrtp.Policy.SSRC_ANY_OUTBOUND), sock, address, sendto)


@pytest.mark.parametrize(
    ("sizes", "runs"),
    [
        ([1200, 1200, 1200, 700], [4]),  # VP8: even parts, a shorter last
        ([1101, 1101, 1100, 1100], [3, 1]),  # H264 FU-A: a run one byte shorter
        ([300], [1]),  # audio
        ([200, 1200, 1200], [1, 2]),  # a longer one starts a run
        ([1000] * 64, [64]),  # at most 64 segments a call
        ([1100] * 60, [59, 1]),  # and under 65,000 bytes
    ],
)
def test_a_frame_is_split_into_as_few_gso_sends_as_the_kernel_takes(
    sizes: list[int], runs: list[int]
) -> None:
    assert _rtp_send.runs(sizes) == runs


@pytest.mark.parametrize("gso", [True, False])
def test_a_frame_arrives_whole_in_order_protected_and_kept_unprotected(
    receiver: Receiver, sender: socket.socket, gso: bool
) -> None:
    """70 packets (more than one call's 64) of which a shorter last; the history keeps
    each packet as sent before SRTP, in its slot; sequence numbers wrap."""
    _rtp_send.set_gso(gso)
    try:
        wire = wire_to(receiver.sock.getsockname(), sender)
        tail = (3000).to_bytes(4, "big") + (1111).to_bytes(4, "big")
        payloads = [bytes([i]) * 1000 for i in range(69)] + [b"last" * 10]
        history: list[bytes | None] = [None] * HISTORY
        start = 0xFFFF - 5
        after = wire.frame(0x80, 96, start, tail, payloads, history)
        assert after == (start + 70) & 0xFFFF
        packets = receiver.read(70)
    finally:
        _rtp_send.set_gso(True)
    for i, (packet, payload) in enumerate(zip(packets, payloads, strict=True)):
        seq = (start + i) & 0xFFFF
        marker = 0x80 if i == 69 else 0
        assert packet == bytes((0x80, 96 | marker)) + seq.to_bytes(2, "big") + tail + payload
        assert history[seq % HISTORY] == packet


def test_finished_packets_are_protected_as_pylibsrtp_protects_them(
    receiver: Receiver, sender: socket.socket
) -> None:
    wire = wire_to(receiver.sock.getsockname(), sender)
    plain = session(pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    packets = [rtp(seq, size) for seq, size in enumerate((1, 80, 1100, 1300))]
    wire.packets(packets)
    raw = [receiver.sock.recv(2048) for _ in packets]
    assert raw == [plain.protect(packet) for packet in packets]


def test_an_overlong_packet_is_refused_and_changes_nothing(
    receiver: Receiver, sender: socket.socket
) -> None:
    wire = wire_to(receiver.sock.getsockname(), sender)
    history: list[bytes | None] = [None] * HISTORY
    # the bad one after good ones: checked before anything is kept or sent
    with pytest.raises(ValueError, match="too long"):
        wire.packets([rtp(1, 100), rtp(2, 1700)])
    with pytest.raises(ValueError, match="too long"):
        wire.frame(0x80, 96, 9, bytes(8), [bytes(100), bytes(1700)], history)
    with pytest.raises(TypeError):
        wire.frame(0x80, 96, 9, bytes(8), [bytes(100), "no"], history)  # type: ignore[list-item]
    assert history == [None] * HISTORY
    wire.packets([rtp(3, 10)])
    assert receiver.read(1) == [rtp(3, 10)]  # nothing before it arrived


def test_an_ipv6_peer_and_an_ipv4_peer_of_a_dual_stack_socket() -> None:
    six = Receiver(socket.AF_INET6, "::1")
    four = Receiver()
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    try:
        for receiver in (six, four):
            wire_to(receiver.sock.getsockname()[:2], sock).packets([rtp(5, 100)])
            assert receiver.read(1) == [rtp(5, 100)]
    finally:
        for s in (sock, six.sock, four.sock):
            s.close()


def test_without_a_socket_of_its_own_everything_goes_through_asyncio_in_order(
    receiver: Receiver,
) -> None:
    """A TURN-relayed pair (no socket to write), or a socket asyncio already queues for."""
    through_asyncio: list[bytes] = []
    wire = wire_to(receiver.sock.getsockname(), None, through_asyncio)
    packets = [rtp(seq, 900) for seq in range(4)]
    wire.packets(packets)
    inbound = session(pylibsrtp.Policy.SSRC_ANY_INBOUND)
    assert [inbound.unprotect(d) for d in through_asyncio] == packets


class Closing(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.lost = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(None)


@pytest.mark.parametrize("loop", get_args(EventLoopName))
def test_the_event_loops_own_transport_is_written_directly_until_it_closes(
    loop: EventLoopName, receiver: Receiver
) -> None:
    """A host pair's transport, asyncio's or uvloop's: the wire writes its socket (the
    frame arrives, nothing goes through the loop's `sendto`); once it is closed, never
    (the same as a closed socket below: its number may already be another's)."""

    async def check() -> None:
        transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
            Closing, family=socket.AF_INET
        )
        through_asyncio: list[bytes] = []
        wire = wire_to(receiver.sock.getsockname(), direct_socket(transport), through_asyncio)
        wire.frame(0x80, 96, 1, bytes(8), [b"a" * 500, b"b" * 500], [None] * HISTORY)
        assert [p[12:13] for p in receiver.read(2)] == [b"a", b"b"]
        assert through_asyncio == []
        transport.close()
        await protocol.lost
        wire.frame(0x80, 96, 3, bytes(8), [b"c" * 500], [None] * HISTORY)
        assert len(through_asyncio) == 1

    event_loop.run(check(), loop)


def test_a_socket_that_fails_hands_the_frame_to_asyncio(receiver: Receiver) -> None:
    """asyncio's `sendto` reports the error as it always does (to the protocol)."""
    failing = SimpleNamespace(fileno=lambda: 999_999, family=socket.AF_INET)  # EBADF
    through_asyncio: list[bytes] = []
    wire = wire_to(receiver.sock.getsockname(), failing, through_asyncio)  # type: ignore[arg-type]
    wire.frame(0x80, 96, 1, bytes(8), [b"a" * 500, b"b" * 500], [None] * HISTORY)
    assert len(through_asyncio) == 2


def test_a_closed_socket_is_never_written_even_once_its_number_is_reused(
    receiver: Receiver,
) -> None:
    """The kernel gives a closed socket's number to the next one opened: writing to a
    remembered number would send a subscriber's media on another connection."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    through_asyncio: list[bytes] = []
    wire = wire_to(receiver.sock.getsockname(), sock, through_asyncio)
    number = sock.fileno()
    sock.close()
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        other.bind(("127.0.0.1", 0))
        assert other.fileno() == number  # the number is reused at once
        wire.frame(0x80, 96, 1, bytes(8), [b"media"], [None] * HISTORY)
        assert len(through_asyncio) == 1  # not through `other`
        receiver.sock.settimeout(0.2)
        with pytest.raises(TimeoutError):
            receiver.sock.recv(2048)
    finally:
        other.close()


@pytest.fixture
def slow_host() -> Iterator[TestHost]:
    host = create_test_host()
    try:
        # A queue longer than the socket's send buffer: the kernel holds what waits in it
        # against the socket (a shorter queue drops the excess instead).
        tbf = ("tbf", "rate", "8kbit", "burst", "1600", "limit", "200000")
        subprocess.run(
            ["tc", "qdisc", "replace", "dev", host.host_if, "root", *tbf],
            check=True,
            capture_output=True,
            timeout=20,
        )
        yield host
    finally:
        host.remove()


async def test_what_a_full_socket_does_not_take_goes_through_asyncio_after_it(
    slow_host: TestHost,
) -> None:
    """Behind an 8 kbit/s token bucket the socket's small send buffer fills within a few
    frames: the kernel takes the first of a frame's packets, the rest (EAGAIN) go to
    asyncio, which queues them behind and sends them, in order, as the socket drains."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, family=socket.AF_INET
    )
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    address = (slow_host.ns_ip, 9)
    through_asyncio: list[bytes] = []

    def sendto(datagram: bytes, addr: Any) -> None:
        through_asyncio.append(datagram)
        transport.sendto(datagram, addr)

    wire = make_wire(session(pylibsrtp.Policy.SSRC_ANY_OUTBOUND), sock, address, sendto)
    history: list[bytes | None] = [None] * HISTORY
    frames = 0
    while not through_asyncio and frames < 50:
        wire.frame(0x80, 96, frames * 4, bytes(8), [bytes(1000)] * 4, history)
        frames += 1
    assert through_asyncio, "the socket never filled"
    assert transport.get_write_buffer_size() > 0  # asyncio holds them, in order
    inbound = session(pylibsrtp.Policy.SSRC_ANY_INBOUND)
    seqs = [int.from_bytes(inbound.unprotect(d)[2:4], "big") for d in through_asyncio]
    # the kernel took everything before them; from the first it refused, all went after
    assert seqs[0] > 0 and seqs == list(range(seqs[0], frames * 4))
    transport.abort()


# Run inside a namespace whose loopback MTU (1,000) is below the frame's packets: the
# kernel refuses a UDP_SEGMENT send of them (EMSGSIZE) and takes them one at a time
# (fragmented). Prints what arrived and what each wire then says.
_LOW_MTU_SENDER = """
import json, socket, pylibsrtp
from server import event_loop
from server.event_loop import EventLoopName
from server.media import _rtp_send
from server.media.aiortc_internals import make_wire
from server.media.aiortc_internals.transport import direct_socket
from server.media.rtp_output import HISTORY
from tests.unit.test_rtp_send import Receiver, session

receiver = Receiver()
address = receiver.sock.getsockname()
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setblocking(False)
through_asyncio = []

def wire():
    return make_wire(
        session(pylibsrtp.Policy.SSRC_ANY_OUTBOUND), sock, address,
        lambda datagram, addr: through_asyncio.append(datagram),
    )

big, small = wire(), wire()
history = [None] * HISTORY
before = big.gso
payloads = [bytes([i]) * 1100 for i in range(69)] + [b"last" * 10]
big.frame(0x80, 96, 0, bytes(8), payloads, history)
big.frame(0x80, 96, 70, bytes(8), payloads[:3], history)  # the next frame
small.frame(0x80, 96, 73, bytes(8), [bytes(900)] * 4, history)  # segments that fit
packets = receiver.read(77)
print(json.dumps({
    "gso_before": before, "gso_after": big.gso, "other_wire": small.gso,
    "module": _rtp_send.gso(), "through_asyncio": len(through_asyncio),
    "seqs": [int.from_bytes(p[2:4], "big") for p in packets],
    "payloads": [p[12:].hex()[:8] + str(len(p)) for p in packets],
}))
"""


def test_a_run_the_route_cannot_segment_goes_one_datagram_at_a_time_to_that_peer_only() -> None:
    """A real refusal: a route whose MTU is under the packets (a tunnel, a VPN). The
    frame still arrives whole and in order from the C path (before, it went through
    asyncio, every frame); that wire sends one datagram per call from then on, and a
    wire to a peer whose segments fit keeps GSO."""
    host = create_test_host()
    try:
        subprocess.run(
            host.exec_args("ip", "link", "set", "lo", "mtu", "1000"), check=True, timeout=20
        )
        done = subprocess.run(
            host.exec_args(sys.executable, "-c", _LOW_MTU_SENDER),
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        host.remove()
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["through_asyncio"] == 0
    assert (seen["gso_before"], seen["gso_after"]) == (True, False)
    assert seen["other_wire"] is True and seen["module"] is True
    assert seen["seqs"] == list(range(77))
    sent = [bytes([i]) * 1100 for i in range(69)] + [b"last" * 10]
    sent += sent[:3] + [bytes(900)] * 4
    assert seen["payloads"] == [p.hex()[:8] + str(12 + len(p)) for p in sent]


def test_a_wire_made_from_bad_parts_is_refused_with_a_clear_error(sender: socket.socket) -> None:
    outbound = session(pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    addr = _rtp_send.sockaddr("127.0.0.1", 9, socket.AF_INET)

    def sendto(datagram: bytes, remote: Any) -> None:
        raise AssertionError("nothing is sent")

    with pytest.raises(TypeError, match="address must be bytes"):
        _rtp_send.Wire(outbound, 1, 1, sender, "127.0.0.1", sendto, ("127.0.0.1", 9))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no SRTP session"):
        _rtp_send.Wire(outbound, 0, 1, sender, addr, sendto, ("127.0.0.1", 9))
    with pytest.raises(TypeError, match="sendto must be callable"):
        _rtp_send.Wire(outbound, 1, 1, sender, addr, None, ("127.0.0.1", 9))  # type: ignore[arg-type]
    wire = _rtp_send.Wire(outbound, 1, 1, sender, addr, sendto, ("127.0.0.1", 9))
    with pytest.raises(ValueError, match="max_backlog"):
        wire.watch(None, None, None, None, None, -5)
    unmade = _rtp_send.Wire.__new__(_rtp_send.Wire)  # no __init__: refused, not a crash
    with pytest.raises(ValueError, match="never made"):
        unmade.frame(0x80, 96, 1, bytes(8), [b"x"], [None] * HISTORY)
