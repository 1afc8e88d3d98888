"""Assignment properties on random small instances, against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.errors import InvalidInput
from server.matching.assignment import (
    CAPACITY_EXHAUSTED,
    NO_MENTOR,
    assign,
    greedy,
)
from server.matching.scoring import FILTERED, DenseScores


@st.composite
def instances(draw: st.DrawFn, max_mentees: int = 5, max_mentors: int = 3) -> tuple:
    n_e = draw(st.integers(1, max_mentees))
    n_m = draw(st.integers(1, max_mentors))
    cells = st.one_of(st.just(FILTERED), st.integers(0, 30))
    matrix = np.array(draw(st.lists(st.lists(cells, min_size=n_m, max_size=n_m),
                                    min_size=n_e, max_size=n_e)))  # fmt: skip
    capacity = np.array(draw(st.lists(st.integers(0, 3), min_size=n_m, max_size=n_m)))
    return matrix, capacity


def all_assignments(matrix: np.ndarray, capacity: np.ndarray):
    """Every feasible assignment (mentor per mentee, -1 = none) of a tiny instance."""
    n_e, n_m = matrix.shape
    for choice in itertools.product(range(-1, n_m), repeat=n_e):
        load = np.bincount([j for j in choice if j >= 0], minlength=n_m)
        if (load <= capacity).all() and all(
            j < 0 or matrix[i, j] >= 0 for i, j in enumerate(choice)
        ):
            yield choice


def total(matrix: np.ndarray, choice) -> int:
    return sum(int(matrix[i, j]) for i, j in enumerate(choice) if j >= 0)


def check_feasible(result, matrix: np.ndarray, capacity: np.ndarray) -> None:
    load = result.load(matrix.shape[1])
    assert (load <= capacity).all(), "capacity exceeded"
    for i, j in enumerate(result.mentor_of):
        if j >= 0 and not result.fixed[i]:
            assert matrix[i, j] != FILTERED, "a filtered pair was assigned"
            assert result.score[i] == matrix[i, j]


@settings(max_examples=150, deadline=None)
@given(instances(), st.sampled_from([1, 2, 16]))
def test_optimal_equals_brute_force(instance: tuple, k: int) -> None:
    matrix, capacity = instance
    result = assign(DenseScores(matrix), capacity, "optimal", k=k)
    check_feasible(result, matrix, capacity)
    best = max(total(matrix, c) for c in all_assignments(matrix, capacity))
    assert result.total == best
    assert result.stats["certified"] is True


@settings(max_examples=150, deadline=None)
@given(instances(), st.sampled_from([1, 16]))
def test_max_coverage_matches_most_then_scores_most(instance: tuple, k: int) -> None:
    matrix, capacity = instance
    result = assign(DenseScores(matrix), capacity, "max-coverage", k=k)
    check_feasible(result, matrix, capacity)
    options = list(all_assignments(matrix, capacity))
    most = max(sum(j >= 0 for j in c) for c in options)
    best = max(total(matrix, c) for c in options if sum(j >= 0 for j in c) == most)
    assert result.matched == most
    assert result.total == best


def key(score: int, index: int) -> tuple[int, int]:
    return (score, -index)  # higher score first, then the lower index


@settings(max_examples=200, deadline=None)
@given(instances(max_mentees=7, max_mentors=4), st.sampled_from([1, 2, 16]))
def test_stable_has_no_blocking_pair(instance: tuple, k: int) -> None:
    matrix, capacity = instance
    result = assign(DenseScores(matrix), capacity, "stable", k=k)
    check_feasible(result, matrix, capacity)
    n_e, n_m = matrix.shape
    for i, j in itertools.product(range(n_e), range(n_m)):
        if matrix[i, j] < 0 or capacity[j] == 0 or result.mentor_of[i] == j:
            continue
        mine = result.mentor_of[i]
        mentee_wants = mine < 0 or key(matrix[i, j], j) > key(matrix[i, mine], mine)
        held = [e for e in range(n_e) if result.mentor_of[e] == j]
        mentor_wants = len(held) < capacity[j] or any(
            key(matrix[i, j], i) > key(matrix[e, j], e) for e in held
        )
        assert not (mentee_wants and mentor_wants), f"({i}, {j}) is a blocking pair"


@settings(max_examples=100, deadline=None)
@given(instances(), st.data())
def test_fixed_pairs_are_kept(instance: tuple, data: st.DataObject) -> None:
    matrix, capacity = instance
    n_e, n_m = matrix.shape
    capacity = np.maximum(capacity, 1)
    mentee = data.draw(st.integers(0, n_e - 1))
    mentor = data.draw(st.integers(0, n_m - 1))
    for mode in ("optimal", "max-coverage", "stable"):
        result = assign(DenseScores(matrix), capacity, mode, [(mentee, mentor)], k=2)
        assert result.mentor_of[mentee] == mentor and result.fixed[mentee]
        check_feasible(result, matrix, capacity)
    # Optimal is optimal among the assignments that keep the fixed pair.
    best = max(
        total(np.maximum(matrix, 0), c)
        for c in all_assignments(np.where(np.arange(n_e)[:, None] == mentee,
                                          np.maximum(matrix, 0), matrix), capacity)
        if c[mentee] == mentor
    )  # fmt: skip
    assert assign(DenseScores(matrix), capacity, "optimal", [(mentee, mentor)]).total == best


def test_unmatched_reasons() -> None:
    matrix = np.array([[5, FILTERED], [4, FILTERED], [FILTERED, FILTERED]])
    result = assign(DenseScores(matrix), [1, 3], "optimal")
    assert result.mentor_of.tolist() == [0, -1, -1]
    assert result.reasons == {1: CAPACITY_EXHAUSTED, 2: NO_MENTOR}


def test_optimal_beats_greedy_where_greedy_is_short_sighted() -> None:
    # Greedy takes 10 first and strands mentee 1; optimal gives 9 + 8.
    matrix = np.array([[10, 9], [8, FILTERED]])
    assert greedy(DenseScores(matrix), [1, 1]).total == 10
    result = assign(DenseScores(matrix), [1, 1], "optimal")
    assert result.total == 17 and result.mentor_of.tolist() == [1, 0]


def test_larger_random_instance_is_certified_against_dense_solver() -> None:
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(3)
    matrix = rng.integers(0, 10_000, (300, 60))
    matrix[rng.random(matrix.shape) < 0.3] = FILTERED
    capacity = rng.integers(1, 6, 60)
    result = assign(DenseScores(matrix), capacity, "optimal", k=4)
    cols = np.repeat(np.arange(60), capacity)
    expanded = np.where(matrix[:, cols] >= 0, matrix[:, cols] + 1.0, 0.0)
    r, c = linear_sum_assignment(expanded, maximize=True)
    assert result.total == int((expanded[r, c][expanded[r, c] > 0] - 1).sum())
    assert (result.load(60) <= capacity).all()


def dense_optimum(gains: np.ndarray, capacity: np.ndarray) -> int:
    """The best total of `gains` (0 = not allowed) by the textbook dense solver."""
    from scipy.optimize import linear_sum_assignment

    expanded = gains[:, np.repeat(np.arange(gains.shape[1]), capacity)]
    r, c = linear_sum_assignment(expanded, maximize=True)
    return int(expanded[r, c].sum())


@settings(max_examples=120, deadline=None)
@given(
    instances(max_mentees=30, max_mentors=14),
    st.sampled_from(["optimal", "max-coverage"]),
    st.sampled_from([1, 2]),
)
def test_exact_when_the_certificate_must_rescore(instance: tuple, mode: str, k: int) -> None:
    # More mentors than the 4k kept per mentee: the pairs beyond the kept lists are
    # only reached by the certificate's rescoring, and it must still end optimal.
    matrix, capacity = instance
    n = matrix.shape[0]
    result = assign(DenseScores(matrix), capacity, mode, k=k)  # type: ignore[arg-type]
    check_feasible(result, matrix, capacity)
    per_match = 31 * n + 1 if mode == "max-coverage" else 1
    scale = 1 if mode == "max-coverage" else n + 1
    gains = np.where(matrix >= 0, matrix * scale + per_match, 0)
    assert result.total * scale + result.matched * per_match == dense_optimum(gains, capacity)
    assert result.stats["certified"] is True


@settings(max_examples=100, deadline=None)
@given(instances(max_mentees=8, max_mentors=8), st.data())
def test_runner_up_is_the_best_other_passing_mentor(instance: tuple, data: st.DataObject) -> None:
    matrix, capacity = instance
    fixed = [(0, data.draw(st.integers(0, matrix.shape[1] - 1)))] if capacity.sum() else []
    capacity = np.maximum(capacity, 1)
    for mode in ("optimal", "stable"):
        result = assign(DenseScores(matrix), capacity, mode, fixed, k=1)  # type: ignore[arg-type]
        for i, j in enumerate(result.mentor_of):
            others = [(matrix[i, m], -m) for m in range(matrix.shape[1])
                      if m != j and matrix[i, m] >= 0]  # fmt: skip
            assert result.runner_up[i] == (-max(others)[1] if others else -1)


@pytest.mark.parametrize(
    ("capacity", "fixed", "message"),
    [
        ([1, -1], [], "capacity"),
        ([1, 1], [(0, 0), (1, 0)], "more mentees than its capacity"),
        ([1, 1], [(0, 0), (0, 1)], "more than one mentor"),
        ([1, 1], [(5, 0)], "out of range"),
    ],
)
def test_bad_assignment_input(capacity: list[int], fixed: list, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        assign(DenseScores(np.zeros((2, 2), dtype=int)), capacity, "optimal", fixed)


def test_unknown_mode() -> None:
    with pytest.raises(InvalidInput, match="unknown mode"):
        assign(DenseScores(np.zeros((1, 1), dtype=int)), [1], "best")  # type: ignore[arg-type]
