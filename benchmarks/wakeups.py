"""Wake-ups: what waking a process costs on this machine, and why it matters to the SFU.

A sender process sends 1,200-byte UDP datagrams over loopback to a receiver process
that blocks in `recv`. Measured as the sender's CPU time (user + system) per iteration:

- back-to-back sends, the receiver kept busy (the baseline: a send that wakes nobody);
- a 9 ms sleep alone (the sender's own wake-up);
- one send, then a 9 ms sleep (the receiver is asleep at every send, so each send also
  wakes it);
- four sends, then a 9 ms sleep (one wake-up shared by a burst).

On loopback a send runs the receiving side's kernel work too, waking the receiver
included. The SFU benchmark's subscribers are processes on the same machine, so every
burst of packets to an idle subscriber process pays this; subscribers on other machines
would not.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time

from benchmarks.procs import udp_reader

TITLE = "Wake-ups on this machine (why small SFU rooms cost more per stream here)"
PAYLOAD = b"x" * 1200
GAP = 0.009  # seconds between iterations: long enough for the receiver to sleep
SFU_BURSTS = 30 + 50  # bursts per second to one subscriber: video frames + audio packets


def _cpu_per_iteration(sock: socket.socket, addr: tuple[str, int], sends: int, gap: float,
                       iterations: int) -> float:  # fmt: skip
    """Microseconds of this process's CPU time per iteration of `sends` sends and a sleep."""
    began = time.process_time()
    for _ in range(iterations):
        for _ in range(sends):
            sock.sendto(PAYLOAD, addr)
        if gap:
            time.sleep(gap)
    return (time.process_time() - began) / iterations * 1e6


def measure(iterations: int) -> dict[str, float]:
    addr, child = udp_reader(2)  # blocks in recv until the sender goes quiet
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        results = {
            "busy": _cpu_per_iteration(sender, addr, 1, 0.0, iterations * 20),
            "sleep": _cpu_per_iteration(sender, addr, 0, GAP, iterations),
            "wake": _cpu_per_iteration(sender, addr, 1, GAP, iterations),
            "burst": _cpu_per_iteration(sender, addr, 4, GAP, iterations),
        }
    finally:
        sender.close()
        os.waitpid(child, 0)
    return results


async def run(quick: bool) -> str:
    iterations = 100 if quick else 400
    r = await asyncio.to_thread(measure, iterations)
    woken = r["wake"] - r["sleep"]
    per_stream = SFU_BURSTS * woken / 1e6
    return "\n".join(
        [
            f"A sender and a receiver process on loopback; {iterations} iterations per row, "
            f"CPU time of the sender. The receiver blocks in `recv`.",
            "",
            "| per iteration | sender CPU µs | against a send that wakes nobody |",
            "|---|---:|---:|",
            f"| one send, receiver busy (baseline) | {r['busy']:.1f} | 1.0x |",
            f"| a {GAP * 1000:.0f} ms sleep alone | {r['sleep']:.1f} | "
            f"{r['sleep'] / r['busy']:.1f}x |",
            f"| one send to a sleeping receiver, then the sleep | {r['wake']:.1f} | "
            f"{r['wake'] / r['busy']:.1f}x |",
            f"| four sends to a sleeping receiver, then the sleep | {r['burst']:.1f} | "
            f"{r['burst'] / r['busy']:.1f}x |",
            "",
            f"- Waking the receiver adds {woken:.0f} µs to a send "
            f"({woken / r['busy']:.0f}x the send itself). A process's own wake-up costs "
            f"{r['sleep']:.0f} µs.",
            f"- In the SFU benchmark, one subscriber process gets about {SFU_BURSTS} bursts "
            f"a second (30 video frames, 50 audio packets). Waking an idle subscriber "
            f"process for each one costs about {per_stream:.4f} core. With one or four "
            "subscribers that is a large part of the SFU's cost per stream; with 32 "
            "subscribers per process a burst wakes each process once for all of them. "
            "Subscribers on other machines would not cost this: sending to a network card "
            "wakes no process here.",
        ]
    )
