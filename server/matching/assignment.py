"""Assign a whole cohort of mentees to mentors with capacity.

Modes:
- `optimal`: the largest total score (among those, the most mentees matched);
- `max-coverage`: the most mentees matched, then the largest total score;
- `stable`: mentee-proposing deferred acceptance, preferences from the scores (ties go
  to the lower index): no mentee and mentor would both rather be together.

Exactness on large cohorts. Scoring every pair is cheap, but the assignment cannot
hold all of them (10k x 2k is 20M pairs). Each mentee keeps its best `k` mentors
(candidates); the max-weight b-matching is solved on that sparse graph, exactly, with
`min_weight_full_bipartite_matching` (each mentor expanded into one column per unit
of capacity, each mentee given a private "unmatched" column). Then a certificate: from
the solution we derive LP duals (u per mentee, v per mentor, both >= 0, equal objective)
as longest paths in the residual graph. If every pair left out satisfies
w(i, j) <= u_i + v_j, the duals are feasible for the *full* problem, so the solution is
optimal for it (weak duality). Kept pairs are checked in memory. A pair left out of
mentee i's list scores at most the best score outside that list (b_i), so it can only
break the certificate with a mentor whose v_j < w(b_i) - u_i: each mentee is scored
against exactly those mentors (mentors with free places have v_j = 0; most others are
priced out). Violating pairs of both kinds join the graph in one go and it is solved
again. The loop ends because the graph only grows.

The assignment also keeps each mentee's runner-up (best passing mentor besides the
chosen one) from the same scoring pass, so explanations need no second pass.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from server.errors import InvalidInput
from server.matching.augment import augment
from server.matching.scoring import FILTERED, FULL, SPARSE_ROWS, ScoreSource

if TYPE_CHECKING:  # scipy costs ~0.45 s to import; only a matching run needs it
    import scipy.sparse as sp

Mode = Literal["optimal", "max-coverage", "stable"]
MODES: tuple[Mode, ...] = ("optimal", "max-coverage", "stable")
NO_MENTOR = "no mentor passes the filters"
CAPACITY_EXHAUSTED = "capacity exhausted"
DEFAULT_K = 16
RESERVE = 4
BLOCK_CELLS = 1 << 18  # pairs scored at once: small enough to stay in the CPU cache
# Hundredths of a point: pairs this close to breaking the certificate join the graph with
# those that break it. Measured (CPU s of the solve rounds, k = 16): 10k x 2k: 0 -> 3
# solves, 0.88 s; 200 or 1000 -> 2 solves, 0.68 / 0.62 s. 50k x 10k: 0 -> 4 solves,
# 20.5 s; 300 -> 3 solves, 22.4 s; 1000 -> 4 solves, 30.3 s (the larger graph costs more
# per solve than the solve it saves). So none by default.
NEAR = 0
# At most this many new pairs join the graph by augmenting cycles instead of solving
# again. Measured at 50k x 10k (1.6M edges): a cycle and the duals after it, 0.2 s of
# CPU; a solve, 5-6 s. Round 3 there adds 131 pairs (111 of them needing a cycle, so
# 22 s: solve), round 4 one pair (0.2 s instead of 5 s).
AUGMENT_EDGES = 16
REST_BUDGET = 150_000_000  # passing pairs kept beyond the lists (6 bytes each), at most

Progress = Callable[[float], None]


@dataclass
class Assignment:
    mentor_of: np.ndarray  # (n_mentees,) mentor index, -1 when unmatched
    score: np.ndarray  # (n_mentees,) score of the pair, -1 when unmatched
    fixed: np.ndarray  # (n_mentees,) bool: kept as the operator fixed it
    reasons: dict[int, str]  # unmatched mentee -> why
    runner_up: np.ndarray  # (n_mentees,) best passing mentor besides the chosen; -1 if none
    stats: dict[str, int | bool] = field(default_factory=dict)

    @property
    def matched(self) -> int:
        return int((self.mentor_of >= 0).sum())

    @property
    def total(self) -> int:
        """Sum of the matched pairs' scores (a fixed pair that fails a filter counts 0)."""
        return int(np.maximum(self.score, 0).sum())

    def load(self, n_mentors: int) -> np.ndarray:
        matched = self.mentor_of[self.mentor_of >= 0]
        return np.bincount(matched, minlength=n_mentors)


@dataclass
class Candidates:
    """Each mentee's best mentors, best first, as CSR rows over `mentees`."""

    mentees: np.ndarray  # global mentee index of each row
    indptr: np.ndarray
    mentor: np.ndarray
    score: np.ndarray
    best_excluded: np.ndarray  # best passing score not in the row; -1 if none
    n_passing: np.ndarray  # mentors passing the filters, full or not
    best_two: np.ndarray  # (rows, 2) the two best passing mentors, full or not; -1 pads
    # Every other passing pair with an available mentor, unordered, when the source can
    # list them and they fit REST_BUDGET: (indptr, mentor int32, score int16). The
    # certificate then checks them in memory instead of rescoring.
    rest: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def row(self, r: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.indptr[r], self.indptr[r + 1]
        return self.mentor[lo:hi], self.score[lo:hi]


def assign(
    source: ScoreSource,
    capacity: Sequence[int] | np.ndarray,
    mode: Mode = "optimal",
    fixed: Sequence[tuple[int, int]] = (),
    *,
    k: int = DEFAULT_K,
    progress: Progress | None = None,
) -> Assignment:
    """Match mentees (rows of `source`) to mentors (columns) within `capacity`.

    `fixed` pairs (mentee, mentor) are kept whatever their score and use the mentor's
    capacity; they must fit in it.
    """
    if mode not in MODES:
        raise InvalidInput(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
    report = progress or (lambda _: None)
    n_e, n_m = source.n_mentees, source.n_mentors
    cap = np.asarray(capacity, dtype=np.int64)
    if cap.shape != (n_m,) or (cap < 0).any():
        raise InvalidInput("capacity: one whole number >= 0 per mentor")
    mentor_of = np.full(n_e, -1, dtype=np.int64)
    is_fixed = np.zeros(n_e, dtype=bool)
    for mentee, mentor in fixed:
        if not (0 <= mentee < n_e and 0 <= mentor < n_m):
            raise InvalidInput(f"fixed pair ({mentee}, {mentor}) is out of range")
        if is_fixed[mentee]:
            raise InvalidInput(f"mentee {mentee} is fixed to more than one mentor")
        is_fixed[mentee], mentor_of[mentee] = True, mentor
    left = cap - np.bincount(mentor_of[is_fixed], minlength=n_m)
    if (left < 0).any():
        over = int(np.flatnonzero(left < 0)[0])
        raise InvalidInput(f"fixed pairs give mentor {over} more mentees than its capacity")

    free = np.flatnonzero(~is_fixed)
    # Keep a reserve of 4k per mentee: most pairs the certificate asks for are in it.
    keep = k if mode == "stable" else RESERVE * k
    cands = candidates(source, free, left > 0, keep, lambda f: report(0.7 * f))
    if mode == "stable":
        chosen = _deferred_acceptance(source, cands, left)
        stats: dict[str, int | bool] = {"edges": len(cands.mentor)}
    else:
        chosen, stats = _max_weight(source, cands, left, mode, k, lambda f: report(0.7 + 0.3 * f))
    mentor_of[free] = chosen
    score = np.full(n_e, -1, dtype=np.int64)
    score[is_fixed] = _scores_of(source, np.flatnonzero(is_fixed), mentor_of)
    score[free] = _scores_of(source, free, mentor_of, cands)
    reasons = {
        int(cands.mentees[r]): NO_MENTOR if cands.n_passing[r] == 0 else CAPACITY_EXHAUSTED
        for r in np.flatnonzero(chosen < 0)
    }
    runner_up = np.full(n_e, -1, dtype=np.int64)
    runner_up[free] = _runner_up(cands.best_two, chosen)
    held = np.flatnonzero(is_fixed)
    step = max(1, BLOCK_CELLS // max(n_m, 1))
    for start in range(0, len(held), step):
        part = held[start : start + step]
        runner_up[part] = _runner_up(_best_two(source.rows(part)), mentor_of[part])
    report(1.0)
    return Assignment(mentor_of, score, is_fixed, reasons, runner_up, stats)


def _runner_up(best_two: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """The best of the two that is not the chosen mentor (-1 if none)."""
    return np.where(best_two[:, 0] == chosen, best_two[:, 1], best_two[:, 0])


def _best_two(block: np.ndarray) -> np.ndarray:
    """Each row's two best passing mentors of all, ties to the lower index; -1 pads."""
    out = np.full((len(block), 2), -1, dtype=np.int64)
    if block.shape[1] == 0:
        return out
    at = np.arange(len(block))
    first = np.argmax(block, axis=1)
    kept = block[at, first]
    block[at, first] = FILTERED
    second = np.argmax(block, axis=1)
    out[:, 0] = np.where(kept >= 0, first, -1)
    out[:, 1] = np.where((kept >= 0) & (block[at, second] >= 0), second, -1)
    block[at, first] = kept
    return out


def _scores_of(
    source: ScoreSource,
    mentees: np.ndarray,
    mentor_of: np.ndarray,
    cands: Candidates | None = None,
) -> np.ndarray:
    """Scores of the chosen pairs: from the candidate lists where they are, else rescored."""
    out = np.full(len(mentees), -1, dtype=np.int64)
    if cands is not None:  # then `mentees` are the candidate rows
        row = np.repeat(np.arange(len(mentees)), np.diff(cands.indptr))
        hit = cands.mentor == mentor_of[mentees][row]
        out[row[hit]] = cands.score[hit]
    at = np.flatnonzero((mentor_of[mentees] >= 0) & (out < 0))
    if len(at):
        for start in range(0, len(at), 256):
            part = at[start : start + 256]
            rows_ = source.rows(mentees[part])
            out[part] = rows_[np.arange(len(part)), mentor_of[mentees[part]]]
    return out


def candidates(
    source: ScoreSource,
    mentees: np.ndarray,
    available: np.ndarray,
    k: int,
    progress: Progress | None = None,
) -> Candidates:
    """Scan the score matrix in blocks and keep each mentee's `k` best available mentors.

    Ties are broken towards the lower mentor index, the same order `stable` uses.
    """
    if getattr(source, "sparse", False):
        return _sparse_candidates(source, mentees, available, k, progress)
    n_m = source.n_mentors
    step = max(1, BLOCK_CELLS // max(n_m, 1))
    indptr = [np.zeros(1, dtype=np.int64)]
    mentors, scores, best_out, passing, best_two = [], [], [], [], []
    count = 0
    for start in range(0, len(mentees), step):
        block = source.rows(mentees[start : start + step])
        passing.append((block >= 0).sum(axis=1))
        best_two.append(_best_two(block))
        top, top_scores, excluded = _top(block, available, k)
        valid = top_scores >= 0
        mentors.append(top[valid])
        scores.append(top_scores[valid])
        count_row = valid.sum(axis=1)
        indptr.append(count + np.cumsum(count_row))
        count += int(count_row.sum())
        best_out.append(excluded)
        if progress:
            progress(min(1.0, (start + step) / max(len(mentees), 1)))
    return Candidates(
        mentees=np.asarray(mentees, dtype=np.int64),
        indptr=np.concatenate(indptr),
        mentor=np.concatenate(mentors) if mentors else np.zeros(0, dtype=np.int64),
        score=np.concatenate(scores) if scores else np.zeros(0, dtype=np.int64),
        best_excluded=np.concatenate(best_out) if best_out else np.zeros(0, dtype=np.int64),
        n_passing=np.concatenate(passing) if passing else np.zeros(0, dtype=np.int64),
        best_two=np.concatenate(best_two) if best_two else np.zeros((0, 2), dtype=np.int64),
    )


def _sparse_candidates(
    source: ScoreSource,
    mentees: np.ndarray,
    available: np.ndarray,
    k: int,
    progress: Progress | None,
) -> Candidates:
    """`candidates` from the passing pairs alone (`Scorer.passing`), never a dense row."""
    n_m = source.n_mentors
    counts, mentor, score, excluded, passing, best_two = [], [], [], [], [], []
    rest_counts, rest_mentor, rest_score = [], [], []
    kept = 0
    for start in range(0, len(mentees), SPARSE_ROWS):
        rows, mentors, scores = source.passing(mentees[start : start + SPARSE_ROWS])  # type: ignore[attr-defined]
        n = min(SPARSE_ROWS, len(mentees) - start)
        keys = _key(scores, mentors, n_m)
        passing.append(np.bincount(rows, minlength=n))
        mine = available[mentors]
        every = k >= 2 and bool(mine.all())
        if not every:
            best_two.append(_first_two(rows, mentors, _segment_top(rows, keys, n, 2)[0], n))
            rows, mentors, scores, keys = rows[mine], mentors[mine], scores[mine], keys[mine]
        top, beyond = _segment_top(rows, keys, n, k)
        if every:  # every mentor is available: the two best are the first two of the k best
            ranked = rows[top]
            two = top[np.arange(len(top)) - np.searchsorted(ranked, ranked) < 2]
            best_two.append(_first_two(rows, mentors, two, n))
        counts.append(np.bincount(rows[top], minlength=n))
        mentor.append(mentors[top])
        score.append(scores[top])
        excluded.append(np.where(beyond >= 0, beyond // n_m, -1))
        kept += len(rows) - len(top)
        if kept <= REST_BUDGET:
            others = np.ones(len(rows), dtype=bool)
            others[top] = False
            rest_counts.append(np.bincount(rows[others], minlength=n))
            rest_mentor.append(mentors[others].astype(np.int32))
            rest_score.append(scores[others].astype(np.int16))
        if progress:
            progress(min(1.0, (start + SPARSE_ROWS) / max(len(mentees), 1)))

    def joined(parts: list[np.ndarray], shape: tuple[int, ...] = (0,)) -> np.ndarray:
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(shape, np.int64)

    return Candidates(
        mentees=np.asarray(mentees, dtype=np.int64),
        indptr=np.concatenate([[0], np.cumsum(joined(counts))]).astype(np.int64),
        mentor=joined(mentor),
        score=joined(score),
        best_excluded=joined(excluded),
        n_passing=joined(passing),
        best_two=joined(best_two, (0, 2)),
        rest=None if kept > REST_BUDGET else (
            np.concatenate([[0], np.cumsum(joined(rest_counts))]).astype(np.int64),
            np.concatenate(rest_mentor) if rest_mentor else np.zeros(0, np.int32),
            np.concatenate(rest_score) if rest_score else np.zeros(0, np.int16),
        ),
    )  # fmt: skip


def _first_two(rows: np.ndarray, mentors: np.ndarray, two: np.ndarray, n: int) -> np.ndarray:
    """(n, 2) mentors at positions `two` (each row's best two, row by row), -1 pads."""
    best = np.full((n, 2), -1, dtype=np.int64)
    best[rows[two], np.arange(len(two)) - np.searchsorted(rows[two], rows[two])] = mentors[two]
    return best


def _segment_top(
    rows: np.ndarray, keys: np.ndarray, n: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The positions of each row's k largest keys (distinct within a row), row by row and
    best first, and each row's next key after them (-1: none). Rows are 0..n-1.

    Only the entries in each row's top buckets of a coarse histogram are sorted: about
    k per row instead of every passing pair."""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.intp), np.full(n, -1, dtype=np.int64)
    picked = np.arange(len(keys))
    if len(keys) > 4 * (k + 1) * n:
        buckets = 256
        scale = buckets / (int(keys.max()) + 1)
        bucket = np.minimum((keys * scale).astype(np.intp), buckets - 1)  # rising with key
        hist = np.bincount(rows * buckets + bucket, minlength=n * buckets).reshape(n, buckets)
        at_least = np.cumsum(hist[:, ::-1], axis=1)[:, ::-1]  # entries in bucket >= b
        enough = at_least >= k + 1
        # The highest bucket that still leaves k + 1 entries at or above it (else 0).
        floor = np.where(enough.any(axis=1), buckets - 1 - np.argmax(enough[:, ::-1], axis=1), 0)
        picked = np.flatnonzero(bucket >= floor[rows])
    # One sort: rows ascending, keys descending (keys < 2^40 for any cohort size here).
    order = picked[np.argsort((rows[picked].astype(np.int64) << 40) - keys[picked])]
    ordered_rows = rows[order]
    rank = np.arange(len(order)) - np.searchsorted(ordered_rows, ordered_rows)
    beyond = np.full(n, -1, dtype=np.int64)
    nth = rank == k
    beyond[ordered_rows[nth]] = keys[order[nth]]
    return order[rank < k], beyond


def _key(score: np.ndarray, mentor: np.ndarray, n_m: int) -> np.ndarray:
    """A strict order: higher score first, then lower mentor index."""
    return np.asarray(score, dtype=np.int64) * n_m + (n_m - 1 - mentor)


def _preference_keys(block: np.ndarray, available: np.ndarray) -> np.ndarray:
    """A strict order per row (`_key`); -1 = not an option."""
    n_m = block.shape[1]
    keys = _key(block, np.arange(n_m), n_m)
    keys[(block < 0) | ~available[None, :]] = -1
    return keys


def _top(
    block: np.ndarray, available: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The k best mentors per row (mentor, score; score -1 pads), and the best score after them."""
    keys = _preference_keys(block, available)
    n_m = block.shape[1]
    take = min(k + 1, n_m)
    part = (
        np.argpartition(-keys, take - 1, axis=1)[:, :take]
        if take < n_m
        else np.tile(np.arange(n_m), (len(block), 1))
    )
    order = np.argsort(-np.take_along_axis(keys, part, axis=1), axis=1, kind="stable")
    best = np.take_along_axis(part, order, axis=1)
    best_keys = np.take_along_axis(keys, best, axis=1)
    best_scores = np.where(best_keys >= 0, best_keys // n_m, -1)
    if take > k:
        return best[:, :k], best_scores[:, :k], best_scores[:, k]
    return best, best_scores, np.full(len(block), -1, dtype=np.int64)


# -- optimal and max-coverage ---------------------------------------------------------


def _weights(scores: np.ndarray, mode: Mode, n: int) -> np.ndarray:
    """Integer pair weights whose maximum total is the mode's lexicographic goal."""
    scores = np.asarray(scores, dtype=np.int64)
    if mode == "max-coverage":
        return scores + (FULL * n + 1)  # one more match beats any score difference
    return scores * (n + 1) + 1  # score first; then one more match at a tie


def _max_weight(
    source: ScoreSource,
    cands: Candidates,
    capacity: np.ndarray,
    mode: Mode,
    k: int,
    progress: Progress,
) -> tuple[np.ndarray, dict[str, int | bool]]:
    n = len(cands.mentees)
    stored_rows = np.repeat(np.arange(n), np.diff(cands.indptr))
    stored_cols = cands.mentor.astype(np.int64)
    stored_w = _weights(cands.score, mode, n)
    rank = np.arange(len(stored_rows)) - cands.indptr[stored_rows]
    in_graph = rank < k
    rows, cols, weights = stored_rows[in_graph], stored_cols[in_graph], stored_w[in_graph]
    best_out = cands.best_excluded  # best score beyond the stored lists
    # The stored lists are each row's best by (score, lower mentor index): a pair is
    # beyond its row's list when its key is below the last stored one.
    last_key = np.zeros(n, dtype=np.int64)
    full = np.flatnonzero(best_out >= 0)  # a row with more beyond it is not empty
    last = cands.indptr[full + 1] - 1
    last_key[full] = _key(cands.score[last], stored_cols[last], len(capacity))
    rounds = rescored = 0
    # A pair that breaks the certificate can join the graph with the pairs that come within
    # `near` of breaking it (NEAR): the next solution's duals move, and those are the pairs
    # that would break it then.
    near = NEAR * (n + 1) if mode == "optimal" else NEAR
    rest_in = None if cands.rest is None else np.zeros(len(cands.rest[1]), dtype=bool)
    chosen = _solve(rows, cols, weights, capacity, n)
    solves = 1
    while True:
        rounds += 1
        u, v = _duals(rows, cols, weights, chosen, capacity, n)
        # 1. Stored pairs not in the graph: checked in memory.
        slack = stored_w - u[stored_rows] - v[stored_cols]
        breaking = (~in_graph & (slack > 0)).any()
        late = ~in_graph & (slack > -near)
        in_graph |= late
        # 2. A pair beyond mentee i's stored list scores at most best_out[i], so it can
        # break the certificate only with a mentor whose v_j < w(best_out[i]) - u_i:
        # rescore each row against exactly those mentors.
        progress(min(0.9, 0.3 * rounds))
        if cands.rest is not None:
            assert rest_in is not None
            found = _rest_violations(cands.rest, rest_in, u, v, mode, k, len(capacity), near)
            breaking |= found[0]
            added, checked = found[1], 0
        else:
            bound = np.where(best_out >= 0, _weights(best_out, mode, n) - u, 0)
            added, checked = _violations(
                source, cands.mentees, bound, last_key, capacity, u, v, mode, k
            )
            breaking |= added is not None
        rescored += checked
        if not breaking:
            break
        new_rows, new_cols, new_scores = added or (np.zeros(0, dtype=np.int64),) * 3
        new_rows = np.concatenate([stored_rows[late], new_rows])
        new_cols = np.concatenate([stored_cols[late], new_cols])
        new_w = np.concatenate([stored_w[late], _weights(new_scores, mode, n)])
        if len(new_rows) <= AUGMENT_EDGES:
            # A few new pairs: one augmenting cycle each keeps the matching optimal.
            for i, j, w in zip(new_rows.tolist(), new_cols.tolist(), new_w.tolist(), strict=True):
                breaks = w > u[i] + v[j]  # else the duals hold for it as well
                if breaks:
                    chosen = augment(rows, cols, weights, chosen, capacity, u, v, (i, j, w))
                rows, cols, weights = np.append(rows, i), np.append(cols, j), np.append(weights, w)
                if breaks:
                    u, v = _duals(rows, cols, weights, chosen, capacity, n)
            continue
        rows = np.concatenate([rows, new_rows])
        cols = np.concatenate([cols, new_cols])
        weights = np.concatenate([weights, new_w])
        chosen = _solve(rows, cols, weights, capacity, n)
        solves += 1
    stats: dict[str, int | bool] = {
        "edges": len(rows), "rounds": rounds, "solves": solves, "rescored_pairs": rescored,
        "certified": True,
    }  # fmt: skip
    return chosen, stats


def _solve(
    rows: np.ndarray, cols: np.ndarray, weights: np.ndarray, capacity: np.ndarray, n: int
) -> np.ndarray:
    """Max-weight b-matching on the candidate edges: mentor per row, -1 unmatched."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    chosen = np.full(n, -1, dtype=np.int64)
    if len(rows) == 0:
        return chosen
    degree = np.bincount(cols, minlength=len(capacity))
    slots = np.minimum(capacity, degree)  # a mentor never needs more columns than edges
    n_slots = int(slots.sum())
    owner = np.repeat(np.arange(len(capacity)), slots)
    top = int(weights.max()) + 1
    # Every vertex on the smaller side gets a private "left empty" partner at cost `top`,
    # so a full matching of that side always exists. With fewer places than mentees,
    # matching every place (not every mentee) also saves the many augmenting searches
    # that would end in "unmatched".
    places_side = n_slots < n
    if places_side:
        graph = _places_graph(rows, cols, top - weights, slots, owner, n, float(top))
    else:
        slot_start = np.concatenate([[0], np.cumsum(slots)])
        per_edge = slots[cols]
        edge_rows = np.repeat(rows, per_edge)
        edge_of = np.repeat(np.arange(len(rows)), per_edge)
        offset = np.arange(len(edge_rows)) - np.repeat(np.cumsum(per_edge) - per_edge, per_edge)
        edge_cols = slot_start[cols[edge_of]] + offset
        cost = (top - weights[edge_of]).astype(np.float64)
        graph = sp.csr_matrix(
            (np.concatenate([cost, np.full(n, float(top))]),
             (np.concatenate([edge_rows, np.arange(n)]),
              np.concatenate([edge_cols, n_slots + np.arange(n)]))),
            shape=(n, n_slots + n),
        )  # fmt: skip
    small, large = (n_slots, n) if places_side else (n, n_slots)
    small_ind, large_ind = min_weight_full_bipartite_matching(graph)
    real = large_ind < large
    slot_ind, mentee_ind = (
        (small_ind[real], large_ind[real]) if places_side else (large_ind[real], small_ind[real])
    )
    chosen[mentee_ind] = owner[slot_ind]
    return chosen


def _places_graph(
    rows: np.ndarray,
    cols: np.ndarray,
    cost: np.ndarray,
    slots: np.ndarray,
    owner: np.ndarray,
    n: int,
    empty: float,
) -> sp.csr_matrix:
    """The cost matrix with a row per place (`owner` mentor's `slots` copies): the
    mentor's edges to mentees, then the place's private "left empty" column `n + place`
    at cost `empty`. Built in CSR order directly, the same matrix as from coordinates
    but without their sort (1 s of the 5-6 s solve at 50k x 10k)."""
    import scipy.sparse as sp

    live = slots[cols] > 0
    order = np.argsort(cols[live].astype(np.int64) * n + rows[live], kind="stable")
    mentee = rows[live][order]
    edge_cost = cost[live][order]
    edge_start = np.concatenate([[0], np.cumsum(np.bincount(cols[live], minlength=len(slots)))])
    per_place = np.diff(edge_start)[owner]
    indptr = np.concatenate([[0], np.cumsum(per_place + 1)])
    place = np.repeat(np.arange(len(owner)), per_place)
    # The k-th edge entry belongs to `place`, which starts at edge entry indptr - place.
    within = np.arange(len(place)) - (indptr[place] - place)
    source = edge_start[owner[place]] + within
    indices = np.empty(int(indptr[-1]), dtype=np.int32)
    data = np.empty(int(indptr[-1]), dtype=np.float64)
    private = indptr[1:] - 1
    edge_at = np.ones(len(indices), dtype=bool)
    edge_at[private] = False
    indices[edge_at], data[edge_at] = mentee[source], edge_cost[source]
    indices[private], data[private] = n + np.arange(len(owner)), empty
    return sp.csr_matrix(
        (data, indices, indptr.astype(np.int32)), shape=(len(owner), n + len(owner))
    )


def _duals(
    rows: np.ndarray,
    cols: np.ndarray,
    weights: np.ndarray,
    chosen: np.ndarray,
    capacity: np.ndarray,
    n: int,
) -> tuple[np.ndarray, np.ndarray]:
    """LP duals of an optimal b-matching: the least v >= 0 with
    v_j >= w(i, j) - u_i on every edge, where u_i = w(i, m(i)) - v_m(i) (0 if unmatched).
    That is a longest-path problem over mentors, solved by vectorised Bellman-Ford."""
    n_m = len(capacity)
    own = np.full(n, 0, dtype=np.int64)
    mine = chosen[rows] == cols
    own[rows[mine]] = weights[mine]
    v = np.zeros(n_m, dtype=np.int64)
    unmatched = chosen[rows] < 0
    np.maximum.at(v, cols[unmatched], weights[unmatched])
    arcs = ~unmatched & ~mine
    src, dst = chosen[rows[arcs]], cols[arcs]
    gain = weights[arcs] - own[rows[arcs]]
    for _ in range(n_m + 1):
        before = v.copy()
        np.maximum.at(v, dst, v[src] + gain)
        if np.array_equal(before, v):
            break
    else:  # a positive cycle: the matching could be improved, so it was not optimal
        raise RuntimeError("assignment solver returned a non-optimal matching")
    u = np.zeros(n, dtype=np.int64)
    matched = chosen >= 0
    u[matched] = own[matched] - v[chosen[matched]]
    primal = int(own.sum())
    dual = int(u.sum() + (capacity * v).sum())
    if (u < 0).any() or primal != dual:
        raise RuntimeError(f"no optimality certificate (primal {primal}, dual {dual})")
    return u, v


def _rest_violations(
    rest: tuple[np.ndarray, np.ndarray, np.ndarray],
    in_graph: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    mode: Mode,
    k: int,
    n_m: int,
    near: int,
) -> tuple[bool, tuple[np.ndarray, np.ndarray, np.ndarray] | None]:
    """Whether a pair kept beyond the lists breaks the certificate, checked in memory a
    few thousand rows at a time; and the pairs not yet in the graph that break it or come
    within `near` of it, the k best per row (marked in `in_graph`)."""
    indptr, mentor, score = rest
    n = len(indptr) - 1
    breaking = False
    out_rows, out_cols, out_scores = [], [], []
    for start in range(0, n, SPARSE_ROWS):
        stop = min(n, start + SPARSE_ROWS)
        lo, hi = int(indptr[start]), int(indptr[stop])
        rows = np.repeat(np.arange(stop - start), np.diff(indptr[start : stop + 1]))
        cols, scores = mentor[lo:hi].astype(np.intp), score[lo:hi].astype(np.int64)
        slack = _weights(scores, mode, n) - u[start + rows] - v[cols]
        breaking = breaking or bool((slack > 0).any())  # graph edges never break it
        bad = np.flatnonzero((slack > -near) & ~in_graph[lo:hi])
        if len(bad) == 0:
            continue
        top = bad[_segment_top(rows[bad], _key(scores[bad], cols[bad], n_m), stop - start, k)[0]]
        in_graph[lo + top] = True
        out_rows.append(start + rows[top])
        out_cols.append(cols[top])
        out_scores.append(scores[top])
    if not out_rows:
        return breaking, None
    return breaking, (
        np.concatenate(out_rows),
        np.concatenate(out_cols),
        np.concatenate(out_scores),
    )


def _violations(
    source: ScoreSource,
    mentees: np.ndarray,
    bound: np.ndarray,
    last_key: np.ndarray,
    capacity: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    mode: Mode,
    k: int,
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray] | None, int]:
    """Score each row r against the mentors with places and v_j < bound[r] (only those
    can hold a pair with w > u_r + v_j); return the pairs beyond the stored lists (key
    below `last_key`) that break the certificate, the k best per row, and how many pairs
    were scored. (Stored pairs are checked in memory; graph edges satisfy the duals.)
    """
    open_ = np.flatnonzero(capacity > 0)
    by_v = open_[np.argsort(v[open_], kind="stable")]
    reach = np.searchsorted(v[by_v], bound, side="left")  # mentors with v_j < bound
    suspects = np.flatnonzero(reach > 0)
    suspects = suspects[np.argsort(reach[suspects], kind="stable")]
    n = len(mentees)
    out_rows, out_cols, out_scores = [], [], []
    checked = start = 0
    while start < len(suspects):
        # Rows in rising order of reach: a block is as wide as its last row needs.
        ahead = reach[suspects[start : start + BLOCK_CELLS]]
        cells = (np.arange(len(ahead)) + 1) * ahead
        batch = suspects[start : start + max(1, int(np.searchsorted(cells, BLOCK_CELLS, "right")))]
        width = int(reach[batch[-1]])
        cols = by_v[:width]
        block = source.rows(mentees[batch], cols)
        checked += block.size
        slack = _weights(block, mode, n) - u[batch][:, None] - v[cols][None, :]
        beyond = _key(block, cols[None, :], len(capacity)) < last_key[batch][:, None]
        breaking = (slack > 0) & (block >= 0) & beyond
        top, top_scores, _ = _top(np.where(breaking, block, FILTERED),
                                  np.ones(width, dtype=bool), k)  # fmt: skip
        take = top_scores >= 0
        out_rows.append(np.repeat(batch[:, None], top.shape[1], axis=1)[take])
        out_cols.append(cols[top[take]])
        out_scores.append(top_scores[take])
        start += len(batch)
    if not out_rows or sum(len(r) for r in out_rows) == 0:
        return None, checked
    return (np.concatenate(out_rows), np.concatenate(out_cols), np.concatenate(out_scores)), checked


# -- stable --------------------------------------------------------------------------


def _deferred_acceptance(
    source: ScoreSource, cands: Candidates, capacity: np.ndarray
) -> np.ndarray:
    """Mentee-proposing deferred acceptance. Each mentee proposes down its candidate
    list; one that runs out while better-than-nothing mentors remain fetches its full
    row, so the result is stable for the full preference lists.

    A full mentor's bar (its worst held mentee) only rises, so a mentee skips every
    mentor whose bar it is already below: those would reject it anyway.
    """
    n = len(cands.mentees)
    lists = [cands.row(r)[0].astype(np.int64) for r in range(n)]
    scores = [cands.row(r)[1].astype(np.int64) for r in range(n)]
    more = (cands.best_excluded >= 0).tolist()
    position = [0] * n
    # A mentor prefers a higher score, then the lower mentee index: key = score*n + (n-1-r).
    held: list[list[tuple[int, int]]] = [[] for _ in range(len(capacity))]
    bar = np.full(len(capacity), -1, dtype=np.int64)
    free = list(range(n))
    while free:
        r = free.pop()
        while True:
            todo = lists[r][position[r] :]
            keys = scores[r][position[r] :] * n + (n - 1 - r)
            hits = np.flatnonzero(keys > bar[todo])
            if len(hits) or not more[r]:
                break
            position[r] = len(lists[r])
            lists[r], scores[r] = _full_list(source, cands, r, capacity, lists[r], scores[r])
            more[r] = False
        if len(hits) == 0:
            position[r] = len(lists[r])
            continue  # every acceptable mentor holds better mentees
        at = int(hits[0])
        j, key = int(todo[at]), int(keys[at])
        position[r] += at + 1
        heapq.heappush(held[j], (key, r))
        if len(held[j]) > capacity[j]:
            free.append(heapq.heappop(held[j])[1])
        if len(held[j]) == capacity[j]:
            bar[j] = held[j][0][0]
    chosen = np.full(n, -1, dtype=np.int64)
    for j, entries in enumerate(held):
        for _, r in entries:
            chosen[r] = j
    return chosen


def _full_list(
    source: ScoreSource,
    cands: Candidates,
    r: int,
    capacity: np.ndarray,
    mentors: np.ndarray,
    scores: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Mentee r's whole preference list: its candidates, then every other acceptable mentor."""
    row = source.rows(cands.mentees[r : r + 1])
    keys = _preference_keys(row, capacity > 0)[0]
    keys[mentors] = -1
    order = np.argsort(-keys, kind="stable")
    rest = order[keys[order] >= 0]
    return (
        np.concatenate([mentors, rest]).astype(np.int64),
        np.concatenate([scores, row[0, rest]]).astype(np.int64),
    )


# -- a baseline ------------------------------------------------------------------------


def greedy(
    source: ScoreSource, capacity: Sequence[int] | np.ndarray, k: int = DEFAULT_K
) -> Assignment:
    """The common approach, for comparison: best-scoring pairs first while capacity lasts."""
    cap = np.asarray(capacity, dtype=np.int64).copy()
    n_e = source.n_mentees
    cands = candidates(source, np.arange(n_e), cap > 0, k)
    rows = np.repeat(np.arange(n_e), np.diff(cands.indptr))
    order = np.argsort(-cands.score, kind="stable")
    mentor_of = np.full(n_e, -1, dtype=np.int64)
    score = np.full(n_e, -1, dtype=np.int64)
    for e in order.tolist():
        i, j = rows[e], cands.mentor[e]
        if mentor_of[i] < 0 and cap[j] > 0:
            mentor_of[i], score[i] = j, cands.score[e]
            cap[j] -= 1
    reasons = {
        int(i): NO_MENTOR if cands.n_passing[i] == 0 else CAPACITY_EXHAUSTED
        for i in np.flatnonzero(mentor_of < 0)
    }
    runner_up = _runner_up(cands.best_two, mentor_of)
    return Assignment(mentor_of, score, np.zeros(n_e, dtype=bool), reasons, runner_up)
