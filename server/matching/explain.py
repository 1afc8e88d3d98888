"""Why each mentee got their mentor: the criteria that counted most, the time they
share, and why the next-best mentor was not the one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from server.matching.assignment import BLOCK_CELLS, NO_MENTOR, Assignment, Mode
from server.matching.scoring import FILTERED, Scorer
from server.matching.slots import suggest_slots

TOP_CRITERIA = 3


@dataclass
class PairResult:
    """One mentee's outcome: a mentor with score and reasons, or why there is none."""

    mentee: str
    mentor: str | None
    score: float | None  # points, 0-100
    contributions: dict[str, float] = field(default_factory=dict)
    explanation: dict[str, Any] = field(default_factory=dict)
    slots: list[dict[str, Any]] = field(default_factory=list)
    fixed: bool = False
    reason: str | None = None  # unmatched only

    def to_json(self) -> dict[str, Any]:
        return {
            "mentee": self.mentee,
            "mentor": self.mentor,
            "score": self.score,
            "contributions": self.contributions,
            "explanation": self.explanation,
            "slots": self.slots,
            "fixed": self.fixed,
            "reason": self.reason,
        }


def points(hundredths: int | np.integer) -> float:
    return round(int(hundredths) / 100, 2)


def explain(
    scorer: Scorer,
    result: Assignment,
    capacity: np.ndarray,
    mode: Mode,
    *,
    held: np.ndarray | None = None,
) -> list[PairResult]:
    """A `PairResult` per mentee, in mentee order. `capacity` is what this run could
    give; `held` counts the places each mentor already gives in active pairs, so a load
    reads against the mentor's whole capacity ("at capacity (2/2)", not "(0/0)")."""
    n_e = scorer.n_mentees
    held = np.zeros(scorer.n_mentors, dtype=np.int64) if held is None else held
    chosen = result.mentor_of
    runner = result.runner_up
    load = result.load(scorer.n_mentors)
    names = [c.name for c in scorer.criteria.criteria]
    matched = np.flatnonzero(chosen >= 0)
    has_runner = np.flatnonzero(runner >= 0)
    pairs_e = np.concatenate([matched, has_runner])
    pairs_m = np.concatenate([chosen[matched], runner[has_runner]])
    parts = scorer.breakdown(pairs_e, pairs_m)
    at_match = {int(i): k for k, i in enumerate(matched)}
    at_runner = {int(i): len(matched) + k for k, i in enumerate(has_runner)}
    ruled_out = _ruled_out(scorer, [i for i, why in result.reasons.items() if why == NO_MENTOR])

    def load_of(j: int) -> str:
        return f"{held[j] + load[j]}/{held[j] + capacity[j]}"

    out = []
    for i in range(n_e):
        mentee = scorer.mentees[i]
        runner_up = None
        if i in at_runner:
            r = at_runner[i]
            j2 = int(runner[i])
            runner_up = {
                "mentor": scorer.mentors[j2].identity,
                "name": scorer.mentors[j2].name,
                "score": points(parts.scores[r]),
            }
        if i not in at_match:
            reason = result.reasons.get(i, "not matched")
            explanation: dict[str, Any] = {"summary": f"Not matched: {reason}."}
            if ruled_out.get(i):
                explanation["ruled_out_by"] = ruled_out[i]
                detail = ", ".join(f"{name} rules out {n}" for name, n in ruled_out[i].items())
                explanation["summary"] = (
                    f"Not matched: {reason}: of {scorer.n_mentors} mentors, {detail}."
                )
            if runner_up is not None:
                j2 = int(runner[i])
                runner_up["why_not"] = (
                    f"at capacity ({load_of(j2)})"
                    if load[j2] >= capacity[j2]
                    else "passes the filters but was needed elsewhere"
                )
                explanation["best_option"] = runner_up
            out.append(
                PairResult(mentee.identity, None, None, explanation=explanation, reason=reason)
            )
            continue
        k = at_match[i]
        j = int(chosen[i])
        mentor = scorer.mentors[j]
        contributions = {n: points(c) for n, c in zip(names, parts.contributions[k], strict=True)}
        score = int(parts.contributions[k].sum())
        top = sorted(
            ((n, p) for n, p in contributions.items() if p > 0), key=lambda item: -item[1]
        )[:TOP_CRITERIA]
        hours = round(float(parts.hours[k]), 2)
        explanation = {
            "top_criteria": [{"criterion": n, "points": p} for n, p in top],
            "shared_hours": hours,
            "passes_filters": bool(parts.scores[k] != FILTERED),
        }
        if parts.scores[k] == FILTERED:  # only a fixed pair can fail the filters
            failing = ", ".join(scorer.failures(np.array([i]), np.array([j])))
            explanation["warnings"] = [
                f"fixed pair {mentee.identity} - {mentor.identity} kept although it fails: "
                f"{failing}"
            ]
        if runner_up is not None:
            r = at_runner[i]
            runner_up["why_not"] = _why_not(
                score, int(parts.scores[r]), parts.contributions[k] - parts.contributions[r],
                names, load_of(int(runner[i])), mode, bool(result.fixed[i]),
            )  # fmt: skip
            explanation["runner_up"] = runner_up
        lead = ", ".join(f"{n} +{p:g}" for n, p in top) or "no criterion scored"
        explanation["summary"] = (
            f"{'Fixed by the operator. ' if result.fixed[i] else ''}"
            f"Matched with {mentor.name} (score {points(score):g}): {lead}; "
            f"{hours:g} shared {'hour' if hours == 1 else 'hours'} a week."
        )
        slots = [s.to_json() for s in suggest_slots(mentee, mentor, scorer.calendar)]
        out.append(
            PairResult(
                mentee.identity,
                mentor.identity,
                points(score),
                contributions,
                explanation,
                slots,
                fixed=bool(result.fixed[i]),
            )  # fmt: skip
        )
    return out


def _why_not(
    score: int,
    runner_score: int,
    difference: np.ndarray,
    names: list[str],
    runner_load: str,
    mode: Mode,
    fixed: bool,
) -> str:
    if fixed:
        return "the operator fixed this pair in advance"
    if runner_score > score:
        full = f"at capacity ({runner_load})"
        if mode == "stable":
            return f"scored higher, but is {full} with mentees they rank higher"
        if mode == "max-coverage":
            return f"scored higher, but is {full}: this way more mentees get a mentor"
        return f"scored higher, but is {full}: capacity used by a better overall fit"
    if runner_score == score:
        return "scored the same; the tie went the way that made the cohort's total highest"
    biggest = int(np.argmax(difference))
    return (
        f"scored {points(score - runner_score):g} lower, mainly on {names[biggest]} "
        f"({points(difference[biggest]):g} points less)"
    )


def _ruled_out(scorer: Scorer, mentees: list[int]) -> dict[int, dict[str, int]]:
    """For mentees no mentor passes: how many mentors each hard filter rules out, most
    first (a mentor failing two filters counts under both)."""
    out: dict[int, dict[str, int]] = {}
    step = max(1, BLOCK_CELLS // max(scorer.n_mentors, 1))
    for start in range(0, len(mentees), step):
        block = np.asarray(mentees[start : start + step], dtype=np.intp)
        counts = {name: failing.sum(axis=1) for name, failing in scorer.failures(block).items()}
        for row, i in enumerate(block.tolist()):
            named = {name: int(n[row]) for name, n in counts.items() if n[row]}
            out[i] = dict(sorted(named.items(), key=lambda item: -item[1]))
    return out
