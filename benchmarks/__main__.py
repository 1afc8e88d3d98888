"""Run the benchmarks and write docs/benchmarks.md.

python -m benchmarks              # all of them
python -m benchmarks chat sfu     # some of them (module names)
python -m benchmarks --quick      # smaller sizes, for a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import platform
import re
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
ALL = [
    "chat",
    "sfu",
    "send_floor",
    "receive_cost",
    "rtcp_budget",
    "layer_switch",
    "wakeups",
    "matching",
    "phone",
    "phone_latency",
    "capacity",
    "media_workers",
    "reliability",
    "fuzz",
]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = psutil.virtual_memory().total / 2**30
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"(?m)^<!-- bench:(\w+) -->\n", text)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def write(results: dict[str, str]) -> None:
    existing = _sections(DOC.read_text()) if DOC.exists() else {}
    existing.update(results)
    out = [
        "# Benchmarks\n",
        "Every number here comes from `make bench` (`python -m benchmarks [NAME ...]`),",
        "as a ratio against a baseline measured in the same run. Each section names its",
        "command, its machine and its date.\n",
    ]
    for name in ALL + sorted(set(existing) - set(ALL)):
        if name in existing:
            out.append(f"<!-- bench:{name} -->\n{existing[name].rstrip()}\n")
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text("\n".join(out))


async def main(names: list[str], quick: bool) -> int:
    results: dict[str, str] = {}
    for name in names:
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"benchmarks.{name}":
                print(f"-- {name}: no such benchmark yet, skipped", flush=True)
                continue
            raise
        print(f"== {module.TITLE}", flush=True)
        started = time.monotonic()
        body = await module.run(quick)
        stamp = time.strftime("%Y-%m-%d")
        results[name] = (
            f"## {module.TITLE}\n\n_Measured {stamp} on {machine()}; "
            f"{time.monotonic() - started:.0f} s._\n"
            f"_Reproduce: `.venv/bin/python -m benchmarks {name}`._\n\n{body}"
        )
        print(body, flush=True)
        write(results)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("names", nargs="*", default=ALL)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.names, args.quick)))
