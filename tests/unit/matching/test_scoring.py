"""Scores: contributions add up, the matrix and the breakdown agree, filters hold."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from server.matching.assignment import assign
from server.matching.availability import Calendar, shared_hours
from server.matching.criteria import parse_criteria
from server.matching.profiles import Profile, Window
from server.matching.scoring import FILTERED, FULL, Scorer

ZONES = ["UTC", "Europe/London", "America/New_York", "Asia/Kolkata", "Asia/Tokyo"]
WORDS = ["a", "b", "c", "d"]
LEVELS = ["junior", "mid", "senior"]
CRITERIA = parse_criteria({
    "availability": {"start": "2025-03-10"},
    "criteria": [
        {"name": "skills", "rule": "overlap", "field": "skills", "weight": "high"},
        {"name": "goals", "rule": "overlap", "field": "goals", "mentor_field": "tags", "weight": 0.7},
        {"name": "org", "rule": "equality", "field": "organisation", "weight": "low"},
        {"name": "level", "rule": "distance", "field": "seniority", "levels": LEVELS, "ideal": 1,
         "tolerance": 2, "weight": "medium"},
        {"name": "years", "rule": "distance", "field": "experience_years", "ideal": 5,
         "tolerance": 10, "weight": 0.3},
        {"name": "time", "rule": "shared_hours", "min_hours": 0.5, "target_hours": 3,
         "weight": "must"},
        {"name": "wish", "rule": "preference", "weight": "low"},
    ],
    "filters": {"max_timezone_gap_hours": 6, "shared_language": True,
                "different_department": True, "different_reporting_line": True},
})  # fmt: skip


@st.composite
def profiles(draw: st.DrawFn, role: str, count: int, others: list[str]) -> list[Profile]:
    out = []
    for k in range(count):
        windows = draw(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 22), st.integers(1, 8)),
                                max_size=3))  # fmt: skip
        words = st.frozensets(st.sampled_from(WORDS), max_size=3)
        out.append(Profile(
            identity=f"{role}{k}", name=f"{role}{k}", role=role,  # type: ignore[arg-type]
            timezone=draw(st.sampled_from(ZONES)),
            availability=tuple(sorted({Window(d, h * 60, min(24, h + n) * 60) for d, h, n in windows})),
            languages=draw(st.frozensets(st.sampled_from(["en", "fr"]), max_size=2)),
            skills=draw(words), goals=draw(words), tags=draw(words),
            seniority=draw(st.sampled_from([*LEVELS, ""])),
            experience_years=draw(st.one_of(st.none(), st.floats(0, 30))),
            department=draw(st.sampled_from(["", "x", "y"])),
            organisation=draw(st.sampled_from(["", "p", "q"])),
            reports_to=draw(st.sampled_from(["", "boss", *others])),
            capacity=draw(st.integers(0, 3)) if role == "mentor" else 1,
            avoid=draw(st.frozensets(st.sampled_from(others), max_size=2)) if others else frozenset(),
            prefer=draw(st.frozensets(st.sampled_from(others), max_size=2)) if others else frozenset(),
        ))  # fmt: skip
    return out


@st.composite
def cohorts(draw: st.DrawFn) -> tuple[list[Profile], list[Profile]]:
    n_e, n_m = draw(st.integers(1, 6)), draw(st.integers(1, 4))
    mentees = draw(profiles("mentee", n_e, [f"mentor{j}" for j in range(n_m)]))
    mentors = draw(profiles("mentor", n_m, [f"mentee{i}" for i in range(n_e)]))
    return mentees, mentors


@cache
def widest_gap(a: str, b: str, calendar: Calendar) -> float:
    """Hours between two clocks where they are furthest apart, looked at every quarter
    hour of the calendar."""
    origin = datetime.combine(calendar.start, time(), UTC)
    gaps = []
    for q in range(calendar.weeks * 7 * 96):
        moment = origin + timedelta(minutes=15 * q)
        offsets = [moment.astimezone(ZoneInfo(z)).utcoffset() for z in (a, b)]
        gap = abs(offsets[0] - offsets[1]).total_seconds() / 3600 % 24  # type: ignore[operator]
        gaps.append(min(gap, 24 - gap))
    return max(gaps)


def allowed(e: Profile, m: Profile) -> bool:
    """The hard filters, written out plainly."""
    calendar = CRITERIA.calendar
    return (
        m.identity not in e.avoid and e.identity not in m.avoid
        and widest_gap(e.timezone, m.timezone, calendar) <= 6
        and bool(e.languages & m.languages)
        and not (e.department and e.department == m.department)
        and e.reports_to != m.identity and m.reports_to != e.identity
        and not (e.reports_to and e.reports_to == m.reports_to)
        and shared_hours(e, m, calendar) >= 0.5
    )  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(cohorts())
def test_contributions_add_up_and_filters_hold(cohort: tuple) -> None:
    mentees, mentors = cohort
    scorer = Scorer(mentees, mentors, CRITERIA)
    matrix = scorer.rows(np.arange(len(mentees)))
    e, m = np.divmod(np.arange(matrix.size), len(mentors))
    parts = scorer.breakdown(e, m)
    assert (parts.scores == matrix.ravel()).all(), "a pair's breakdown differs from the matrix"
    passing = parts.scores != FILTERED
    assert (parts.contributions.sum(axis=1)[passing] == parts.scores[passing]).all()
    assert ((parts.contributions >= 0) & (parts.contributions <= FULL)).all()
    assert ((matrix == FILTERED) | ((matrix >= 0) & (matrix <= FULL))).all()
    for i, j in zip(e, m, strict=True):
        assert (matrix[i, j] != FILTERED) == allowed(mentees[i], mentors[j]), (i, j)
    result = assign(scorer, [p.capacity for p in mentors], "optimal")
    for i, j in enumerate(result.mentor_of):
        if j >= 0:
            assert allowed(mentees[i], mentors[j])


def test_a_perfect_pair_scores_100_and_each_criterion_its_share() -> None:
    criteria = parse_criteria({
        "availability": {"start": "2025-03-10"},
        "criteria": [
            {"name": "skills", "rule": "overlap", "weight": "high"},
            {"name": "time", "rule": "shared_hours", "target_hours": 2, "weight": "low"},
        ],
    })  # fmt: skip
    week = (Window(0, 540, 720),)
    mentee = Profile("e", "E", "mentee", "UTC", week, skills=frozenset({"go", "sql"}))
    mentor = Profile("m", "M", "mentor", "UTC", week, skills=frozenset({"go"}))
    parts = Scorer([mentee], [mentor], criteria).breakdown(np.array([0]), np.array([0]))
    # skills: half of what the mentee wants (0.5 x 3/4 = 37.5); time: 3 h >= 2 h (1 x 1/4 = 25).
    assert parts.scores.tolist() == [6250]
    assert parts.contributions.tolist() == [[3750, 2500]]
    assert parts.hours.tolist() == [3.0]


def test_rematch_exclusions_rule_a_pair_out() -> None:
    criteria = parse_criteria({"criteria": [{"name": "s", "rule": "overlap"}]})
    mentee = Profile("e", "E", "mentee", "UTC", skills=frozenset({"go"}))
    mentor = Profile("m", "M", "mentor", "UTC", skills=frozenset({"go"}))
    assert Scorer([mentee], [mentor], criteria).rows(np.array([0])).tolist() == [[FULL]]
    scorer = Scorer([mentee], [mentor], criteria, excluded=[("e", "m")])
    assert scorer.rows(np.array([0])).tolist() == [[FILTERED]]


def test_the_time_zone_gap_holds_over_the_whole_calendar() -> None:
    # New York-Sydney: 8 h apart in the week of 3 March 2025, 9 h once the US moves (9 March).
    mentee = Profile("e", "E", "mentee", "America/New_York", skills=frozenset({"go"}))
    mentor = Profile("m", "M", "mentor", "Australia/Sydney", skills=frozenset({"go"}))

    def score(start: str, weeks: int) -> int:
        criteria = parse_criteria({
            "availability": {"start": start, "weeks": weeks},
            "criteria": [{"name": "s", "rule": "overlap"}],
            "filters": {"max_timezone_gap_hours": 8},
        })  # fmt: skip
        return int(Scorer([mentee], [mentor], criteria).rows(np.array([0]))[0, 0])

    assert score("2025-02-24", 1) == FULL
    assert score("2025-03-03", 1) == FILTERED  # the change on Sunday 9 March counts too
    assert score("2025-03-03", 4) == FILTERED
    assert score("2025-03-10", 3) == FILTERED
