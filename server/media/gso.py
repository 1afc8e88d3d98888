"""UDP generic segmentation offload (GSO): a frame's RTP packets in one system call.

A video frame leaves the SFU as several RTP packets of one size (the packetizers split a
frame into even parts; only the last may be shorter, or a run of them one byte shorter
for H264). `sendmsg` with `UDP_SEGMENT` (Linux 4.18+) hands the kernel such a run at once
and the kernel (or the network card) cuts it back into the same datagrams: one system
call per frame per subscriber instead of one per packet. The send system call is the
largest single cost in the SFU's send path (py-spy), and the gain grows with the bitrate
(more packets per frame).

Where the kernel or the route cannot do it (another OS, a device without checksum
offload: `EIO`), sending falls back to one datagram per call, for good.
"""

from __future__ import annotations

import errno
import logging
import socket
import sys
from collections.abc import Callable, Iterator

log = logging.getLogger("pairwise.media.gso")

UDP_SEGMENT = 103  # <linux/udp.h>: the segment size of a GSO send
MAX_SEGMENTS = 64  # UDP_MAX_SEGMENTS
MAX_BYTES = 65_000  # one send stays under the 64 KiB IP datagram limit
UNSUPPORTED = frozenset({errno.EIO, errno.EINVAL, errno.ENOPROTOOPT, errno.EOPNOTSUPP})

Address = tuple[str, int] | tuple[str, int, int, int]
SendTo = Callable[[bytes, Address], None]

_enabled = sys.platform == "linux" and hasattr(socket.socket, "sendmsg")


def batches(datagrams: list[bytes]) -> Iterator[list[bytes]]:
    """Consecutive runs that one GSO send can carry: every datagram as long as the
    run's first, except the last, which may be shorter."""
    batch: list[bytes] = []
    size = total = 0
    for datagram in datagrams:
        length = len(datagram)
        if batch and (length > size or len(batch) == MAX_SEGMENTS or total + length > MAX_BYTES):
            yield batch
            batch = []
        if not batch:
            size, total = length, 0
        batch.append(datagram)
        total += length
        if length < size:
            yield batch
            batch = []
    if batch:
        yield batch


def send_all(sock: socket.socket, datagrams: list[bytes], addr: Address, fallback: SendTo) -> None:
    """Send `datagrams` to `addr` in order, in as few system calls as GSO allows.

    Whatever the socket does not take at once (it is full, or GSO is refused) goes
    through `fallback` one by one (asyncio's `sendto`, which queues and reports errors
    as it always does)."""
    global _enabled
    if not datagrams:
        return
    if len(datagrams) == 1:  # audio, and most video frames at low bit rates
        try:
            sock.sendto(datagrams[0], addr)
        except OSError:  # full, or an error asyncio's sendto reports as it always does
            fallback(datagrams[0], addr)
        return
    sent = 0
    if _enabled:
        size = len(datagrams[0])
        one_run = (  # the usual video frame: one GSO send, no need to split it into runs
            len(datagrams) <= MAX_SEGMENTS
            and size * len(datagrams) <= MAX_BYTES
            and len(datagrams[-1]) <= size
            and (len(datagrams) == 2 or all(len(d) == size for d in datagrams[1:-1]))
        )
        try:
            for batch in [datagrams] if one_run else batches(datagrams):
                if len(batch) == 1:
                    sock.sendto(batch[0], addr)
                else:
                    segment = len(batch[0]).to_bytes(2, sys.byteorder)
                    sock.sendmsg(batch, [(socket.SOL_UDP, UDP_SEGMENT, segment)], 0, addr)
                sent += len(batch)
            return
        except (BlockingIOError, InterruptedError):
            pass  # the socket is full: asyncio queues the rest and sends it when it drains
        except OSError as exc:
            if exc.errno in UNSUPPORTED:
                _enabled = False
                log.warning("UDP GSO refused (%s): one datagram per send from now on", exc)
    for datagram in datagrams[sent:]:
        fallback(datagram, addr)
