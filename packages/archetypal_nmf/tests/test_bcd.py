"""Tests of proximal BCD, continuation, local search and the projections they rely on.

Planted data: H0 (k × n) sparse nonnegative archetypes, W0 (m × k) Dirichlet rows whose first
k rows are the identity (the archetypes are data points, so W̃0 selecting those rows gives
W̃0 X = H0 and the truth has Ψ = 0 for noiseless data), X = W0 H0 + noise clipped at 0.
"""

import archetypal_nmf.bcd as bcd_module
import numpy as np
import pytest
from archetypal_nmf.bcd import BCDResult, continuation, lambda_path, prox_bcd
from archetypal_nmf.local_search import local_search
from archetypal_nmf.metrics import (
    matched_error,
    objective,
    strong_robustness,
    support_recovery,
    weak_robustness,
)
from archetypal_nmf.projections import hard_threshold_nonnegative, project_rows_to_simplex
from scipy.optimize import minimize

from labcore import LabcoreError

M_POINTS, K, N_FEATURES = 30, 4, 12


def planted(seed, *, noise=0.0, density=0.5, m=M_POINTS, k=K, n=N_FEATURES):
    rng = np.random.default_rng(seed)
    H0 = rng.uniform(0.5, 2.0, (k, n)) * (rng.random((k, n)) < density)
    H0[np.arange(k), rng.integers(0, n, k)] = 1.0  # no empty archetype
    W0 = rng.dirichlet(np.full(k, 0.5), m)
    W0[:k] = np.eye(k)
    X = np.maximum(W0 @ H0 + noise * rng.standard_normal((m, n)), 0.0)
    Wt0 = np.zeros((k, m))
    Wt0[np.arange(k), np.arange(k)] = 1.0
    return X, W0, H0, Wt0, rng


def random_start(rng, m, k, n, X):
    W = rng.dirichlet(np.ones(k), m)
    Wt = rng.dirichlet(np.ones(m), k)
    H = Wt @ X + 0.1 * rng.random((k, n))
    return W, H, Wt


def perturbed_truth(rng, W0, H0, Wt0, scale=0.1):
    H = np.maximum(H0 + scale * rng.standard_normal(H0.shape), 0.0)
    W = W0 + 0.05 * rng.random(W0.shape)
    Wt = Wt0 + 0.05 * rng.random(Wt0.shape)
    return W, H, Wt


def assert_monotone(values):
    values = np.asarray(values)
    assert np.all(values[1:] <= values[:-1] + 1e-12 * np.abs(values[:-1])), np.diff(values).max()


def assert_feasible(result: BCDResult, n_nonzero):
    for S in (result.W, result.Wt):
        assert S.min() >= -1e-12
        np.testing.assert_allclose(S.sum(axis=1), 1.0, atol=1e-9)
    assert result.H.min() >= 0.0
    assert np.count_nonzero(result.H) <= n_nonzero
    if result.Z is not None:
        assert result.Z.min() >= 0.0


def hide(rng, X, fraction=0.2):
    mask = rng.random(X.shape) >= fraction
    return mask, np.where(mask, X, np.nan)


# --------------------------------------------------------------------------- prox_bcd


@pytest.mark.parametrize("lam", [0.0, 0.5, 5.0])
@pytest.mark.parametrize("with_mask", [False, True])
def test_objective_decreases_monotonically(lam, with_mask):
    X, _, H0, _, rng = planted(1, noise=0.05)
    W, H, Wt = random_start(rng, *X.shape[:1], K, N_FEATURES, X)
    mask, Xin = hide(rng, X) if with_mask else (None, X)
    ell = np.count_nonzero(H0)
    res = prox_bcd(Xin, W, H, Wt, lam=lam, n_nonzero=ell, mask=mask, max_iter=300, tol=0.0)
    assert len(res.objective) == res.n_iter + 1 == 301
    assert_monotone(res.objective)
    assert res.objective[-1] < 0.5 * res.objective[0]
    assert_feasible(res, ell)
    assert (res.Z is None) == (not with_mask)
    # The recorded values are Ψ itself.
    final = objective(Xin, res.W, res.H, res.Wt, lam, Z=res.Z, mask=mask)
    assert final == pytest.approx(res.objective[-1], rel=1e-10, abs=1e-12)


def test_backtracking_keeps_monotone_with_underestimated_lipschitz(monkeypatch):
    """A σ² estimate 20× too small makes the plain steps overshoot; the monotone mode must
    repair that by doubling L."""
    real = bcd_module.spectral_norm_squared

    def too_small(A, v0=None, **kw):
        value, v = real(A, v0=v0, **kw)
        return value / 20.0, v

    monkeypatch.setattr(bcd_module, "spectral_norm_squared", too_small)
    X, _, H0, _, rng = planted(2, noise=0.05)
    W, H, Wt = random_start(rng, X.shape[0], K, N_FEATURES, X)
    ell = np.count_nonzero(H0)
    mask, Xin = hide(rng, X)
    kw = dict(lam=2.0, n_nonzero=ell, mask=mask, max_iter=60, tol=0.0)
    safe = prox_bcd(Xin, W, H, Wt, monotone=True, **kw)
    assert_monotone(safe.objective)
    assert_feasible(safe, ell)
    unsafe = prox_bcd(Xin, W, H, Wt, monotone=False, **kw)
    assert np.diff(unsafe.objective).max() > 0  # the check above is not vacuous


def test_stopping_rule_and_zero_iterations():
    X, _, H0, _, rng = planted(3, noise=0.05)
    W, H, Wt = random_start(rng, X.shape[0], K, N_FEATURES, X)
    ell = np.count_nonzero(H0)
    res = prox_bcd(X, W, H, Wt, lam=1.0, n_nonzero=ell, max_iter=5000, tol=1e-3)
    assert res.converged and res.n_iter < 5000
    psi = np.asarray(res.objective)
    assert psi[-2] - psi[-1] < 1e-3 * psi[0]
    assert np.all(psi[:-2] - psi[1:-1] >= 1e-3 * psi[0])  # it did not stop earlier
    none = prox_bcd(X, W, H, Wt, lam=1.0, n_nonzero=ell, max_iter=0)
    assert none.n_iter == 0 and len(none.objective) == 1 and not none.converged


def test_exact_sparsity_budget_is_used():
    # Dense archetypes and ℓ below their support size: the budget is binding, so the
    # solutions have exactly ℓ nonzeros.
    X, _, H0, _, rng = planted(4, noise=0.02, density=1.0)
    W, H, Wt = random_start(rng, X.shape[0], K, N_FEATURES, X)
    ell = 20
    assert np.count_nonzero(H0) > ell
    res = prox_bcd(X, W, H, Wt, lam=1.0, n_nonzero=ell, max_iter=100)
    assert np.count_nonzero(res.H) == ell
    cont = continuation(X, W, H, Wt, lam=1.0, n_nonzero=ell, n_lams=4, max_iter=50)
    assert np.count_nonzero(cont.H) == ell
    ls = local_search(X, res.W, res.H, res.Wt, lam=1.0, n_nonzero=ell, max_iter=3)
    assert np.count_nonzero(ls.H) <= ell
    for r in (res, cont, ls):
        assert_feasible(r, ell)


@pytest.mark.parametrize("ell", [1, 5, 13])
def test_sparsity_never_exceeded(ell):
    X, _, _, _, rng = planted(5, noise=0.05)
    W, H, Wt = random_start(rng, X.shape[0], K, N_FEATURES, X)
    mask, Xin = hide(rng, X)
    for r in (
        prox_bcd(Xin, W, H, Wt, lam=0.3, n_nonzero=ell, mask=mask, max_iter=40),
        continuation(Xin, W, H, Wt, lam=0.3, n_nonzero=ell, mask=mask, n_lams=3, max_iter=20),
        local_search(Xin, W, H, Wt, lam=0.3, n_nonzero=ell, mask=mask, polish_iter=5),
    ):
        assert np.count_nonzero(r.H) <= ell
        assert_feasible(r, ell)


def test_infeasible_start_is_projected():
    X, _, _, _, rng = planted(6)
    W = rng.standard_normal((X.shape[0], K))
    H = rng.standard_normal((K, N_FEATURES))
    Wt = rng.standard_normal((K, X.shape[0]))
    res = prox_bcd(X, W, H, Wt, lam=1.0, n_nonzero=7, max_iter=20)
    assert_feasible(res, 7)
    assert_monotone(res.objective)


# --------------------------------------------------------------------------- projections


def test_simplex_projection_matches_slsqp_and_kkt():
    rng = np.random.default_rng(7)
    V = rng.normal(0.0, 1.5, (6, 5))
    V[0] = [0.2, 0.2, 0.2, 0.2, 0.2]  # already on the simplex
    V[1] = [5.0, -3.0, 0.0, 0.0, 0.0]  # a vertex
    P = project_rows_to_simplex(V)
    for v, p in zip(V, P, strict=True):
        ref = minimize(
            lambda w, v=v: np.sum((w - v) ** 2),
            np.full(v.size, 1.0 / v.size),
            jac=lambda w, v=v: 2 * (w - v),
            method="SLSQP",
            bounds=[(0.0, None)] * v.size,
            constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0}],
            options={"ftol": 1e-14, "maxiter": 500},
        ).x
        np.testing.assert_allclose(p, ref, atol=1e-6)
        # KKT: p = max(v − θ, 0) for one θ; on the support v − p = θ, off it v ≤ θ.
        assert p.min() >= 0.0 and p.sum() == pytest.approx(1.0, abs=1e-12)
        on = p > 0
        theta = (v - p)[on]
        np.testing.assert_allclose(theta, theta[0], atol=1e-12)
        assert np.all(v[~on] <= theta[0] + 1e-12)
    np.testing.assert_allclose(P[0], V[0], atol=1e-15)
    np.testing.assert_allclose(P[1], [1, 0, 0, 0, 0], atol=1e-15)


def test_hard_threshold_keeps_exactly_ell_largest():
    rng = np.random.default_rng(8)
    V = rng.standard_normal((5, 7))
    n_pos = int(np.count_nonzero(V > 0))
    assert n_pos > 10
    for ell in (1, 4, 10, n_pos):
        T = hard_threshold_nonnegative(V, ell)
        assert np.count_nonzero(T) == ell
        # The kept entries are the ℓ largest, unchanged.
        assert T[T > 0].min() == np.sort(V.ravel())[-ell]
        np.testing.assert_array_equal(T[T > 0], V[T > 0])
    # A budget above the number of positive entries keeps them all (and only them).
    np.testing.assert_array_equal(hard_threshold_nonnegative(V, n_pos + 5), np.maximum(V, 0))


# --------------------------------------------------------------------------- recovery


@pytest.mark.parametrize("lam", [0.0, 1.0])
def test_planted_archetypes_are_recovered(lam):
    X, W0, H0, Wt0, rng = planted(0)
    ell = np.count_nonzero(H0)
    W, H, Wt = perturbed_truth(rng, W0, H0, Wt0, scale=0.25)
    scale = np.vdot(H0, H0)
    # The start is clearly off (so a solver that does nothing fails the test)...
    assert weak_robustness(hard_threshold_nonnegative(H, ell), H0) / scale > 1e-2
    res = prox_bcd(X, W, H, Wt, lam=lam, n_nonzero=ell, max_iter=600, tol=1e-12)
    # ...and the solution is the truth up to a permutation.
    assert weak_robustness(res.H, H0) / scale < 1e-3
    assert strong_robustness(res.H, H0) / scale < 1e-3
    assert matched_error(res.H, H0) < 1e-3
    assert support_recovery(res.H, H0)["f1"] == 1.0
    assert res.objective[-1] < 1e-4 * res.objective[0]


def test_continuation_path_and_recovery():
    X, W0, H0, Wt0, rng = planted(0)
    ell = np.count_nonzero(H0)
    W, H, Wt = perturbed_truth(rng, W0, H0, Wt0, scale=0.25)
    assert matched_error(hard_threshold_nonnegative(H, ell), H0) > 1e-2
    res = continuation(X, W, H, Wt, lam=0.1, n_nonzero=ell, lam_max=30.0, n_lams=5,
                       max_iter=300, tol=1e-10)  # fmt: skip
    lams = [lam for lam, _ in res.path]
    assert lams == lambda_path(0.1, 30.0, 5)
    assert lams[0] == 30.0 and lams[-1] == 0.1 and np.all(np.diff(lams) < 0)
    assert len(res.objective) == res.n_iter + len(lams)
    # Monotone within each stage.
    start = 0
    for _, final in res.path:
        stage = res.objective[start:]
        end = stage.index(final) + 1
        assert_monotone(stage[:end])
        start += end
    assert start == len(res.objective)
    assert matched_error(res.H, H0) < 1e-3
    assert_feasible(res, ell)


def test_lambda_path_edge_cases():
    assert lambda_path(50.0, 30.0, 8) == [50.0]
    assert lambda_path(0.5, 30.0, 1) == [0.5]
    path = lambda_path(0.0, 30.0, 5)
    assert path[-1] == 0.0 and path[0] == 30.0
    assert path[-2] == pytest.approx(0.03)
    assert len(path) == 5
    assert lambda_path(0.0, 30.0, 1) == [0.0]


# --------------------------------------------------------------------------- local search


def test_local_search_finds_the_swap():
    X, W0, H0, Wt0, _ = planted(0)
    ell = np.count_nonzero(H0)
    H = H0.copy()
    on, off = np.flatnonzero(H0[0] > 0)[0], np.flatnonzero(H0[0] == 0)[0]
    H[0, off], H[0, on] = H[0, on], 0.0  # one support entry in the wrong column
    for lam in (0.0, 1.0):
        psi_wrong = objective(X, W0, H, Wt0, lam)
        assert psi_wrong > 1.0
        res = local_search(X, W0, H, Wt0, lam=lam, n_nonzero=ell, size=2, polish_iter=0)
        assert res.n_iter == 1 and res.converged
        np.testing.assert_array_equal(res.H > 0, H0 > 0)
        np.testing.assert_allclose(res.H, H0, atol=1e-12)
        assert res.objective[-1] < 1e-20
        assert_monotone(res.objective)


@pytest.mark.parametrize("with_mask", [False, True])
def test_local_search_never_increases(with_mask):
    for seed in range(3):
        X, _, H0, _, rng = planted(10 + seed, noise=0.05)
        m = X.shape[0]
        W, H, Wt = random_start(rng, m, K, N_FEATURES, X)
        mask, Xin = hide(rng, X) if with_mask else (None, X)
        ell = np.count_nonzero(H0)
        start = continuation(Xin, W, H, Wt, lam=0.5, n_nonzero=ell, mask=mask, n_lams=3,
                             max_iter=80)  # fmt: skip
        res = local_search(Xin, start.W, start.H, start.Wt, lam=0.5, n_nonzero=ell,
                           mask=mask, Z=start.Z, size=3, max_iter=4, polish_iter=10)  # fmt: skip
        assert_monotone(res.objective)
        assert res.objective[-1] <= start.objective[-1] * (1 + 1e-12)
        assert_feasible(res, ell)


def test_local_search_uses_free_budget():
    # With fewer than ℓ nonzeros a pure entry is allowed and must help on planted data.
    X, W0, H0, Wt0, _ = planted(0)
    ell = np.count_nonzero(H0)
    H = H0.copy()
    H.flat[np.flatnonzero(H0)[3]] = 0.0
    res = local_search(X, W0, H, Wt0, lam=1.0, n_nonzero=ell, polish_iter=0)
    np.testing.assert_allclose(res.H, H0, atol=1e-12)


# --------------------------------------------------------------------------- missing values


@pytest.mark.parametrize("lam", [0.0, 1.0])
def test_missing_values_are_imputed(lam):
    X, W0, H0, Wt0, rng = planted(0)
    mask, Xin = hide(rng, X, 0.2)
    assert 0.1 < np.mean(~mask) < 0.3
    ell = np.count_nonzero(H0)
    W, H, Wt = perturbed_truth(rng, W0, H0, Wt0, scale=0.1)
    start = prox_bcd(Xin, W, H, Wt, lam=lam, n_nonzero=ell, mask=mask, max_iter=0)
    res = prox_bcd(Xin, W, H, Wt, lam=lam, n_nonzero=ell, mask=mask, max_iter=1000, tol=1e-10)
    assert_monotone(res.objective)

    def observed_fit(r):
        return np.sum((mask * (X - r.W @ r.H)) ** 2)

    assert observed_fit(res) < 1e-3 * observed_fit(start)
    # The start's Z is the column means of the observed entries...
    col_means = np.nanmean(Xin, axis=0)
    np.testing.assert_allclose(start.Z, np.where(mask, X, col_means[None, :]))
    # ...and the solution's Z is far closer to the hidden values.
    err0 = np.linalg.norm((start.Z - X)[~mask])
    err = np.linalg.norm((res.Z - X)[~mask])
    assert err < 0.01 * err0
    np.testing.assert_array_equal(res.Z[mask], X[mask])  # observed entries untouched


def test_fully_missing_column_gets_the_global_mean():
    X, _, _, _, rng = planted(1)
    mask = np.ones(X.shape, dtype=bool)
    mask[:, 3] = False
    mask[0, 0] = False
    W, H, Wt = random_start(rng, X.shape[0], K, N_FEATURES, X)
    res = prox_bcd(X, W, H, Wt, lam=1.0, n_nonzero=10, mask=mask, max_iter=0)
    assert res.Z[0, 3] == pytest.approx(X[mask].mean())
    assert res.Z[0, 0] == pytest.approx(X[1:, 0].mean())


def test_all_true_mask_equals_no_mask():
    X, _, _, _, rng = planted(2, noise=0.05)
    W, H, Wt = random_start(rng, X.shape[0], K, N_FEATURES, X)
    a = prox_bcd(X, W, H, Wt, lam=1.0, n_nonzero=15, max_iter=30)
    b = prox_bcd(X, W, H, Wt, lam=1.0, n_nonzero=15, max_iter=30, mask=np.ones(X.shape, bool))
    np.testing.assert_allclose(a.objective, b.objective, rtol=1e-12)
    np.testing.assert_allclose(a.H, b.H, atol=1e-12)


def test_user_z_is_used_only_at_missing_entries():
    X, _, _, _, rng = planted(3)
    mask, Xin = hide(rng, X)
    W, H, Wt = random_start(rng, X.shape[0], K, N_FEATURES, X)
    Z = np.where(mask, -5.0, 2.0)  # observed entries of Z are ignored
    res = prox_bcd(Xin, W, H, Wt, lam=1.0, n_nonzero=15, mask=mask, Z=Z, max_iter=0)
    np.testing.assert_array_equal(res.Z, np.where(mask, X, 2.0))


# --------------------------------------------------------------------------- bad input


def _good():
    X, _, _, _, rng = planted(4)
    W, H, Wt = random_start(rng, X.shape[0], K, N_FEATURES, X)
    return X, W, H, Wt


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (lambda a: a.__setitem__("X", a["X"] - 1.0), "negative"),
        (lambda a: a["X"].__setitem__((0, 0), np.nan), "X has NaN at observed entries"),
        (lambda a: a["X"].__setitem__((0, 0), np.inf), "infinite"),
        (lambda a: a.__setitem__("W", a["W"][:-1]), r"W must have shape \(m, k\)"),
        (lambda a: a.__setitem__("H", a["H"][:, :-1]), r"H must have n = 12 columns"),
        (lambda a: a.__setitem__("Wt", a["Wt"][:, :-1]), r"Wt must have shape \(k, m\)"),
        (lambda a: a.__setitem__("W", a["W"][:, :-1]), r"W must have shape"),
        (lambda a: a.__setitem__("lam", -1.0), r"lam must be >= 0"),
        (lambda a: a.__setitem__("n_nonzero", 0), r"n_nonzero must be an integer >= 1"),
        (lambda a: a.__setitem__("mask", np.ones(a["X"].shape)), r"mask must be a boolean"),
        (lambda a: a.__setitem__("mask", np.ones((3, 3), bool)), r"mask has shape"),
        (lambda a: a.__setitem__("mask", np.zeros(a["X"].shape, bool)), r"no observed"),
        (lambda a: a.__setitem__("Z", np.zeros(a["X"].shape)), r"only used together with"),
        (lambda a: a.__setitem__("X", a["X"][0]), r"2-dimensional"),
        (lambda a: a.__setitem__("W", np.full(a["W"].shape, np.nan)), r"W contains NaN"),
    ],
)
@pytest.mark.parametrize("solver", [prox_bcd, continuation, local_search])
def test_bad_input_raises(change, pattern, solver):
    X, W, H, Wt = _good()
    args = {"X": X.copy(), "W": W, "H": H, "Wt": Wt, "lam": 1.0, "n_nonzero": 10}
    args.update(mask=None, Z=None)
    change(args)
    with pytest.raises(LabcoreError, match=pattern):
        solver(
            args["X"],
            args["W"],
            args["H"],
            args["Wt"],
            lam=args["lam"],
            n_nonzero=args["n_nonzero"],
            mask=args["mask"],
            Z=args["Z"],
        )


def test_nan_allowed_at_missing_entries_only():
    X, W, H, Wt = _good()
    mask = np.ones(X.shape, dtype=bool)
    mask[2, 5] = False
    Xn = X.copy()
    Xn[2, 5] = np.nan
    Xn[3, 3] = -1.0
    with pytest.raises(LabcoreError, match="negative"):
        prox_bcd(Xn, W, H, Wt, lam=1.0, n_nonzero=10, mask=mask, max_iter=1)
    Xn[3, 3] = 0.0
    res = prox_bcd(Xn, W, H, Wt, lam=1.0, n_nonzero=10, mask=mask, max_iter=5)
    assert np.isfinite(res.objective).all()
    mask[3, 3] = False
    Xn[3, 3] = -7.0  # anything goes at a missing entry
    prox_bcd(Xn, W, H, Wt, lam=1.0, n_nonzero=10, mask=mask, max_iter=5)
    with pytest.raises(LabcoreError, match="Z has NaN"):
        prox_bcd(Xn, W, H, Wt, lam=1.0, n_nonzero=10, mask=mask, Z=np.full(X.shape, np.nan))
    with pytest.raises(LabcoreError, match="size must be"):
        local_search(X, W, H, Wt, lam=1.0, n_nonzero=10, size=0)
