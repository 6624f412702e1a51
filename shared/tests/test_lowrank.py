import doctest

import numpy as np
import pytest

import labcore.lowrank as lowrank
from labcore import LabcoreError
from labcore.lowrank import (
    SoftImputeResult,
    hard_impute,
    holdout_split,
    lambda_max,
    relative_error,
    soft_impute,
    truncated_svd,
)


def low_rank(m, n, r, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, r)) @ rng.standard_normal((r, n))


def observed(shape, p, seed):
    return np.random.default_rng(seed).random(shape) < p


def svt(Y, lam):
    """Closed-form singular value soft-thresholding of Y."""
    U, s, Vt = np.linalg.svd(Y, full_matrices=False)
    return (U * np.maximum(s - lam, 0.0)) @ Vt


def objective(Y, mask, Z, lam):
    return 0.5 * np.sum((Y - Z)[mask] ** 2) + lam * np.linalg.svd(Z, compute_uv=False).sum()


def test_module_doctests():
    result = doctest.testmod(lowrank, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


# ------------------------------------------------------------------------------ truncated_svd


def counting_randomized_svd(monkeypatch):
    import sklearn.utils.extmath as extmath

    calls = []
    original = extmath.randomized_svd

    def wrapped(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(extmath, "randomized_svd", wrapped)
    return calls


def test_truncated_svd_full_path_matches_numpy(monkeypatch):
    calls = counting_randomized_svd(monkeypatch)
    A = np.random.default_rng(0).standard_normal((20, 15))
    U, s, Vt = truncated_svd(A, 4)
    assert calls == []
    ref = np.linalg.svd(A, compute_uv=False)
    np.testing.assert_allclose(s, ref[:4], rtol=1e-12)
    assert np.all(np.diff(s) <= 0)
    np.testing.assert_allclose(U.T @ U, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(Vt @ Vt.T, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(U.T @ A @ Vt.T, np.diag(s), atol=1e-10)


def test_truncated_svd_randomized_path_matches_numpy(monkeypatch):
    calls = counting_randomized_svd(monkeypatch)
    A = low_rank(300, 250, 8, seed=1)
    U, s, Vt = truncated_svd(A, 5, random_state=0)
    assert len(calls) == 1
    assert calls[0]["n_oversamples"] == 10 and calls[0]["n_iter"] == 4
    assert U.shape == (300, 5) and s.shape == (5,) and Vt.shape == (5, 250)
    ref = np.linalg.svd(A, compute_uv=False)
    np.testing.assert_allclose(s, ref[:5], rtol=1e-8)
    assert np.all(np.diff(s) <= 0)
    np.testing.assert_allclose(U.T @ A @ Vt.T, np.diag(s), atol=1e-8 * s[0])
    # Seeded: the same call gives the same answer.
    U2, s2, Vt2 = truncated_svd(A, 5, random_state=0)
    np.testing.assert_array_equal(s, s2)
    np.testing.assert_array_equal(U, U2)
    np.testing.assert_array_equal(Vt, Vt2)


def test_truncated_svd_rank_clipped_and_checked():
    A = np.random.default_rng(2).standard_normal((5, 4))
    U, s, Vt = truncated_svd(A, 100)
    assert U.shape == (5, 4) and s.shape == (4,) and Vt.shape == (4, 4)
    with pytest.raises(LabcoreError, match="rank must be an integer >= 1"):
        truncated_svd(A, 0)
    with pytest.raises(LabcoreError, match="2-dimensional"):
        truncated_svd(np.ones(3), 1)
    with pytest.raises(LabcoreError, match="NaN"):
        truncated_svd(np.array([[1.0, np.nan]]), 1)


# -------------------------------------------------------------------------------- soft_impute


def test_soft_impute_objective_non_increasing():
    Y = low_rank(30, 20, 3, seed=3) + 0.1 * np.random.default_rng(4).standard_normal((30, 20))
    mask = observed(Y.shape, 0.5, seed=5)
    lam = 0.05 * lambda_max(Y, mask)
    init = np.random.default_rng(6).standard_normal(Y.shape)
    # One objective per max_iter = 1..10, all from the same init.
    results = [soft_impute(Y, mask, lam=lam, max_iter=k, tol=0.0, init=init) for k in range(1, 11)]
    values = np.array([objective(Y, mask, init, lam)] + [r.objective for r in results])
    assert np.all(np.diff(values) <= 1e-10 * values[0])
    assert values[-1] < 0.9 * values[0]  # it does make progress
    assert [r.n_iter for r in results] == list(range(1, 11))
    assert not any(r.converged for r in results)
    # The reported objective is the objective of the returned Z.
    for r in results:
        assert r.objective == pytest.approx(objective(Y, mask, r.Z, lam), rel=1e-10)
    # The callback sees the same iterates.
    seen = []
    soft_impute(
        Y, mask, lam=lam, max_iter=10, tol=0.0, init=init, callback=lambda i, Z: seen.append((i, Z))
    )
    assert [i for i, _ in seen] == list(range(1, 11))
    for (_, Z), r in zip(seen, results, strict=True):
        np.testing.assert_allclose(Z, r.Z, atol=1e-12)


def test_soft_impute_fully_observed_is_singular_value_thresholding():
    Y = np.random.default_rng(7).standard_normal((15, 12))
    mask = np.ones(Y.shape, dtype=bool)
    lam = 1.3
    res = soft_impute(Y, mask, lam=lam)
    assert isinstance(res, SoftImputeResult)
    np.testing.assert_allclose(res.Z, svt(Y, lam), atol=1e-8)
    assert res.converged and res.n_iter <= 2
    assert res.rank == int(np.sum(np.linalg.svd(Y, compute_uv=False) > lam))
    assert res.objective == pytest.approx(objective(Y, mask, svt(Y, lam), lam), rel=1e-10)


def test_soft_impute_zero_at_and_above_lambda_max():
    Y = low_rank(20, 15, 2, seed=8)
    mask = observed(Y.shape, 0.6, seed=9)
    Ynan = np.where(mask, Y, np.nan)
    lmax = lambda_max(Ynan, mask)
    assert lmax == pytest.approx(np.linalg.norm(np.where(mask, Y, 0.0), 2), rel=1e-12)
    for lam in (lmax, 1.5 * lmax):
        res = soft_impute(Ynan, mask, lam=lam)
        assert res.rank == 0 and res.converged
        assert np.array_equal(res.Z, np.zeros(Y.shape))
        assert res.objective == pytest.approx(0.5 * np.sum(Y[mask] ** 2))
    below = soft_impute(Ynan, mask, lam=0.99 * lmax)
    assert below.rank >= 1 and np.abs(below.Z).max() > 0


def test_soft_impute_recovers_rank3_matrix_along_lambda_path():
    truth = low_rank(60, 50, 3, seed=10)
    mask = observed(truth.shape, 0.5, seed=11)
    Y = np.where(mask, truth, np.nan)  # unobserved entries are NaN and must be ignored
    lmax = lambda_max(Y, mask)
    Z = None
    for lam in np.geomspace(0.5 * lmax, 1e-3 * lmax, 8):  # warm-started path
        res = soft_impute(Y, mask, lam=lam, max_iter=500, tol=1e-8, init=Z)
        Z = res.Z
    assert relative_error(res.Z, truth, mask=~mask) < 1e-2


def test_soft_impute_ignores_unobserved_values():
    truth = low_rank(12, 9, 2, seed=12)
    mask = observed(truth.shape, 0.6, seed=13)
    garbage = np.where(mask, truth, 1e6)
    a = soft_impute(np.where(mask, truth, np.nan), mask, lam=0.5)
    b = soft_impute(garbage, mask.astype(int), lam=0.5)  # 0/1 integer mask accepted
    np.testing.assert_array_equal(a.Z, b.Z)


def test_soft_impute_rank_cap():
    Y = low_rank(25, 20, 6, seed=14)
    mask = observed(Y.shape, 0.7, seed=15)
    lam = 0.05 * lambda_max(Y, mask)
    capped = soft_impute(Y, mask, lam=lam, rank=2, tol=1e-8, max_iter=300)
    assert 1 <= capped.rank <= 2
    assert np.linalg.matrix_rank(capped.Z) <= 2
    # A cap above the solution's rank changes nothing.
    lam = 0.5 * lambda_max(Y, mask)
    free = soft_impute(Y, mask, lam=lam, tol=1e-10, max_iter=1000)
    loose = soft_impute(Y, mask, lam=lam, rank=free.rank + 3, tol=1e-10, max_iter=1000)
    assert loose.rank == free.rank
    np.testing.assert_allclose(loose.Z, free.Z, atol=1e-8)


def test_soft_impute_matches_cvxpy():
    cp = pytest.importorskip("cvxpy")
    rng = np.random.default_rng(16)
    Y = low_rank(12, 10, 2, seed=17) + 0.1 * rng.standard_normal((12, 10))
    mask = observed(Y.shape, 0.6, seed=18)
    lam = 0.1 * lambda_max(Y, mask)
    res = soft_impute(Y, mask, lam=lam, max_iter=20000, tol=1e-14)
    assert res.converged

    Z = cp.Variable(Y.shape)
    fit = cp.sum_squares(cp.multiply(mask.astype(float), Z - np.where(mask, Y, 0.0)))
    problem = cp.Problem(cp.Minimize(0.5 * fit + lam * cp.normNuc(Z)))
    problem.solve()
    assert problem.status == "optimal"
    assert res.objective == pytest.approx(problem.value, rel=1e-3)
    # The convex problem's optimum is at most what cvxpy found (up to solver accuracy).
    assert res.objective <= problem.value * (1 + 1e-4)


# -------------------------------------------------------------------------------- hard_impute


def test_hard_impute_recovers_rank2_matrix():
    truth = low_rank(40, 30, 2, seed=19)
    mask = observed(truth.shape, 0.6, seed=20)
    res = hard_impute(np.where(mask, truth, np.nan), mask, rank=2, max_iter=5000, tol=1e-14)
    assert res.converged
    assert res.rank <= 2
    assert np.linalg.matrix_rank(res.Z, tol=1e-8 * np.abs(res.Z).max()) <= 2
    assert relative_error(res.Z, truth, mask=~mask) < 1e-4
    assert res.objective == pytest.approx(0.5 * np.sum((res.Z - truth)[mask] ** 2))
    assert res.objective < 1e-8


def test_hard_impute_rank_never_exceeds_request():
    Y = np.random.default_rng(21).standard_normal((15, 12))
    mask = observed(Y.shape, 0.8, seed=22)
    for rank in (1, 3, 50):
        res = hard_impute(Y, mask, rank=rank, max_iter=20)
        assert res.rank <= min(rank, 12)
        assert np.linalg.matrix_rank(res.Z) <= min(rank, 12)


# ------------------------------------------------------------------------------ holdout_split


def rows_mask(counts, n_cols=12, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.zeros((len(counts), n_cols), dtype=bool)
    for i, c in enumerate(counts):
        mask[i, rng.choice(n_cols, size=c, replace=False)] = True
    return mask


@pytest.mark.parametrize(
    ("fraction", "min_keep", "expected"),
    [
        (0.4, 1, [0, 0, 1, 2, 4]),
        (0.4, 2, [0, 0, 0, 2, 4]),
        (0.9, 3, [0, 0, 0, 2, 7]),
        (0.4, 0, [0, 0, 1, 2, 4]),
        (0.9, 0, [0, 1, 2, 4, 9]),
    ],
)
def test_holdout_split_per_row_counts(fraction, min_keep, expected):
    mask = rows_mask([0, 1, 2, 5, 10])
    train, test = holdout_split(mask, fraction=fraction, random_state=0, min_keep=min_keep)
    assert train.dtype == bool and test.dtype == bool
    assert not (train & test).any()
    assert np.array_equal(train | test, mask)
    assert test.sum(axis=1).tolist() == expected
    counts = mask.sum(axis=1)
    assert np.all(train.sum(axis=1) >= np.minimum(counts, min_keep))


def test_holdout_split_random_mask_properties():
    mask = observed((200, 40), 0.3, seed=23)
    train, test = holdout_split(mask, fraction=0.25, random_state=1, min_keep=2)
    assert not (train & test).any()
    assert np.array_equal(train | test, mask)
    counts = mask.sum(axis=1)
    want = np.minimum(np.round(0.25 * counts), np.maximum(counts - 2, 0))
    np.testing.assert_array_equal(test.sum(axis=1), want)
    # Deterministic for a seed, different across seeds.
    again = holdout_split(mask, fraction=0.25, random_state=1, min_keep=2)
    assert np.array_equal(again[1], test) and np.array_equal(again[0], train)
    other = holdout_split(mask, fraction=0.25, random_state=2, min_keep=2)[1]
    assert not np.array_equal(other, test)
    # Each observed entry is held out with about the same frequency (no positional bias).
    hits = sum(holdout_split(mask, fraction=0.5, random_state=s)[1].astype(int) for s in range(40))
    by_column = hits.sum(axis=0) / np.maximum(mask.sum(axis=0), 1) / 40
    assert np.all(np.abs(by_column[mask.sum(axis=0) > 20] - 0.5) < 0.15)


def test_holdout_split_uniform():
    mask = observed((50, 30), 0.4, seed=24)
    train, test = holdout_split(mask, fraction=0.3, random_state=3, per_row=False)
    assert not (train & test).any()
    assert np.array_equal(train | test, mask)
    assert test.sum() == round(0.3 * mask.sum())
    again = holdout_split(mask, fraction=0.3, random_state=3, per_row=False)[1]
    assert np.array_equal(again, test)
    assert not np.array_equal(
        holdout_split(mask, fraction=0.3, random_state=4, per_row=False)[1], test
    )


def test_holdout_split_bad_input():
    mask = observed((5, 5), 0.5, seed=25)
    for fraction in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(LabcoreError, match=r"fraction must be in \(0, 1\)"):
            holdout_split(mask, fraction=fraction)
    with pytest.raises(LabcoreError, match="mask selects no entries"):
        holdout_split(np.zeros((3, 3), dtype=bool), fraction=0.5)
    with pytest.raises(LabcoreError, match="2-dimensional"):
        holdout_split(np.ones(4, dtype=bool), fraction=0.5)
    with pytest.raises(LabcoreError, match="min_keep"):
        holdout_split(mask, fraction=0.5, min_keep=-1)


# ----------------------------------------------------------------------------- relative_error


def test_relative_error_known_values():
    truth = np.array([[3.0, 4.0], [0.0, 0.0]])
    estimate = np.array([[3.0, 5.0], [2.0, 0.0]])
    assert relative_error(estimate, truth) == pytest.approx(np.sqrt(5.0) / 5.0)
    mask = np.array([[True, True], [False, False]])
    assert relative_error(estimate, truth, mask=mask) == pytest.approx(0.2)
    assert relative_error(truth, truth) == 0.0


def test_relative_error_bad_input():
    truth = np.array([[3.0, 4.0], [0.0, 0.0]])
    with pytest.raises(LabcoreError, match="same shape"):
        relative_error(np.ones((2, 3)), truth)
    with pytest.raises(LabcoreError, match="zero norm"):
        relative_error(truth, truth, mask=np.array([[False, False], [True, True]]))
    with pytest.raises(LabcoreError, match="mask selects no entries"):
        relative_error(truth, truth, mask=np.zeros((2, 2), dtype=bool))
    with pytest.raises(LabcoreError, match="mask must have the same shape as truth"):
        relative_error(truth, truth, mask=np.ones((3, 2), dtype=bool))


# ------------------------------------------------------------------------------- input checks


@pytest.fixture
def problem():
    Y = low_rank(6, 5, 2, seed=26)
    mask = observed(Y.shape, 0.6, seed=27)
    return Y, mask


@pytest.mark.parametrize("solver", ["soft", "hard", "lmax"])
def test_bad_inputs_raise_clear_errors(problem, solver):
    Y, mask = problem

    def call(Y, mask, **kw):
        if solver == "soft":
            return soft_impute(Y, mask, lam=kw.pop("lam", 0.1), **kw)
        if solver == "hard":
            kw.pop("lam", None)
            return hard_impute(Y, mask, rank=kw.pop("rank", 2), **kw)
        return lambda_max(Y, mask)

    bad = Y.copy()
    bad[tuple(np.argwhere(mask)[0])] = np.nan
    with pytest.raises(LabcoreError, match=r"NaN or infinite value.* at observed entries"):
        call(bad, mask)
    bad[tuple(np.argwhere(mask)[0])] = np.inf
    with pytest.raises(LabcoreError, match="at observed entries"):
        call(bad, mask)
    with pytest.raises(LabcoreError, match=r"mask must have the same shape as Y \(6, 5\)"):
        call(Y, mask[:, :4])
    with pytest.raises(LabcoreError, match="mask selects no entries"):
        call(Y, np.zeros_like(mask))
    with pytest.raises(LabcoreError, match="Y must be 2-dimensional"):
        call(Y.ravel(), mask.ravel())
    with pytest.raises(LabcoreError, match="mask must be a boolean array"):
        call(Y, mask.astype(float))
    with pytest.raises(LabcoreError, match="values other than 0 and 1"):
        call(Y, 2 * mask.astype(int))
    if solver == "lmax":
        return
    with pytest.raises(LabcoreError, match="rank must be an integer >= 1"):
        call(Y, mask, rank=0)
    with pytest.raises(LabcoreError, match=r"init must have the same shape as Y \(6, 5\)"):
        call(Y, mask, init=np.zeros((5, 6)))
    with pytest.raises(LabcoreError, match="max_iter must be an integer >= 1"):
        call(Y, mask, max_iter=0)
    with pytest.raises(LabcoreError, match="tol must be >= 0"):
        call(Y, mask, tol=-1.0)
    if solver == "soft":
        with pytest.raises(LabcoreError, match="lam must be >= 0"):
            call(Y, mask, lam=-0.1)


def test_init_is_not_modified(problem):
    Y, mask = problem
    init = np.ones(Y.shape)
    soft_impute(Y, mask, lam=0.1, init=init, max_iter=3)
    hard_impute(Y, mask, rank=1, init=init, max_iter=3)
    assert np.array_equal(init, np.ones(Y.shape))


def test_svt_is_the_nuclear_norm_prox():
    from labcore.lowrank import svt

    rng = np.random.default_rng(3)
    A = rng.standard_normal((30, 20))
    tau = 2.0
    Z, shrunk = svt(A, tau)
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    expected = (U * np.maximum(s - tau, 0)) @ Vt
    np.testing.assert_allclose(Z, expected, atol=1e-12)
    np.testing.assert_allclose(shrunk, (s - tau)[s > tau])

    # Optimality: Z minimizes ½‖Z − A‖² + τ‖Z‖_*, so no nearby point does better.
    def objective(M):
        return 0.5 * np.sum((M - A) ** 2) + tau * np.linalg.svd(M, compute_uv=False).sum()

    for _ in range(20):
        assert objective(Z) <= objective(Z + 1e-3 * rng.standard_normal(Z.shape)) + 1e-12


def test_svt_rank_cap_and_cutoff():
    from labcore.lowrank import svt

    A = np.diag([5.0, 4.0, 3.0, 1.0 + 1e-15])
    Z, shrunk = svt(A, 1.0, rank=2)
    assert shrunk.tolist() == [4.0, 3.0] and np.linalg.matrix_rank(Z) == 2
    _, kept = svt(A, 1.0)
    assert len(kept) == 4  # 1e-15 above the threshold still counts with cutoff 0
    _, kept = svt(A, 1.0, cutoff=8 * np.finfo(float).eps)
    assert len(kept) == 3  # round-off is not rank


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"threshold": -1.0}, "threshold"),
        ({"threshold": 1.0, "rank": 0}, "rank"),
        ({"threshold": 1.0, "cutoff": -1.0}, "cutoff"),
    ],
)
def test_svt_rejects_bad_arguments(kwargs, match):
    from labcore.lowrank import svt

    with pytest.raises(LabcoreError, match=match):
        svt(np.eye(3), **kwargs)


# --------------------------------------------------------------------------------------------
# select_on_holdout and check_random_state
# --------------------------------------------------------------------------------------------


def test_select_on_holdout_matches_brute_force_lambda_path():
    """The winner and errors equal a hand-written warm-started path with argmin."""
    truth = low_rank(25, 18, 2, 0)
    mask = observed(truth.shape, 0.6, 1)
    train, test = holdout_split(mask, fraction=0.2, random_state=0, per_row=False)
    grid = lambda_max(truth, train) * np.geomspace(0.5, 0.005, 6)

    def fit(lam, init):
        return soft_impute(truth, train, lam=float(lam), init=init, tol=1e-9).Z

    def err(Z):
        return relative_error(Z, truth, mask=test)

    expected, Z = [], None
    for lam in grid:
        Z = fit(lam, Z)
        expected.append(err(Z))
    sel = lowrank.select_on_holdout(grid, fit, err, warm_start=True)
    assert sel.errors.tolist() == expected
    assert sel.best_index == int(np.argmin(expected))
    assert sel.best == grid[sel.best_index]
    assert np.array_equal(sel.last_fit, Z)
    assert err(sel.best_fit) == min(expected)


def test_select_on_holdout_warm_start_and_ties():
    seen = []

    def fit(c, init):
        seen.append(init)
        return c

    sel = lowrank.select_on_holdout([4, 2, 7, 2], fit, lambda m: abs(m - 2.0))
    assert seen == [None] * 4  # cold starts
    assert sel.best_index == 1  # the first of two equal errors
    seen.clear()
    lowrank.select_on_holdout([4, 2, 7], fit, float, warm_start=True)
    assert seen == [None, 4, 2]


def test_select_on_holdout_skips_non_finite_and_refuses_all_bad():
    sel = lowrank.select_on_holdout([0, 1, 2], lambda c, _: c, lambda m: [np.nan, 5.0, np.inf][m])
    assert sel.best == 1 and np.isnan(sel.errors[0]) and np.isnan(sel.errors[2])
    with pytest.raises(LabcoreError, match="no candidate had a finite held-out error"):
        lowrank.select_on_holdout([0, 1], lambda c, _: c, lambda m: np.nan)
    with pytest.raises(LabcoreError, match="at least one candidate"):
        lowrank.select_on_holdout([], lambda c, _: c, float)


def test_check_random_state():
    rs = lowrank.check_random_state(3)
    assert (
        rs.randint(10**6, size=5).tolist()
        == np.random.RandomState(3).randint(10**6, size=5).tolist()
    )
    existing = np.random.RandomState(1)
    assert lowrank.check_random_state(existing) is existing
    a = lowrank.check_random_state(np.random.default_rng(7)).rand(3)
    b = lowrank.check_random_state(np.random.default_rng(7)).rand(3)
    assert np.array_equal(a, b)
    np.random.seed(0)
    before = np.random.get_state()[1].copy()
    lowrank.check_random_state(None).rand(10)  # a private stream: the global one does not move
    assert np.array_equal(np.random.get_state()[1], before)
    for bad in (-1, 2**40, 1.5, "seed", True):
        with pytest.raises(LabcoreError, match="random_state"):
            lowrank.check_random_state(bad)
