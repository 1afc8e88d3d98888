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
    mentee_at = {p.identity: i for i, p in enumerate(mentees)}
    mentor_at = {p.identity: j for j, p in enumerate(mentors)}
    fixed_idx = []
    for mentee, mentor in fixed:
        if mentee not in mentee_at:
            raise InvalidInput(f"fixed pair: no mentee {mentee!r}")
        if mentor not in mentor_at:
            raise InvalidInput(f"fixed pair: no mentor {mentor!r}")
        fixed_idx.append((mentee_at[mentee], mentor_at[mentor]))
    used = taken or {}
    capacity = np.array([max(0, m.capacity - used.get(m.identity, 0)) for m in mentors])
    scorer = Scorer(mentees, mentors, criteria, excluded=excluded)
    report(0.05)
    result = assign(scorer, capacity, mode, fixed_idx, progress=lambda f: report(0.05 + 0.8 * f))
    results = explain(scorer, result, capacity, mode)
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
