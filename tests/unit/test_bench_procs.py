"""benchmarks.procs: a server's CPU and memory are its whole process tree's (main and
its media worker processes), CPU including workers that have exited."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil

from benchmarks.procs import TreeCpu, tree_cpu_seconds, tree_rss_bytes

BURN_S = 0.5
# The kernel reports CPU time in clock ticks (10 ms), so a burner's half second can read
# as 0.49: a few ticks short, never a whole burner short.
TICKS = 0.05
BURN = f"""
import sys, time
start = time.process_time()
while time.process_time() - start < {BURN_S}:
    pass
sys.stdout.write("done")
sys.stdout.flush()
sys.stdin.read()
"""

MIB = 100
# Writes every page (a bare bytearray of zeros may stay unmapped), so all are resident.
ALLOCATE = f"""
import sys
held = b"x" * ({MIB} << 20)
sys.stdout.write("done")
sys.stdout.flush()
sys.stdin.read()
"""


def own_cpu() -> float:
    return sum(psutil.Process().cpu_times()[:2])


def test_a_childs_cpu_counts_while_it_runs_and_after_it_is_reaped() -> None:
    before = tree_cpu_seconds(os.getpid()) - own_cpu()
    with TreeCpu(os.getpid(), interval=0.05) as sampled:
        child = subprocess.Popen(
            [sys.executable, "-c", BURN], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert child.stdout is not None and child.stdout.read(4) == b"done"
        running = tree_cpu_seconds(os.getpid()) - own_cpu()
        assert running - before >= BURN_S - TICKS  # the child's half second of CPU
        child.communicate(b"")  # it exits and is reaped
    reaped = tree_cpu_seconds(os.getpid()) - own_cpu()
    assert reaped - before >= BURN_S - TICKS
    first, last = sampled.samples[0], sampled.samples[-1]
    percent = sampled.percent(first[0], last[0])
    assert percent is not None and percent > 0
    assert sampled.percent(last[0] + 1, last[0] + 2) is None  # no samples in that window


def sampled_again(sampled: TreeCpu) -> None:
    """Until `sampled` has taken a sample wholly after now."""
    taken = len(sampled.samples)
    while len(sampled.samples) < taken + 2:
        time.sleep(0.01)


def test_several_servers_cpu_is_summed() -> None:
    burners = [
        subprocess.Popen(
            [sys.executable, "-c", BURN], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        for _ in range(2)
    ]
    try:
        with TreeCpu(*(b.pid for b in burners), interval=0.05) as sampled:
            for burner in burners:
                assert burner.stdout is not None and burner.stdout.read(4) == b"done"
            sampled_again(sampled)
    finally:
        for burner in burners:
            burner.communicate(b"")
    assert sampled.samples[-1][1] >= 2 * (BURN_S - TICKS)  # each one's half second


def test_a_childs_memory_counts_while_it_runs() -> None:
    others = tree_rss_bytes(os.getpid()) - psutil.Process().memory_info().rss
    with TreeCpu(os.getpid(), interval=0.05) as sampled:
        child = subprocess.Popen(
            [sys.executable, "-c", ALLOCATE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            assert child.stdout is not None and child.stdout.read(4) == b"done"
            own = psutil.Process().memory_info().rss
            assert tree_rss_bytes(os.getpid()) - own - others >= MIB << 20
            sampled_again(sampled)
        finally:
            child.communicate(b"")
    peak = sampled.max_rss_mb()
    assert peak is not None and peak >= (own + others) / 2**20 + MIB
