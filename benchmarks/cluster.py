"""Cluster: rooms held by one node against two (sharing Redis and PostgreSQL), and a node
killed mid-run (recovery time, messages lost).

Each size gets fresh server processes and a fresh PostgreSQL database; the load tool
(`python -m loadtests`, `--url` once per node) runs in its own process, so every node's
`/metrics` is read by its own URL. The one-node baseline is the same cluster
configuration (Redis, PostgreSQL) with one node, measured in the same run. A node's CPU
is its whole process tree's (main and its media worker processes, `TreeCpu`), not the
main process's alone that its /metrics reports.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.capacity import (
    ADMIN_KEY,
    ROOT,
    SECRET_KEY,
    _busy,
    _f,
    _steady,
    load_command,
)
from benchmarks.procs import TreeCpu, free_port, wait_media_workers, wait_ready
from loadtests.metrics_scraper import parse

TITLE = "Cluster: one node against two, and a node killed mid-run"
REDIS_URL = "redis://127.0.0.1:6379/0"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
QUICK = ([10, 20], 5.0, 4)
FULL = ([10, 25, 50, 100, 200, 400], 20.0, 8)  # chat room sizes, steady seconds, recovery rooms


@asynccontextmanager
async def _database() -> AsyncIterator[str]:
    import asyncpg

    name = f"pw_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        admin = await asyncpg.connect(PG_ADMIN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@dataclass
class Node:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path
    start_s: float = 0.0


def _spawn(work: Path, database: str, cluster: str) -> Node:
    port = free_port()
    data = work / f"node-{port}"
    data.mkdir(parents=True)
    env = {
        **os.environ,
        "PAIRWISE_ADMIN_KEY": ADMIN_KEY,
        "PAIRWISE_SECRET_KEY": SECRET_KEY,
        "PAIRWISE_DATA_DIR": str(data),
        "PAIRWISE_PORT": str(port),
        "PAIRWISE_LOG_LEVEL": "WARNING",
        "PAIRWISE_TOKENS_PER_MINUTE": "100000",
        # Every simulated participant comes from 127.0.0.1: the per-address socket cap (50)
        # would be the limit measured, not the node.
        "PAIRWISE_CONNECTIONS_PER_ADDRESS": "100000",
        "PAIRWISE_REDIS_URL": REDIS_URL,
        "PAIRWISE_DATABASE_URL": database,
        "PAIRWISE_CLUSTER": cluster,
        "PAIRWISE_HEARTBEAT_SECONDS": "0.5",
        "PAIRWISE_NODE_TTL_SECONDS": "2",
    }
    log = data / "server.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server", "serve"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Node(proc, f"http://127.0.0.1:{port}", log)


def _stop(nodes: list[Node]) -> None:
    for node in nodes:
        if node.proc.poll() is None:
            node.proc.terminate()
    for node in nodes:
        try:
            node.proc.wait(15)
        except subprocess.TimeoutExpired:
            node.proc.kill()
            node.proc.wait()


@asynccontextmanager
async def _nodes(count: int, work: Path) -> AsyncIterator[list[Node]]:
    """`count` nodes of one new cluster on a fresh database, started together and each
    waited for until ready (however long a busy machine makes that; `wait_ready`)."""
    async with _database() as database:
        cluster = f"b{uuid.uuid4().hex[:8]}"
        nodes = [_spawn(work, database, cluster) for _ in range(count)]
        try:
            # The first start migrates the fresh database; the others wait on its lock.
            waits = [asyncio.to_thread(wait_ready, n.url, n.proc, n.log) for n in nodes]
            for node, seconds in zip(nodes, await asyncio.gather(*waits), strict=True):
                node.start_s = seconds
            # Their media workers too: a worker starting during the run is not its load.
            await asyncio.gather(*(asyncio.to_thread(wait_media_workers, n.url) for n in nodes))
            yield nodes
        finally:
            await asyncio.to_thread(_stop, nodes)


def _command(
    urls: list[str], rooms: int, duration_s: float, out: Path, extra: list[str]
) -> list[str]:
    command = load_command(urls[0], rooms, duration_s, out, extra)
    for url in urls[1:]:
        command += ["--url", url]
    return command


async def _tool(command: list[str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *command, cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await proc.communicate()
    return proc.returncode or 0, stderr.decode()


async def step(nodes: int, rooms: int, duration_s: float, work: Path) -> dict[str, Any]:
    """One size on `nodes` fresh nodes: the cohort scenario and its verdict."""
    out = work / f"report-{nodes}n-{rooms}"
    async with _nodes(nodes, work) as started:
        with TreeCpu(*(n.proc.pid for n in started)) as tree_cpu:
            command = _command([n.url for n in started], rooms, duration_s, out, [])
            _, stderr = await _tool(command)
        load_average = os.getloadavg()[0]
        start_s = max(n.start_s for n in started)
    if not (out / "report.json").exists():
        raise RuntimeError(f"loadtests wrote no report:\n{stderr[-2000:]}")
    report = json.loads((out / "report.json").read_text())
    summary, chat = report["summary"], report["summary"]["chat"]
    return {
        "nodes": nodes,
        "rooms": rooms,
        "participants": summary["participants"],
        "passed": report["passed"],
        "failed": [c["name"] for c in report["checks"] if not c["passed"]],
        "joined": summary["joins"],
        "lost": chat["lost_messages"],
        "p99": chat["latency_ms"]["p99"],
        "cpu": tree_cpu.percent(*_steady(report)),
        "server_wait": None,
        "load_wait": summary["load_generator"]["mean_cpu_wait_percent"],
        "load_average": load_average,
        "start_s": start_s,
    }


async def series(sizes: list[int], duration_s: float, work: Path) -> list[dict[str, Any]]:
    """Each size on one node and then on two, back to back, so both see the same machine
    (it is shared with other work: a run minutes later is not comparable). A node count
    stops after its second failing size; the other goes on until it fails twice too."""
    results: list[dict[str, Any]] = []
    for rooms in sizes:
        for nodes in (1, 2):
            if sum(not r["passed"] for r in results if r["nodes"] == nodes) >= 2:
                continue
            result = await step(nodes, rooms, duration_s, work)
            print(
                f"  {nodes} node(s), {rooms} rooms: {'holds' if result['passed'] else 'fails'};"
                f" p99 {_f(result['p99'], 1)} ms; ready in {result['start_s']:.1f} s; "
                f"load average {result['load_average']:.1f}",
                flush=True,
            )
            results.append(result)
        if all(sum(not r["passed"] for r in results if r["nodes"] == n) >= 2 for n in (1, 2)):
            break
    return results


def _metrics(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    values = parse(text)
    chat = [line for line in text.splitlines() if line.startswith("pairwise_chat_messages_total")]
    values["chat_messages"] = float(chat[0].split()[-1]) if chat else 0.0
    return values


async def recovery(rooms: int, work: Path) -> dict[str, Any]:
    """Two nodes, chat flowing; the node the tool was not pointed at first is killed
    (SIGKILL) once it holds participants. The tool's report gives recovery and losses."""
    out = work / "report-recovery"
    async with _nodes(2, work) as (node_a, node_b):
        a, b = node_a.url, node_b.url
        command = _command(
            [a, b],
            rooms,
            20.0,
            out,
            ["thresholds.errors=null", "thresholds.p99_chat_latency_ms=null"],
        )
        tool = asyncio.create_task(_tool(command))
        killed = 0
        # Until the tool ends (its run has a fixed length), however slow the ramp-up.
        while not tool.done():
            try:
                on_b, on_a = (
                    await asyncio.to_thread(_metrics, b),
                    await asyncio.to_thread(_metrics, a),
                )
            except OSError:
                on_b, on_a = {}, {}
            if on_b.get("participants", 0) >= 2 and on_a.get("chat_messages", 0) >= 10:
                killed = int(on_b["participants"])
                node_b.proc.send_signal(signal.SIGKILL)
                break
            await asyncio.sleep(0.2)
        _, stderr = await tool
    if not (out / "report.json").exists():
        raise RuntimeError(f"loadtests wrote no report:\n{stderr[-2000:]}")
    if not killed:
        raise RuntimeError(
            f"{b} never held participants while chat flowed on {a}, so it was not killed"
        )
    summary = json.loads((out / "report.json").read_text())["summary"]
    return {"rooms": rooms, "killed": killed, "summary": summary}


def _held(results: list[dict[str, Any]]) -> dict[str, Any] | None:
    best = None
    for r in results:
        if not r["passed"]:
            break
        best = r
    return best


def _rooms(r: dict[str, Any] | None) -> str:
    return "no size" if r is None else f"{r['rooms']} rooms ({r['participants']} participants)"


def _ratio(top: float | None, bottom: float | None) -> str:
    return "—" if not top or not bottom else f"{top / bottom:.2f}"


def render(results: list[dict[str, Any]], rec: dict[str, Any], duration_s: float,
           quick: bool) -> str:  # fmt: skip
    lines = [
        "The built-in `cohort` scenario (a mentor and a mentee per room, a chat message each "
        "every 5 s; p99 delivery ≤ 200 ms, p99 join ≤ 2 s, nothing lost, no errors), "
        f"{duration_s:g} s steady, against one node and against two nodes sharing Redis and "
        "PostgreSQL, fresh nodes and database per size, all on this machine with the load "
        "tool (`--url` once per node). Each size runs on one node and then on two, back to "
        "back, so both see the same machine; sizes step up until each count fails twice. "
        "*p99 ratio*: one node's p99 delivery over two nodes' at the same size (above 1: two "
        "nodes deliver faster); *server CPU*: every node's whole process tree (main and media "
        "worker processes); *CPU ratio*: two nodes' server CPU over one node's (what the "
        "second node and Redis between them cost). *Load avg*: the machine's 1-minute load average at the end "
        "of the size (2 cores; other work shares them). Needs Redis on 127.0.0.1:6379 and "
        "PostgreSQL on 127.0.0.1:5432.",
        "",
        "| rooms | participants | nodes | verdict | p99 delivery ms | lost | server CPU % "
        "(all nodes, steady) | load tool CPU wait % | ready in s | load avg | p99 ratio | "
        "CPU ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    by_size: dict[int, dict[int, dict[str, Any]]] = {}
    for r in results:
        by_size.setdefault(r["rooms"], {})[r["nodes"]] = r
    for rooms, pair in by_size.items():
        both = len(pair) == 2
        ratio = _ratio(pair[1]["p99"], pair[2]["p99"]) if both else "—"
        cpu = _ratio(pair[2]["cpu"], pair[1]["cpu"]) if both else "—"
        for r in pair.values():
            verdict = "holds" if r["passed"] else "fails: " + ", ".join(r["failed"])
            if not r["passed"] and _busy(r):
                verdict += " — **machine busy**"
            lines.append(
                f"| {rooms} | {r['participants']} | {r['nodes']} | {verdict} | "
                f"{_f(r['p99'], 1)} | {r['lost']} | {_f(r['cpu'])} | {_f(r['load_wait'])} | "
                f"{r['start_s']:.0f} | {r['load_average']:.1f} | "
                + (f"{ratio} | {cpu} |" if r["nodes"] == 2 else " | |")
            )
    a = _held([r for r in results if r["nodes"] == 1])
    b = _held([r for r in results if r["nodes"] == 2])
    lines += [
        "",
        f"**Held: one node {_rooms(a)}, two nodes {_rooms(b)}: "
        f"ratio {_ratio(b['rooms'] if b else None, a['rooms'] if a else None)}.** On one 2-core "
        "machine the two "
        "nodes and the load tool share its cores (and other work, when the load average is "
        "above 2); nodes on machines of their own add their cores.",
        "",
        "### A node killed mid-run",
        "",
    ]
    s = rec["summary"]
    chat, recovered = s["chat"], s.get("recovery") or {}
    ms = recovered.get("recovery_ms") or {}
    lines += [
        f"{rec['rooms']} rooms on two nodes, chat flowing; the second node is killed "
        "(SIGKILL) once it holds participants; node TTL 2 s, heartbeat 0.5 s.",
        "",
        "| measure | result |",
        "| --- | --- |",
        f"| participants on the killed node | {rec['killed']} |",
        f"| reconnected to the live node | {recovered.get('reconnected', 0)} |",
        f"| recovery time (loss → join ack) | median {_f(ms.get('p50'))} ms, max "
        f"{_f(ms.get('max'))} ms |",
        f"| messages acked | {chat['messages_sent'] - chat['unacked_messages']} |",
        f"| acked and lost (must be 0) | {chat['lost_messages']} |",
        f"| never acked (in flight at the kill) | {chat['unacked_messages']} |",
    ]
    if quick:
        lines.append("\n_Quick mode: small sizes, short runs; not a capacity figure._")
    return "\n".join(lines)


async def run(quick: bool) -> str:
    sizes, duration_s, rooms = QUICK if quick else FULL
    with tempfile.TemporaryDirectory(prefix="pairwise-cluster-") as tmp:
        work = Path(tmp)
        results = await series(sizes, duration_s, work)
        rec = await recovery(rooms, work)
    return render(results, rec, duration_s, quick)
