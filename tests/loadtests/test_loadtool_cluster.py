"""The load tool against two nodes sharing Redis and PostgreSQL (cluster mode)."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.loadtests.test_loadtool import read_report, server_metrics, tool
from tests.support.process import ROOT, ServerProcess
from tests.support.services import fresh_postgres_database, require_redis

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]


async def test_cluster_mode_finds_the_nodes_connects_rooms_to_them_and_scrapes_each(
    server_process: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    async with fresh_postgres_database() as database:
        env = {
            "PAIRWISE_REDIS_URL": require_redis(),
            "PAIRWISE_DATABASE_URL": database,
            "PAIRWISE_CLUSTER": f"t{uuid.uuid4().hex[:8]}",
            "PAIRWISE_HEARTBEAT_SECONDS": "0.5",
            "PAIRWISE_NODE_TTL_SECONDS": "2",
        }
        a = await asyncio.to_thread(server_process, **env)
        b = await asyncio.to_thread(server_process, **env)
        out = tmp_path / "report"
        command = tool(a.url, out, "--cluster", "--set", "rooms=4")
        result = await asyncio.to_thread(
            subprocess.run, command, cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        report = read_report(out)
        summary = report["summary"]
        assert summary["joins"] == 8 and summary["chat"]["lost_messages"] == 0
        nodes = summary["server"]["nodes"]
        assert set(nodes) == {a.url, b.url}
        # Rooms were placed on both nodes and their participants connected there.
        assert all(n["samples"] >= 2 and n["max_participants"] >= 2 for n in nodes.values())
        # The totals add the nodes up: every participant is in a room on some node.
        assert max(s["participants"] for s in report["server_timeline"]) == 8
        assert all(
            s["cpu_percent"] is None or s["cpu_percent"] >= 0 for s in report["server_timeline"]
        )
        page = (out / "report.html").read_text()
        assert f"node {a.url}" in page and f"node {b.url}" in page


async def test_several_urls_are_the_nodes_each_scraped_by_its_own_url(
    server_process: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """`--url A --url B` (no --cluster): every node given is scraped by its own URL and
    each room's participants go to the node that holds it."""
    async with fresh_postgres_database() as database:
        env = {
            "PAIRWISE_REDIS_URL": require_redis(),
            "PAIRWISE_DATABASE_URL": database,
            "PAIRWISE_CLUSTER": f"t{uuid.uuid4().hex[:8]}",
            "PAIRWISE_HEARTBEAT_SECONDS": "0.5",
            "PAIRWISE_NODE_TTL_SECONDS": "2",
        }
        a = await asyncio.to_thread(server_process, **env)
        b = await asyncio.to_thread(server_process, **env)
        out = tmp_path / "report"
        command = [*tool(a.url, out, "--set", "rooms=4"), "--url", b.url]
        result = await asyncio.to_thread(
            subprocess.run, command, cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        report = read_report(out)
        summary = report["summary"]
        assert summary["joins"] == 8 and summary["chat"]["lost_messages"] == 0
        nodes = summary["server"]["nodes"]
        assert set(nodes) == {a.url, b.url}
        assert all(n["samples"] >= 2 and n["max_participants"] >= 2 for n in nodes.values())
        assert max(s["participants"] for s in report["server_timeline"]) == 8


async def test_cluster_mode_reconnects_after_a_node_is_killed_and_loses_no_acked_message(
    server_process: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    async with fresh_postgres_database() as database:
        env = {
            "PAIRWISE_REDIS_URL": require_redis(),
            "PAIRWISE_DATABASE_URL": database,
            "PAIRWISE_CLUSTER": f"t{uuid.uuid4().hex[:8]}",
            "PAIRWISE_HEARTBEAT_SECONDS": "0.5",
            "PAIRWISE_NODE_TTL_SECONDS": "2",
        }
        a = await asyncio.to_thread(server_process, **env)
        b = await asyncio.to_thread(server_process, **env)
        out = tmp_path / "report"
        # A node's death disconnects its participants and its /metrics: errors of those
        # kinds are expected here, and late deliveries have no latency limit.
        command = tool(
            a.url,
            out,
            "--cluster",
            "--set",
            "rooms=4",
            "--set",
            "duration_s=20",
            "--set",
            "thresholds.errors=null",
            "--set",
            "thresholds.p99_chat_latency_ms=null",
        )
        proc = await asyncio.create_subprocess_exec(
            *command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            # Both nodes hold participants and chat flows: kill the one the tool did not
            # start from.
            on_b = await asyncio.to_thread(server_metrics, b.url)
            on_a = await asyncio.to_thread(server_metrics, a.url)
            if on_b.get("participants", 0) >= 2 and on_a["chat_messages"] >= 10:
                break
            await asyncio.sleep(0.2)
        killed_participants = int((await asyncio.to_thread(server_metrics, b.url))["participants"])
        await asyncio.to_thread(b.kill)
        _, stderr = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, stderr.decode()
        report = read_report(out)
        summary = report["summary"]
        assert summary["joins"] == 8
        assert summary["errors_by_kind"]["disconnected"] == killed_participants
        recovery = summary["recovery"]
        assert recovery["reconnected"] == killed_participants
        assert recovery["recovery_ms"]["max"] > 0
        chat = summary["chat"]
        assert chat["messages_sent"] > 0 and chat["lost_messages"] == 0
        assert "reconnected after losing their node" in (out / "report.html").read_text()
