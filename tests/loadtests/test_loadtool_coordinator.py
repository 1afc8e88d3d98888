"""Distributed load generation: `python -m loadtests coordinate` starts several workers,
each takes its share of the rooms, and one merged report comes out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from loadtests.merge import MergeError, merge
from tests.loadtests.test_loadtool import read_report
from tests.support.process import ADMIN_KEY, ROOT, ServerProcess

pytestmark = pytest.mark.slow


def test_two_workers_share_the_rooms_and_one_report_adds_them_up(
    default_server: ServerProcess, tmp_path: Path
) -> None:
    server = default_server
    out = tmp_path / "merged"
    # Worker 1 is started through the shell command template, as over ssh.
    command = [
        sys.executable, "-m", "loadtests", "coordinate", "--workers", "2",
        "--worker-command", f"{sys.executable} -m loadtests",
        "--out", str(out),
        "--url", server.url, "--admin-key", ADMIN_KEY, "--scenario", "smoke",
        "--set", "rooms=5",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "PASS" in result.stderr and "from 2 workers" in result.stderr
    report = read_report(out)
    summary = report["summary"]
    # Rooms 0, 2, 4 on worker 0 and 1, 3 on worker 1: every room once, nobody twice.
    assert [(w["shard"], w["participants"]) for w in summary["workers"]] == [(0, 6), (1, 4)]
    assert summary["participants"] == 10 and summary["joins"] == 10
    assert summary["rooms"] == 5
    chat = summary["chat"]
    assert chat["messages_sent"] > 0 and chat["lost_messages"] == 0
    # Percentiles come from both workers' own observations (one per delivery to another
    # member; a worker alone has about half).
    assert (
        chat["messages_received"] // 2 < chat["latency_ms"]["count"] <= chat["deliveries_received"]
    )
    assert {c["name"] for c in report["checks"]} >= {"join_failures", "lost_messages"}
    assert report["verdict"] == "pass" and "raw" not in report
    assert "merged from 2 workers" in (out / "report.html").read_text()


def test_reports_of_different_runs_or_missing_shards_are_not_merged() -> None:
    def worker(i: int, n: int, run: str = "r1") -> dict:
        return {"shard": [i, n], "run_id": run}

    with pytest.raises(MergeError, match="shards"):
        merge([worker(0, 3), worker(2, 3)])
    with pytest.raises(MergeError, match="different runs"):
        merge([worker(0, 2), worker(1, 2, "r2")])


def test_a_worker_that_cannot_start_fails_the_coordinator_with_its_reason(
    tmp_path: Path,
) -> None:
    command = [
        sys.executable, "-m", "loadtests", "coordinate", "--workers", "2",
        "--out", str(tmp_path / "merged"),
        "--url", "http://127.0.0.1:9", "--admin-key", ADMIN_KEY,
    ]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "worker 0 gave no report" in result.stderr and "cannot reach" in result.stderr
