"""Solver correctness: 1-D operators, monotone descent, valid bounds, brute-force optimality."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from graphl0bnb import _kernels as K
from graphl0bnb.bnb import branch_and_bound
from graphl0bnb.graphs import make_precision, sample
from graphl0bnb.heuristic import heuristic_solve
from graphl0bnb.problem import covariance, objective, start_point
from graphl0bnb.relaxation import solve_relaxation


def _data(kind="banded", p=5, n=40, seed=0):
    S, _ = covariance(sample(make_precision(kind, p, seed=seed), n, seed=seed + 1))
    return S


def _support_value(S, support, l0, l2, M):
    """Exact optimum with z fixed: 1 on ``support``, 0 elsewhere (a convex problem)."""
    p = S.shape[0]
    st = np.full((p, p), K.ZERO, np.int8)
    for i, j in support:
        st[i, j] = st[j, i] = K.ONE
    Th, V = start_point(S)
    rows = np.array([i for i, _ in support], np.int64)
    cols = np.array([j for _, j in support], np.int64)
    r = solve_relaxation(S, Th, V, st, l0, l2, M, rows, cols, rel_tol=1e-12, max_outer=400)
    assert r.primal - r.lower_bound <= 1e-8 * max(1, abs(r.primal))
    return r.primal


def _enumerate(S, l0, l2, M):
    p = S.shape[0]
    pairs = [(i, j) for i in range(p) for j in range(i + 1, p)]
    table = {}
    for k in range(len(pairs) + 1):
        for sup in itertools.combinations(pairs, k):
            table[frozenset(sup)] = _support_value(S, sup, l0, l2, M)
    return pairs, table


# --- one-dimensional operators ---------------------------------------------------------------


@pytest.mark.parametrize("a,b", [(1.0, 0.0), (0.7, 2.5), (3.0, 0.01)])
def test_diag_argmin_first_order_condition(a, b):
    x = K.diag_argmin(a, b)
    assert x > 0
    assert abs(-1 / x + a - b / x**2) < 1e-10


@pytest.mark.parametrize("st", [K.FREE, K.ZERO, K.ONE])
@pytest.mark.parametrize("b", [-2.0, -0.3, 0.05, 0.9])
def test_one_dimensional_steps_match_a_grid(st, b):
    a, l0, l2, M = 1.3, 0.1, 0.4, 0.6
    grid = np.linspace(-M, M, 200001)
    # l0-l2 step
    pen = np.where(grid != 0, l0, 0.0) + l2 * grid**2
    if st == K.ZERO:
        f = np.where(grid == 0, 0.0, np.inf)
    elif st == K.ONE:
        f = a * grid**2 + b * grid + l0 + l2 * grid**2
    else:
        f = a * grid**2 + b * grid + pen
    t = K.l0l2_step(a, b, l0, l2, M, st)
    ft = a * t * t + b * t + (l0 if (t != 0 or st == K.ONE) else 0.0) + l2 * t * t
    assert ft <= f.min() + 1e-9
    # relaxation step, both regimes of the perspective penalty
    for l2r in (0.4, 0.05):
        ratio, slope, quad = K.perspective_constants(l0, l2r, M)
        psi = np.array([K.relax_penalty(g, l0, l2r, st, ratio, slope, quad) for g in grid[::50]])
        fr = a * grid[::50] ** 2 + b * grid[::50] + psi
        if st == K.ZERO:
            fr = np.where(grid[::50] == 0, 0.0, np.inf)
        tr = K.relax_step(a, b, l0, l2r, M, st, ratio, slope, quad)
        assert abs(tr) <= M
        ftr = a * tr * tr + b * tr + K.relax_penalty(tr, l0, l2r, st, ratio, slope, quad)
        assert ftr <= fr.min() + 1e-9


def test_perspective_penalty_is_the_convex_envelope_below_the_l0_penalty():
    l0, l2, M = 0.1, 0.4, 0.6
    ratio, slope, quad = K.perspective_constants(l0, l2, M)
    assert quad and math.isclose(ratio, math.sqrt(l0 / l2))
    ts = np.linspace(-M, M, 101)
    psi = np.array([K.relax_penalty(t, l0, l2, K.FREE, ratio, slope, quad) for t in ts])
    exact = np.where(ts != 0, l0, 0) + l2 * ts**2
    assert np.all(psi <= exact + 1e-12)
    assert np.all(np.diff(psi, 2) >= -1e-12)  # convex on the grid


# --- descent and bounds ----------------------------------------------------------------------


def test_coordinate_descent_never_increases_the_objective():
    S = _data("random", p=30, n=20, seed=3)
    l0, l2, M = 0.05, 0.5, 2.0
    Theta, V = start_point(S)
    st = np.zeros(S.shape, np.int8)
    prev = objective(S, Theta, l0, l2)
    for _ in range(8):
        K.cd_l0l2_full(S, Theta, V, l0, l2, M, st)
        now = objective(S, Theta, l0, l2)
        assert now <= prev + 1e-10
        K.diagonal_sweep(S, Theta, V)
        after = objective(S, Theta, l0, l2)
        assert after <= now + 1e-10
        prev = after
    # V stays equal to ΘS after many in-place updates
    np.testing.assert_allclose(V, Theta @ S, atol=1e-10)
    np.testing.assert_array_equal(Theta, Theta.T)


def test_dual_bound_is_valid_even_when_stopped_early():
    S = _data("random", p=12, n=30, seed=5)
    l0, l2, M = 0.05, 0.5, 2.0
    st = np.zeros(S.shape, np.int8)
    Th, V = start_point(S)
    full = solve_relaxation(S, Th, V, st, l0, l2, M, *_all_pairs(12), rel_tol=1e-10, max_outer=300)
    assert full.primal - full.lower_bound < 1e-7 * abs(full.primal)
    for outer, sweeps in [(1, 1), (1, 3), (2, 2)]:
        Th, V = start_point(S)
        early = solve_relaxation(
            S, Th, V, st, l0, l2, M, *_all_pairs(12), max_outer=outer, sweeps_per_check=sweeps
        )
        assert early.lower_bound <= full.primal + 1e-9
        assert early.lower_bound <= early.primal + 1e-9


def _all_pairs(p):
    i, j = np.triu_indices(p, 1)
    return i.astype(np.int64), j.astype(np.int64)


# --- brute force -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind,p,seed,l0", [("banded", 4, 0, 0.05), ("random", 5, 1, 0.04), ("hub", 5, 2, 0.08)]
)
def test_bnb_matches_enumeration_and_node_bounds_are_valid(kind, p, seed, l0):
    S = _data(kind, p=p, n=6 * p, seed=seed)
    l2, M = 0.3, 2.0
    _pairs, table = _enumerate(S, l0, l2, M)
    best = min(table.values())
    res = branch_and_bound(S, l0, l2, M, gap_tol=1e-9, record_nodes=True)
    assert res.status == "optimal"
    assert abs(res.upper_bound - best) <= 1e-7 * max(1, abs(best))
    assert abs(objective(S, res.theta, l0, l2) - res.upper_bound) <= 1e-9 * max(1, abs(best))
    assert res.lower_bound <= res.upper_bound + 1e-12
    assert res.lower_bound >= best - 1e-7 * max(1, abs(best))
    # Each node's bound is ≤ the best objective among the supports it allows.
    for node in res.node_log:
        zero, one = set(node["zero"]), set(node["one"])
        allowed = [v for sup, v in table.items() if one <= sup and not (zero & sup)]
        assert node["lower_bound"] <= min(allowed) + 1e-8 * max(1, abs(best))


def test_heuristic_is_feasible_and_not_below_the_optimum():
    S = _data("banded", p=5, n=30, seed=4)
    l0, l2, M = 0.03, 0.3, 2.0
    _, table = _enumerate(S, l0, l2, M)
    h = heuristic_solve(S, l0, l2, M)
    assert h.objective >= min(table.values()) - 1e-9
    assert np.abs(np.triu(h.theta, 1)).max() <= M
    assert math.isclose(h.objective, objective(S, h.theta, l0, l2), rel_tol=1e-10)


def test_time_and_node_limits_report_an_honest_gap():
    S = _data("random", p=60, n=30, seed=0)
    res = branch_and_bound(S, 0.05, 0.3, 2.0, gap_tol=0.0, max_nodes=3)
    assert res.status == "node_limit"
    assert res.n_nodes == 3
    assert res.lower_bound <= res.upper_bound
    assert res.gap == pytest.approx(res.gap_abs / max(abs(res.upper_bound), 1.0))


def test_depth_first_reaches_the_same_optimum():
    S = _data("banded", p=5, n=25, seed=7)
    a = branch_and_bound(S, 0.04, 0.3, 2.0, gap_tol=1e-9, search="best")
    b = branch_and_bound(S, 0.04, 0.3, 2.0, gap_tol=1e-9, search="depth")
    assert a.upper_bound == pytest.approx(b.upper_bound, rel=1e-8)


def test_zero_l0_is_a_convex_problem_solved_at_the_root():
    S = _data("random", p=6, n=40, seed=2)
    res = branch_and_bound(S, 0.0, 0.3, 2.0, gap_tol=0.0, max_nodes=50)
    assert res.lower_bound <= res.upper_bound
    assert res.gap <= 1e-6


def test_a_converged_search_is_not_reported_as_limited():
    S = _data("banded", p=5, n=60, seed=1)
    res = branch_and_bound(S, 0.05, 1.0, 2.0, gap_tol=0.05, max_nodes=1)
    assert res.n_nodes == 1
    assert res.status == "optimal" and res.gap <= 0.05
