"""Scores from 0 to 100 for mentee-mentor pairs, with each criterion's contribution.

Scores are kept as whole hundredths of a point (0..10000, `FILTERED` = -1 for a pair a
hard filter rules out). Integers make the contributions add up exactly to the score
and let the assignment solvers compare totals exactly.

The same value functions serve a whole block of mentees against every mentor (for
the assignment) and a list of single pairs (for explanations): they are written
against a `_Grid`, which is either shape, and do the same arithmetic element by
element, so a pair's breakdown always equals its entry in the matrix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
from threadpoolctl import ThreadpoolController

from server.matching.availability import (
    SLOT_HOURS,
    SLOTS_PER_WEEK,
    availability_matrix,
    widest_gaps,
)
from server.matching.criteria import Criteria, Criterion
from server.matching.profiles import Profile

if TYPE_CHECKING:  # scipy costs ~0.45 s to import; only a matching run needs it
    import scipy.sparse as sp

FILTERED = -1
FULL = 10_000  # 100 points in hundredths
SPARSE_ROWS = 2048  # mentees per sparse product: a few million pairs at a time

# The matrix products here are small (a cache-sized block of mentees x all mentors):
# BLAS threads cost more than they give, and on a busy machine far more (measured 13x).
_BLAS = ThreadpoolController()


class ScoreSource(Protocol):
    """What the assignment needs: rows of the mentee x mentor score matrix."""

    n_mentees: int
    n_mentors: int

    def rows(self, mentees: np.ndarray, mentors: np.ndarray | None = None) -> np.ndarray:
        """int32 array (len(mentees), n_mentors), or only the `mentors` columns:
        hundredths of a point, or FILTERED."""
        ...


@dataclass
class DenseScores:
    """A score matrix held in memory (tests, small cohorts)."""

    matrix: np.ndarray

    @property
    def n_mentees(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def n_mentors(self) -> int:
        return int(self.matrix.shape[1])

    def rows(self, mentees: np.ndarray, mentors: np.ndarray | None = None) -> np.ndarray:
        picked = self.matrix[mentees] if mentors is None else self.matrix[np.ix_(mentees, mentors)]
        return np.asarray(picked, dtype=np.int32)


@dataclass
class Breakdown:
    """Scores of some pairs and each criterion's part of them (hundredths of a point)."""

    scores: np.ndarray  # (n,) int, FILTERED where a filter rules the pair out
    contributions: np.ndarray  # (n, criteria) int; each row sums to the unfiltered score
    hours: np.ndarray  # (n,) shared weekly hours


class _Sets:
    """Who has which words (skills, languages...): 0/1 float32 rows for the matrix
    products of a block, and the same rows packed 64 to a word for pair lists, where a
    shared count is a popcount instead of a 4-byte gather per word."""

    def __init__(self, dense: np.ndarray):
        self.dense = dense
        packed = np.packbits(dense.astype(bool), axis=1, bitorder="little")
        padded = np.zeros((len(dense), -(-packed.shape[1] // 8) * 8), dtype=np.uint8)
        padded[:, : packed.shape[1]] = packed
        self.words = np.ascontiguousarray(padded.view(np.uint64).T)  # (words, people)

    def __len__(self) -> int:
        return len(self.dense)


class _Grid:
    """Pairs to evaluate: a block of mentees x mentors (all of them, or the columns
    `mentors`), or a list of pairs (mentees[k], mentors[k]). A pair list from the sparse
    pass carries its shared quarter hours (`slots`), already counted."""

    def __init__(
        self,
        mentees: np.ndarray,
        mentors: np.ndarray | None,
        outer: bool,
        slots: np.ndarray | None = None,
    ):
        self.e = mentees
        self.m = mentors  # None: every mentor (outer only)
        self.outer = outer
        self.slots = slots

    def _cols(self, values: np.ndarray) -> np.ndarray:
        return values if self.m is None else values[self.m]

    def left(self, values: np.ndarray) -> np.ndarray:
        return values[self.e][:, None] if self.outer else values[self.e]

    def right(self, values: np.ndarray) -> np.ndarray:
        return self._cols(values)[None, :] if self.outer else self._cols(values)

    def dot(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Row products of two 0/1 float32 matrices: whole counts, exact either way."""
        if self.outer:
            return left[self.e] @ self._cols(right).T
        return np.einsum("ij,ij->i", left[self.e], self._cols(right))

    def shared(self, left: _Sets, right: _Sets) -> np.ndarray:
        """How many words both sides of each pair have, as float32 (exact counts)."""
        if self.outer:
            return self.dot(left.dense, right.dense)
        assert self.m is not None
        count: np.ndarray = np.zeros(
            len(self.e), dtype=np.uint8 if len(left.words) < 4 else np.int32
        )
        for a, b in zip(left.words, right.words, strict=True):
            np.add(count, np.bitwise_count(a[self.e] & b[self.m]), out=count)
        return count.astype(np.float32)

    def table(self, codes_e: np.ndarray, codes_m: np.ndarray, table: np.ndarray) -> np.ndarray:
        """Look a pair value up by the two sides' codes (few distinct values each)."""
        if self.outer:
            return table[codes_e[self.e]][:, self._cols(codes_m)]
        # One flat index: numpy's two-array indexing takes 7-10x as long on 3M pairs.
        return table.ravel()[codes_e[self.e] * table.shape[1] + self._cols(codes_m)]

    def sparse(self, matrix: sp.csr_matrix) -> np.ndarray:
        if self.outer:
            picked = matrix[self.e]
            return (picked if self.m is None else picked[:, self.m]).toarray()
        assert self.m is not None
        # A relation names few pairs: look up only pairs whose mentee has an entry.
        out = np.zeros(len(self.e), dtype=matrix.dtype)
        maybe = np.flatnonzero(np.diff(matrix.indptr)[self.e] > 0)
        if len(maybe) == 0:
            return out
        width = matrix.shape[1]
        keys = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
        keys = keys * width + matrix.indices
        want = self.e[maybe].astype(np.int64) * width + self.m[maybe]
        at = np.minimum(np.searchsorted(keys, want), len(keys) - 1)
        hit = keys[at] == want
        out[maybe[hit]] = matrix.data[at[hit]]
        return out


Value = Callable[[_Grid], tuple[np.ndarray, np.ndarray]]  # (value 0..1, passes if must)
Check = Callable[[_Grid], np.ndarray]  # passes a hard filter
AVOID_FILTER = "avoid list"


class Scorer:
    """Scores every mentee against every mentor under `criteria`.

    `excluded` pairs (mentee identity, mentor identity) are ruled out like avoid lists:
    pairs an operator already rejected as "not a good fit".
    """

    def __init__(
        self,
        mentees: Sequence[Profile],
        mentors: Sequence[Profile],
        criteria: Criteria,
        *,
        excluded: Iterable[tuple[str, str]] = (),
    ):
        self.mentees = list(mentees)
        self.mentors = list(mentors)
        self.criteria = criteria
        self.n_mentees = len(self.mentees)
        self.n_mentors = len(self.mentors)
        self.calendar = criteria.calendar
        self._avail_e, self._avail_m = _compress_columns(
            availability_matrix(self.mentees, self.calendar),
            availability_matrix(self.mentors, self.calendar),
        )
        # Which counts of shared quarter hours every `must` shared-hours criterion
        # accepts; a must one refuses 0, and then only pairs that share time can pass.
        self._slots_ok = np.ones(self.calendar.quarters + 1, dtype=bool)
        self._values: list[Value] = [self._value_of(c) for c in criteria.criteria]
        self._coef = np.array(
            [FULL * c.weight_value / criteria.total_weight for c in criteria.criteria],
            dtype=np.float32,
        )
        self._must = [c.is_must for c in criteria.criteria]
        self._filters = self._build_filters(excluded)

        self.sparse = not self._slots_ok[0]
        if self.sparse:  # mentee rows carry each run's length, so products count quarters
            import scipy.sparse as sp

            self._share_e = sp.csr_matrix(self._avail_e.astype(np.int32))
            self._share_m = sp.csr_matrix(self._avail_m.T.astype(np.int32))

    # -- the matrix --------------------------------------------------------------

    def rows(self, mentees: np.ndarray, mentors: np.ndarray | None = None) -> np.ndarray:
        mentees = np.asarray(mentees, dtype=np.intp)
        cols = None if mentors is None else np.asarray(mentors, dtype=np.intp)
        if self.sparse:
            width = self.n_mentors if cols is None else len(cols)
            out = np.full((len(mentees), width), FILTERED, dtype=np.int32)
            where = np.arange(self.n_mentors) if cols is None else np.full(self.n_mentors, -1)
            if cols is not None:
                where[cols] = np.arange(len(cols))
            for start in range(0, len(mentees), SPARSE_ROWS):
                r, c, score = self.passing(mentees[start : start + SPARSE_ROWS])
                at = where[c]
                keep = at >= 0
                out[start + r[keep], at[keep]] = score[keep]
            return out
        grid = _Grid(mentees, cols, outer=True)
        with _BLAS.limit(limits=1, user_api="blas"):
            return self._evaluate(grid, keep_parts=False)[0]

    def passing(self, mentees: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every pair of `mentees` with any mentor that passes the filters, as
        (position in `mentees`, mentor, score), grouped by position. Only when
        `self.sparse`: a must shared-hours criterion refuses pairs that share no time,
        so the pairs worth scoring are the nonzeros of one sparse product of who is free
        when (about 15% of pairs in a cohort spread over 10 zones); the rest of the
        criteria are then evaluated on that pair list only."""
        assert self.sparse
        mentees = np.asarray(mentees, dtype=np.intp)
        product = (self._share_e[mentees] @ self._share_m).tocsr()
        slots = product.data
        rows = np.repeat(np.arange(len(mentees)), np.diff(product.indptr))
        keep = self._slots_ok[slots]
        rows, mentors, slots = rows[keep], product.indices[keep].astype(np.intp), slots[keep]
        grid = _Grid(mentees[rows], mentors, outer=False, slots=slots)
        scores = self._evaluate(grid, keep_parts=False)[0]
        ok = scores >= 0
        return rows[ok], mentors[ok], scores[ok]

    def breakdown(self, mentees: np.ndarray, mentors: np.ndarray) -> Breakdown:
        """Scores and contributions of the pairs (mentees[k], mentors[k])."""
        grid = _Grid(
            np.asarray(mentees, dtype=np.intp), np.asarray(mentors, dtype=np.intp), outer=False
        )
        with _BLAS.limit(limits=1, user_api="blas"):
            scores, raw, parts = self._evaluate(grid, keep_parts=True)
            return Breakdown(scores, _apportion(parts, raw), self._hours(grid))

    def _evaluate(self, grid: _Grid, keep_parts: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(scores with FILTERED, scores before filters, per-criterion parts if kept)."""
        if grid.outer:
            shape: tuple[int, ...] = (
                len(grid.e),
                self.n_mentors if grid.m is None else len(grid.m),
            )
        else:
            shape = (len(grid.e),)
        total = np.zeros(shape, dtype=np.float32)
        passes = np.ones(shape, dtype=bool)
        parts = []
        for coef, value_of, must in zip(self._coef, self._values, self._must, strict=True):
            value, ok = value_of(grid)
            part = coef * value
            total += part  # the same order and arithmetic for a block or a pair list
            if keep_parts:
                parts.append(np.broadcast_to(part, shape))
            if must:
                passes &= ok
        for _, check in self._filters:
            passes &= check(grid)
        raw = np.rint(total).astype(np.int32)
        scores = np.where(passes, raw, np.int32(FILTERED))
        stacked = np.stack(parts, axis=-1) if keep_parts else np.empty(0)
        return scores, raw, stacked

    def _hours(self, grid: _Grid) -> np.ndarray:
        return grid.dot(self._avail_e, self._avail_m) * (SLOT_HOURS / self.calendar.weeks)

    # -- criteria ----------------------------------------------------------------

    def _value_of(self, c: Criterion) -> Value:
        if c.rule == "overlap":
            assert c.field is not None and c.mentor_field is not None
            vocab = _vocabulary(self.mentees, c.field, self.mentors, c.mentor_field)
            wanted = _Sets(_indicator(self.mentees, c.field, vocab))
            offered = _Sets(_indicator(self.mentors, c.mentor_field, vocab))
            size = wanted.dense.sum(axis=1)
            # The share of what the mentee wants that the mentor offers; 0 if nothing wanted.
            inverse = np.divide(1, size, out=np.zeros_like(size), where=size > 0)

            def overlap(grid: _Grid) -> tuple[np.ndarray, np.ndarray]:
                shared = grid.shared(wanted, offered)
                return shared * grid.left(inverse), shared >= c.min_overlap

            return overlap
        if c.rule == "equality":
            assert c.field is not None
            codes_e, codes_m, n = _codes(self.mentees, self.mentors, c.field)
            same = np.eye(n + 1, dtype=bool)
            same[n, n] = False  # the last code is "empty", equal to nothing

            def equality(grid: _Grid) -> tuple[np.ndarray, np.ndarray]:
                match = grid.table(codes_e, codes_m, same)
                return match.astype(np.float32), match

            return equality
        if c.rule == "distance":
            codes_e, values_e = _numbers(self.mentees, c)
            codes_m, values_m = _numbers(self.mentors, c)
            off = np.abs(values_m[None, :] - values_e[:, None] - c.ideal)
            table = np.nan_to_num(np.clip(1 - off / c.tolerance, 0, 1), nan=0.0)
            table = table.astype(np.float32)

            def distance(grid: _Grid) -> tuple[np.ndarray, np.ndarray]:
                value = grid.table(codes_e, codes_m, table)
                return value, value > 0

            return distance
        if c.rule == "shared_hours":
            # Value by number of shared quarter hours: a table, exact in both shapes.
            most = self.calendar.weeks * SLOTS_PER_WEEK
            hours = np.arange(most + 1) * (SLOT_HOURS / self.calendar.weeks)
            by_slots = np.where(hours < c.min_hours, 0.0, np.minimum(1.0, hours / c.target_hours))
            by_slots = by_slots.astype(np.float32)
            enough = (hours >= c.min_hours) & (hours > 0)

            self._slots_ok &= enough if c.is_must else True

            def shared_hours(grid: _Grid) -> tuple[np.ndarray, np.ndarray]:
                slots = grid.slots
                if slots is None:
                    slots = grid.dot(self._avail_e, self._avail_m).astype(np.int32)
                return by_slots[slots], enough[slots]

            return shared_hours
        prefer = self._relation(lambda e, m: m.identity in e.prefer or e.identity in m.prefer)

        def preference(grid: _Grid) -> tuple[np.ndarray, np.ndarray]:
            if not prefer.nnz:
                return np.float32(0), np.False_  # type: ignore[return-value]
            liked = grid.sparse(prefer) > 0
            return liked.astype(np.float32), liked

        return preference

    # -- hard filters --------------------------------------------------------------

    def _build_filters(self, excluded: Iterable[tuple[str, str]]) -> list[tuple[str, Check]]:
        """The hard filters, each with the name an operator reads in a reason."""
        f = self.criteria.filters
        checks: list[tuple[str, Check]] = []
        excluded = set(excluded)
        avoided = self._relation(
            lambda e, m: (
                m.identity in e.avoid
                or e.identity in m.avoid
                or (e.identity, m.identity) in excluded
            ),
            excluded,
        )
        if avoided.nnz:
            checks.append((AVOID_FILTER, lambda grid: grid.sparse(avoided) == 0))
        if f.max_timezone_gap_hours is not None:
            zones = sorted({p.timezone for p in (*self.mentees, *self.mentors)})
            at = {z: k for k, z in enumerate(zones)}
            near = widest_gaps(zones, self.calendar) <= f.max_timezone_gap_hours
            zone_e = np.array([at[p.timezone] for p in self.mentees], dtype=np.intp)
            zone_m = np.array([at[p.timezone] for p in self.mentors], dtype=np.intp)
            checks.append((
                f"time-zone gap at most {f.max_timezone_gap_hours:g} h",
                _lookup(zone_e, zone_m, near),
            ))  # fmt: skip
        if f.shared_language:
            vocab = _vocabulary(self.mentees, "languages", self.mentors, "languages")
            lang_e = _Sets(_indicator(self.mentees, "languages", vocab))
            lang_m = _Sets(_indicator(self.mentors, "languages", vocab))
            # A language everybody speaks (English, often) rules nobody out: no per-pair work.
            if not (lang_e.dense.all(axis=0) & lang_m.dense.all(axis=0)).any():
                checks.append(("shared language", lambda grid: grid.shared(lang_e, lang_m) > 0))
        if f.different_department:
            codes_e, codes_m, n = _codes(self.mentees, self.mentors, "department")
            differ = ~np.eye(n + 1, dtype=bool)
            differ[n, n] = True  # two empty values are not the same department
            checks.append(("different department", _lookup(codes_e, codes_m, differ)))
        if f.different_reporting_line:
            reports = self._relation(
                lambda e, m: e.reports_to == m.identity or m.reports_to == e.identity
            )
            codes_e, codes_m, n = _codes(self.mentees, self.mentors, "reports_to")
            differ = ~np.eye(n + 1, dtype=bool)
            differ[n, n] = True  # nobody's manager given: not the same manager
            same_manager = _lookup(codes_e, codes_m, differ)
            checks.append((
                "different reporting line",
                lambda grid: same_manager(grid) & (grid.sparse(reports) == 0),
            ))  # fmt: skip
        return checks

    def failures(
        self, mentees: np.ndarray, mentors: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """Which hard filters rule each pair of a block out (mentees x `mentors`, or all
        mentors), by name: "shared language", "skills (must)"... A bool array per filter
        that rules out at least one pair, True where it does."""
        cols = None if mentors is None else np.asarray(mentors, dtype=np.intp)
        grid = _Grid(np.asarray(mentees, dtype=np.intp), cols, outer=True)
        shape = (len(grid.e), self.n_mentors if cols is None else len(cols))
        out: dict[str, np.ndarray] = {}
        with _BLAS.limit(limits=1, user_api="blas"):
            named = [(f"{c.name} (must)", value) for c, value in
                     zip(self.criteria.criteria, self._values, strict=True) if c.is_must]  # fmt: skip
            for name, value in named:
                failing = np.broadcast_to(~value(grid)[1], shape)
                if failing.any():
                    out[name] = failing
            for name, check in self._filters:
                failing = np.broadcast_to(~check(grid), shape)
                if failing.any():
                    out[name] = failing
        return out

    def _relation(
        self,
        related: Callable[[Profile, Profile], bool],
        extra: Iterable[tuple[str, str]] = (),
    ) -> sp.csr_matrix:
        """A sparse mentee x mentor relation over the few pairs that lists name:
        avoid, prefer, reports_to, and `extra` (mentee identity, mentor identity)."""
        mentor_at = {p.identity: j for j, p in enumerate(self.mentors)}
        mentee_at = {p.identity: i for i, p in enumerate(self.mentees)}
        named: set[tuple[int, int]] = set()
        for i, e in enumerate(self.mentees):
            for name in (*e.avoid, *e.prefer, e.reports_to):
                if name in mentor_at:
                    named.add((i, mentor_at[name]))
        for j, m in enumerate(self.mentors):
            for name in (*m.avoid, *m.prefer, m.reports_to):
                if name in mentee_at:
                    named.add((mentee_at[name], j))
        for e_id, m_id in extra:
            if e_id in mentee_at and m_id in mentor_at:
                named.add((mentee_at[e_id], mentor_at[m_id]))
        cells = {(i, j) for i, j in named if related(self.mentees[i], self.mentors[j])}
        return _relation_matrix(cells, (self.n_mentees, self.n_mentors))


def _compress_columns(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge runs of quarter hours in which nobody's availability changes (windows
    mostly start on the hour): the left side carries the run's length, so the row
    products still count shared quarter hours exactly, with a quarter of the work."""
    if left.shape[1] == 0:
        return left, right
    changes = np.ones(left.shape[1], dtype=bool)
    changes[1:] = (left[:, 1:] != left[:, :-1]).any(axis=0) | (right[:, 1:] != right[:, :-1]).any(
        axis=0
    )
    starts = np.flatnonzero(changes)
    lengths = np.diff(np.append(starts, left.shape[1])).astype(np.float32)
    return np.ascontiguousarray(left[:, starts] * lengths), np.ascontiguousarray(right[:, starts])


def _lookup(
    codes_e: np.ndarray, codes_m: np.ndarray, table: np.ndarray
) -> Callable[[_Grid], np.ndarray]:
    return lambda grid: grid.table(codes_e, codes_m, table)


def _relation_matrix(cells: set[tuple[int, int]], shape: tuple[int, int]) -> sp.csr_matrix:
    import scipy.sparse as sp

    if not cells:
        return sp.csr_matrix(shape, dtype=np.int8)
    rows, cols = zip(*sorted(cells), strict=True)
    return sp.csr_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=shape)


def _vocabulary(
    a: Sequence[Profile], field_a: str, b: Sequence[Profile], field_b: str
) -> dict[str, int]:
    words: set[str] = set()
    for people, field in ((a, field_a), (b, field_b)):
        for p in people:
            words.update(getattr(p, field))
    return {w: k for k, w in enumerate(sorted(words))}


def _indicator(people: Sequence[Profile], field: str, vocab: dict[str, int]) -> np.ndarray:
    out = np.zeros((len(people), max(len(vocab), 1)), dtype=np.float32)
    rows: list[int] = []
    cols: list[int] = []
    for row, p in enumerate(people):
        words = getattr(p, field)
        rows += [row] * len(words)
        cols += [vocab[w] for w in words]
    out[rows, cols] = 1.0
    return out


def _codes(
    a: Sequence[Profile], b: Sequence[Profile], field: str
) -> tuple[np.ndarray, np.ndarray, int]:
    """Text values as codes shared by both sides (case-insensitive); the code n (the
    count of distinct values) stands for an empty value."""
    table: dict[str, int] = {}
    raw_a = [str(getattr(p, field)).strip().casefold() for p in a]
    raw_b = [str(getattr(p, field)).strip().casefold() for p in b]
    for value in (*raw_a, *raw_b):
        if value:
            table.setdefault(value, len(table))
    n = len(table)
    return (
        np.array([table.get(v, n) if v else n for v in raw_a], dtype=np.intp),
        np.array([table.get(v, n) if v else n for v in raw_b], dtype=np.intp),
        n,
    )


def _numbers(people: Sequence[Profile], c: Criterion) -> tuple[np.ndarray, np.ndarray]:
    """Codes per person and the number each code stands for (NaN: unknown) for an
    ordered criterion: a seniority level's rank, or years of experience."""
    if c.field == "seniority":
        rank = {level: float(k) for k, level in enumerate(c.levels or [])}
        values = [rank.get(p.seniority.casefold(), np.nan) for p in people]
    else:
        values = [np.nan if p.experience_years is None else p.experience_years for p in people]
    distinct, codes = np.unique(np.array(values, dtype=np.float64), return_inverse=True)
    return codes.astype(np.intp), distinct


def _apportion(parts: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """Whole-hundredth contributions that add up exactly to each rounded total:
    round each down, then give the hundredths left over to the largest remainders."""
    parts = parts.astype(np.float64)
    floors = np.floor(parts)
    remainders = parts - floors
    left_over = totals - floors.sum(axis=-1).astype(np.int64)
    order = np.argsort(-remainders, axis=-1, kind="stable")
    rank = np.argsort(order, axis=-1, kind="stable")
    return floors.astype(np.int64) + (rank < left_over[:, None])
