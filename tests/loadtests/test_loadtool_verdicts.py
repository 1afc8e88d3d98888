"""What the load tool counts as passing, how it counts messages, and how it draws them."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from loadtests.participant import Measurements
from loadtests.report import evaluate, nice_axis, svg_chart
from loadtests.scenario import load_scenario
from tests.loadtests.test_loadtool import read_report, tool
from tests.support.process import ADMIN_KEY, ROOT, ServerProcess


def test_a_scenario_without_thresholds_fails_when_a_participant_cannot_join(
    server_process: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = server_process(PAIRWISE_ROOM_CAPACITY="2")
    scenario = tmp_path / "bare.yaml"
    scenario.write_text(
        "name: bare\nrooms: 1\nparticipants_per_room: 3\nramp_up_s: 0\nduration_s: 1\n"
        "drain_s: 1\nchat: {messages_per_second: 0}\n"
    )
    out = tmp_path / "report"
    command = tool(server.url, out)
    command[command.index("smoke")] = str(scenario)
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=90)
    assert result.returncode == 1, result.stderr
    report = read_report(out)
    failed = [c for c in report["checks"] if not c["passed"]]
    assert [(c["name"], c["actual"]) for c in failed] == [("join_failures", 1)]
    assert {c["name"] for c in report["checks"]} == {"join_failures", "lost_messages"}


def test_the_same_url_given_twice_is_refused(tmp_path: Path) -> None:
    # Several different --url are the nodes of a cluster (test_loadtool_cluster.py);
    # the same one twice is a mistake, not a cluster of one.
    command = [
        sys.executable,
        "-m",
        "loadtests",
        "--url",
        "http://127.0.0.1:9",
        "--url",
        "http://127.0.0.1:9/",
        "--admin-key",
        ADMIN_KEY,
        "--out",
        str(tmp_path / "report"),
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "the same --url is given twice" in result.stderr
    assert not (tmp_path / "report").exists()


def test_never_acked_and_acked_but_lost_are_counted_apart() -> None:
    m = Measurements()
    m.enter("r", "ada")
    m.enter("r", "bo")
    m.sending("acked-lost", "r", "ada")
    m.acked("acked-lost")
    m.received("acked-lost", "ada")
    m.sending("acked-ok", "r", "ada")
    m.acked("acked-ok")
    m.received("acked-ok", "ada")
    m.received("acked-ok", "bo")
    m.sending("no-ack", "r", "bo")
    m.unanswered("no-ack")
    m.sending("no-ack-arrived", "r", "bo")
    m.unanswered("no-ack-arrived")
    m.received("no-ack-arrived", "ada")
    m.received("no-ack-arrived", "bo")
    counts = m.delivery()
    assert counts["messages_sent"] == counts["messages_accepted"] == 2
    assert (counts["lost_messages"], counts["lost_deliveries"]) == (1, 1)
    assert (counts["unacked_messages"], counts["unacked_delivered"]) == (2, 1)


def test_axes_have_round_ticks_and_negative_values_stay_inside_the_chart() -> None:
    assert nice_axis(0, 37, 5) == [0, 10, 20, 30, 40]
    assert nice_axis(0, 2.3, 4) == [0, 1, 2, 3]
    assert nice_axis(-12, 80, 4) == [-25, 0, 25, 50, 75, 100]
    chart = svg_chart("CPU", "%", [("server", "#000", [(0, -12.0), (5, 80.0)])], x_max=13)
    height, top, bottom = 240, 28, 34
    ys = [
        float(point.split(",")[1])
        for points in re.findall(r'points="([^"]+)"', chart)
        for point in points.split()
    ]
    assert ys and all(top <= y <= height - bottom for y in ys)
    labels = re.findall(r'class="axis" text-anchor="(?:end|middle)">([^<]+)<', chart)
    assert "-25" in labels and "100" in labels
    assert [x for x in labels if x.endswith("s")] == ["0s", "5s", "10s", "15s"]


def test_the_report_says_when_it_ran(default_server: ServerProcess, tmp_path: Path) -> None:
    server = default_server
    out = tmp_path / "report"
    result = subprocess.run(
        tool(server.url, out, "--set", "duration_s=1"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr
    report = read_report(out)
    today = time.strftime("%Y-%m-%d", time.gmtime(report["started_at"]))
    assert report["started"].startswith(today)
    assert f"on {report['started']} against" in (out / "report.html").read_text()


def test_reports_written_in_the_checkout_are_ignored_by_git() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "loadtest-reports/smoke-20260101-000000/report.json"],
        cwd=ROOT,
    )
    assert ignored.returncode == 0


def _checks(summary_media: dict[str, Any] | None, *overrides: str) -> dict[str, bool]:
    scenario = load_scenario("group", list(overrides))
    summary: dict[str, Any] = {
        "chat": {
            "latency_ms": {"p50": 1.0, "p95": 1.0, "p99": 1.0},
            "lost_messages": 0,
            "unacked_messages": 0,
            "duplicated_messages": 0,
        },
        "join_ms": {"p99": 1.0},
        "errors": 0,
        "join_failures": 0,
        "server": {"max_cpu_percent": 1.0, "max_memory_mb": 1.0},
    }
    if summary_media is not None:
        summary["media"] = summary_media
    result = SimpleNamespace(scenario=scenario)
    return {c["name"]: c["passed"] for c in evaluate(result, summary)}  # type: ignore[arg-type]


def _media(stepped_down: int, failing: int = 2) -> dict[str, Any]:
    return {
        "failing_on_purpose": failing,
        "fallbacks_observed": stepped_down,
        "fallback_ms": {"max": 6000.0 if stepped_down else None},
        "first_frame_ms": {"p99": 800.0},
        "frames_ratio": 0.99,
    }


def test_a_server_that_never_steps_down_fails_the_fallback_check() -> None:
    assert _checks(_media(stepped_down=0))["min_fallback_share"] is False
    passed = _checks(_media(stepped_down=2))
    assert passed["min_fallback_share"] and passed["max_fallback_ms"]
    assert passed["p99_first_frame_ms"] and passed["min_media_frames_ratio"]
    # The default holds in a scenario that does not mention it.
    assert _checks(_media(stepped_down=1), "thresholds={}")["min_fallback_share"] is False
    # Without media, or without publishers failing on purpose, those limits are not checked.
    assert not {"min_fallback_share", "p99_first_frame_ms"} & set(_checks(None))
    assert "min_fallback_share" not in _checks(_media(stepped_down=0, failing=0))
