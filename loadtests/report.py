"""The report: a JSON document for machines and one self-contained HTML page for people.

The HTML page has no scripts and no external files: charts are inline SVG, so it can be
mailed or attached to a ticket as it is.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from loadtests.metrics_scraper import NodesScraper
from loadtests.runner import RunResult

PERCENTILES = (50, 95, 99)


def _stats(values: Sequence[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    array = np.asarray(values, dtype=float)
    out: dict[str, float | int | None] = {"count": len(values)}
    for p in PERCENTILES:
        out[f"p{p}"] = round(float(np.percentile(array, p)), 2)
    out["max"] = round(float(array.max()), 2)
    out["mean"] = round(float(array.mean()), 2)
    return out


def _max(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(float(np.mean(present)), 1) if present else None


def summarize(result: RunResult) -> dict[str, Any]:
    m = result.measurements
    s = result.scenario
    server = result.scraper.samples
    cpu = [x.cpu_percent for x in server if x.cpu_percent is not None]
    summary: dict[str, Any] = {
        "participants": len(result.specs),  # a worker of a distributed run: its share
        "rooms": len({spec.room for spec in result.specs}),
        "joins": len(m.join_ms),
        "join_failures": len(result.specs) - len(m.join_ms),
        "join_ms": _stats(m.join_ms),
        "chat": {
            **m.delivery(),
            "latency_ms": _stats([ms for _, ms in m.chat_latency]),
            "ack_ms": _stats(m.ack_ms),
        },
        "errors": sum(m.errors.values()),
        "errors_by_kind": dict(sorted(m.errors.items())),
        "server": {
            "samples": len(server),
            "max_cpu_percent": _max(cpu),
            "mean_cpu_percent": round(float(np.mean(cpu)), 1) if cpu else None,
            "max_memory_mb": _max([x.memory_mb for x in server]),
            "max_sockets": _max([x.sockets for x in server]),
            "handling": result.scraper.handling(),
            "nodes": result.scraper.nodes() if isinstance(result.scraper, NodesScraper) else {},
        },
        "load_generator": {
            "max_cpu_percent": _max([p.client_cpu_percent for p in result.timeline]),
            "mean_cpu_wait_percent": _mean([p.client_cpu_wait_percent for p in result.timeline]),
        },
    }
    if result.cluster:
        summary["recovery"] = {
            "reconnected": len(m.recovery_ms),
            "recovery_ms": _stats(m.recovery_ms),
        }
    if s.media.enabled:
        ratio = (
            m.media_frames_received / m.media_frames_expected if m.media_frames_expected else None
        )
        summary["media"] = {
            "publishers": sum(1 for spec in result.specs if spec.media_mode != "text"),
            "failing_on_purpose": sum(1 for spec in result.specs if spec.fails_media),
            "first_frame_ms": _stats(m.first_frame_ms),
            "frames_sent": m.media_frames_sent,
            "frames_expected": m.media_frames_expected,
            "frames_received": m.media_frames_received,
            "frames_ratio": round(ratio, 4) if ratio is not None else None,
            "frames_duplicated": m.media_duplicates,
            "frame_latency_ms": _stats(m.media_latency_ms),
            "fallbacks_observed": len(m.fallback_ms),
            "fallback_ms": _stats(m.fallback_ms),
        }
    if s.phone.enabled:
        ph = result.phone
        summary["phone"] = {
            "calls": ph.calls if ph else 0,
            "successful": ph.successful if ph else 0,
            "failed": ph.failed if ph else 0,
            "setup_ms": _stats(ph.setup_ms if ph else []),
            "rooms_with_caller": len(result.phone_rooms),
            "callers_seen_in_rooms": len(set(result.phone_rooms) & m.phone_seen),
        }
    return summary


NOT_APPLICABLE = "not applicable"  # a media limit in a run without media: not checked


def _actuals(summary: dict[str, Any]) -> dict[str, float | str | None]:
    chat = summary["chat"]
    media = summary.get("media", {})
    phone = summary.get("phone")
    failing = media.get("failing_on_purpose", 0)
    fallback: dict[str, float | str | None] = {
        "min_fallback_share": (
            round(media["fallbacks_observed"] / failing, 4) if failing else NOT_APPLICABLE
        ),
        "max_fallback_ms": media["fallback_ms"]["max"] if failing else NOT_APPLICABLE,
    }
    media_only: dict[str, float | str | None] = {
        "p99_first_frame_ms": media["first_frame_ms"]["p99"] if media else NOT_APPLICABLE,
        "min_media_frames_ratio": media["frames_ratio"] if media else NOT_APPLICABLE,
    }
    return {
        **fallback,
        **media_only,
        "p50_chat_latency_ms": chat["latency_ms"]["p50"],
        "p95_chat_latency_ms": chat["latency_ms"]["p95"],
        "p99_chat_latency_ms": chat["latency_ms"]["p99"],
        "p99_join_ms": summary["join_ms"]["p99"],
        "lost_messages": chat["lost_messages"],
        "unacked_messages": chat["unacked_messages"],
        "duplicated_messages": chat["duplicated_messages"],
        "errors": summary["errors"],
        "join_failures": summary["join_failures"],
        "max_server_cpu_percent": summary["server"]["max_cpu_percent"],
        "max_server_memory_mb": summary["server"]["max_memory_mb"],
        "phone_failed_calls": phone["failed"] if phone else NOT_APPLICABLE,
        "p99_phone_setup_ms": phone["setup_ms"]["p99"] if phone else NOT_APPLICABLE,
    }


def evaluate(result: RunResult, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One check per threshold the scenario sets. A value that was never measured fails:
    a run that delivered no message has not shown its latency is fine."""
    return check_thresholds(result.scenario.thresholds.model_dump(), summary)


def check_thresholds(thresholds: dict[str, Any], summary: dict[str, Any]) -> list[dict[str, Any]]:
    """`evaluate` on a summary alone (a merged distributed run has no RunResult)."""
    actuals = _actuals(summary)
    checks = []
    for name, limit in thresholds.items():
        if limit is None:
            continue
        actual = actuals[name]
        lower_bound = name.startswith("min_")
        if actual == NOT_APPLICABLE:
            continue
        assert not isinstance(actual, str)
        if actual is None:
            passed, note = False, "not measured"
        else:
            passed = actual >= limit if lower_bound else actual <= limit
            note = ""
        checks.append(
            {
                "name": name,
                "limit": limit,
                "actual": actual,
                "comparison": ">=" if lower_bound else "<=",
                "passed": passed,
                "note": note,
            }
        )
    return checks


def _latency_bins(result: RunResult) -> list[dict[str, float]]:
    return latency_bins(result.measurements.chat_latency)


def latency_bins(chat_latency: Sequence[tuple[float, float]]) -> list[dict[str, float]]:
    """Chat delivery latency per second of the run (by arrival)."""
    bins: dict[int, list[float]] = {}
    for t, ms in chat_latency:
        bins.setdefault(int(t), []).append(ms)
    return [
        {
            "t": float(second),
            "count": len(v),
            "p50": round(float(np.percentile(v, 50)), 2),
            "p99": round(float(np.percentile(v, 99)), 2),
            "max": round(max(v), 2),
        }
        for second, v in sorted(bins.items())
    ]


def build(result: RunResult) -> dict[str, Any]:
    summary = summarize(result)
    checks = evaluate(result, summary)
    passed = all(c["passed"] for c in checks)
    verdict = "interrupted" if result.interrupted else ("pass" if passed else "fail")
    return {
        "tool": "pairwise loadtests",
        "run_id": result.run_id,
        "url": result.url,
        "scenario": result.scenario.model_dump(),
        "started_at": result.started_at,
        "started": _date(result.started_at),
        "finished_at": result.finished_at,
        "interrupted": result.interrupted,
        "ended_early": result.ended_early,
        "verdict": verdict,
        "passed": passed and not result.interrupted,
        "checks": checks,
        "summary": summary,
        "notes": result.notes,
        "phases": result.phases,
        "first_errors": [
            {"t": t, "kind": k, "detail": d} for t, k, d in result.measurements.error_log[:50]
        ],
        "timeline": [asdict(p) for p in result.timeline],
        "latency_timeline": _latency_bins(result),
        "server_timeline": [x.to_json() for x in result.scraper.samples],
        **({"shard": list(result.shard), "raw": raw(result)} if result.shard else {}),
    }


def raw(result: RunResult) -> dict[str, Any]:
    """A worker's own observations, so the coordinator can merge percentiles exactly
    (`loadtests.merge`); only in a worker's report."""
    m = result.measurements
    return {
        "join_ms": m.join_ms,
        "chat_latency": m.chat_latency,
        "ack_ms": m.ack_ms,
        "recovery_ms": m.recovery_ms,
        "first_frame_ms": m.first_frame_ms,
        "media_latency_ms": m.media_latency_ms,
        "fallback_ms": m.fallback_ms,
    }


def write(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "report.json"
    html_path = out_dir / "report.html"
    json_path.write_text(json.dumps(report, indent=1) + "\n")
    html_path.write_text(render_html(report))
    return json_path, html_path


# --- HTML -------------------------------------------------------------------------------

Series = tuple[str, str, list[tuple[float, float | None]]]
COLORS = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed")


def _nice_step(span: float, ticks: int) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) that covers `span` in `ticks`."""
    if span <= 0:
        return 1.0
    raw = span / ticks
    exponent = 10 ** math.floor(math.log10(raw))
    for step in (1, 2, 2.5, 5, 10):
        if raw <= step * exponent * (1 + 1e-9):
            return step * exponent
    return 10 * exponent


def nice_axis(low: float, high: float, ticks: int) -> list[float]:
    """Round tick values from at most `low` (never above 0) to at least `high`."""
    low, high = min(low, 0.0), max(high, 0.0)
    step = _nice_step(high - low, ticks)
    first = math.floor(low / step + 1e-9) * step
    last = math.ceil(high / step - 1e-9) * step
    if last <= first:
        last = first + step
    count = round((last - first) / step)
    return [round(first + i * step, 10) for i in range(count + 1)]


def svg_chart(
    title: str,
    unit: str,
    series: list[Series],
    x_max: float,
    markers: dict[str, float] | None = None,
    width: int = 760,
    height: int = 240,
    x_unit: str = "s",
) -> str:
    """A line chart as inline SVG; a None value breaks the line. Both axes have round
    ticks; a negative value moves the zero line up instead of falling below the axis."""
    left, right, top, bottom = 56, 16, 28, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    ys = [y for _, _, points in series for _, y in points if y is not None]
    y_ticks = nice_axis(min(ys, default=0.0), max(ys, default=1.0), 4)
    y_min, y_max = y_ticks[0], y_ticks[-1]
    x_ticks = nice_axis(0.0, x_max if x_max > 0 else 1.0, 5)
    x_max = x_ticks[-1]

    def sx(x: float) -> float:
        return left + plot_w * min(max(x / x_max, 0.0), 1.0)

    def sy(y: float) -> float:
        return top + plot_h * (1 - min(max((y - y_min) / (y_max - y_min), 0.0), 1.0))

    out = [
        f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{html.escape(title)}">',
        f'<text x="{left}" y="16" class="title">{html.escape(title)}</text>',
    ]
    for y in y_ticks:
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" '
            'class="grid"/>'
        )
        out.append(
            f'<text x="{left - 6}" y="{sy(y) + 4:.1f}" class="axis" text-anchor="end">{y:g}</text>'
        )
    for x in x_ticks:
        out.append(
            f'<text x="{sx(x):.1f}" y="{height - bottom + 16}" class="axis" '
            f'text-anchor="middle">{x:g}{html.escape(x_unit)}</text>'
        )
    out.append(
        f'<text x="12" y="{top + plot_h / 2:.0f}" class="axis" '
        f'transform="rotate(-90 12 {top + plot_h / 2:.0f})" '
        f'text-anchor="middle">{html.escape(unit)}</text>'
    )
    for label, at in (markers or {}).items():
        out.append(
            f'<line x1="{sx(at):.1f}" x2="{sx(at):.1f}" y1="{top}" '
            f'y2="{top + plot_h}" class="marker"/>'
        )
        near_right = sx(at) > width - right - 60
        out.append(
            f'<text x="{sx(at) + (-3 if near_right else 3):.1f}" y="{top + 10}" '
            f'class="marker-label" text-anchor="{"end" if near_right else "start"}">'
            f"{html.escape(label)}</text>"
        )
    for index, (label, color, points) in enumerate(series):
        runs: list[list[str]] = [[]]
        for x, value in points:
            if value is None:
                runs.append([])
            else:
                runs[-1].append(f"{sx(x):.1f},{sy(value):.1f}")
        for run in runs:
            if len(run) == 1:
                cx, cy = run[0].split(",")
                out.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{color}"/>')
            elif run:
                out.append(
                    f'<polyline points="{" ".join(run)}" fill="none" '
                    f'stroke="{color}" stroke-width="1.8"/>'
                )
        ly = top + 14 + 14 * index
        out.append(
            f'<rect x="{width - right - 170}" y="{ly - 9}" width="10" height="10" '
            f'fill="{color}"/><text x="{width - right - 155}" y="{ly}" '
            f'class="legend">{html.escape(label)}</text>'
        )
    if not ys:
        out.append(
            f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" class="axis" '
            'text-anchor="middle">no data</text>'
        )
    out.append("</svg>")
    return "".join(out)


def standalone_svg(chart: str) -> str:
    """A chart from `svg_chart` as an .svg file of its own (namespace and styles)."""
    styles = " ".join(line for line in CSS.splitlines() if line.startswith("svg"))
    head = '<svg xmlns="http://www.w3.org/2000/svg" '
    return chart.replace("<svg ", head, 1).replace(">", f"><style>{styles}</style>", 1) + "\n"


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) < 1e6 else f"{value:,.0f}"
    return html.escape(str(value))


CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:820px;color:#111;padding:0 1rem}
h1{font-size:1.4rem;margin-bottom:.2rem}h2{font-size:1.1rem;margin-top:2rem}
.verdict{display:inline-block;padding:.2rem .7rem;border-radius:4px;color:#fff;font-weight:600}
.pass{background:#059669}.fail{background:#dc2626}.interrupted{background:#d97706}
table{border-collapse:collapse;margin:.5rem 0}td,th{padding:.2rem .8rem .2rem 0;text-align:left}
th{font-weight:600;border-bottom:1px solid #ccc}td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#059669}.bad{color:#dc2626;font-weight:600}.muted{color:#666}
svg{display:block;margin:1rem 0}svg .title{font-weight:600;font-size:13px}
svg .axis,svg .legend,svg .marker-label{font-size:11px;fill:#444}
svg .grid{stroke:#e5e7eb}svg .marker{stroke:#9ca3af;stroke-dasharray:4 3}
code{background:#f3f4f6;padding:0 .2rem}
"""


def _date(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render_html(report: dict[str, Any]) -> str:
    s = report["summary"]
    scenario = report["scenario"]
    chat = s["chat"]
    timeline = report["timeline"]
    server = report["server_timeline"]
    x_max = max([p["t"] for p in timeline] + [p["t"] for p in server] + [1.0])
    markers = {k: v for k, v in report["phases"].items() if k in ("steady", "drain")}
    e = html.escape
    parts = [
        "<!doctype html><html lang=en><meta charset=utf-8>",
        f"<title>Load test {e(report['run_id'])}: {e(report['verdict'])}</title>",
        f"<style>{CSS}</style>",
        f"<h1>Load test: {e(scenario['name'])} "
        f"<span class='verdict {e(report['verdict'])}'>{e(report['verdict'].upper())}</span></h1>",
        f"<p class=muted>Run <code>{e(report['run_id'])}</code> on "
        f"{e(_date(report['started_at']))} against "
        f"<code>{e(report['url'])}</code>: {scenario['rooms']} rooms × "
        f"{scenario['participants_per_room']} participants, ramp-up {scenario['ramp_up_s']} s, "
        f"duration {scenario['duration_s']} s, chat {scenario['chat']['messages_per_second']} "
        f"msg/s per participant, media {'on' if scenario['media']['enabled'] else 'off'}.</p>",
    ]
    if report["interrupted"]:
        parts.append(
            "<p class=bad>The run was stopped before its end; the numbers cover what ran.</p>"
        )
    if report["ended_early"]:
        parts.append(f"<p class=bad>Ended early: {e(report['ended_early'])}.</p>")
    for note in report["notes"]:
        parts.append(f"<p class=muted>Note: {e(note)}</p>")

    parts.append("<h2>Thresholds</h2>")
    if report["checks"]:
        parts.append("<table><tr><th>check</th><th>limit</th><th>measured</th><th></th></tr>")
        for c in report["checks"]:
            status = "<span class=ok>pass</span>" if c["passed"] else "<span class=bad>fail</span>"
            parts.append(
                f"<tr><td>{e(c['name'])}</td><td class=num>{c['comparison']} "
                f"{_fmt(c['limit'])}</td><td class=num>{_fmt(c['actual'])}</td>"
                f"<td>{status} {e(c['note'])}</td></tr>"
            )
        parts.append("</table>")
    else:
        parts.append("<p class=muted>The scenario sets no thresholds.</p>")

    lat = chat["latency_ms"]
    rows = [
        ("participants joined", f"{s['joins']} / {s['participants']}"),
        ("join time p50 / p99 (ms)", f"{_fmt(s['join_ms']['p50'])} / {_fmt(s['join_ms']['p99'])}"),
        ("chat messages sent (acked)", _fmt(chat["messages_sent"])),
        ("… received by every member", _fmt(chat["messages_received"])),
        (
            "… acked but lost / duplicated",
            f"{chat['lost_messages']} / {chat['duplicated_messages']}",
        ),
        (
            "chat messages never acked (of them delivered anyway)",
            f"{chat['unacked_messages']} ({chat['unacked_delivered']})",
        ),
        (
            "deliveries received / expected",
            f"{chat['deliveries_received']} / {chat['deliveries_expected']}",
        ),
        (
            "delivery latency p50 / p95 / p99 / max (ms)",
            " / ".join(_fmt(lat[k]) for k in ("p50", "p95", "p99", "max")),
        ),
        (
            "ack latency p50 / p99 (ms)",
            f"{_fmt(chat['ack_ms']['p50'])} / {_fmt(chat['ack_ms']['p99'])}",
        ),
        (
            "server CPU max / mean (% of a core)",
            f"{_fmt(s['server']['max_cpu_percent'])} / {_fmt(s['server']['mean_cpu_percent'])}",
        ),
        ("server memory max (MB)", _fmt(s["server"]["max_memory_mb"])),
        *(
            (
                f"node {url}: CPU max (%), memory max (MB), participants max",
                f"{_fmt(n['max_cpu_percent'])}, {_fmt(n['max_memory_mb'])}, "
                f"{_fmt(n['max_participants'])}",
            )
            for url, n in s["server"].get("nodes", {}).items()
        ),
        ("load generator CPU max (% of a core)", _fmt(s["load_generator"]["max_cpu_percent"])),
        (
            "load generator waiting for a CPU (mean %)",
            _fmt(s["load_generator"]["mean_cpu_wait_percent"]),
        ),
        ("errors", _fmt(s["errors"])),
    ]
    recovery = s.get("recovery")
    if recovery:
        rows.append(
            (
                "reconnected after losing their node: count, p50 / max ms to join again",
                f"{recovery['reconnected']}, {_fmt(recovery['recovery_ms']['p50'])} / "
                f"{_fmt(recovery['recovery_ms']['max'])}",
            )
        )
    for event, h in s["server"]["handling"].items():
        if event in ("join", "chat"):
            rows.append(
                (
                    f"server time to handle {event}: p99 ≤ (ms), share > 100 ms / > 1 s",
                    f"{_fmt(h['p99_ms_at_most']) if h['p99_ms_at_most'] else 'above the top bucket'}, "
                    f"{h['share_over_100ms']:.1%} / "
                    f"{h['share_over_1s']:.1%}",
                )
            )
    media = s.get("media")
    if media:
        rows += [
            (
                "media publishers (failing on purpose)",
                f"{media['publishers']} ({media['failing_on_purpose']})",
            ),
            (
                "first media frame p50 / p99 (ms)",
                f"{_fmt(media['first_frame_ms']['p50'])} / {_fmt(media['first_frame_ms']['p99'])}",
            ),
            (
                "media frames received / expected",
                f"{media['frames_received']} / {media['frames_expected']} "
                f"({'—' if media['frames_ratio'] is None else format(media['frames_ratio'], '.1%')})",
            ),
            (
                "video frame latency p50 / p99 (ms, sent → received)",
                f"{_fmt(media['frame_latency_ms']['p50'])} / "
                f"{_fmt(media['frame_latency_ms']['p99'])}",
            ),
            (
                "failing on purpose, stepped down by the server: count, p50 / max ms after "
                "going silent",
                f"{media['fallbacks_observed']}, {_fmt(media['fallback_ms']['p50'])} / "
                f"{_fmt(media['fallback_ms']['max'])}",
            ),
        ]
    ph = s.get("phone")
    if ph:
        rows += [
            (
                "phone calls: successful / failed of placed",
                f"{ph['successful']} / {ph['failed']} of {ph['calls']}",
            ),
            (
                "phone call setup p50 / p99 (ms, INVITE → 200 OK)",
                f"{_fmt(ph['setup_ms']['p50'])} / {_fmt(ph['setup_ms']['p99'])}",
            ),
            (
                "callers seen in their rooms",
                f"{ph['callers_seen_in_rooms']} / {ph['rooms_with_caller']}",
            ),
        ]
    parts.append("<h2>Summary</h2><table>")
    parts += [f"<tr><td>{e(k)}</td><td class=num>{v}</td></tr>" for k, v in rows]
    parts.append("</table>")

    parts.append("<h2>Charts</h2>")
    lat_t = report["latency_timeline"]
    parts.append(
        svg_chart(
            "Chat delivery latency",
            "ms",
            [
                ("p50", COLORS[0], [(b["t"], b["p50"]) for b in lat_t]),
                ("p99", COLORS[1], [(b["t"], b["p99"]) for b in lat_t]),
            ],
            x_max,
            markers,
        )
    )
    parts.append(
        svg_chart(
            "Participants",
            "participants",
            [
                ("joined (load tool)", COLORS[0], [(p["t"], p["joined"]) for p in timeline]),
                ("in rooms (server)", COLORS[2], [(x["t"], x["participants"]) for x in server]),
                ("errors (cumulative)", COLORS[1], [(p["t"], p["errors"]) for p in timeline]),
            ],
            x_max,
            markers,
        )
    )
    parts.append(
        svg_chart(
            "CPU",
            "% of one core",
            [
                ("server", COLORS[0], [(x["t"], x["cpu_percent"]) for x in server]),
                (
                    "load generator",
                    COLORS[3],
                    [(p["t"], p["client_cpu_percent"]) for p in timeline],
                ),
            ],
            x_max,
            markers,
        )
    )
    parts.append(
        svg_chart(
            "Server memory (RSS)",
            "MB",
            [
                ("server", COLORS[4], [(x["t"], x["memory_mb"]) for x in server]),
            ],
            x_max,
            markers,
        )
    )

    parts.append("<h2>Errors by kind</h2>")
    if s["errors_by_kind"]:
        parts.append("<table><tr><th>kind</th><th>count</th></tr>")
        parts += [
            f"<tr><td>{e(k)}</td><td class=num>{v}</td></tr>"
            for k, v in s["errors_by_kind"].items()
        ]
        parts.append(
            "</table><h3>First errors</h3><table>"
            "<tr><th>t (s)</th><th>kind</th><th>detail</th></tr>"
        )
        parts += [
            f"<tr><td class=num>{x['t']:.1f}</td><td>{e(x['kind'])}</td>"
            f"<td>{e(x['detail'])}</td></tr>"
            for x in report["first_errors"][:20]
        ]
        parts.append("</table>")
    else:
        parts.append("<p class=ok>None.</p>")
    parts.append(
        "<p class=muted>The full numbers are in <code>report.json</code> "
        "next to this page.</p></html>\n"
    )
    return "\n".join(parts)
