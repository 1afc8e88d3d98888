"""Load-test a Pairwise server before a cohort goes live.

    python -m loadtests --url https://mentoring.example.org --admin-key KEY --scenario cohort
    python -m loadtests --url URL --admin-key KEY --scenario my.yaml --set rooms=300
    python -m loadtests --url NODE1 --url NODE2 --admin-key KEY     # several nodes
    python -m loadtests coordinate --workers 3 --url URL --admin-key KEY  # several workers

Exit code: 0 every threshold held, 1 a threshold failed, 2 the run could not start,
130 stopped by Ctrl-C / SIGTERM (the report is written in every case but 2).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from loadtests import report
from loadtests.progress import Progress
from loadtests.runner import Runner, RunResult, SetupError
from loadtests.scenario import ScenarioError, load_scenario

EXIT_PASS, EXIT_FAIL, EXIT_SETUP, EXIT_INTERRUPTED = 0, 1, 2, 130


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests",
        description="Simulate participants against one Pairwise server and report whether "
        "it holds the scenario's thresholds.",
    )
    parser.add_argument(
        "--url",
        required=True,
        action="append",
        help="the server's base URL; give it once per node to test several nodes: each "
        "node's /metrics is then read by its own URL (never through a balancer) and each "
        "room's participants connect to the node that holds it",
    )
    parser.add_argument(
        "--admin-key",
        default=os.environ.get("PAIRWISE_ADMIN_KEY"),
        help="the server's admin key (default: $PAIRWISE_ADMIN_KEY)",
    )
    parser.add_argument(
        "--scenario",
        default="smoke",
        help="smoke, cohort, group, or a path to a YAML file (default: smoke)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="directory for report.json and report.html "
        "(default: loadtest-reports/<scenario>-<time>)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario setting, e.g. rooms=200 or "
        "thresholds.p99_chat_latency_ms=150 (repeatable)",
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="the URL is one node (or the balancer) of several: read the nodes from "
        "/api/v1/nodes, connect each room's participants to its node, scrape every node",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    # Set by `python -m loadtests coordinate` on each of its workers (loadtests/coordinator.py).
    parser.add_argument("--shard", default=None, help="i/n: worker i of n takes rooms i mod n")
    parser.add_argument("--run-id", default=None, help="the distributed run's id")
    parser.add_argument(
        "--report-stdout",
        action="store_true",
        help="also print the report (with raw observations) as one JSON line on stdout",
    )
    return parser.parse_args(argv)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must be i/n, got {text!r}") from None
    if not 0 <= i < n:
        raise ValueError(f"--shard must be i/n with 0 <= i < n, got {text!r}")
    return i, n


async def _run(runner: Runner) -> RunResult:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, runner.request_stop)
    try:
        return await runner.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["coordinate"]:
        from loadtests import coordinator

        return coordinator.main(argv[1:])
    args = parse_args(argv)
    try:
        shard = parse_shard(args.shard)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_SETUP
    urls = [u.rstrip("/") for u in args.url]
    for given, url in zip(args.url, urls, strict=True):
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
            print(f"error: --url must be http(s)://host[:port], got {given!r}", file=sys.stderr)
            return EXIT_SETUP
    if len(set(urls)) < len(urls):
        print("error: the same --url is given twice", file=sys.stderr)
        return EXIT_SETUP
    url = urls[0]
    if not args.admin_key:
        print("error: --admin-key (or PAIRWISE_ADMIN_KEY) is required", file=sys.stderr)
        return EXIT_SETUP
    try:
        scenario = load_scenario(args.scenario, args.set)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_SETUP
    out = args.out or Path("loadtest-reports") / f"{scenario.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    progress = Progress(quiet=args.quiet)
    runner = Runner(
        scenario,
        url,
        args.admin_key,
        progress,
        cluster=args.cluster or len(urls) > 1,
        nodes=urls if len(urls) > 1 else None,
        run_id=args.run_id,
        shard=shard,
    )
    try:
        result = asyncio.run(_run(runner))
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_SETUP
    document = report.build(result)
    json_path, html_path = report.write(document, out)
    if args.report_stdout:
        print(json.dumps(document), flush=True)
    summary = document["summary"]
    chat = summary["chat"]
    print(
        f"{document['verdict'].upper()}: {summary['joins']}/{summary['participants']} joined, "
        f"{chat['messages_sent']} messages sent, {chat['messages_received']} received by "
        f"every member, {chat['lost_messages']} acked and lost, {chat['unacked_messages']} "
        f"never acked, p99 delivery "
        f"{chat['latency_ms']['p99']} ms, {summary['errors']} errors",
        file=sys.stderr,
    )
    for check in document["checks"]:
        if not check["passed"]:
            print(
                f"  failed: {check['name']} {check['comparison']} {check['limit']} "
                f"(measured {check['actual']})",
                file=sys.stderr,
            )
    for kind, count in summary["errors_by_kind"].items():
        print(f"  error {kind}: {count}", file=sys.stderr)
    print(f"report: {html_path}\n        {json_path}", file=sys.stderr)
    if result.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_PASS if document["passed"] else EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
