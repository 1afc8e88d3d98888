"""`python -m loadtests` against a real server process, as an operator runs it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from loadtests.metrics_scraper import parse
from loadtests.scenario import ScenarioError, load_scenario
from tests.support.process import ADMIN_KEY, ROOT, ServerProcess
from tests.support.services import free_port
from tests.support.waiting import eventually


def tool(url: str, out: Path, *extra: str, key: str = ADMIN_KEY) -> list[str]:
    return [
        sys.executable,
        "-m",
        "loadtests",
        "--url",
        url,
        "--admin-key",
        key,
        "--scenario",
        "smoke",
        "--out",
        str(out),
        *extra,
    ]


def run_tool(
    url: str, out: Path, *extra: str, key: str = ADMIN_KEY
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        tool(url, out, *extra, key=key), cwd=ROOT, capture_output=True, text=True, timeout=90
    )


@contextlib.contextmanager
def running_tool(url: str, out: Path, *extra: str) -> Iterator[subprocess.Popen[str]]:
    """The tool running in the background, for tests that act on it mid-run."""
    proc = subprocess.Popen(
        tool(url, out, *extra), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()


def read_report(out: Path) -> dict[str, Any]:
    assert (out / "report.html").exists()
    return dict(json.loads((out / "report.json").read_text()))


def server_metrics(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    chat = [line for line in text.splitlines() if line.startswith("pairwise_chat_messages_total")]
    values = parse(text)
    values["chat_messages"] = float(chat[0].split()[-1]) if chat else 0.0
    return values


def test_smoke_passes_with_every_message_delivered_and_writes_both_reports(
    default_server: ServerProcess, tmp_path: Path
) -> None:
    server = default_server
    chat_before = server_metrics(server.url)["chat_messages"]
    out = tmp_path / "report"
    result = run_tool(server.url, out)
    assert result.returncode == 0, result.stderr
    assert "PASS" in result.stderr and "Traceback" not in result.stderr

    report = read_report(out)
    summary, chat = report["summary"], report["summary"]["chat"]
    assert report["verdict"] == "pass" and report["passed"] is True
    assert summary["participants"] == summary["joins"] == 6
    assert summary["join_ms"]["count"] == 6
    assert chat["messages_sent"] > 0
    assert chat["messages_sent"] == chat["messages_received"] == chat["messages_accepted"]
    assert chat["lost_messages"] == chat["duplicated_messages"] == 0
    assert chat["deliveries_received"] == chat["deliveries_expected"] > chat["messages_sent"]
    assert chat["latency_ms"]["count"] > 0 and chat["latency_ms"]["p99"] > 0
    assert summary["errors"] == 0 and summary["errors_by_kind"] == {}
    # The server agrees: it stored exactly the messages the tool saw acked.
    assert server_metrics(server.url)["chat_messages"] - chat_before == chat["messages_sent"]
    # ... and handled exactly those chat events (its own histogram, read by the tool).
    assert summary["server"]["handling"]["chat"]["count"] == chat["messages_sent"]
    # Server CPU and memory came from its /metrics.
    assert summary["server"]["samples"] >= 2 and summary["server"]["max_memory_mb"] > 10
    assert max(s["participants"] for s in report["server_timeline"]) == 6
    assert {c["name"] for c in report["checks"]} >= {"p99_chat_latency_ms", "lost_messages"}
    assert all(c["passed"] for c in report["checks"])

    page = (out / "report.html").read_text()
    assert page.count("<svg") == 4 and "PASS" in page
    # Self-contained: nothing for the browser to fetch.
    assert "<script" not in page and "src=" not in page and "<link" not in page


def test_an_impossible_threshold_fails_the_run_with_a_non_zero_exit(
    default_server: ServerProcess, tmp_path: Path
) -> None:
    server = default_server
    out = tmp_path / "report"
    result = run_tool(server.url, out, "--set", "thresholds.p99_chat_latency_ms=0.001")
    assert result.returncode == 1, result.stderr
    assert "failed: p99_chat_latency_ms" in result.stderr
    report = read_report(out)
    assert report["verdict"] == "fail" and report["passed"] is False
    failed = [c for c in report["checks"] if not c["passed"]]
    assert [c["name"] for c in failed] == ["p99_chat_latency_ms"]
    assert failed[0]["actual"] > 0.001
    assert "FAIL" in (out / "report.html").read_text()


def test_a_server_killed_mid_run_is_reported_and_the_report_still_written(
    server_process: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = server_process()
    out = tmp_path / "report"
    with running_tool(server.url, out, "--set", "duration_s=60") as proc:
        asyncio.run(
            eventually(lambda: server_metrics(server.url)["chat_messages"] >= 12, timeout=30)
        )
        asyncio.run(
            eventually(lambda: server_metrics(server.url).get("participants") == 6, timeout=30)
        )
        server.kill()
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1, stderr
    assert "error disconnected: 6" in stderr and "Traceback" not in stderr
    report = read_report(out)
    assert report["verdict"] == "fail"
    assert report["ended_early"] == "every participant has left or failed"
    summary = report["summary"]
    assert summary["joins"] == 6 and summary["errors_by_kind"]["disconnected"] == 6
    assert summary["chat"]["messages_sent"] >= 12
    assert any(e["kind"] == "disconnected" for e in report["first_errors"])
    assert next(c for c in report["checks"] if c["name"] == "errors")["passed"] is False
    assert "disconnected" in (out / "report.html").read_text()


def test_ctrl_c_stops_cleanly_and_still_writes_the_report(
    default_server: ServerProcess, tmp_path: Path
) -> None:
    server = default_server
    chat_before = server_metrics(server.url)["chat_messages"]
    out = tmp_path / "report"
    with running_tool(server.url, out, "--set", "duration_s=60") as proc:
        asyncio.run(
            eventually(
                lambda: server_metrics(server.url)["chat_messages"] - chat_before >= 6, timeout=30
            )
        )
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    report = read_report(out)
    assert report["interrupted"] is True and report["verdict"] == "interrupted"
    assert report["summary"]["chat"]["messages_sent"] >= 6
    # The participants left the server: a clean stop, not an abandoned one.
    asyncio.run(eventually(lambda: server_metrics(server.url).get("participants") == 0, timeout=30))


def test_a_refused_admin_key_stops_before_any_load(
    default_server: ServerProcess, tmp_path: Path
) -> None:
    server = default_server
    result = run_tool(server.url, tmp_path / "report", key="not-the-admin-key-at-all")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: the server refused the admin key (HTTP 401)"
    assert not (tmp_path / "report").exists()


def test_built_in_scenarios_load_and_settings_can_be_overridden() -> None:
    for name in ("smoke", "cohort", "group"):
        assert load_scenario(name).name == name
    cohort = load_scenario(
        "cohort", ["rooms=7", "thresholds.p99_chat_latency_ms=150", "media.enabled=true"]
    )
    assert cohort.rooms == 7 and cohort.participants == 14
    assert cohort.thresholds.p99_chat_latency_ms == 150 and cohort.media.enabled is True
    # Every built-in scenario gates joins, losses and the fallback ladder; the room ones
    # gate media too (checked when a run has media).
    for name in ("smoke", "cohort", "group"):
        limits = load_scenario(name).thresholds
        assert (limits.join_failures, limits.lost_messages, limits.min_fallback_share) == (0, 0, 1)
    for name in ("cohort", "group"):
        limits = load_scenario(name).thresholds
        assert limits.p99_first_frame_ms is not None and limits.min_media_frames_ratio is not None


@pytest.mark.parametrize(
    "override, message",
    [
        ("rooms=0", "rooms"),
        ("chat.messages_per_second=fast", "chat.messages_per_second"),
        ("thresholds.p99_latency=1", "thresholds.p99_latency"),
        ("media.text_only_share=0.95", "must not exceed 1"),
        ("rooms", "key=value"),
    ],
)
def test_a_bad_scenario_is_refused_with_the_field_named(override: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message.replace(".", r"\.")):
        load_scenario("group", [override])


def test_a_scenario_file_by_path(tmp_path: Path) -> None:
    path = tmp_path / "monday.yaml"
    path.write_text(
        "name: monday\nrooms: 250\nparticipants_per_room: 2\nthresholds: {lost_messages: 0}\n"
    )
    scenario = load_scenario(str(path))
    assert (scenario.name, scenario.participants, scenario.thresholds.lost_messages) == (
        "monday",
        500,
        0,
    )
    with pytest.raises(ScenarioError, match="cannot read scenario"):
        load_scenario(str(tmp_path / "missing.yaml"))


@pytest.mark.slow
def test_media_participants_publish_and_receive_every_publishers_video(
    server_process: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    # Three rooms of two with video; two publishers go silent on purpose after 3 s, and the
    # server (silence limit 2 s here) must step them down the fallback ladder.
    server = server_process(PAIRWISE_MEDIA_SILENCE_SECONDS="2")
    out = tmp_path / "report"
    result = run_tool(
        server.url,
        out,
        "--set",
        "media.enabled=true",
        "--set",
        "duration_s=8",
        "--set",
        "media.failing_share=0.25",
        "--set",
        "media.fail_after_s=3",
        "--set",
        "media.video={width: 320, height: 240, fps: 15, bitrate_kbps: 200}",
        "--set",
        "thresholds={}",
    )
    assert result.returncode == 0, result.stderr
    report = read_report(out)
    media = report["summary"]["media"]
    assert media["publishers"] == 6 and media["failing_on_purpose"] == 2
    # Video reached every subscriber whose partner kept sending (at least 4 of the 6),
    # nobody got nothing from a live publisher, nothing arrived twice.
    assert media["first_frame_ms"]["count"] >= 4
    assert 0 < media["frames_received"] <= media["frames_expected"]
    assert media["frames_duplicated"] == 0
    assert media["frame_latency_ms"]["count"] >= media["frames_received"]
    assert media["frames_sent"] > 0
    kinds = set(report["summary"]["errors_by_kind"])
    assert not kinds & {
        "media_no_frames",
        "media_start_failed",
        "media_renegotiation_failed",
        "media_unknown_frame",
    }, report["first_errors"]
    # The silent ones were moved down the ladder by the server.
    assert media["fallbacks_observed"] == 2
    assert "video frame latency" in (out / "report.html").read_text()


@pytest.mark.slow
@pytest.mark.sip
def test_phone_legs_dial_into_their_rooms_through_sipp(
    server_process: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    sip_port = free_port()
    server = server_process(PAIRWISE_SIP_BIND=f"127.0.0.1:{sip_port}")
    out = tmp_path / "report"
    result = run_tool(
        server.url,
        out,
        "--set",
        "phone.enabled=true",
        "--set",
        f"phone.sip_port={sip_port}",
        "--set",
        "phone.share_of_rooms=1",
        "--set",
        "duration_s=6",
        "--set",
        "thresholds.phone_failed_calls=0",
    )
    assert result.returncode == 0, result.stderr
    report = read_report(out)
    phone = report["summary"]["phone"]
    assert phone["calls"] == phone["successful"] == 3 and phone["failed"] == 0
    assert phone["setup_ms"]["count"] == 3
    # Each caller arrived in its room as a `phone` participant, seen by the room's members.
    assert phone["callers_seen_in_rooms"] == phone["rooms_with_caller"] == 3
    assert report["summary"]["errors"] == 0


def test_phone_legs_against_a_server_without_a_sip_gateway_stop_before_any_load(
    default_server: ServerProcess, tmp_path: Path
) -> None:
    server = default_server
    result = run_tool(server.url, tmp_path / "report", "--set", "phone.enabled=true")
    assert result.returncode == 2
    assert "no phone dial-in" in result.stderr
