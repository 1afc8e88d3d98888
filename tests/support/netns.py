"""The project's own test hosts: a network namespace joined to this machine by a veth pair.

Faults are made with nftables (this kernel has no netem): drop all UDP, drop a random
share of packets; `tc tbf` caps the rate. The rules drop where a packet enters a side of
the veth pair (an `ingress` hook on each end), as a network does: silently. Dropped in the
namespace's `output` hook instead, a packet failed its sender's `sendto` with EPERM, and
Chromium sent it again: "5 % loss both ways" lost 0.1-0.3 % of bo's video uplink (the
SFU's NACKs over 15 s), 4.2-4.9 % when dropped on the wire. Addresses come from
10.203.0.0/16, used only between this machine and namespaces the test created.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass

from tests.support.services import missing


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=20)


@dataclass
class TestHost:
    __test__ = False  # a namespace for tests, not a test class for pytest to collect

    name: str
    host_ip: str  # this machine's end of the veth pair
    ns_ip: str  # the namespace's end
    host_if: str
    ns_if: str

    def exec_args(self, *command: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *command]

    def nft(self, rules: str) -> None:
        """Replace the fault rules with `rules` (one rule per line), applied to packets
        entering the namespace and leaving it: a blocked or lossy network hurts both ways.
        Each side's rules hook its own end of the veth pair, so what is dropped is dropped
        on the wire, unknown to the sender."""
        lines = "".join(f"    {line}\n" for line in rules.strip().splitlines() if line.strip())
        self._ingress(self.exec_args("nft", "-f", "-"), self.ns_if, lines)  # into the namespace
        self._ingress(["nft", "-f", "-"], self.host_if, lines)  # out of it

    def _ingress(self, nft: list[str], device: str, lines: str) -> None:
        """`lines` as the only rules of the table `fault_<device>` hooking `device`'s
        ingress (created if missing, replaced whole: one transaction)."""
        table = f"netdev fault_{device}"
        chain = f'type filter hook ingress device "{device}" priority 0;'
        script = f"table {table} {{}}\ndelete table {table}\n"
        script += f"table {table} {{\n  chain in {{\n    {chain}\n{lines}  }}\n}}\n"
        subprocess.run(nft, input=script.encode(), check=True, capture_output=True, timeout=20)

    def _unfault(self) -> None:
        for nft, device in ((self.exec_args("nft"), self.ns_if), (["nft"], self.host_if)):
            args = [*nft, "delete", "table", "netdev", f"fault_{device}"]
            subprocess.run(args, capture_output=True, timeout=20)

    def block_udp(self) -> None:
        self.nft("meta l4proto udp drop")

    def drop_random(self, percent: int) -> None:
        self.nft(f"numgen random mod 100 < {percent} drop")

    def limit_rate(self, kbit: int, uplink: bool = True) -> None:
        """Cap both directions of the veth pair with a token-bucket filter (`uplink`
        False: only what enters the namespace)."""
        tbf = ("root", "tbf", "rate", f"{kbit}kbit", "burst", "32kbit", "latency", "400ms")
        if uplink:
            _run(*self.exec_args("tc", "qdisc", "replace", "dev", self.ns_if, *tbf))
        _run("tc", "qdisc", "replace", "dev", self.host_if, *tbf)

    def heal(self) -> None:
        self._unfault()
        for args in (
            self.exec_args("tc", "qdisc", "del", "dev", self.ns_if, "root"),
            ["tc", "qdisc", "del", "dev", self.host_if, "root"],
        ):
            subprocess.run(args, capture_output=True, timeout=20)

    def remove(self) -> None:
        """Stop what still runs inside (a browser, a client) while the veth pair is up, so
        its connections end with a FIN the server sees; deleting the namespace first left
        them open, and the server's shutdown waited ~30 s per test for them."""
        self.heal()
        self._stop_processes()
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=20)
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, timeout=20)

    def _pids(self) -> list[int]:
        listed = subprocess.run(
            ["ip", "netns", "pids", self.name], capture_output=True, text=True, timeout=20
        )
        return [int(pid) for pid in listed.stdout.split()]

    def _stop_processes(self) -> None:
        for pid in self._pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # SIGKILL ends them at once, but their exit is reaped asynchronously.
        deadline = time.monotonic() + 10
        while self._pids() and time.monotonic() < deadline:
            time.sleep(0.05)


def create_test_host() -> TestHost:
    """A new namespace with a veth pair; fails the test in CI when it cannot be made."""
    for program in ("ip", "nft", "tc"):
        if shutil.which(program) is None:
            missing(f"program {program}")
    if os.geteuid() != 0:
        missing("root (network namespaces)")
    # A random /30 of 10.203.0.0/16, and another when its veth names are taken: another
    # test process on this machine (a second run, a helper's) may hold that block.
    for _ in range(8):
        host = _make_test_host(random.randrange(16384))
        if host is not None:
            return host
    missing("network namespaces (no free address block after 8 tries)")


def _make_test_host(n: int) -> TestHost | None:
    """The namespace on block `n`, or None when another process holds that block."""
    prefix = f"10.203.{n // 64}"
    host_ip, ns_ip = f"{prefix}.{(n % 64) * 4 + 1}", f"{prefix}.{(n % 64) * 4 + 2}"
    name = f"pwtest{os.getpid()}x{n}"
    host_if, ns_if = f"pwh{n}", f"pwn{n}"
    try:
        _run("ip", "netns", "add", name)
        _run("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
    except subprocess.CalledProcessError as exc:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        if b"File exists" in exc.stderr:
            return None
        missing(f"network namespaces ({exc.stderr.decode(errors='replace').strip()})")
    try:
        _run("ip", "link", "set", ns_if, "netns", name)
        _run("ip", "addr", "add", f"{host_ip}/30", "dev", host_if)
        _run("ip", "link", "set", host_if, "up")
        _run("ip", "netns", "exec", name, "ip", "addr", "add", f"{ns_ip}/30", "dev", ns_if)
        _run("ip", "netns", "exec", name, "ip", "link", "set", ns_if, "up")
        _run("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
    except subprocess.CalledProcessError as exc:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        missing(f"network namespaces ({exc.stderr.decode(errors='replace').strip()})")
    return TestHost(name, host_ip, ns_ip, host_if, ns_if)
