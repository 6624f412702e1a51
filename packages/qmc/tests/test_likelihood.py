import numpy as np
import pytest
from qmc.alm import prox_entries
from qmc.likelihood import OrdinalLikelihood
from qmc.thresholds import fit_thresholds
from scipy.optimize import minimize_scalar
from scipy.special import expit
from scipy.stats import norm

from labcore.errors import LabcoreError


@pytest.mark.parametrize("link", ["logistic", "probit"])
@pytest.mark.parametrize("n_levels", [2, 5, 10])
def test_derivatives_match_finite_differences(link, n_levels):
    model = OrdinalLikelihood.uniform(n_levels, link=link, scale=0.7)
    rng = np.random.default_rng(0)
    x = rng.normal((n_levels + 1) / 2, 3.0, 500)
    y = rng.integers(1, n_levels + 1, 500)
    _, g, h = model.nll_derivatives(x, y)
    eps = 1e-5
    f_plus, g_plus, _ = model.nll_derivatives(x + eps, y)
    f_minus, g_minus, _ = model.nll_derivatives(x - eps, y)
    np.testing.assert_allclose((f_plus - f_minus) / (2 * eps), g, atol=1e-6, rtol=1e-5)
    np.testing.assert_allclose((g_plus - g_minus) / (2 * eps), h, atol=1e-5, rtol=1e-4)
    assert np.all(h >= 0) and np.all(h <= model.curvature_bound + 1e-12)
    _, g_only, h_only = model.nll_derivatives(x, y, value=False)
    np.testing.assert_array_equal(g_only, g)
    np.testing.assert_array_equal(h_only, h)


@pytest.mark.parametrize("link", ["logistic", "probit"])
def test_probabilities_match_the_cdf_and_sum_to_one(link):
    model = OrdinalLikelihood(np.array([-1.0, 0.5, 2.0]), link=link, scale=0.8)
    cdf = expit if link == "logistic" else norm.cdf
    x = np.linspace(-3, 4, 15)
    edges = np.array([-np.inf, -1.0, 0.5, 2.0, np.inf])
    direct = cdf((edges[1:][None, :] - x[:, None]) / 0.8) - cdf(
        (edges[:-1][None, :] - x[:, None]) / 0.8
    )
    np.testing.assert_allclose(np.exp(model.log_prob_all(x)), direct, atol=1e-12)
    np.testing.assert_allclose(np.exp(model.log_prob_all(x)).sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize("link", ["logistic", "probit"])
def test_tails_stay_finite_and_accurate(link):
    model = OrdinalLikelihood.uniform(5, link=link, scale=0.5)
    # Far outside the bin: log P must not underflow to -inf.
    x = np.array([-60.0, 80.0, 3.0, 1e4])
    y = np.array([5, 1, 3, 1])
    f, g, h = model.nll_derivatives(x, y)
    assert np.all(np.isfinite(f)) and np.all(np.isfinite(g)) and np.all(np.isfinite(h))
    assert f[0] > 50 and f[1] > 50
    if link == "logistic":  # -log σ(u) ≈ -u deep in the tail
        assert f[0] == pytest.approx((4.5 - (-60.0)) / 0.5, rel=1e-6)


def test_prox_matches_scalar_minimization():
    rng = np.random.default_rng(1)
    for link in ("logistic", "probit"):
        model = OrdinalLikelihood.uniform(5, link=link, scale=0.5)
        y = rng.integers(1, 6, 40)
        c = rng.normal(3, 4, 40)
        for mu in (0.01, 1.0, 100.0):
            x = prox_entries(model, y, c, mu, rng.normal(3, 4, 40))
            for k in range(0, 40, 7):

                def phi(t, k=k, y=y, c=c, mu=mu, model=model):
                    return model.nll(np.array([t]), y[k : k + 1]) + mu / 2 * (t - c[k]) ** 2

                ref = minimize_scalar(phi, bracket=(c[k] - 50, c[k] + 50), tol=1e-12)
                assert phi(x[k]) <= ref.fun + 1e-9
                assert x[k] == pytest.approx(ref.x, abs=1e-5)


def test_threshold_fit_recovers_the_true_edges():
    rng = np.random.default_rng(2)
    truth = OrdinalLikelihood(np.array([-1.0, 0.0, 1.5]), scale=0.5)
    x = rng.normal(0, 1.5, 40_000)
    u = rng.random(40_000)
    probs = np.exp(truth.log_prob_all(x)).cumsum(axis=1)
    y = (u[:, None] > probs).sum(axis=1) + 1
    start = OrdinalLikelihood(np.array([-3.0, -2.0, 3.0]), scale=0.5)
    fitted = fit_thresholds(x, y, start)
    np.testing.assert_allclose(fitted, truth.thresholds, atol=0.05)
    assert np.all(np.diff(fitted) > 0)


def test_bad_likelihood_arguments():
    with pytest.raises(LabcoreError, match="strictly increasing"):
        OrdinalLikelihood(np.array([1.0, 0.5]))
    with pytest.raises(LabcoreError, match="link"):
        OrdinalLikelihood(np.array([0.5]), link="cauchy")
    with pytest.raises(LabcoreError, match="scale"):
        OrdinalLikelihood(np.array([0.5]), scale=0.0)
    with pytest.raises(LabcoreError, match="n_levels"):
        OrdinalLikelihood.uniform(1)
    model = OrdinalLikelihood.uniform(5)
    with pytest.raises(LabcoreError, match=r"1\.\.5"):
        model.check_levels(np.array([1, 6]))
    with pytest.raises(LabcoreError, match="NaN"):
        model.check_levels(np.array([1.0, np.nan]))
