"""One report from the reports of a distributed run's workers (`--shard i/n`).

Each worker ran its own rooms, so its counts add up; percentiles are recomputed from the
workers' own observations (`raw` in a worker's report), never averaged. The server was
the same for every worker: its samples come from the first worker's scrape.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from loadtests.report import _date, _max, _mean, _stats, check_thresholds, latency_bins

SUMMED = ("participants", "rooms", "joins", "join_failures", "errors")


class MergeError(Exception):
    """The reports do not belong to one distributed run; one line."""


def merge(documents: list[dict[str, Any]]) -> dict[str, Any]:
    if not documents:
        raise MergeError("no worker report to merge")
    shards = sorted(tuple(d.get("shard") or ()) for d in documents)
    n = len(documents)
    if shards != [(i, n) for i in range(n)]:
        raise MergeError(f"expected the reports of shards 0/{n} .. {n - 1}/{n}, got {shards}")
    if len({d["run_id"] for d in documents}) != 1:
        raise MergeError("the reports come from different runs (run_id differs)")
    documents = sorted(documents, key=lambda d: d["shard"][0])
    first = documents[0]
    raws = [d["raw"] for d in documents]
    sums = [d["summary"] for d in documents]

    def joined(key: str) -> list[Any]:
        return [value for r in raws for value in r[key]]

    chat_latency = [(float(t), float(ms)) for t, ms in joined("chat_latency")]
    chat_counts = Counter[str]()
    errors = Counter[str]()
    for s in sums:
        chat_counts.update(
            {k: v for k, v in s["chat"].items() if k not in ("latency_ms", "ack_ms")}
        )
        errors.update(s["errors_by_kind"])
    summary: dict[str, Any] = {
        **{key: sum(s[key] for s in sums) for key in SUMMED},
        "join_ms": _stats(joined("join_ms")),
        "chat": {
            **dict(chat_counts),
            "latency_ms": _stats([ms for _, ms in chat_latency]),
            "ack_ms": _stats(joined("ack_ms")),
        },
        "errors_by_kind": dict(sorted(errors.items())),
        "server": first["summary"]["server"],
        "load_generator": {
            "max_cpu_percent": _max([s["load_generator"]["max_cpu_percent"] for s in sums]),
            "mean_cpu_wait_percent": _mean(
                [s["load_generator"]["mean_cpu_wait_percent"] for s in sums]
            ),
        },
        "workers": [
            {
                "shard": d["shard"][0],
                "participants": d["summary"]["participants"],
                "joins": d["summary"]["joins"],
                "verdict": d["verdict"],
                "max_cpu_percent": d["summary"]["load_generator"]["max_cpu_percent"],
            }
            for d in documents
        ],
    }
    if any("recovery" in s for s in sums):
        summary["recovery"] = {
            "reconnected": len(joined("recovery_ms")),
            "recovery_ms": _stats(joined("recovery_ms")),
        }
    if any("media" in s for s in sums):
        media = [s["media"] for s in sums if "media" in s]
        added = {
            key: sum(m[key] for m in media)
            for key in ("publishers", "failing_on_purpose", "frames_sent", "frames_expected",
                        "frames_received", "frames_duplicated", "fallbacks_observed")
        }  # fmt: skip
        expected = added["frames_expected"]
        summary["media"] = {
            **added,
            "first_frame_ms": _stats(joined("first_frame_ms")),
            "frames_ratio": round(added["frames_received"] / expected, 4) if expected else None,
            "frame_latency_ms": _stats(joined("media_latency_ms")),
            "fallback_ms": _stats(joined("fallback_ms")),
        }
    if any("phone" in s for s in sums):
        summary["phone"] = first["summary"].get("phone")
    checks = check_thresholds(first["scenario"]["thresholds"], summary)
    interrupted = any(d["interrupted"] for d in documents)
    passed = all(c["passed"] for c in checks) and not interrupted
    timeline: dict[float, dict[str, Any]] = {}
    for d in documents:  # each worker ticks once a second: add them up second by second
        for point in d["timeline"]:
            t = float(round(point["t"]))
            into = timeline.setdefault(t, {"t": t, "joined": 0, "connected": 0, "sent": 0,
                                           "in_flight": 0, "errors": 0,
                                           "client_cpu_percent": 0.0,
                                           "client_cpu_wait_percent": None})  # fmt: skip
            for key in ("joined", "connected", "sent", "in_flight", "errors"):
                into[key] += point[key]
            into["client_cpu_percent"] = max(
                into["client_cpu_percent"], point["client_cpu_percent"]
            )
    started = min(d["started_at"] for d in documents)
    return {
        "tool": first["tool"],
        "run_id": first["run_id"],
        "url": first["url"],
        "scenario": first["scenario"],
        "started_at": started,
        "started": _date(started),
        "finished_at": max(d["finished_at"] for d in documents),
        "interrupted": interrupted,
        "ended_early": next((d["ended_early"] for d in documents if d["ended_early"]), None),
        "verdict": "interrupted" if interrupted else ("pass" if passed else "fail"),
        "passed": passed,
        "checks": checks,
        "summary": summary,
        "notes": [f"merged from {n} workers (--shard i/{n})"]
        + [f"worker {d['shard'][0]}: {note}" for d in documents for note in d["notes"]],
        "phases": first["phases"],
        "first_errors": sorted(
            (e for d in documents for e in d["first_errors"]), key=lambda e: e["t"]
        )[:50],
        "timeline": [timeline[t] for t in sorted(timeline)],
        "latency_timeline": latency_bins(chat_latency),
        "server_timeline": first["server_timeline"],
        "workers": n,
    }
