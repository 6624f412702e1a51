"""Initializations: the convex hull projection against a general solver, SPA on separable
data, feasibility of every method, and the outer-approximation MILP's bounds against brute
force on a tiny case."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from archetypal_nmf.init import (
    InitResult,
    convex_hull_projection,
    furthest_point_archetypes,
    initialize,
    outer_approximation,
    spa_archetypes,
    support_objective,
)
from scipy.optimize import minimize

from labcore.errors import LabcoreError


def separable(seed: int, m: int = 30, k: int = 3, n: int = 8, noise: float = 0.0):
    """k sparse archetypes placed as rows of X (at random positions) among Dirichlet
    mixtures; returns (X, H0, indices of the pure rows)."""
    rng = np.random.default_rng(seed)
    H0 = rng.random((k, n)) + 0.1
    H0[rng.random((k, n)) < 0.3] = 0.0
    W0 = rng.dirichlet(np.full(k, 0.7), size=m)
    pure = rng.choice(m, size=k, replace=False)
    W0[pure] = np.eye(k)
    X = W0 @ H0 + noise * rng.random((m, n))
    return X, H0, pure


def tiny(seed: int):
    """m = 10 points, k = 2 dense archetypes in n = 3 features, plus noise: no support of
    size ≤ 3 fits exactly, so the brute-force optimum is positive."""
    rng = np.random.default_rng(seed)
    H0 = rng.random((2, 3)) + 0.2
    W0 = rng.dirichlet([0.5, 0.5], size=10)
    return W0 @ H0 + 0.05 * rng.random((10, 3))


def assert_row_stochastic(A: np.ndarray) -> None:
    assert A.min() >= -1e-12
    np.testing.assert_allclose(A.sum(axis=1), 1.0, atol=1e-9)


# --------------------------------------------------------------------------------------
# convex_hull_projection


def test_projection_rows_on_simplex_and_match_slsqp():
    rng = np.random.default_rng(0)
    H = rng.random((3, 8))
    X = rng.random((20, 8)) * 1.5
    W = convex_hull_projection(X, H)
    assert W.shape == (20, 3)
    assert_row_stochastic(W)
    for i in range(4):
        res = minimize(
            lambda w, x=X[i]: float(np.sum((x - w @ H) ** 2)),
            np.full(3, 1 / 3),
            jac=lambda w, x=X[i]: 2.0 * (w @ H - x) @ H.T,
            method="SLSQP",
            bounds=[(0.0, 1.0)] * 3,
            constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0}],
            options={"ftol": 1e-15, "maxiter": 500},
        )
        assert res.success
        # H has full row rank, so the minimizer is unique and both must find it.
        np.testing.assert_allclose(W[i], res.x, atol=1e-5)


def test_projection_reproduces_points_inside_the_hull():
    rng = np.random.default_rng(1)
    H = rng.random((3, 8))
    W_true = rng.dirichlet(np.ones(3), size=15)
    X = W_true @ H
    W = convex_hull_projection(X, H)
    assert np.abs(X - W @ H).max() < 1e-8
    np.testing.assert_allclose(W, W_true, atol=1e-7)


def test_projection_degenerate_archetypes():
    X = np.random.default_rng(2).random((5, 4))
    assert_row_stochastic(convex_hull_projection(X, np.zeros((3, 4))))
    np.testing.assert_array_equal(convex_hull_projection(X, np.ones((1, 4))), np.ones((5, 1)))
    with pytest.raises(LabcoreError, match="features"):
        convex_hull_projection(X, np.ones((2, 3)))


# --------------------------------------------------------------------------------------
# Vertex heuristics


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_spa_finds_the_pure_rows(seed):
    X, _, pure = separable(seed)
    idx = spa_archetypes(X, 3)
    assert set(idx.tolist()) == set(pure.tolist())


def test_spa_rank_deficient_still_distinct():
    # Four copies of two points: rank 2 but k = 3 asks for a third row.
    X = np.array([[1.0, 0.0], [0.0, 1.0]] * 4)
    idx = spa_archetypes(X, 3)
    assert len(set(idx.tolist())) == 3
    assert {tuple(X[i]) for i in idx} == {(1.0, 0.0), (0.0, 1.0)}


def test_furthest_point_distinct_and_starts_at_the_extreme():
    X, _, _ = separable(4, m=25)
    idx = furthest_point_archetypes(X, 5, seed=3)
    assert len(set(idx.tolist())) == 5 and idx.min() >= 0 and idx.max() < 25
    d = np.linalg.norm(X - X.mean(0), axis=1)
    assert idx[0] == int(np.argmax(d))


# --------------------------------------------------------------------------------------
# initialize: feasibility of the cheap methods


@pytest.mark.parametrize("method", ["spa", "furthest", "random"])
def test_initialize_is_feasible(method):
    X, _, pure = separable(5, noise=0.02)
    ell = 10
    res = initialize(X, 3, ell, method=method, seed=7)
    assert isinstance(res, InitResult)
    assert res.W.shape == (30, 3) and res.H.shape == (3, 8) and res.Wt.shape == (3, 30)
    assert res.H.min() >= 0.0
    assert np.count_nonzero(res.H) <= ell
    assert_row_stochastic(res.W)
    assert_row_stochastic(res.Wt)
    if method in ("spa", "furthest"):
        # W̃ selects the chosen points, and H is them hard-thresholded.
        np.testing.assert_array_equal(res.Wt @ X, X[res.info["indices"]])
    if method == "spa":
        assert set(res.info["indices"].tolist()) == set(pure.tolist())


def test_initialize_random_is_seeded():
    X, _, _ = separable(6)
    a = initialize(X, 3, 12, method="random", seed=1)
    b = initialize(X, 3, 12, method="random", seed=1)
    c = initialize(X, 3, 12, method="random", seed=2)
    np.testing.assert_array_equal(a.H, b.H)
    assert not np.array_equal(a.H, c.H)


# --------------------------------------------------------------------------------------
# The MILP initialization


def check_mip_result(res: InitResult, X: np.ndarray, k: int, ell: int) -> None:
    info = res.info
    Z = info["support"]
    M = info["big_m"]
    assert Z.dtype == bool and Z.shape == (k, X.shape[1])
    assert Z.sum() <= ell
    assert res.H.min() >= 0.0
    assert np.count_nonzero(res.H) <= ell
    assert np.all(res.H <= M * Z + 1e-12)
    assert_row_stochastic(res.W)
    assert_row_stochastic(res.Wt)
    lbs, ubs = np.array(info["lower_bounds"]), np.array(info["upper_bounds"])
    assert len(lbs) == info["cuts"]
    # Each cut only adds a row to the master: the bounds never get looser.
    assert np.all(np.diff(lbs) >= 0.0)
    assert np.all(np.diff(ubs) <= 0.0)
    # Every lower bound is below every upper bound (the cuts are certified, so only
    # rounding is allowed for).
    if lbs.size:
        assert lbs.max() <= ubs.min() * (1 + 1e-6) + 1e-12
    # The upper bound is the archetypal term of the returned (W̃, H).
    np.testing.assert_allclose(np.sum((res.H - res.Wt @ X) ** 2), ubs[-1], rtol=1e-9)
    if info["status"] == "converged":
        assert info["gap"] < 0.05 + 1e-12
    else:
        assert info["status"] in ("max_cuts", "time_limit", "stalled")


def test_mip_feasible_and_bounds_consistent():
    X, _, _ = separable(8, m=30, k=3, n=8, noise=0.05)
    res = initialize(X, 3, 12, method="mip", max_cuts=6, gap=0.05)
    check_mip_result(res, X, 3, 12)
    assert res.info["cuts"] <= 6
    if res.info["status"] == "max_cuts":
        assert res.info["cuts"] == 6
    # Never worse (in the archetypal term) than the SPA support it starts from.
    spa = initialize(X, 3, 12, method="spa")
    assert res.info["upper_bounds"][-1] <= np.sum((spa.H - spa.Wt @ X) ** 2) + 1e-12


def test_mip_stops_at_max_cuts():
    X, _, _ = separable(9, m=30, k=3, n=8, noise=0.1)
    res = outer_approximation(X, 3, 6, max_cuts=2, gap=1e-9)
    check_mip_result(res, X, 3, 6)
    assert res.info["status"] in ("max_cuts", "stalled")
    assert res.info["cuts"] <= 2


def test_mip_time_limit_still_returns_a_feasible_start():
    X, _, _ = separable(10, noise=0.1)
    res = outer_approximation(X, 3, 6, time_limit=1e-9)
    assert res.info["status"] == "time_limit" and res.info["cuts"] == 0
    check_mip_result(res, X, 3, 6)


def brute_force(X: np.ndarray, k: int, ell: int, big_m: float) -> float:
    """min F over every support with at most ℓ entries, F by the MIP's own inner solver."""
    size = k * X.shape[1]
    best = np.inf
    for s in range(ell + 1):
        for S in itertools.combinations(range(size), s):
            Z = np.zeros(size, dtype=bool)
            Z[list(S)] = True
            best = min(best, support_objective(X, Z.reshape(k, -1), big_m=big_m).value)
    return best


@pytest.mark.parametrize("seed", [0, 3])
def test_mip_matches_brute_force_on_a_tiny_case(seed):
    X = tiny(seed)
    gap = 0.05
    res = initialize(X, 2, 3, method="mip", max_cuts=40, gap=gap)
    check_mip_result(res, X, 2, 3)
    assert res.info["status"] == "converged"
    optimum = brute_force(X, 2, 3, res.info["big_m"])
    ub, lb = res.info["upper_bounds"][-1], res.info["lower_bounds"][-1]
    # The certified lower bound is below the optimum over supports ...
    assert lb <= optimum * (1 + 1e-6)
    # ... so converging means the best support found is within the gap of it.
    assert ub * (1 - gap) <= optimum * (1 + 1e-6)


def test_support_objective_certificate():
    X = tiny(1)
    Z = np.array([[1, 0, 1], [0, 1, 0]], dtype=bool)
    rough = support_objective(X, Z, inner_iters=20, inner_tol=0.0)
    fine = support_objective(X, Z, inner_iters=3000, inner_tol=0.0)
    assert fine.value <= rough.value + 1e-12
    # value − FW gap is a lower bound on F(Z), whatever the accuracy.
    assert rough.value - rough.fw_gap <= fine.value + 1e-12
    assert fine.fw_gap < 1e-8 * max(fine.value, 1.0)
    assert np.all(fine.H[~Z] == 0.0)


# --------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"X": -np.ones((5, 3))}, "negative"),
        ({"k": 6}, "larger than the number of points"),
        ({"n_nonzero": 0}, "n_nonzero"),
        ({"method": "kmeans"}, "method must be one of"),
        ({"max_iter": 3}, "unknown option"),
        ({"X": np.full((5, 3), np.nan)}, "NaN"),
        ({"k": 0}, "k must be"),
    ],
)
def test_bad_input(kwargs, match):
    args = {"X": np.ones((5, 3)), "k": 2, "n_nonzero": 3} | kwargs
    with pytest.raises(LabcoreError, match=match):
        initialize(args.pop("X"), args.pop("k"), args.pop("n_nonzero"), **args)


def test_mip_options_checked_but_ignored_for_spa():
    X, _, _ = separable(11)
    res = initialize(X, 3, 10, method="spa", max_cuts=3, gap=0.1)
    assert res.info["method"] == "spa"
    with pytest.raises(LabcoreError, match="gap"):
        initialize(X, 3, 10, method="mip", gap=-1.0)
