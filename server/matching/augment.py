"""Keep a max-weight b-matching optimal when one edge joins its graph, without solving again.

The certificate's later rounds typically add one or two pairs to a graph of 1.6M edges
(50k x 10k): solving again from scratch costs 4-5 s each, while the new optimum differs
from the old one by at most one cycle through the new edge (the rest of the difference
is cycles of the old residual graph, none of which gains). That cycle is the new edge
plus a shortest path back in the residual graph, with costs reduced by the LP duals of
the old optimum so they are all >= 0: one Dijkstra (scipy, in C), stopped at the new
edge's slack, which is the most the cycle can gain.

The matching is a flow: root -> mentee -> mentor -> root, a mentee at most once, a
mentor up to its capacity, any amount of flow (leaving a mentee unmatched is allowed).
Potentials p(mentee) = u, p(mentor) = -v, p(root) = 0 make every residual arc's reduced
cost >= 0 exactly when (u, v) are feasible duals with complementary slackness.
"""

from __future__ import annotations

import numpy as np


def augment(
    rows: np.ndarray,
    cols: np.ndarray,
    weights: np.ndarray,
    chosen: np.ndarray,
    capacity: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    edge: tuple[int, int, int],
) -> np.ndarray:
    """The matching `chosen` (mentor per mentee, -1 unmatched), optimal on the graph
    (rows, cols, weights) with duals (u, v), made optimal on that graph plus `edge`
    (mentee, mentor, weight), which must not be in it. Returns a new array."""
    import scipy.sparse as sp  # lazily: ~0.45 s to import, and only a matching run needs it
    from scipy.sparse.csgraph import dijkstra

    i, j, w = edge
    slack = w - int(u[i]) - int(v[j])
    if slack <= 0:
        return chosen  # the duals hold for the new edge too: still optimal
    n, n_m = len(chosen), len(capacity)
    root = n + n_m
    matched = chosen[rows] == cols
    load = np.bincount(chosen[chosen >= 0], minlength=n_m)
    mentees = np.arange(n)
    mentors = np.flatnonzero(capacity > 0)
    has_room, has_load = mentors[load[mentors] < capacity[mentors]], mentors[load[mentors] > 0]
    single = chosen < 0
    # Arcs (tail, head, reduced cost); weights are integers, so float64 sums are exact.
    tails = np.concatenate([
        np.where(matched, n + cols, rows),  # a matched pair can be undone: mentor -> mentee
        np.full(int(single.sum()), root), mentees[~single],  # match / unmatch a mentee
        n + has_room, np.full(len(has_load), root),  # a mentor takes / gives up one more
    ])  # fmt: skip
    heads = np.concatenate([
        np.where(matched, rows, n + cols),
        mentees[single], np.full(int((~single).sum()), root),
        np.full(len(has_room), root), n + has_load,
    ])  # fmt: skip
    costs = np.concatenate([
        np.where(matched, 0, u[rows] + v[cols] - weights),
        np.zeros(int(single.sum())), u[~single],
        np.zeros(len(has_room)), v[has_load],
    ]).astype(np.float64)  # fmt: skip
    graph = sp.csr_matrix((costs, (tails, heads)), shape=(root + 1, root + 1))
    # The cycle: i -> j on the new edge, then the shortest way from j back to i.
    dist, before = dijkstra(
        graph, directed=True, indices=n + j, return_predecessors=True, limit=float(slack)
    )
    if not dist[i] < slack:
        return chosen  # no cycle through the new edge gains: the old matching stays optimal
    out = chosen.copy()
    node, after = i, n + j
    while True:  # each mentee on the cycle takes the mentor its outgoing arc leads to
        if node < n:
            out[node] = after - n if n <= after < root else -1
        if node == n + j:
            break
        node, after = int(before[node]), node
    return out
