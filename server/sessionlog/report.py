"""Program health as one self-contained HTML file: inline CSS and SVG charts, no scripts,
nothing fetched from anywhere, so it can be mailed or archived as it is."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from html import escape

from server.sessionlog.program_health import ProgramHealth

WIDTH, HEIGHT, PAD = 640, 220, 32
CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#1d2330}
h1{font-size:1.6rem}h2{font-size:1.15rem;margin-top:2rem}
.cards{display:flex;flex-wrap:wrap;gap:.75rem}
.card{border:1px solid #d5dae3;border-radius:8px;padding:.6rem .9rem;min-width:9rem}
.card b{display:block;font-size:1.4rem}
table{border-collapse:collapse}td,th{border-bottom:1px solid #e3e6ec;padding:.3rem .6rem;text-align:left}
svg text{font:11px system-ui,sans-serif;fill:#4a5263}
.muted{color:#6b7385}
"""


def bar_chart(
    bars: Sequence[tuple[str, float | None]], title: str, unit: str = "", top: float | None = None
) -> str:
    """An SVG bar chart; a None value is drawn as "no data" (not as zero)."""
    values = [v for _, v in bars if v is not None]
    ceiling = top if top is not None else max(values + [1.0])
    step = (WIDTH - 2 * PAD) / max(len(bars), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(title)}">',
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" '
        'stroke="#9aa3b5"/>',
        f'<text x="{PAD}" y="14">{escape(title)} (max {_number(ceiling)}{unit})</text>',
    ]
    for i, (label, value) in enumerate(bars):
        x = PAD + i * step
        if value is None:
            parts.append(
                f'<text x="{x + step / 2:.1f}" y="{HEIGHT - PAD - 4}" text-anchor="middle">–</text>'
            )
        else:
            height = (HEIGHT - 2 * PAD - 10) * (value / ceiling if ceiling else 0)
            parts.append(
                f'<rect x="{x + step * 0.15:.1f}" y="{HEIGHT - PAD - height:.1f}" '
                f'width="{step * 0.7:.1f}" height="{height:.1f}" fill="#3b6fd8">'
                f"<title>{escape(label)}: {_number(value)}{unit}</title></rect>"
            )
        parts.append(
            f'<text x="{x + step / 2:.1f}" y="{HEIGHT - PAD + 14}" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d") if ts else "never"


def _percent(share: float | None) -> str:
    return "–" if share is None else f"{share * 100:.0f}%"


def _rows(header: Sequence[str], rows: Sequence[Sequence[object]], empty: str) -> str:
    if not rows:
        return f'<p class="muted">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_report(health: ProgramHealth, title: str = "Pairwise program health") -> str:
    median = health.median_duration_seconds
    cards = [
        ("Pairs matched", f"{health.pairs_active} active / {health.pairs_total}"),
        ("Sessions", str(health.sessions_total)),
        ("Median duration", "–" if median is None else f"{median / 60:.0f} min"),
        ("Needed a fallback", _percent(health.fallback_share)),
        (
            "Average rating",
            "–"
            if health.average_rating is None
            else f"{health.average_rating:.1f} / 5 ({health.ratings})",
        ),
        ("Going quiet", str(len(health.going_quiet))),
        ("Match-fit flags", str(len(health.flagged))),
    ]
    weeks = [(w.week[5:], float(w.sessions)) for w in health.weeks]
    rates = [
        (w.week[5:], None if w.fallback_rate is None else w.fallback_rate * 100)
        for w in health.weeks
    ]
    ratings = [(f"{n}★", float(c)) for n, c in health.rating_distribution.items()]
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
            f"<h1>{escape(title)}</h1>",
            f'<p class="muted">Generated {_when(health.generated_at)} (UTC). '
            f"“Going quiet”: no session or message for {health.quiet_days} days.</p>",
            '<div class="cards">'
            + "".join(f'<div class="card">{escape(k)}<b>{escape(v)}</b></div>' for k, v in cards)
            + "</div>",
            "<h2>Sessions per week</h2>",
            bar_chart(weeks, "Sessions per week"),
            "<h2>Fallback rate</h2>",
            bar_chart(rates, "Sessions that needed a fallback", "%", 100),
            _rows(["Step", "Sessions"], list(health.fallback_steps.items()), "No fallbacks."),
            "<h2>Ratings</h2>",
            bar_chart(ratings, "Rating distribution"),
            "<h2>Sessions per pair per month</h2>",
            _rows(
                ["Month", "Sessions", "Pairs", "Per pair"],
                [(m.month, m.sessions, m.pairs, f"{m.per_pair:.2f}") for m in health.months],
                "No sessions yet.",
            ),
            "<h2>Going quiet</h2>",
            _rows(
                ["Pair", "Last session or message", "Days quiet"],
                [
                    (q.title, _when(q.last_activity), f"{q.days_quiet:.0f}")
                    for q in health.going_quiet
                ],
                "Every pair has met or written recently.",
            ),
            "<h2>Match-fit flags</h2>",
            _rows(
                ["Pair", "Reason"],
                [(f.title, f.reason or "") for f in health.flagged],
                "No pair is flagged.",
            ),
            "</body></html>",
        ]
    )
