"""The hinge cost, the estimator's contract and errors, the baselines, the CLI, and the
cross-checks against diffprivlib and mpmath."""

from __future__ import annotations

import json
import math
import sys
import types

import numpy as np
import pytest
from dpbss import DPBestSubset
from dpbss.baselines import lasso_votes, mcmc_exponential, samp_agg_lasso
from dpbss.bss import best_subset, brute_force_losses
from dpbss.cli import main
from dpbss.data import make_synthetic
from dpbss.estimate import objective_perturbation
from dpbss.loss import HingeCost, SquaredCost
from dpbss.select import (
    exact_distribution,
    neighbourhood,
    sample_top_r,
    sensitivity,
    top_r_log_weights,
)
from scipy.special import logsumexp
from sklearn.utils.estimator_checks import parametrize_with_checks

from labcore.errors import LabcoreError

pytest.importorskip("highspy")


def _classification(n: int, p: int, seed: int):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-0.5, 0.5, size=(n, p))
    y = np.sign(X[:, 0] + X[:, 2] + 0.3 * rng.normal(size=n))
    return X, np.where(y == 0, 1.0, y)


def _relaxed_hinge(cost: HingeCost, support, z) -> float:
    return cost._solve(np.asarray(support), np.asarray(z, dtype=float))[0]


def test_hinge_cost_gradient_matches_finite_differences():
    X, y = _classification(60, 8, 0)
    cost = HingeCost(X, y, 3.0, 1.1)
    fit = cost.fit([0, 2])
    h = 1e-3
    on = (_relaxed_hinge(cost, [0, 2], [1 + h, 1]) - _relaxed_hinge(cost, [0, 2], [1 - h, 1])) / (
        2 * h
    )
    assert on == pytest.approx(fit.grad[0], rel=1e-4)
    h = 1e-5  # off the support: a feature entering with a small z
    off = (_relaxed_hinge(cost, [0, 2, 5], [1, 1, h]) - fit.value) / h
    assert off == pytest.approx(fit.grad[5], rel=1e-3)


@pytest.mark.parametrize("seed", range(3))
def test_hinge_outer_approximation_finds_the_brute_force_best_subset(seed):
    X, y = _classification(50, 8, seed)
    supports, losses = brute_force_losses(X, y, 2, lam=3.0, r=1.1, loss="hinge")
    res = best_subset(X, y, 2, lam=3.0, r=1.1, loss="hinge", gap=1e-6)
    assert tuple(res.support) == tuple(supports[np.argmin(losses)])
    assert res.value == pytest.approx(losses.min(), rel=1e-6)


def test_hinge_sensitivity_bounds_every_support_cost_on_neighbouring_data():
    rng = np.random.default_rng(3)
    bound = sensitivity(n=30, s=2, x_bound=0.5, radius=1.1, loss="hinge")
    for trial in range(6):
        X, y = _classification(30, 6, trial)
        X2, y2 = X.copy(), y.copy()
        i = rng.integers(30)
        X2[i] = rng.choice([-0.5, 0.5], size=6)
        y2[i] = -y[i]
        _, L1 = brute_force_losses(X, y, 2, lam=1.0, r=1.1, loss="hinge")
        _, L2 = brute_force_losses(X2, y2, 2, lam=1.0, r=1.1, loss="hinge")
        assert np.abs(L1 - L2).max() <= bound * (1 + 1e-6)


def test_gram_and_direct_costs_agree():
    d = make_synthetic(300, 12, 3, seed=4)
    gram = SquaredCost(d.X, d.y, 5.0, 1.1)
    direct = SquaredCost(d.X, d.y, 5.0, 1.1)
    direct.gram = None
    supports = np.array([[0, 2, 4], [1, 5, 11], [3, 4, 9]])
    np.testing.assert_allclose(gram.losses(supports), direct.losses(supports), rtol=1e-10)
    a, b = gram.fit([1, 5, 11]), direct.fit([1, 5, 11])
    np.testing.assert_allclose(a.grad, b.grad, rtol=1e-8, atol=1e-14)


def test_top_r_probabilities_equal_diffprivlib_exponential_mechanism():
    # diffprivlib 0.6.6 imports sklearn.tree internals that scikit-learn 1.7 removed; its
    # mechanisms do not need them, so the models subpackage is stubbed for this import.
    sys.modules.setdefault("diffprivlib.models", types.ModuleType("diffprivlib.models"))
    exponential = pytest.importorskip("diffprivlib.mechanisms").Exponential
    d = make_synthetic(80, 8, 2, seed=2)
    nb = neighbourhood(d.X, d.y, 2, lam=3.0, r=1.1)
    delta_f = sensitivity(n=80, s=2, x_bound=0.5, y_bound=0.5, radius=1.1)
    logw, log_rest = top_r_log_weights(nb, 1.0, delta_f)
    ours = np.exp(np.append(logw, log_rest) - logsumexp(np.append(logw, log_rest)))
    L_R = nb.at_least[2][1]
    utility = [-v for v in np.minimum([nb.best_value, *nb.swap_values, L_R], L_R)] + [-L_R]
    R = len(logw)
    mech = exponential(
        epsilon=1.0,
        sensitivity=delta_f,
        utility=utility,
        measure=[1.0] * R + [float(math.comb(8, 2) - R)],
    )
    theirs = np.diff(np.concatenate([[0.0], mech._probabilities]))
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-15)


def test_log_domain_weights_match_mpmath_at_100_digits():
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 100
    d = make_synthetic(4000, 60, 5, seed=0)
    nb = neighbourhood(d.X, d.y, 5, lam=120.0, r=1.1, mistakes=2, time_limit=30)
    delta_f = sensitivity(n=4000, s=5, x_bound=0.5, y_bound=0.5, radius=1.1)
    logw, log_rest = top_r_log_weights(nb, 2.0, delta_f)
    scale = mpmath.mpf(2.0) / (2 * mpmath.mpf(delta_f))
    L_R = mpmath.mpf(nb.at_least[2][1])
    weights = [
        mpmath.exp(-scale * min(mpmath.mpf(v), L_R))
        for v in [nb.best_value, *nb.swap_values, nb.at_least[2][1]]
    ]
    rest = (mpmath.binomial(60, 5) - len(weights)) * mpmath.exp(-scale * L_R)
    total = mpmath.fsum(weights) + rest
    ours = np.exp(np.append(logw, log_rest) - logsumexp(np.append(logw, log_rest)))
    ref = np.array([float(w / total) for w in [*weights, rest]])
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-300)


@parametrize_with_checks([DPBestSubset(k=1, clip=True, time_limit=5.0, random_state=0)])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_estimator_recovers_a_strong_support_and_spends_the_budget():
    d = make_synthetic(6000, 30, 3, seed=1)
    model = DPBestSubset(3, epsilon=8.0, random_state=0, time_limit=20).fit(d.X, d.y)
    assert set(model.support_) == set(d.support)
    assert model.epsilon_spent_ == 8.0
    assert np.count_nonzero(model.coef_) <= 3
    assert set(np.flatnonzero(model.coef_)) <= set(model.support_)
    assert model.predict(d.X).shape == (6000,)


def test_hinge_estimator_selects_and_refuses_to_predict():
    X, y = _classification(400, 10, 0)
    labels = np.where(y > 0, "yes", "no")
    model = DPBestSubset(2, epsilon=50.0, loss="hinge", random_state=0).fit(X, labels)
    assert set(model.support_) == {0, 2}
    assert list(model.classes_) == ["no", "yes"]
    with pytest.raises(LabcoreError, match="selects a support only"):
        model.predict(X)


def test_k_equal_to_p_selects_every_feature():
    d = make_synthetic(200, 5, 2, seed=0)
    model = DPBestSubset(5, epsilon=1.0, estimate=False, random_state=0).fit(d.X, d.y)
    assert list(model.support_) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("kwargs", "X", "y", "match"),
    [
        ({"epsilon": 0.0}, None, None, "epsilon"),
        ({"epsilon": float("nan")}, None, None, "epsilon"),
        ({"k": 7}, None, None, "larger than the number of features"),
        ({}, "big", None, "outside"),
        ({}, None, "big", "outside"),
        ({}, "nan", None, "NaN|finite"),
        ({"loss": "hinge"}, None, "three", "two classes"),
        ({"loss": "absolute"}, None, None, "loss"),
        ({"epsilon_split": 1.0}, None, None, "epsilon_split"),
    ],
)
def test_bad_input_is_a_clear_error(kwargs, X, y, match):
    d = make_synthetic(100, 6, 2, seed=0)
    Xd, yd = d.X.copy(), d.y.copy()
    if X == "big":
        Xd[3, 1] = 2.0
    if X == "nan":
        Xd[0, 0] = np.nan
    if y == "big":
        yd[5] = -3.0
    if y == "three":
        yd = np.arange(100) % 3
    with pytest.raises(LabcoreError, match=match):
        DPBestSubset(**{"k": 2, **kwargs}).fit(Xd, yd)


def test_objective_perturbation_is_supported_on_the_selection_and_converges():
    d = make_synthetic(5000, 20, 3, seed=2)
    rng = np.random.default_rng(0)
    coef = objective_perturbation(
        d.X, d.y, d.support, epsilon=1e6, x_bound=0.5, y_bound=0.5, radius=1.1, rng=rng
    )
    assert set(np.flatnonzero(coef)) == set(d.support)
    XS = d.X[:, d.support]
    ols = np.linalg.lstsq(XS, d.y, rcond=None)[0]
    np.testing.assert_allclose(coef[d.support], ols, atol=1e-3)


def test_baselines_find_a_strong_support():
    d = make_synthetic(4000, 40, 3, seed=3)
    rng = np.random.default_rng(0)
    votes = lasso_votes(d.X, d.y, 3, rng=rng)
    assert set(samp_agg_lasso(votes, 3, n=4000, epsilon=1e6, rng=rng)) == set(d.support)
    cost = SquaredCost(d.X, d.y, 120.0, 1.1)
    delta_f = sensitivity(n=4000, s=3, x_bound=0.5, y_bound=0.5, radius=1.1)
    chain = mcmc_exponential(cost, 3, epsilon=1e4, sensitivity=delta_f, steps=3000, rng=rng)
    assert set(chain) == set(d.support)


def test_top_r_rest_draws_avoid_the_top_r_set():
    d = make_synthetic(50, 8, 2, seed=5)
    nb = neighbourhood(d.X, d.y, 2, lam=3.0, r=1.1)
    exact = exact_distribution(nb, mechanism="top-r", epsilon=1e-6, sensitivity=1.0)
    rng = np.random.default_rng(0)
    draws = [tuple(sample_top_r(nb, epsilon=1e-6, sensitivity=1.0, rng=rng)) for _ in range(3000)]
    # ε → 0: uniform over all C(8, 2) = 28 supports
    assert max(exact.values()) == pytest.approx(1 / 28, rel=1e-4)
    assert len(set(draws)) == 28


def test_cli_fit_writes_json(tmp_path, capsys):
    d = make_synthetic(300, 6, 2, seed=0)
    path = tmp_path / "data.csv"
    header = ",".join([f"f{j}" for j in range(6)] + ["y"])
    rows = "\n".join(",".join(f"{v:.6f}" for v in [*x, t]) for x, t in zip(d.X, d.y, strict=False))
    path.write_text(header + "\n" + rows + "\n")
    out = tmp_path / "result.json"
    argv = ["fit", str(path), "--target", "y", "--k", "2", "--epsilon", "4", "--json"]
    assert main([*argv, "--out", str(out)]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert len(payload["support"]) == 2 and set(payload["support"]) <= {f"f{j}" for j in range(6)}
    assert json.loads(out.read_text())["support"] == payload["support"]
    assert main(["fit", str(path), "--target", "z", "--k", "2"]) != 0
    assert "not a column" in capsys.readouterr().err


def test_k_equal_to_p_with_a_tiny_time_limit_does_not_crash():
    d = make_synthetic(200, 3, 1, seed=0)
    model = DPBestSubset(3, epsilon=1.0, time_limit=1e-9, random_state=0).fit(d.X, d.y)
    assert list(model.support_) == [0, 1, 2]


def test_a_solve_stopped_by_the_time_limit_warns():
    d = make_synthetic(3000, 200, 5, seed=0)
    with pytest.warns(RuntimeWarning, match="assumes exact optima"):
        DPBestSubset(5, epsilon=1.0, time_limit=1e-9, random_state=0).fit(d.X, d.y)
