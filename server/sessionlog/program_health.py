"""Program health: how the whole mentoring program is going, from the stored session logs.

Pairs matched, sessions per pair per month, median duration, the share of sessions that
needed a fallback (and which step), ratings, pairs going quiet, and match-fit flags. A
step the participant chose (audio-only, text: a reason starting `choice: `) is not a
fallback and is not counted.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from sqlalchemy import func, select

from server.pairs.model import PairStatus
from server.pairs.store import PairStore
from server.sessionlog.rows import fetch_all
from server.sessionlog.sessions import is_fallback, step_name
from server.store import Database
from server.store.schema import chat_messages, session_feedback, session_media_segments, sessions

DAY = 86400.0
DEFAULT_QUIET_DAYS = 14
DEFAULT_WEEKS = 12


@dataclass(frozen=True)
class MonthStat:
    month: str  # YYYY-MM
    sessions: int
    pairs: int  # pairs that existed by the end of the month (or met in it)
    per_pair: float


@dataclass(frozen=True)
class WeekStat:
    week: str  # the Monday that starts it, YYYY-MM-DD
    sessions: int
    with_fallback: int

    @property
    def fallback_rate(self) -> float | None:
        return self.with_fallback / self.sessions if self.sessions else None


@dataclass(frozen=True)
class QuietPair:
    pair_id: str
    title: str
    last_activity: float | None  # last session or message; None if there was neither
    days_quiet: float


@dataclass(frozen=True)
class NotMetPair:
    """An active pair that has had no session yet (they may have written)."""

    pair_id: str
    title: str
    matched_at: float
    days_since_matched: float


@dataclass(frozen=True)
class FlaggedPair:
    pair_id: str
    title: str
    reason: str | None


@dataclass(frozen=True)
class ProgramHealth:
    generated_at: float
    quiet_days: int
    pairs_total: int
    pairs_active: int
    pairs_by_source: dict[str, int]
    sessions_total: int
    median_duration_seconds: float | None
    sessions_with_fallback: int
    fallback_share: float | None
    fallback_steps: dict[str, int]  # "from→to" → sessions that took that step
    ratings: int
    average_rating: float | None
    rating_distribution: dict[int, int]
    months: list[MonthStat] = field(default_factory=list)
    weeks: list[WeekStat] = field(default_factory=list)
    going_quiet: list[QuietPair] = field(default_factory=list)
    # Every active pair that has not met yet, however new: before the quiet rule counts them
    # (quiet_days after matching) a new pair that never met is not "fine", only early.
    not_met: list[NotMetPair] = field(default_factory=list)
    flagged: list[FlaggedPair] = field(default_factory=list)


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def _month(ts: float) -> str:
    return _utc(ts).strftime("%Y-%m")


def _week(ts: float) -> dt.date:
    day = _utc(ts).date()
    return day - dt.timedelta(days=day.weekday())


def _month_end(month: str) -> float:
    year, number = (int(part) for part in month.split("-"))
    first_next = dt.datetime(year + number // 12, number % 12 + 1, 1, tzinfo=dt.UTC)
    return first_next.timestamp()


async def program_health(
    database: Database,
    *,
    quiet_days: int = DEFAULT_QUIET_DAYS,
    weeks: int = DEFAULT_WEEKS,
    now: float | None = None,
) -> ProgramHealth:
    now = time.time() if now is None else now
    all_pairs = await PairStore(database).list()
    session_rows = await fetch_all(
        database,
        select(
            sessions.c.id,
            sessions.c.pair_id,
            sessions.c.started_at,
            sessions.c.ended_at,
        ).order_by(sessions.c.started_at),
    )
    steps_of: dict[int, set[str]] = defaultdict(set)
    for row in await fetch_all(
        database,
        select(
            session_media_segments.c.session_id,
            session_media_segments.c.previous,
            session_media_segments.c.mode,
            session_media_segments.c.reason,
        ).where(session_media_segments.c.previous.is_not(None)),
    ):
        if is_fallback(row["previous"], row["mode"], row["reason"]):
            steps_of[row["session_id"]].add(step_name(row["previous"], row["mode"]))
    ratings = [r["rating"] for r in await fetch_all(database, select(session_feedback.c.rating))]
    last_message = {
        r["room"]: r["last"]
        for r in await fetch_all(
            database,
            select(
                chat_messages.c.room,
                func.max(chat_messages.c.ts).label("last"),
            ).group_by(chat_messages.c.room),
        )
    }

    durations = [r["ended_at"] - r["started_at"] for r in session_rows if r["ended_at"]]
    step_counts: Counter[str] = Counter()
    for steps in steps_of.values():
        step_counts.update(steps)
    with_fallback = sum(1 for r in session_rows if steps_of.get(r["id"]))

    per_month: Counter[str] = Counter(_month(r["started_at"]) for r in session_rows)
    met_in: dict[str, set[str]] = defaultdict(set)
    for r in session_rows:
        met_in[_month(r["started_at"])].add(r["pair_id"])
    months = []
    for month in sorted(per_month):
        existing = {p.id for p in all_pairs if p.created_at < _month_end(month)} | met_in[month]
        months.append(
            MonthStat(month, per_month[month], len(existing), per_month[month] / len(existing))
        )

    this_week = _week(now)
    week_starts = [this_week - dt.timedelta(weeks=n) for n in range(weeks - 1, -1, -1)]
    in_week: Counter[dt.date] = Counter()
    fallback_in_week: Counter[dt.date] = Counter()
    for r in session_rows:
        week = _week(r["started_at"])
        in_week[week] += 1
        if steps_of.get(r["id"]):
            fallback_in_week[week] += 1
    week_stats = [WeekStat(w.isoformat(), in_week[w], fallback_in_week[w]) for w in week_starts]

    last_session: dict[str, float] = {}
    for r in session_rows:
        last_session[r["pair_id"]] = max(
            last_session.get(r["pair_id"], 0.0), r["ended_at"] or r["started_at"]
        )
    quiet = []
    for pair in all_pairs:
        if pair.status != PairStatus.ACTIVE:
            continue
        seen = [t for t in (last_session.get(pair.id), last_message.get(pair.room)) if t]
        last = max(seen) if seen else None
        days = (now - (last if last is not None else pair.created_at)) / DAY
        if days >= quiet_days:
            quiet.append(QuietPair(pair.id, pair.title, last, days))
    quiet.sort(key=lambda q: -q.days_quiet)
    not_met = sorted(
        (
            NotMetPair(p.id, p.title, p.created_at, (now - p.created_at) / DAY)
            for p in all_pairs
            if p.status == PairStatus.ACTIVE and p.id not in last_session
        ),
        key=lambda n: n.matched_at,
    )

    return ProgramHealth(
        generated_at=now,
        quiet_days=quiet_days,
        pairs_total=len(all_pairs),
        pairs_active=sum(1 for p in all_pairs if p.status == PairStatus.ACTIVE),
        pairs_by_source=dict(Counter(p.source for p in all_pairs)),
        sessions_total=len(session_rows),
        median_duration_seconds=statistics.median(durations) if durations else None,
        sessions_with_fallback=with_fallback,
        fallback_share=with_fallback / len(session_rows) if session_rows else None,
        fallback_steps=dict(step_counts.most_common()),
        ratings=len(ratings),
        average_rating=statistics.fmean(ratings) if ratings else None,
        rating_distribution={n: ratings.count(n) for n in range(1, 6)},
        months=months,
        weeks=week_stats,
        going_quiet=quiet,
        not_met=not_met,
        flagged=[FlaggedPair(p.id, p.title, p.flag_reason) for p in all_pairs if p.flagged],
    )
