"""Explanations and a whole cohort through `match_cohort`."""

from __future__ import annotations

from dataclasses import replace

import pytest

from server.errors import InvalidInput
from server.matching.assignment import CAPACITY_EXHAUSTED, NO_MENTOR
from server.matching.cohort import match_cohort
from server.matching.criteria import parse_criteria
from server.matching.profiles import Profile, parse_availability

CRITERIA = parse_criteria({
    "availability": {"start": "2025-03-10"},
    "criteria": [
        {"name": "skills", "rule": "overlap", "weight": "high"},
        {"name": "time", "rule": "shared_hours", "target_hours": 2, "weight": "low"},
    ],
    "filters": {"shared_language": True},
})  # fmt: skip
WEEK = parse_availability("Tue 10:00-12:00")


def mentee(
    identity: str, skills: set[str], languages: frozenset[str] = frozenset({"en"})
) -> Profile:
    return Profile(identity, identity.title(), "mentee", "Europe/Berlin", WEEK,
                   languages=languages, skills=frozenset(skills))  # fmt: skip


def mentor(identity: str, skills: set[str], capacity: int = 1) -> Profile:
    return Profile(identity, identity.title(), "mentor", "Europe/Berlin", WEEK,
                   languages=frozenset({"en"}), skills=frozenset(skills), capacity=capacity)  # fmt: skip


def test_runner_up_lost_to_a_better_overall_fit() -> None:
    # Both want Ada. Ada is everything to Bo but only half of what Cy wants, so the
    # optimum gives Ada to Bo and Cy the runner-up Eve.
    mentees = [mentee("bo", {"go"}), mentee("cy", {"go", "sql"})]
    mentors = [mentor("ada", {"go"}), mentor("eve", {"sql"})]
    outcome = match_cohort(mentees, mentors, CRITERIA, "optimal")
    bo, cy = outcome.results
    assert (bo.mentor, cy.mentor) == ("ada", "eve")
    assert cy.score == 62.5 and cy.contributions == {"skills": 37.5, "time": 25.0}
    assert cy.explanation["top_criteria"][0] == {"criterion": "skills", "points": 37.5}
    assert cy.explanation["shared_hours"] == 2.0
    runner = bo.explanation["runner_up"]
    assert runner["mentor"] == "eve" and runner["score"] == 25.0
    assert runner["why_not"] == "scored 75 lower, mainly on skills (75 points less)"
    assert cy.explanation["runner_up"] == {
        "mentor": "ada", "name": "Ada", "score": 62.5,
        "why_not": "scored the same; the tie went the way that made the cohort's total highest",
    }  # fmt: skip
    assert cy.explanation["summary"].startswith("Matched with Eve (score 62.5): skills +37.5")
    assert cy.slots == [{
        "start_utc": "2025-03-11T09:00:00+00:00", "minutes": 120,
        "mentee_local": "Tue 10:00-12:00 Europe/Berlin", "mentor_local": "Tue 10:00-12:00 Europe/Berlin",
    }]  # fmt: skip
    assert outcome.summary["matched"] == 2 and outcome.summary["total_score"] == 162.5


def test_runner_up_at_capacity() -> None:
    mentees = [mentee("bo", {"go"}), mentee("cy", {"go"})]
    mentors = [mentor("ada", {"go"}), mentor("eve", set())]
    outcome = match_cohort(mentees, mentors, CRITERIA, "optimal")
    loser = next(r for r in outcome.results if r.mentor == "eve")
    assert loser.explanation["runner_up"]["why_not"] == (
        "scored higher, but is at capacity (1/1): capacity used by a better overall fit"
    )


def test_unmatched_reasons_and_fixed_pairs() -> None:
    mentees = [mentee("bo", {"go"}), mentee("cy", {"go"}), mentee("dee", {"go"}, frozenset({"fr"}))]
    mentors = [mentor("ada", {"go"})]
    outcome = match_cohort(mentees, mentors, CRITERIA, "stable", fixed=[("cy", "ada")])
    bo, cy, dee = outcome.results
    assert cy.mentor == "ada" and cy.fixed
    assert "Fixed by the operator" in cy.explanation["summary"]
    assert (bo.mentor, bo.reason) == (None, CAPACITY_EXHAUSTED)
    assert bo.explanation["best_option"]["why_not"] == "at capacity (1/1)"
    assert (dee.mentor, dee.reason) == (None, NO_MENTOR)
    assert dee.explanation["ruled_out_by"] == {"shared language": 1}
    assert dee.explanation["summary"] == (
        "Not matched: no mentor passes the filters: of 1 mentors, shared language rules out 1."
    )
    assert outcome.summary["unmatched_reasons"] == {CAPACITY_EXHAUSTED: 1, NO_MENTOR: 1}


def test_the_reason_names_each_filter_and_how_many_mentors_it_rules_out() -> None:
    criteria = parse_criteria({
        "availability": {"start": "2025-03-10"},
        "criteria": [{"name": "skills", "rule": "overlap", "weight": "must"}],
        "filters": {"shared_language": True, "different_department": True},
    })  # fmt: skip
    bo = mentee("bo", {"go"}, frozenset({"fr"}))
    mentors = [mentor("ada", {"go"}), mentor("eve", {"sql"}), mentor("kim", set())]
    [result] = match_cohort([bo], mentors, criteria).results
    assert result.explanation["ruled_out_by"] == {"shared language": 3, "skills (must)": 2}


def test_one_shared_hour_is_singular() -> None:
    week = parse_availability("Tue 10:00-11:00")
    bo = Profile("bo", "Bo", "mentee", "UTC", week, languages=frozenset({"en"}))
    ada = Profile("ada", "Ada", "mentor", "UTC", week, languages=frozenset({"en"}))
    [result] = match_cohort([bo], [ada], CRITERIA).results
    assert result.explanation["summary"].endswith("; 1 shared hour a week.")


@pytest.mark.parametrize(
    ("bo_avoids", "ada_avoids", "excluded", "message"),
    [({"ada"}, set(), [], "'bo' lists 'ada' to avoid, and avoid lists always apply"),
     (set(), {"bo"}, [], "'ada' lists 'bo' to avoid, and avoid lists always apply"),
     (set(), set(), [("bo", "ada")], "this pair was rematched as not a good fit")],
)  # fmt: skip
def test_a_fixed_pair_an_avoid_list_forbids_is_refused(
    bo_avoids: set[str], ada_avoids: set[str], excluded: list, message: str
) -> None:
    bo = replace(mentee("bo", {"go"}), avoid=frozenset(bo_avoids))
    ada = replace(mentor("ada", {"go"}), avoid=frozenset(ada_avoids))
    with pytest.raises(InvalidInput, match=message):
        match_cohort([bo], [ada], CRITERIA, fixed=[("bo", "ada")], excluded=excluded)


def test_a_fixed_pair_failing_the_filters_is_kept_with_a_warning() -> None:
    dee = mentee("dee", {"go"}, frozenset({"fr"}))
    outcome = match_cohort([dee], [mentor("ada", {"go"})], CRITERIA, fixed=[("dee", "ada")])
    [result] = outcome.results
    assert (result.mentor, result.fixed) == ("ada", True)
    assert result.explanation["passes_filters"] is False
    warning = "fixed pair dee - ada kept although it fails: shared language"
    assert result.explanation["warnings"] == [warning]
    assert outcome.summary["warnings"] == [warning]


def test_places_taken_elsewhere_reduce_capacity() -> None:
    outcome = match_cohort([mentee("bo", {"go"})], [mentor("ada", {"go"}, capacity=2)], CRITERIA,
                           taken={"ada": 2})  # fmt: skip
    assert outcome.results[0].reason == CAPACITY_EXHAUSTED and outcome.summary["places"] == 0
    # Its load reads against its whole capacity: both places are held by active pairs.
    best = outcome.results[0].explanation["best_option"]
    assert best["why_not"] == "at capacity (2/2)"


def test_fixed_pair_with_unknown_people() -> None:
    with pytest.raises(InvalidInput, match="no mentor 'zed'"):
        match_cohort([mentee("bo", set())], [mentor("ada", set())], CRITERIA, fixed=[("bo", "zed")])


@pytest.mark.parametrize("mode", ["optimal", "max-coverage", "stable"])
def test_empty_sides(mode: str) -> None:
    alone = match_cohort([mentee("bo", {"go"})], [], CRITERIA, mode)  # type: ignore[arg-type]
    assert alone.results[0].reason == NO_MENTOR
    assert match_cohort([], [mentor("ada", {"go"})], CRITERIA, mode).summary["matched"] == 0  # type: ignore[arg-type]


def test_an_unknown_seniority_level_is_refused() -> None:
    criteria = parse_criteria({
        "criteria": [{"name": "level", "rule": "distance", "field": "seniority",
                      "levels": ["junior", "mid", "senior"], "ideal": 1}],
    })  # fmt: skip
    bo = replace(mentee("bo", {"go"}), seniority="wizard")
    ada = replace(mentor("ada", {"go"}), seniority="Senior")  # levels ignore case
    with pytest.raises(
        InvalidInput,
        match=r"unknown seniority level 'wizard' \(bo\): criterion 'level' knows junior, mid, senior",
    ):
        match_cohort([bo], [ada], criteria)
    unknown_level = replace(bo, seniority="")  # not given: allowed, scores 0 on it
    assert match_cohort([unknown_level], [ada], criteria).results[0].mentor == "ada"
