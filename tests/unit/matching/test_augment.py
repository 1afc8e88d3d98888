"""Adding pairs to an optimal b-matching by augmenting cycles gives the optimum of the
larger graph, checked against the textbook dense solver on random graphs."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from server.matching.assignment import _duals, _solve
from server.matching.augment import augment


def dense_optimum(
    rows: np.ndarray, cols: np.ndarray, weights: np.ndarray, capacity: np.ndarray, n: int
) -> int:
    """Max total weight: a column per place, every mentee may stay unmatched."""
    gains = np.zeros((n, len(capacity)), dtype=np.int64)
    gains[rows, cols] = weights
    expanded = gains[:, np.repeat(np.arange(len(capacity)), capacity)]
    r, c = linear_sum_assignment(expanded, maximize=True)
    return int(expanded[r, c].sum())


def total(rows: np.ndarray, cols: np.ndarray, weights: np.ndarray, chosen: np.ndarray) -> int:
    picked = chosen[rows] == cols
    assert np.bincount(rows[picked], minlength=len(chosen)).max(initial=0) <= 1
    assert (chosen >= 0).sum() == picked.sum(), "a mentee matched outside the graph"
    return int(weights[picked].sum())


@st.composite
def graphs(draw: st.DrawFn) -> tuple:
    n = draw(st.integers(1, 30))
    n_m = draw(st.integers(1, 8))
    cells = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n_m - 1)),
                          min_size=1, max_size=120, unique=True))  # fmt: skip
    rows, cols = (np.array(x, dtype=np.int64) for x in zip(*cells, strict=True))
    # Few distinct weights: many ties, as with whole-hundredth scores.
    weights = np.array(draw(st.lists(st.integers(1, 12), min_size=len(rows),
                                     max_size=len(rows))), dtype=np.int64)  # fmt: skip
    capacity = np.array(draw(st.lists(st.integers(0, 4), min_size=n_m, max_size=n_m)))
    held_back = draw(st.integers(1, len(rows)))
    return rows, cols, weights, capacity, n, held_back


@settings(max_examples=300, deadline=None)
@given(graphs())
def test_augmenting_each_new_edge_reaches_the_optimum_of_the_larger_graph(graph: tuple) -> None:
    rows, cols, weights, capacity, n, held_back = graph
    start = len(rows) - held_back
    r, c, w = rows[:start], cols[:start], weights[:start]
    chosen = _solve(r, c, w, capacity, n)
    for e in range(start, len(rows)):
        u, v = _duals(r, c, w, chosen, capacity, n)
        chosen = augment(r, c, w, chosen, capacity, u, v, (rows[e], cols[e], weights[e]))
        r, c, w = rows[: e + 1], cols[: e + 1], weights[: e + 1]
        load = np.bincount(chosen[chosen >= 0], minlength=len(capacity))
        assert (load <= capacity).all()
        assert total(r, c, w, chosen) == dense_optimum(r, c, w, capacity, n)
    _duals(rows, cols, weights, chosen, capacity, n)  # certifies it (raises otherwise)
