"""benchmarks.procs: a server's CPU is its whole process tree's (main and its media
worker processes), including workers that have exited."""

from __future__ import annotations

import os
import subprocess
import sys

import psutil

from benchmarks.procs import TreeCpu, tree_cpu_seconds

BURN = """
import sys, time
start = time.process_time()
while time.process_time() - start < 0.5:
    pass
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
        assert running - before >= 0.5  # the child's half second of CPU
        child.communicate(b"")  # it exits and is reaped
    reaped = tree_cpu_seconds(os.getpid()) - own_cpu()
    assert reaped - before >= 0.5
    first, last = sampled.samples[0], sampled.samples[-1]
    percent = sampled.percent(first[0], last[0])
    assert percent is not None and percent > 0
    assert sampled.percent(last[0] + 1, last[0] + 2) is None  # no samples in that window
