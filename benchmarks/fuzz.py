"""Fuzzing figures: cases thrown at each entry point, and what broke (nothing may).

Runs the project's own fuzz tests with more examples than `make test` uses.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from pathlib import Path

TITLE = "Fuzzing: cases per entry point"
ROOT = Path(__file__).resolve().parents[1]

TARGETS = [
    (
        "Socket.IO event payloads (hypothesis, real server)",
        "tests/integration/test_fuzz_events.py",
        "PAIRWISE_FUZZ_EXAMPLES",
    ),
    (
        "SDP offers to the SFU (hypothesis mutations of a real offer, real server)",
        "tests/integration/test_fuzz_sdp.py",
        "PAIRWISE_FUZZ_EXAMPLES",
    ),
    (
        "SIP messages: garbage, truncation, corruption (hypothesis, parser)",
        "tests/unit/phone/test_sip.py",
        "PAIRWISE_FUZZ_EXAMPLES",
    ),
    (
        "REST API from /api/openapi.json (schemathesis, real server)",
        "tests/integration/test_api_fuzz.py",
        "PAIRWISE_FUZZ_EXAMPLES",
    ),
]


async def _pytest(path: str, env: dict[str, str]) -> tuple[int, str, float]:
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        path,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace"), time.monotonic() - started


async def run(quick: bool) -> str:
    examples = 200 if quick else 1000
    rows = []
    for name, path, variable in TARGETS:
        per_target = examples if "schemathesis" not in name else examples // 10
        code, out, seconds = await _pytest(path, {variable: str(per_target)})
        passed = re.search(r"(\d+) passed", out)
        failed = re.search(r"(\d+) failed", out)
        verdict = (
            "0 crashes, 0 failures"
            if code == 0
            else f"FAILED ({failed.group(1) if failed else '?'})"
        )
        cases = f"{per_target}" + (
            " per operation" if "schemathesis" in name else " per property" if "SIP" in name else ""
        )
        rows.append(
            f"| {name} | {cases} | {passed.group(1) if passed else 0} | {verdict} | {seconds:.0f} s |"
        )
    return "\n".join(
        [
            "Each target's fuzz test run with more examples than `make test` uses; a failure is any",
            "crash, 500, error ack with an unknown code, stored garbage, or a server that stops",
            "answering afterwards.",
            "",
            "| target | cases | tests | result | time |",
            "| --- | --- | --- | --- | --- |",
            *rows,
        ]
    )
