"""The sparse pass (only pairs that share time are scored) against the dense one and
against the textbook dense exact solver, on a realistic cohort whose calendar spans a
clock change."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from benchmarks.matching import CRITERIA, synthetic_rows
from server.matching.assignment import REST_BUDGET, assign, candidates
from server.matching.criteria import parse_criteria
from server.matching.profiles import import_profiles, parse_json_rows, split_roles
from server.matching.scoring import FILTERED, Scorer

# Two weeks from 2025-03-03: the US moves its clocks on 9 March, between the two weeks
# (Europe and Australia do not), and Sydney, Kolkata and Sao Paulo keep theirs.
DST_CRITERIA = {**CRITERIA, "availability": {"start": "2025-03-03", "weeks": 2}}


@pytest.fixture(scope="module")
def cohort() -> tuple[Scorer, Scorer, np.ndarray]:
    rows = synthetic_rows(604, 150, seed=11)
    mentees, mentors = split_roles(import_profiles(parse_json_rows(rows)).profiles)
    sparse = Scorer(mentees, mentors, parse_criteria(DST_CRITERIA))
    assert sparse.sparse, "a must shared-hours criterion makes the sparse pass apply"
    dense = copy.copy(sparse)
    dense.sparse = False  # the matrix-product path over every pair
    capacity = np.array([m.capacity for m in mentors])
    capacity[::7] = 0  # some mentors already full
    return sparse, dense, capacity


def test_sparse_rows_equal_the_dense_product(cohort: tuple) -> None:
    sparse, dense, _ = cohort
    everyone = np.arange(sparse.n_mentees)
    got, want = sparse.rows(everyone), dense.rows(everyone)
    assert (got == want).all()
    assert 0.02 < (want >= 0).mean() < 0.5  # a realistic share of pairs passes
    some = np.array([149, 3, 77, 0])
    assert (sparse.rows(everyone[:50], some) == want[:50][:, some]).all()


@pytest.mark.parametrize("k", [1, 4, 64])
@pytest.mark.parametrize("all_free", [False, True])  # True: the best two come from the k best
def test_sparse_candidates_equal_the_dense_scan(cohort: tuple, k: int, all_free: bool) -> None:
    sparse, dense, capacity = cohort
    if all_free:
        capacity = np.maximum(capacity, 1)
    everyone = np.arange(sparse.n_mentees)
    got = candidates(sparse, everyone, capacity > 0, k)
    want = candidates(dense, everyone, capacity > 0, k)
    for name in ("indptr", "mentor", "score", "best_excluded", "n_passing", "best_two"):
        assert (getattr(got, name) == getattr(want, name)).all(), name
    assert got.rest is not None and want.rest is None
    indptr, mentor, score = got.rest
    # The rest is every other passing pair with a mentor that has places.
    matrix = dense.rows(everyone)
    passing = (matrix >= 0) & (capacity > 0)[None, :]
    assert len(mentor) + len(got.mentor) == passing.sum()
    rows = np.repeat(everyone, np.diff(indptr))
    assert (matrix[rows, mentor] == score).all()


def dense_optimum(matrix: np.ndarray, capacity: np.ndarray) -> int:
    """The best total by the textbook exact solver on the full expanded matrix."""
    cols = np.repeat(np.arange(matrix.shape[1]), capacity)
    gains = np.where(matrix[:, cols] >= 0, matrix[:, cols] + 1.0, 0.0)
    r, c = linear_sum_assignment(gains, maximize=True)
    used = gains[r, c] > 0
    return int((gains[r, c][used] - 1).sum())


@pytest.mark.parametrize("k", [2, 16])
def test_optimal_equals_the_dense_exact_solver_across_a_clock_change(cohort: tuple, k: int) -> None:
    sparse, dense, capacity = cohort
    matrix = dense.rows(np.arange(sparse.n_mentees))
    result = assign(sparse, capacity, "optimal", k=k)
    assert result.total == dense_optimum(matrix, capacity)
    assert (result.load(len(capacity)) <= capacity).all()
    matched = np.flatnonzero(result.mentor_of >= 0)
    assert (matrix[matched, result.mentor_of[matched]] != FILTERED).all()
    assert (result.score[matched] == matrix[matched, result.mentor_of[matched]]).all()


def test_without_room_for_the_rest_the_certificate_rescores(
    cohort: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past REST_BUDGET the pairs beyond the lists are not kept; the duality check then
    rescores the mentees it cannot clear, and the optimum is the same."""
    import server.matching.assignment as assignment

    sparse, dense, capacity = cohort
    assert REST_BUDGET > 0
    monkeypatch.setattr(assignment, "REST_BUDGET", 0)
    result = assign(sparse, capacity, "optimal", k=2)
    assert result.stats["rescored_pairs"] > 0
    assert result.total == dense_optimum(dense.rows(np.arange(sparse.n_mentees)), capacity)
