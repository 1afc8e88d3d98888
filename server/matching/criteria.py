"""A program's matching criteria: what counts, how much, and what rules a pair out.

Each criterion compares one thing about a mentee and a mentor and gives a value from
0 to 1 (its rule). Its weight says how much that value counts in the 0-100 score;
`must` makes it a hard filter as well (and it then counts like `high`). Filters that
are not about one criterion (time-zone gap, a shared language, department, reporting
line) sit under `filters`. Avoid lists always apply.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from server.errors import InvalidInput
from server.matching.availability import Calendar
from server.matching.profiles import NUMBER_FIELDS, SET_FIELDS, TEXT_FIELDS

NAMED_WEIGHTS = {"must": 3.0, "high": 3.0, "medium": 2.0, "low": 1.0}
Rule = Literal["overlap", "equality", "distance", "shared_hours", "preference"]


class Criterion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    rule: Rule
    weight: Literal["must", "high", "medium", "low"] | float = "medium"
    field: str | None = Field(None, description="The profile field compared (both sides)")
    mentor_field: str | None = Field(
        None, description="overlap: the mentor's field when it differs from the mentee's"
    )
    min_overlap: int = Field(1, ge=1, description="overlap, must: shared items needed")
    levels: list[str] | None = Field(None, description="distance: ordered values, lowest first")
    ideal: float = Field(0.0, description="distance: best mentor minus mentee difference")
    tolerance: float = Field(
        3.0, gt=0, description="distance: difference from ideal at which the value reaches 0"
    )
    min_hours: float = Field(0.0, ge=0, le=168, description="shared_hours: fewer scores 0")
    target_hours: float = Field(
        4.0, gt=0, le=168, description="shared_hours: this many or more scores 1"
    )

    @property
    def is_must(self) -> bool:
        return self.weight == "must"

    @property
    def weight_value(self) -> float:
        return NAMED_WEIGHTS[self.weight] if isinstance(self.weight, str) else float(self.weight)

    @model_validator(mode="after")
    def _rule_fits(self) -> Criterion:
        if isinstance(self.weight, float) and not 0 <= self.weight <= 1000:
            raise ValueError("a numeric weight is between 0 and 1000")
        if self.rule == "overlap":
            self.field = self.field or "skills"
            self.mentor_field = self.mentor_field or self.field
            for name in (self.field, self.mentor_field):
                _require(
                    name in SET_FIELDS, f"overlap compares a list field ({_one_of(SET_FIELDS)})"
                )
        elif self.rule == "equality":
            _require(self.field in TEXT_FIELDS, f"equality compares {_one_of(TEXT_FIELDS)}")
        elif self.rule == "distance":
            self.field = self.field or "seniority"
            _require(
                self.field in ("seniority", *NUMBER_FIELDS),
                f"distance compares seniority or {_one_of(NUMBER_FIELDS)}",
            )
            if self.field == "seniority":
                _require(bool(self.levels), "distance on seniority needs its levels, lowest first")
            levels = [v.casefold() for v in self.levels or []]
            _require(len(set(levels)) == len(levels), "levels must be different from each other")
            self.levels = levels or None
        elif self.rule == "shared_hours":
            _require(
                self.min_hours <= self.target_hours,
                f"min_hours ({self.min_hours}) is above target_hours ({self.target_hours})",
            )
        if self.rule in ("shared_hours", "preference"):
            _require(self.field is None, f"{self.rule} takes no field")
        return self


class Filters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_timezone_gap_hours: float | None = Field(None, ge=0, le=12)
    shared_language: bool = False
    different_department: bool = False
    different_reporting_line: bool = Field(
        False, description="no direct reports either way, and not the same manager"
    )


class CalendarConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: date | None = Field(None, description="A Monday; default: this week's")
    weeks: int = Field(1, ge=1, le=52)


class Criteria(BaseModel):
    model_config = ConfigDict(extra="forbid")

    criteria: list[Criterion] = Field(min_length=1)
    filters: Filters = Field(default_factory=lambda: Filters.model_validate({}))
    availability: CalendarConfig = Field(default_factory=lambda: CalendarConfig.model_validate({}))

    @model_validator(mode="after")
    def _consistent(self) -> Criteria:
        names = [c.name for c in self.criteria]
        twice = sorted({n for n in names if names.count(n) > 1})
        _require(not twice, f"criteria names must be unique: {', '.join(twice)}")
        _require(
            sum(c.weight_value for c in self.criteria) > 0,
            "every criterion has weight 0, so no pair could score above 0",
        )
        if self.filters.different_department:
            for c in self.criteria:
                _require(
                    not (c.is_must and c.rule == "equality" and c.field == "department"),
                    f"criterion {c.name!r} requires the same department but "
                    "filters.different_department forbids it",
                )
        start = self.availability.start
        if start is None:
            today = datetime.now(UTC).date()
            self.availability.start = today - timedelta(days=today.weekday())
        elif start.weekday() != 0:
            raise ValueError(f"availability.start must be a Monday; {start} is a {start:%A}")
        return self

    @property
    def calendar(self) -> Calendar:
        assert self.availability.start is not None
        return Calendar(self.availability.start, self.availability.weeks)

    @property
    def total_weight(self) -> float:
        return sum(c.weight_value for c in self.criteria)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    def check_seniority(self, people: Iterable[tuple[str, str]]) -> None:
        """InvalidInput if a seniority (of (identity, seniority) pairs) is not one of a
        criterion's `levels`: an unknown level ("wizard") would otherwise score 0
        without a word. An empty seniority is "not given" and allowed."""
        ranked = [c for c in self.criteria if c.field == "seniority" and c.levels]
        if not ranked:
            return
        people = list(people)
        for c in ranked:
            levels = set(c.levels or [])
            unknown: dict[str, list[str]] = {}
            for identity, seniority in people:
                if seniority and seniority.casefold() not in levels:
                    unknown.setdefault(seniority, []).append(identity)
            if unknown:
                shown = "; ".join(
                    f"{level!r} ({', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''})"
                    for level, ids in list(unknown.items())[:5]
                )
                raise InvalidInput(
                    f"unknown seniority level {shown}: criterion {c.name!r} knows "
                    f"{', '.join(c.levels or [])}"
                )


def parse_criteria(data: Any) -> Criteria:
    """Validate a criteria document (already parsed JSON or YAML)."""
    if not isinstance(data, dict):
        raise InvalidInput("criteria must be an object with a 'criteria' list")
    try:
        return Criteria.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors()[:5]:
            where = ".".join(str(p) for p in error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {message}" if where else message)
        raise InvalidInput(f"invalid criteria: {'; '.join(problems)}") from None


def load_criteria(text: str) -> Criteria:
    """Criteria from YAML or JSON text (JSON is YAML)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"criteria are not valid YAML or JSON: {exc}") from None
    return parse_criteria(data)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _one_of(names: tuple[str, ...]) -> str:
    return ", ".join(names)
