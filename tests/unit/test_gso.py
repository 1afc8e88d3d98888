"""UDP GSO: a frame's packets leave in one system call and arrive as the same datagrams,
in order, over a real loopback socket."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from server.media import gso


class Recording:
    """A real UDP socket that counts the system calls made on it."""

    def __init__(self, sock: socket.socket, fail: OSError | None = None) -> None:
        self.sock, self.fail, self.calls = sock, fail, []

    def sendto(self, data: bytes, addr: Any) -> int:
        self.calls.append(("sendto", 1))
        return self.sock.sendto(data, addr)

    def sendmsg(self, buffers: list[bytes], ancdata: Any, flags: int, addr: Any) -> int:
        if self.fail is not None:
            raise self.fail
        self.calls.append(("sendmsg", len(buffers)))
        return self.sock.sendmsg(buffers, ancdata, flags, addr)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(2)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    yield sender, receiver
    sender.close()
    receiver.close()


def received(receiver: socket.socket, count: int) -> list[bytes]:
    return [receiver.recv(2048) for _ in range(count)]


def datagrams(*sizes: int) -> list[bytes]:
    return [bytes([i]) * size for i, size in enumerate(sizes)]


@pytest.mark.parametrize(
    ("sizes", "calls"),
    [
        ((1200, 1200, 1200, 700), [("sendmsg", 4)]),  # VP8: even parts, a shorter last
        ((1101, 1101, 1100, 1100), [("sendmsg", 3), ("sendto", 1)]),  # H264 FU-A: 1 byte less
        ((300,), [("sendto", 1)]),  # audio
        ((200, 1200, 1200), [("sendto", 1), ("sendmsg", 2)]),  # a longer one starts a run
        ((1000,) * 70, [("sendmsg", 64), ("sendmsg", 6)]),  # at most 64 segments a call
    ],
)
def test_a_frame_goes_in_as_few_calls_as_gso_allows_and_arrives_whole(
    pair: tuple[socket.socket, socket.socket], sizes: tuple[int, ...], calls: list[Any]
) -> None:
    sender, receiver = pair
    recording = Recording(sender)
    frame = datagrams(*sizes)
    gso.send_all(recording, frame, receiver.getsockname(), pytest.fail)  # type: ignore[arg-type]
    assert recording.calls == calls
    assert received(receiver, len(frame)) == frame


def test_a_refused_gso_falls_back_to_one_datagram_per_send(
    pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    sender, receiver = pair
    monkeypatch.setattr(gso, "_enabled", True)
    refusing = Recording(sender, fail=OSError(errno.EIO, "no checksum offload"))
    fallback: list[bytes] = []

    def through_asyncio(data: bytes, addr: Any) -> None:
        fallback.append(data)
        sender.sendto(data, addr)

    first = datagrams(1200, 1200, 500)
    gso.send_all(refusing, first, receiver.getsockname(), through_asyncio)  # type: ignore[arg-type]
    assert fallback == first and received(receiver, 3) == first
    # From then on GSO is not tried again.
    second = datagrams(900, 900)
    gso.send_all(refusing, second, receiver.getsockname(), through_asyncio)  # type: ignore[arg-type]
    assert refusing.calls == [] and fallback == first + second
    assert received(receiver, 2) == second


def test_a_full_socket_hands_the_rest_to_asyncio_in_order(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    sender, receiver = pair

    class FullAfterOne(Recording):
        def sendmsg(self, buffers: list[bytes], ancdata: Any, flags: int, addr: Any) -> int:
            if self.calls:
                raise BlockingIOError
            return super().sendmsg(buffers, ancdata, flags, addr)

    full = FullAfterOne(sender)
    queued: list[bytes] = []
    frame = datagrams(1200, 1200, 200, 1200, 1200)  # two runs: the second finds it full
    gso.send_all(full, frame, receiver.getsockname(), lambda d, a: queued.append(d))  # type: ignore[arg-type]
    assert full.calls == [("sendmsg", 3)]
    assert received(receiver, 3) == frame[:3] and queued == frame[3:]
