"""Match a whole cohort in one call: score, assign, explain. The CLI and the API's
background runs both go through `match_cohort`."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from server.errors import InvalidInput
from server.matching.assignment import Mode, assign
from server.matching.criteria import Criteria
from server.matching.explain import PairResult, explain, points
from server.matching.profiles import Profile
from server.matching.scoring import Scorer


@dataclass
class CohortMatch:
    results: list[PairResult]  # one per mentee, in mentee order
    summary: dict[str, Any]


def match_cohort(
    mentees: Sequence[Profile],
    mentors: Sequence[Profile],
    criteria: Criteria,
    mode: Mode = "optimal",
    *,
    fixed: Iterable[tuple[str, str]] = (),
    excluded: Iterable[tuple[str, str]] = (),
    taken: Mapping[str, int] | None = None,
    progress: Callable[[float], None] | None = None,
) -> CohortMatch:
    """Pairs for `mentees`. `fixed` (mentee, mentor) identities are kept; `excluded`
    pairs are never proposed; `taken` counts places a mentor already gives elsewhere."""
    started = time.perf_counter()
    report = progress or (lambda _: None)
    excluded = set(excluded)
    criteria.check_seniority((p.identity, p.seniority) for p in (*mentees, *mentors))
    fixed_idx = check_fixed(fixed, mentees, mentors, excluded=excluded, taken=taken)
    used = taken or {}
    capacity = np.array([max(0, m.capacity - used.get(m.identity, 0)) for m in mentors])
    scorer = Scorer(mentees, mentors, criteria, excluded=excluded)
    report(0.05)
    result = assign(scorer, capacity, mode, fixed_idx, progress=lambda f: report(0.05 + 0.8 * f))
    held = np.array([used.get(m.identity, 0) for m in mentors], dtype=np.int64)
    results = explain(scorer, result, capacity, mode, held=held)
    report(1.0)
    reasons = Counter(r.reason for r in results if r.reason)
    scores = [r.score for r in results if r.score is not None]
    summary = {
        "mode": mode,
        "mentees": len(mentees),
        "mentors": len(mentors),
        "places": int(capacity.sum()),
        "matched": result.matched,
        "unmatched": len(mentees) - result.matched,
        "unmatched_reasons": dict(reasons),
        "fixed": len(fixed_idx),
        "warnings": [w for r in results for w in r.explanation.get("warnings", [])],
        "total_score": points(result.total),
        "mean_score": round(sum(scores) / len(scores), 2) if scores else None,
        "calendar": {
            "start": criteria.calendar.start.isoformat(),
            "weeks": criteria.calendar.weeks,
        },
        "solver": result.stats,
        "seconds": round(time.perf_counter() - started, 3),
    }
    return CohortMatch(results, summary)


def check_fixed(
    fixed: Iterable[tuple[str, str]],
    mentees: Sequence[Profile],
    mentors: Sequence[Profile],
    *,
    excluded: Iterable[tuple[str, str]] = (),
    taken: Mapping[str, int] | None = None,
) -> list[tuple[int, int]]:
    """Fixed (mentee, mentor) identities as indices, refused with InvalidInput when the
    people are unknown, a mentee is fixed twice, a mentor would go over capacity, or an
    avoid list or an earlier "not a good fit" rematch forbids the pair: those always
    apply. A pair failing another filter is kept, with a warning in its explanation."""
    mentee_at = {p.identity: i for i, p in enumerate(mentees)}
    mentor_at = {p.identity: j for j, p in enumerate(mentors)}
    excluded = set(excluded)
    used = Counter(taken or {})
    out: list[tuple[int, int]] = []
    seen: set[str] = set()
    for mentee, mentor in fixed:
        if mentee not in mentee_at:
            raise InvalidInput(f"fixed pair: no mentee {mentee!r} waiting for a mentor")
        if mentor not in mentor_at:
            raise InvalidInput(f"fixed pair: no mentor {mentor!r}")
        if mentee in seen:
            raise InvalidInput(f"fixed pair: mentee {mentee!r} is fixed twice")
        seen.add(mentee)
        e, m = mentees[mentee_at[mentee]], mentors[mentor_at[mentor]]
        if mentor in e.avoid or mentee in m.avoid:
            who, whom = (mentee, mentor) if mentor in e.avoid else (mentor, mentee)
            raise InvalidInput(
                f"fixed pair ({mentee!r}, {mentor!r}): {who!r} lists {whom!r} to avoid, "
                "and avoid lists always apply"
            )
        if (mentee, mentor) in excluded:
            raise InvalidInput(
                f"fixed pair ({mentee!r}, {mentor!r}): this pair was rematched as not a good fit"
            )
        used[mentor] += 1
        if used[mentor] > m.capacity:
            raise InvalidInput(f"fixed pairs give mentor {mentor!r} more mentees than its capacity")
        out.append((mentee_at[mentee], mentor_at[mentor]))
    return out
