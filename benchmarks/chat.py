"""Chat fan-out: Pairwise against a bare python-socketio echo server, in the same run.

Each room's members all send in a closed loop (next message after the ack) for a fixed
time; the latency of a message is from its emit to its receipt at each other member.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import socketio

from benchmarks.procs import free_port, wait_ready

TITLE = "Chat fan-out"
ROOT = Path(__file__).resolve().parents[1]
ADMIN_KEY = "bench-admin-key-0123456789abcdefghij"


@dataclass
class Tally:
    sent_at: dict[str, float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    delivered: int = 0
    sent: int = 0


def token(url: str, room: str, identity: str) -> str:
    import json

    body = json.dumps({"room": room, "identity": identity, "name": identity, "role": "mentee"})
    req = urllib.request.Request(
        url + "/api/v1/tokens",
        data=body.encode(),
        method="POST",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )
    with urllib.request.urlopen(req) as resp:
        return str(json.loads(resp.read())["token"])


async def member(
    url: str,
    auth: dict[str, Any],
    tally: Tally,
    identity: str,
    stop_at: float,
    started: asyncio.Event,
) -> socketio.AsyncClient:
    client = socketio.AsyncClient(serializer="msgpack", reconnection=False)

    @client.on("chat")
    async def on_chat(data: dict[str, Any]) -> None:
        sent = tally.sent_at.get(data["client_id"])
        if sent is not None and not data["client_id"].startswith(identity + ":"):
            tally.latencies.append(time.perf_counter() - sent)
            tally.delivered += 1

    await client.connect(url, auth=auth, transports=["websocket"])
    await client.call("join", timeout=30)
    return client


async def sender(client: socketio.AsyncClient, identity: str, tally: Tally, stop_at: float) -> None:
    n = 0
    while time.perf_counter() < stop_at:
        client_id = f"{identity}:{n}"
        tally.sent_at[client_id] = time.perf_counter()
        ack = await client.call(
            "chat", {"text": f"message {n}", "client_id": client_id}, timeout=30
        )
        assert "error" not in ack, ack
        tally.sent += 1
        n += 1


async def scenario(
    url: str, rooms: int, per_room: int, seconds: float, pairwise: bool
) -> dict[str, float]:
    tally = Tally()
    clients: list[tuple[socketio.AsyncClient, str]] = []
    for r in range(rooms):
        room = f"bench-{uuid.uuid4().hex[:6]}-{r}"
        for m in range(per_room):
            identity = f"m{r}x{m}"
            auth = (
                {"token": await asyncio.to_thread(token, url, room, identity)}
                if pairwise
                else {"room": room}
            )
            clients.append((await member(url, auth, tally, identity, 0, asyncio.Event()), identity))
    stop_at = time.perf_counter() + seconds
    started = time.perf_counter()
    await asyncio.gather(*(sender(c, i, tally, stop_at) for c, i in clients))
    await asyncio.sleep(0.5)  # let the last deliveries arrive
    elapsed = time.perf_counter() - started
    for client, _ in clients:
        await client.disconnect()
    lat = np.array(tally.latencies) * 1000
    expected = tally.sent * (per_room - 1)
    return {
        "sent_per_s": tally.sent / elapsed,
        "delivered_per_s": tally.delivered / elapsed,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "lost": expected - tally.delivered,
    }


def start(cmd: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_ready(f"http://127.0.0.1:{port}", proc, path="/healthz")
    return proc


async def run(quick: bool) -> str:
    seconds = 3.0 if quick else 8.0
    shapes = [(1, 8), (100, 2)] if not quick else [(1, 8), (20, 2)]
    rows = []
    with tempfile.TemporaryDirectory() as data:
        for rooms, per_room in shapes:
            results = {}
            for name in ("floor", "pairwise"):
                port = free_port()
                if name == "floor":
                    cmd = [sys.executable, "-m", "benchmarks.floor_server", str(port)]
                    env = dict(os.environ)
                else:
                    cmd = [sys.executable, "-m", "server", "serve"]
                    env = {
                        **os.environ,
                        "PAIRWISE_PORT": str(port),
                        "PAIRWISE_ADMIN_KEY": ADMIN_KEY,
                        "PAIRWISE_SECRET_KEY": "bench-secret-0123456789abcdefghijklmn",
                        "PAIRWISE_DATA_DIR": f"{data}/{port}",
                        "PAIRWISE_LOG_LEVEL": "WARNING",
                        "PAIRWISE_CHAT_RATE_PER_SECOND": "100000",
                        "PAIRWISE_CHAT_BURST": "100000",
                        "PAIRWISE_EVENTS_RATE_PER_SECOND": "100000",
                        "PAIRWISE_EVENTS_BURST": "100000",
                    }
                proc = start(cmd, env, port)
                try:
                    results[name] = await scenario(
                        f"http://127.0.0.1:{port}", rooms, per_room, seconds, name == "pairwise"
                    )
                finally:
                    proc.terminate()
                    proc.wait(10)
            f, p = results["floor"], results["pairwise"]
            rows.append(
                f"| {rooms} × {per_room} | {f['delivered_per_s']:.0f} | {p['delivered_per_s']:.0f} | "
                f"{f['delivered_per_s'] / p['delivered_per_s']:.2f}x | {f['p50_ms']:.1f} / {f['p99_ms']:.1f} | "
                f"{p['p50_ms']:.1f} / {p['p99_ms']:.1f} | {p['p99_ms'] / f['p99_ms']:.2f}x | {p['lost']} |"
            )
    return "\n".join(
        [
            f"Every member sends in a closed loop for {seconds:.0f} s; latency is emit → receipt at each",
            "other member. Floor: a bare python-socketio echo server (msgpack, WebSocket, no auth, no",
            "validation, no storage). Pairwise stores every message (SQLite, WAL) before its ack and",
            "fan-out. Server and load in separate processes on the same 2 cores.",
            "",
            "| rooms × members | floor deliveries/s | Pairwise deliveries/s | floor/Pairwise | floor p50/p99 ms | Pairwise p50/p99 ms | p99 ratio | Pairwise lost |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
            "Target (issue 3): within 2x of the floor.",
        ]
    )
