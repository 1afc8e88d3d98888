"""Faults survived: what each fault did to media, how long stepping down and recovering
took, and whether chat lost anything (every acked message stored, none twice).

Network faults run in a network namespace with a veth pair (tests/reliability/harness.py:
the same scenarios as tests/reliability/test_network_faults.py). The Redis outage and the
node kill run real server processes on PostgreSQL and a Redis started here, like
tests/integration/test_cluster.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_cluster import cluster_env
from tests.reliability.harness import fault_room, write_frames
from tests.support.participants import SocketParticipant, issue_token
from tests.support.process import ServerProcess
from tests.support.services import free_port, fresh_postgres_database, require_program

TITLE = "Reliability: faults survived"

LADDER = ["video", "audio", "text"]


@dataclass
class Outcome:
    fault: str
    effect: str = ""
    down_s: float | None = None
    recover_s: float | None = None
    acked: int = 0
    stored: int = 0
    missing: int = 0
    duplicates: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def survived(self) -> bool:
        return self.acked > 0 and self.missing == 0 and self.duplicates == 0


# -- network faults ------------------------------------------------------------------------


async def network_fault(fault: str, label: str, frames: Path, hold: float) -> Outcome:
    outcome = Outcome(label)
    with tempfile.TemporaryDirectory() as tmp:
        async with fault_room(Path(tmp), frames) as room:
            started = room.apply(fault)
            losses: list[float] = []
            down = None
            while time.time() - started < hold:
                await asyncio.sleep(1)
                losses.append((await room.stats())["loss_percent"])
                steps = [
                    m
                    for m in room.modes_since(started)
                    if LADDER.index(m.mode) > LADDER.index(m.previous)
                ]
                if steps and down is None:
                    down = steps[0]
                    outcome.down_s = down.at - started
                    hold = min(hold, outcome.down_s + 3)  # stay down a while, then heal
            healed = room.heal()
            back = None
            if room.modes_since(started):
                with contextlib.suppress(AssertionError):
                    back = await room.wait_mode(healed, lambda m: m.mode == "video", 30)
                    outcome.recover_s = back.at - healed
            changes = ", ".join(
                f"{m.previous}→{m.mode} ({m.reason}, {m.at - started:.1f} s)"
                for m in room.modes_since(started)
            )
            outcome.effect = changes or "stayed on video"
            outcome.notes.append(
                f"SFU-measured inbound loss during the fault up to {max(losses):.0f} %"
            )
            if room.modes_since(started) and back is None:
                outcome.notes.append("did not come back to video within 30 s")
            chat = await room.chat_outcome()
            outcome.acked, outcome.stored = len(chat.acked), len(chat.stored)
            outcome.missing, outcome.duplicates = len(chat.missing), len(chat.duplicates)
            if chat.retries:
                outcome.notes.append(f"{chat.retries} chat sends retried after a timeout")
    return outcome


# -- Redis outage and node kill --------------------------------------------------------------


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, None
    except OSError:
        return 0, None


class Chatter:
    """Sends a message every `interval`, keeping each client_id until it is acked, and
    resending pending ones after a reconnect (the protocol's client life)."""

    def __init__(self, identity: str, interval: float = 0.25) -> None:
        self.identity = identity
        self.interval = interval
        self.acked: list[str] = []
        self.socket: SocketParticipant | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def attach(self, url: str, room: str) -> None:
        token = await asyncio.to_thread(issue_token, url, room, self.identity)
        self.socket = await SocketParticipant(url, token).connect()
        await self.socket.join()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            client_id = f"{self.identity}-{n}-{uuid.uuid4().hex[:6]}"
            while not self._stop.is_set():
                socket = self.socket
                try:
                    assert socket is not None and socket.sio.connected
                    ack = await socket.chat(f"message {n}", client_id)
                    if "id" in ack:
                        self.acked.append(client_id)
                        break
                except Exception:
                    pass
                await asyncio.sleep(0.2)  # disconnected: wait for attach() to reconnect
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def history(self) -> list[str]:
        assert self.socket is not None
        page = await self.socket.call("history", {"limit": 200})
        return [m["client_id"] for m in page["messages"]]


def _placement(url: str, token: str) -> str:
    """The URL of the node the room lives on, as a client asks for it."""
    request = urllib.request.Request(
        url + "/api/v1/rooms/pair-kill/node", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        return str(json.loads(resp.read())["url"])


def _outcome(label: str, acked: list[str], stored: list[str]) -> Outcome:
    outcome = Outcome(label, acked=len(acked), stored=len(stored))
    outcome.missing = len(set(acked) - set(stored))
    outcome.duplicates = len(stored) - len(set(stored))
    return outcome


async def _wait_status(url: str, want: int, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if (await asyncio.to_thread(_get, url))[0] == want:
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{url} never answered {want}")


async def redis_outage(tmp: Path, database_url: str) -> Outcome:
    redis_server = require_program("redis-server")
    tmp.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before anything runs
    port = free_port()
    command = [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--dir", str(tmp)]
    redis = await asyncio.to_thread(subprocess.Popen, command, stdout=subprocess.DEVNULL)
    node = ServerProcess(tmp / "node", env=cluster_env(f"redis://127.0.0.1:{port}/0", database_url))
    try:
        await asyncio.sleep(0.5)
        await asyncio.to_thread(node.start)
        await _wait_status(node.url + "/readyz", 200, 20)
        ada = Chatter("ada")
        await ada.attach(node.url, "pair-redis")
        ada.start()
        await asyncio.sleep(2)
        redis.kill()
        redis.wait()
        not_ready = await _wait_status(node.url + "/readyz", 503, 20)
        await asyncio.sleep(3)
        redis = await asyncio.to_thread(subprocess.Popen, command, stdout=subprocess.DEVNULL)
        ready = await _wait_status(node.url + "/readyz", 200, 30)
        await asyncio.sleep(2)
        await ada.stop()
        outcome = _outcome("Redis outage (3 s)", ada.acked, await ada.history())
        outcome.effect = "node reported not-ready, kept serving its room, ready again"
        outcome.down_s, outcome.recover_s = not_ready, ready
        await ada.socket.close()  # type: ignore[union-attr]
        return outcome
    finally:
        redis.kill()
        redis.wait()
        await asyncio.to_thread(node.stop)


async def node_kill(tmp: Path, database_url: str) -> Outcome:
    from tests.support.services import require_redis

    env = cluster_env(require_redis(), database_url)
    nodes = [ServerProcess(tmp / f"node{i}", env=env) for i in range(2)]
    try:
        for node in nodes:
            await asyncio.to_thread(node.start)
        token = await asyncio.to_thread(issue_token, nodes[0].url, "pair-kill", "ada")
        home_url = await asyncio.to_thread(_placement, nodes[0].url, token)
        home = next(n for n in nodes if n.url == home_url)
        other = next(n for n in nodes if n is not home)
        ada = Chatter("ada")
        await ada.attach(home.url, "pair-kill")
        ada.start()
        await asyncio.sleep(2)
        killed = time.monotonic()
        await asyncio.to_thread(home.kill)
        while await asyncio.to_thread(_placement, other.url, token) != other.url:
            if time.monotonic() - killed > 30:
                raise TimeoutError("the room was never re-placed")
            await asyncio.sleep(0.2)
        await ada.attach(other.url, "pair-kill")
        rejoined = time.monotonic() - killed
        await asyncio.sleep(2)
        await ada.stop()
        outcome = _outcome("Node killed (kill -9)", ada.acked, await ada.history())
        outcome.effect = "room re-placed on the live node; the client rejoined there"
        outcome.recover_s = rejoined
        await ada.socket.close()  # type: ignore[union-attr]
        return outcome
    finally:
        for node in nodes:
            await asyncio.to_thread(node.stop)


# -- the report ------------------------------------------------------------------------------


def _seconds(value: float | None) -> str:
    return f"{value:.1f} s" if value is not None else "—"


async def run(quick: bool) -> str:
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory() as tmp:
        frames = write_frames(Path(tmp) / "frames.pickle")
        for fault, label, hold in (
            ("udp_blocked", "UDP blocked", 12.0),
            ("rate_300k", "Rate capped at 300 kbit/s", 12.0),
            ("loss_10", "10 % random loss", 8.0 if quick else 15.0),
        ):
            print(f"-- {label}", flush=True)
            outcomes.append(await network_fault(fault, label, frames, hold))
        for scenario in (redis_outage, node_kill):
            print(f"-- {scenario.__name__}", flush=True)
            try:
                async with fresh_postgres_database() as database_url:
                    outcomes.append(await scenario(Path(tmp) / scenario.__name__, database_url))
            except (pytest.skip.Exception, pytest.fail.Exception) as exc:
                outcomes.append(Outcome(scenario.__name__, effect=f"not run: {exc}"))

    lines = [
        "Media thresholds as in the tests: 2 s without frames steps down, 2 s of clean",
        "media steps back up, loss ≥ 20 % steps video down to audio. Network faults apply",
        "to both directions of the participant's veth link; the participant publishes",
        "640x480 VP8 at ~500 kbit/s plus Opus and sends 2 chat messages a second",
        "(4 a second in the Redis and node scenarios). *Step down*: fault → the room's",
        "`media_mode` event (for Redis: → `/readyz` 503). *Recover*: fault removed →",
        "back to video (Redis: → `/readyz` 200; node kill: kill → client rejoined on the",
        "other node).\n",
        "| fault | what happened | step down | recover | chat acked | stored | lost | dup | nothing lost |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        lines.append(
            f"| {o.fault} | {o.effect} | {_seconds(o.down_s)} | {_seconds(o.recover_s)} "
            f"| {o.acked} | {o.stored} | {o.missing} | {o.duplicates} "
            f"| {'yes' if o.survived else 'NO'} |"
        )
    notes = [f"- {o.fault}: {'; '.join(o.notes)}" for o in outcomes if o.notes]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"
