"""Distributed load generation: one coordinator, several load-tool workers, one report.

    python -m loadtests coordinate --workers 3 --url URL --admin-key KEY --scenario cohort
    python -m loadtests coordinate --workers 2 \\
        --worker-command 'ssh loadgen{i} cd /srv/pairwise && .venv/bin/python -m loadtests' \\
        --url URL --admin-key KEY --scenario cohort --set rooms=2000

Every option the coordinator does not know is passed to each worker unchanged. Worker i
runs `--shard i/N` (the rooms whose number is i modulo N) of one run (`--run-id`), and
prints its report (with its raw observations) on its standard output; the coordinator
merges them (`loadtests.merge`) and writes one report. Without `--worker-command` the
workers are local processes (`{i}` in the command is the worker's number; the command is
run by the shell, so ssh or any launcher works).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

from loadtests import report
from loadtests.merge import MergeError, merge

EXIT_PASS, EXIT_FAIL, EXIT_SETUP, EXIT_INTERRUPTED = 0, 1, 2, 130


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests coordinate",
        description="Run one scenario from several load-tool workers and merge their reports.",
    )
    parser.add_argument("--workers", type=int, required=True, help="how many workers")
    parser.add_argument(
        "--worker-command",
        default=None,
        help="shell command that starts the load tool for worker {i} (default: this "
        "Python, locally)",
    )
    parser.add_argument("--out", type=Path, default=None, help="directory for the merged report")
    return parser.parse_known_args(argv)


def worker_command(template: str | None, i: int, n: int, run_id: str, rest: list[str]) -> list[str]:
    args = [*rest, "--shard", f"{i}/{n}", "--run-id", run_id, "--report-stdout", "--quiet"]
    if template is None:
        return [sys.executable, "-m", "loadtests", *args]
    return ["/bin/sh", "-c", f"{template.format(i=i)} {shlex.join(args)}"]


async def _worker(command: list[str]) -> tuple[int, dict[str, Any] | None, str]:
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        stdout, stderr = await proc.communicate()
    except asyncio.CancelledError:
        proc.terminate()  # the worker stops sending, drains and still reports
        stdout, stderr = await proc.communicate()
    document = None
    for line in reversed(stdout.decode().splitlines()):
        if line.startswith("{"):
            document = json.loads(line)
            break
    return proc.returncode or 0, document, stderr.decode()


async def _run(commands: list[list[str]]) -> list[tuple[int, dict[str, Any] | None, str]]:
    tasks = [asyncio.create_task(_worker(c)) for c in commands]
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    while not all(t.done() for t in tasks) and not stop.is_set():
        await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    if stop.is_set():
        for task in tasks:
            task.cancel()
    stopper.cancel()
    results = []
    for task in tasks:
        try:
            results.append(await task)
        except asyncio.CancelledError:
            results.append((EXIT_INTERRUPTED, None, "stopped"))
    return results


def main(argv: list[str]) -> int:
    args, rest = parse_args(argv)
    if args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return EXIT_SETUP
    if any(a in ("--shard", "--run-id", "--report-stdout") for a in rest):
        print("error: the coordinator sets --shard, --run-id and --report-stdout", file=sys.stderr)
        return EXIT_SETUP
    run_id = time.strftime("%m%d%H%M") + secrets.token_hex(2)
    commands = [
        worker_command(args.worker_command, i, args.workers, run_id, rest)
        for i in range(args.workers)
    ]
    print(f"run {run_id}: {args.workers} workers", file=sys.stderr)
    results = asyncio.run(_run(commands))
    documents = []
    for i, (code, document, stderr) in enumerate(results):
        if document is None:
            tail = stderr.strip().splitlines()[-1:] or [f"exit {code}"]
            print(f"error: worker {i} gave no report: {tail[0]}", file=sys.stderr)
            return EXIT_SETUP if code == EXIT_SETUP else EXIT_FAIL
        documents.append(document)
    try:
        merged = merge(documents)
    except MergeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_SETUP
    name = merged["scenario"]["name"]
    out = args.out or Path("loadtest-reports") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    json_path, html_path = report.write(merged, out)
    summary, chat = merged["summary"], merged["summary"]["chat"]
    print(
        f"{merged['verdict'].upper()}: {summary['joins']}/{summary['participants']} joined "
        f"from {args.workers} workers, {chat['messages_sent']} messages sent, "
        f"{chat['lost_messages']} acked and lost, {chat['unacked_messages']} never acked, "
        f"p99 delivery {chat['latency_ms']['p99']} ms",
        file=sys.stderr,
    )
    for check in merged["checks"]:
        if not check["passed"]:
            print(
                f"  failed: {check['name']} {check['comparison']} {check['limit']} "
                f"(measured {check['actual']})",
                file=sys.stderr,
            )
    print(f"report: {html_path}\n        {json_path}", file=sys.stderr)
    if merged["interrupted"]:
        return EXIT_INTERRUPTED
    return EXIT_PASS if merged["passed"] else EXIT_FAIL
