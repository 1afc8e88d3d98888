"""Criteria documents: validation and contradictions."""

from __future__ import annotations

from datetime import date

import pytest

from server.errors import InvalidInput
from server.matching.criteria import load_criteria, parse_criteria

YAML = """
availability: {start: 2025-03-10, weeks: 2}
criteria:
  - {name: skills, rule: overlap, field: skills, weight: high}
  - {name: seniority, rule: distance, field: seniority, levels: [Junior, Mid, Senior], ideal: 1, weight: 1.5}
  - {name: time, rule: shared_hours, min_hours: 1, target_hours: 3, weight: must}
filters: {max_timezone_gap_hours: 6, shared_language: true}
"""


def test_yaml_criteria() -> None:
    criteria = load_criteria(YAML)
    skills, seniority, time = criteria.criteria
    assert skills.weight_value == 3 and skills.mentor_field == "skills"
    assert seniority.weight_value == 1.5 and seniority.levels == ["junior", "mid", "senior"]
    assert time.is_must and time.weight_value == 3
    assert criteria.calendar.start == date(2025, 3, 10) and criteria.calendar.weeks == 2
    assert criteria.total_weight == 7.5
    assert load_criteria(__import__("json").dumps(criteria.to_json())) == criteria


def test_default_calendar_is_this_weeks_monday() -> None:
    criteria = parse_criteria({"criteria": [{"name": "s", "rule": "overlap"}]})
    assert criteria.calendar.start.weekday() == 0


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"criteria": []}, "at least 1"),
        ({"criteria": [{"name": "a", "rule": "overlap"}, {"name": "a", "rule": "overlap"}]},
         "names must be unique: a"),
        ({"criteria": [{"name": "a", "rule": "overlap", "weight": 0}]}, "weight 0"),
        ({"criteria": [{"name": "a", "rule": "overlap", "weight": -1}]}, "between 0 and 1000"),
        ({"criteria": [{"name": "a", "rule": "overlap", "weight": "huge"}]}, "weight"),
        ({"criteria": [{"name": "a", "rule": "overlap", "field": "seniority"}]}, "list field"),
        ({"criteria": [{"name": "a", "rule": "equality", "field": "skills"}]}, "equality compares"),
        ({"criteria": [{"name": "a", "rule": "distance"}]}, "needs its levels"),
        ({"criteria": [{"name": "a", "rule": "shared_hours", "min_hours": 5, "target_hours": 2}]},
         "min_hours \\(5.0\\) is above target_hours"),
        ({"criteria": [{"name": "d", "rule": "equality", "field": "department", "weight": "must"}],
          "filters": {"different_department": True}},
         "requires the same department but filters.different_department forbids it"),
        ({"criteria": [{"name": "a", "rule": "overlap"}], "availability": {"start": "2025-03-11"}},
         "must be a Monday"),
        ({"criteria": [{"name": "a", "rule": "overlap"}], "filters": {"max_timezone_gap_hours": -1}},
         "max_timezone_gap_hours"),
        ({"criteria": [{"name": "a", "rule": "overlap", "colour": "red"}]}, "colour"),
    ],
)  # fmt: skip
def test_invalid_or_contradictory_criteria(doc: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_criteria(doc)


def test_not_yaml() -> None:
    with pytest.raises(InvalidInput, match="not valid YAML"):
        load_criteria("criteria: [unclosed")
    with pytest.raises(InvalidInput, match="must be an object"):
        load_criteria("- just a list")
