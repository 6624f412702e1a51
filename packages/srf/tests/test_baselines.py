import numpy as np
import pytest
from srf.baselines import (
    CompletionResult,
    MC1Result,
    TwoStepResult,
    hard_svd_complete,
    mc1,
    soft_impute_complete,
    svt_complete,
    two_step,
)
from threadpoolctl import threadpool_limits

from labcore.errors import LabcoreError
from labcore.lowrank import relative_error


@pytest.fixture(autouse=True)
def _one_blas_thread():
    # Many small SVDs: multi-threaded BLAS only adds overhead here.
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def planted(seed=0, n=150, d=20, t=2, r=3, noise=0.1, frac_x=0.5, frac_y=0.3):
    """Rank-r features plus noise; labels = sign of a linear function in the feature span."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, r))
    B = rng.standard_normal((d, r))
    clean = A @ B.T
    X = clean + noise * rng.standard_normal((n, d))
    W = B @ rng.standard_normal((r, t))  # weight vectors in the row space of the features
    Y = np.sign(clean @ W)
    Xm = rng.random((n, d)) < frac_x
    Ym = rng.random((n, t)) < frac_y
    return np.where(Xm, X, np.nan), Xm, np.where(Ym, Y, np.nan), Ym, Y


def majority_rate(labels):
    _, counts = np.unique(labels, return_counts=True)
    return counts.max() / labels.size


@pytest.fixture(scope="module")
def transduction():
    return planted(seed=0)


@pytest.fixture(scope="module")
def rank2():
    rng = np.random.default_rng(3)
    M = rng.standard_normal((60, 2)) @ rng.standard_normal((2, 40))
    mask = rng.random(M.shape) < 0.5
    return M, mask, np.where(mask, M, np.nan)


# --------------------------------------------------------------------------------------------
# MC-1
# --------------------------------------------------------------------------------------------


def test_mc1_predicts_hidden_labels(transduction):
    X, Xm, Y, Ym, Y_true = transduction
    res = mc1(X, Xm, Y, Ym)
    assert isinstance(res, MC1Result)
    assert res.Z_x.shape == X.shape and res.Z_y.shape == Y.shape
    assert res.converged and res.n_iter == res.objectives.size == res.mus.size
    hidden = ~Ym
    acc = np.mean(res.labels[hidden] == Y_true[hidden])
    majority = majority_rate(Y_true[hidden])
    assert acc > 0.8
    assert acc > majority + 0.2
    # The observed features are fitted and the bias column stays positive and O(1).
    assert relative_error(res.Z_x, np.nan_to_num(X), mask=Xm) < 0.3
    assert res.z_bias is not None and 0.3 < res.z_bias.mean() < 1.2
    assert res.time_s > 0


def test_mc1_continuation_schedule(transduction):
    X, Xm, Y, Ym, _ = transduction
    res = mc1(X, Xm, Y, Ym, mu_final_ratio=0.01, eta=0.25)
    assert np.all(np.diff(res.mus) <= 0)
    assert res.mus[-1] == res.mu
    levels = np.unique(res.mus)[::-1]
    assert levels.size >= 3
    # Geometric by eta down to the target (the last step may be shorter).
    np.testing.assert_allclose(levels[1:-1] / levels[:-2], 0.25)
    assert res.mu / levels[-2] >= 0.25 - 1e-12
    # mu_max = eta-th of the first level; default mu is mu_final_ratio * mu_max.
    np.testing.assert_allclose(res.mu, 0.01 * levels[0] / 0.25)


@pytest.mark.parametrize("accelerate", [True, False])
def test_mc1_objective_non_increasing_at_fixed_mu(transduction, accelerate):
    X, Xm, Y, Ym, _ = transduction
    seen = []
    res = mc1(
        X,
        Xm,
        Y,
        Ym,
        mu_final_ratio=0.02,
        accelerate=accelerate,
        max_iter=400,
        callback=lambda it, mu, obj, Z: seen.append((it, mu, obj)),
    )
    its, mus, objs = map(np.asarray, zip(*seen, strict=True))
    np.testing.assert_array_equal(its, np.arange(1, res.n_iter + 1))
    np.testing.assert_array_equal(objs, res.objectives)
    for level in np.unique(mus):
        f = objs[mus == level]
        assert f.size > 1
        assert np.all(np.diff(f) <= 1e-12 * np.abs(f[:-1])), level
    at_target = objs[mus == res.mu]
    assert at_target[-1] == pytest.approx(res.objective)
    assert at_target[-1] < at_target[0]


@pytest.mark.parametrize("bias", [False, True])
def test_mc1_matches_cvxpy(bias):
    cp = pytest.importorskip("cvxpy")
    rng = np.random.default_rng(1)
    n, d, t, mu, lam = 12, 4, 1, 0.01, 2.0
    X = rng.standard_normal((n, 2)) @ rng.standard_normal((2, d))
    Y = np.sign(X @ rng.standard_normal((d, t)))
    Xm = rng.random((n, d)) < 0.7
    Ym = rng.random((n, t)) < 0.5
    res = mc1(X, Xm, Y, Ym, mu=mu, lam=lam, bias=bias, tol=1e-10, max_iter=20000)
    assert res.converged

    nb = int(bias)
    Z = cp.Variable((n, d + nb + t))
    xi, xj = np.nonzero(Xm)
    yi, yj = np.nonzero(Ym)
    n_x = xi.size + nb * n
    sq = cp.sum_squares(cp.hstack([Z[i, j] - X[i, j] for i, j in zip(xi, xj, strict=True)]))
    if bias:
        sq = sq + cp.sum_squares(Z[:, d] - 1.0)
    logi = cp.sum(
        cp.logistic(cp.hstack([-Y[i, j] * Z[i, d + nb + j] for i, j in zip(yi, yj, strict=True)]))
    )
    problem = cp.Problem(cp.Minimize(mu * cp.normNuc(Z) + lam / n_x * 0.5 * sq + logi / yi.size))
    problem.solve()
    assert problem.status == "optimal"
    assert res.objective == pytest.approx(problem.value, rel=1e-3)
    assert res.objective >= problem.value * (1 - 1e-3)


def test_mc1_one_dimensional_labels(transduction):
    X, Xm, Y, Ym, _ = transduction
    res = mc1(X, Xm, Y[:, 0], Ym[:, 0], bias=False)
    assert res.Z_y.shape == (X.shape[0],)
    assert res.z_bias is None
    assert set(np.unique(res.labels)) <= {-1, 1}


def test_mc1_large_mu_gives_zero(transduction):
    X, Xm, Y, Ym, _ = transduction
    res = mc1(X, Xm, Y, Ym, mu=1e6)
    assert res.rank == 0
    assert not res.Z_x.any() and not res.Z_y.any()


def test_mc1_rank_cap(transduction):
    X, Xm, Y, Ym, Y_true = transduction
    res = mc1(X, Xm, Y, Ym, rank=8)
    assert res.rank <= 8
    assert np.mean(res.labels[~Ym] == Y_true[~Ym]) > 0.8
    f = res.objectives[res.mus == res.mu]
    assert np.all(np.diff(f) <= 1e-12 * np.abs(f[:-1]))


# --------------------------------------------------------------------------------------------
# Completion baselines
# --------------------------------------------------------------------------------------------


def test_svt_recovers_rank2(rank2):
    M, mask, Mn = rank2
    res = svt_complete(Mn, mask)
    assert isinstance(res, CompletionResult)
    assert res.converged and res.params["residual"] < 1e-4
    assert relative_error(res.Z, M, mask=~mask) < 0.05
    assert res.rank == 2
    assert res.params["tau"] == pytest.approx(5 * np.sqrt(60 * 40))
    assert 0 < res.params["delta"] < 2


def test_svt_respects_max_iter(rank2):
    _, mask, Mn = rank2
    res = svt_complete(Mn, mask, max_iter=3, tau=50.0, delta=1.0)
    assert res.n_iter == 3 and not res.converged


def test_soft_impute_recovers_rank2(rank2):
    M, mask, Mn = rank2
    res = soft_impute_complete(Mn, mask)
    assert relative_error(res.Z, M, mask=~mask) < 0.05
    errors = res.params["validation_errors"]
    assert errors.shape == (10,)
    assert res.params["lam"] == res.params["candidates"][np.argmin(errors)]
    # From a cold start a small fixed lam needs more iterations than the warm-started path.
    fixed = soft_impute_complete(Mn, mask, lam=res.params["lam"], max_iter=1000)
    assert fixed.converged and fixed.params == {"lam": res.params["lam"]}
    assert "candidates" not in fixed.params
    assert relative_error(fixed.Z, M, mask=~mask) < 0.05


def test_hard_svd_recovers_rank2(rank2):
    M, mask, Mn = rank2
    res = hard_svd_complete(Mn, mask, tol=1e-9)
    assert res.params["rank"] == 2 and res.rank == 2
    assert list(res.params["candidates"]) == list(range(1, 11))
    assert relative_error(res.Z, M, mask=~mask) < 1e-3


# --------------------------------------------------------------------------------------------
# Two-step
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("imputer", ["soft-impute", "mean"])
def test_two_step_beats_majority(transduction, imputer):
    X, Xm, _, Ym, Y_true = transduction
    y = Y_true[:, 0].astype(int)
    labeled = Ym[:, 0]
    res = two_step(X, Xm, y, labeled, imputer=imputer)
    assert isinstance(res, TwoStepResult)
    assert np.isfinite(res.X_imputed).all()
    np.testing.assert_array_equal(res.X_imputed[Xm], X[Xm])
    assert res.scores.shape == (X.shape[0],)
    assert list(res.classes) == [-1, 1]
    acc = np.mean(res.predictions[~labeled] == y[~labeled])
    assert acc > majority_rate(y[~labeled]) + 0.15


def test_two_step_mean_imputation_values():
    X = np.array([[1.0, np.nan], [3.0, 4.0], [np.nan, 8.0], [0.0, 0.0]])
    mask = ~np.isnan(X)
    res = two_step(X, mask, np.array([0, 1, 0, 1]), np.ones(4, dtype=bool), imputer="mean")
    np.testing.assert_allclose(res.X_imputed[0, 1], 4.0)
    np.testing.assert_allclose(res.X_imputed[2, 0], 4.0 / 3.0)


def test_two_step_string_and_multiclass_labels(transduction):
    X, Xm, _, _, Y_true = transduction
    names = np.array(["a", "b", "c", "d"])
    y = names[(Y_true[:, 0] > 0) * 2 + (Y_true[:, 1] > 0)]
    labeled = np.random.default_rng(0).random(y.size) < 0.4
    res = two_step(X, Xm, y, labeled, imputer="mean")
    assert res.scores.shape == (y.size, 4)
    assert res.predictions.dtype.kind == "U"
    assert np.mean(res.predictions[~labeled] == y[~labeled]) > majority_rate(y[~labeled])


def test_two_step_ridge_returns_floats(transduction):
    X, Xm, _, Ym, _ = transduction
    target = np.nansum(X, axis=1)
    res = two_step(X, Xm, target, Ym[:, 0], imputer="mean", classifier="ridge")
    assert res.predictions.dtype == np.float64 and res.classes is None
    assert res.predictions.shape == (X.shape[0],)
    np.testing.assert_array_equal(res.scores, res.predictions)


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


def _small():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((10, 3))
    Y = np.sign(rng.standard_normal((10, 2)))
    return X, np.ones_like(X, dtype=bool), Y, np.ones_like(Y, dtype=bool)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: {**a, "X_mask": np.zeros_like(a["X_mask"])}, "X: all entries are missing"),
        (lambda a: {**a, "X_mask": a["X_mask"][:, :2]}, "X_mask must have the same shape"),
        (lambda a: {**a, "X": np.full_like(a["X"], np.nan)}, "NaN or infinite value"),
        (lambda a: {**a, "Y": a["Y"][:5]}, "Y must have shape"),
        (
            lambda a: {**a, "Y_mask": np.column_stack([a["Y_mask"][:, 0], np.zeros(10, bool)])},
            "label column 1 has no observed labels",
        ),
        (lambda a: {**a, "Y": a["Y"] * 2}, r"observed labels must be -1 or \+1"),
        (lambda a: {**a, "mu": -1.0}, "mu must be > 0"),
        (lambda a: {**a, "lam": 0.0}, "lam must be > 0"),
        (lambda a: {**a, "eta": 1.5}, "eta must be in"),
        (lambda a: {**a, "rank": 0}, "rank must be an integer"),
    ],
)
def test_mc1_bad_input(change, message):
    X, Xm, Y, Ym = _small()
    args = change({"X": X, "X_mask": Xm, "Y": Y, "Y_mask": Ym})
    with pytest.raises(LabcoreError, match=message):
        mc1(**args)


@pytest.mark.parametrize("fn", [svt_complete, soft_impute_complete, hard_svd_complete])
def test_completion_bad_input(fn):
    M = np.ones((4, 3))
    with pytest.raises(LabcoreError, match="all entries are missing"):
        fn(M, np.zeros_like(M, dtype=bool))
    with pytest.raises(LabcoreError, match="mask must have the same shape"):
        fn(M, np.ones((3, 3), dtype=bool))
    with pytest.raises(LabcoreError, match="NaN or infinite"):
        fn(np.full((4, 3), np.nan), np.ones((4, 3), dtype=bool))
    with pytest.raises(LabcoreError, match="2-dimensional"):
        fn(np.ones(4), np.ones(4, dtype=bool))


def test_svt_bad_delta():
    with pytest.raises(LabcoreError, match="delta must be in"):
        svt_complete(np.ones((4, 3)), np.ones((4, 3), dtype=bool), delta=2.0)


def test_selection_needs_validation_entries():
    with pytest.raises(LabcoreError, match="validation_fraction"):
        soft_impute_complete(np.ones((4, 3)), np.ones((4, 3), dtype=bool), validation_fraction=1)


def test_two_step_bad_input():
    X, Xm, _, _ = _small()
    y = np.array([0, 1] * 5)
    with pytest.raises(LabcoreError, match="at least 2 classes"):
        two_step(X, Xm, y, y == 0)
    with pytest.raises(LabcoreError, match="y must have shape"):
        two_step(X, Xm, y[:4], y == 0)
    with pytest.raises(LabcoreError, match="no observed labels"):
        two_step(X, Xm, y, np.zeros(10, dtype=bool))
    with pytest.raises(LabcoreError, match="all entries are missing"):
        two_step(X, np.zeros_like(Xm), y, np.ones(10, dtype=bool))
    with pytest.raises(LabcoreError, match="imputer must be one of"):
        two_step(X, Xm, y, np.ones(10, dtype=bool), imputer="knn")
    with pytest.raises(LabcoreError, match="numeric"):
        two_step(X, Xm, np.array(list("ab") * 5), np.ones(10, dtype=bool), classifier="ridge")
