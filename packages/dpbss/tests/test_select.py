"""Outer approximation against brute force, and the private samplers against their exact
distributions, the sensitivity bound and the DP ratio."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from dpbss.bss import best_subset, brute_force_losses
from dpbss.loss import least_squares_fit, least_squares_losses
from dpbss.select import (
    exact_distribution,
    log_binom,
    neighbourhood,
    sample_mistakes,
    sample_top_r,
    sensitivity,
)
from scipy.stats import chisquare

pytest.importorskip("highspy")


def _data(n: int, p: int, s: int, seed: int, snr: float = 5.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    beta = np.zeros(p)
    beta[np.arange(0, 2 * s, 2) % p] = 1 / np.sqrt(s)
    y = X @ beta + rng.normal(size=n) * np.sqrt(beta @ beta / snr)
    return np.clip(X, -0.5, 0.5), np.clip(y, -0.5, 0.5)


@pytest.mark.parametrize("seed", range(6))
def test_outer_approximation_finds_the_brute_force_best_subset(seed):
    p, s = (10, 12)[seed % 2], 2 + seed % 3
    X, y = _data(40, p, s, seed, snr=0.5)  # weak signal: the optimum is not obvious
    supports, losses = brute_force_losses(X, y, s, lam=3.0, r=1.1)
    res = best_subset(X, y, s, lam=3.0, r=1.1)
    assert res.status == "optimal"
    assert tuple(res.support) == tuple(supports[np.argmin(losses)])
    assert res.value == pytest.approx(losses.min(), rel=1e-9)
    assert res.lower_bound <= losses.min() * (1 + 1e-6)


def test_exact_support_cost_and_its_gradient():
    X, y = _data(30, 6, 2, 0)
    fit = least_squares_fit(X, y, np.array([1, 4]), 2.0, 10.0)
    XS = X[:, [1, 4]]
    beta = np.linalg.solve(XS.T @ XS + 2.0 * np.eye(2), XS.T @ y)
    assert fit.value == pytest.approx(((y - XS @ beta) @ (y - XS @ beta) + 2 * beta @ beta) / 60)
    # the cut is a supporting hyperplane of the relaxed cost: a finite difference along z_0
    h = 1e-6
    z = np.zeros(6)
    z[[1, 4]] = 1

    def relaxed(z):  # min_β (1/2n)‖y − Xβ‖² + (λ/2n)Σβ²/z over z > 0 entries
        idx = np.flatnonzero(z > 0)
        A = X[:, idx].T @ X[:, idx] + 2.0 * np.diag(1 / z[idx])
        b = np.linalg.solve(A, X[:, idx].T @ y)
        r = y - X[:, idx] @ b
        return (r @ r + 2.0 * np.sum(b**2 / z[idx])) / 60

    z2 = z.copy()
    z2[0] = h
    assert (relaxed(z2) - fit.value) / h == pytest.approx(fit.grad[0], rel=1e-3)
    up, down = z.copy(), z.copy()
    up[1], down[1] = 1 + 1e-3, 1 - 1e-3  # central difference on the support
    assert (relaxed(up) - relaxed(down)) / 2e-3 == pytest.approx(fit.grad[1], rel=1e-4)
    # the ball binds: ‖β‖ = r exactly
    tight = least_squares_fit(X, y, np.array([1, 4]), 2.0, 0.05)
    assert np.linalg.norm(tight.beta) == pytest.approx(0.05, rel=1e-9)


def test_neighbourhood_matches_brute_force_and_the_certificate():
    X, y = _data(50, 9, 3, 3)
    supports, losses = brute_force_losses(X, y, 3, lam=3.0, r=1.1)
    nb = neighbourhood(X, y, 3, lam=3.0, r=1.1)
    best = set(supports[np.argmin(losses)])
    assert set(nb.best) == best
    mistakes = np.array([len(set(S) - best) for S in supports])
    for j in (2, 3):
        assert nb.at_least[j][1] == pytest.approx(losses[mistakes >= j].min(), rel=1e-9)
    assert nb.certified == (losses[mistakes >= 2].min() >= losses[mistakes == 1].max())
    assert len(nb.swaps) == 3 * 6
    np.testing.assert_allclose(nb.swap_values, least_squares_losses(X, y, nb.swaps, 3.0, 1.1))


def test_log_binomials_are_exact():
    for n, k in [(10, 3), (100, 5), (1000, 5), (10_000, 5)]:
        assert log_binom(n, k) == pytest.approx(math.log(math.comb(n, k)), rel=1e-12)
    assert log_binom(3, 5) == -math.inf


@pytest.mark.parametrize("mechanism", ["top-r", "mistakes"])
def test_sampler_frequencies_match_the_exact_distribution(mechanism):
    X, y = _data(60, 8, 2, 1)
    nb = neighbourhood(X, y, 2, lam=3.0, r=1.1)
    delta_f = sensitivity(n=60, s=2, x_bound=0.5, y_bound=0.5, radius=1.1)
    eps = 1.0
    exact = exact_distribution(nb, mechanism=mechanism, epsilon=eps, sensitivity=delta_f)
    assert sum(exact.values()) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    draw = sample_top_r if mechanism == "top-r" else sample_mistakes
    counts = dict.fromkeys(exact, 0)
    n_draws = 40_000
    for _ in range(n_draws):
        counts[tuple(int(i) for i in draw(nb, epsilon=eps, sensitivity=delta_f, rng=rng))] += 1
    keys = list(exact)
    observed = np.array([counts[k] for k in keys])
    expected = np.array([exact[k] for k in keys]) * n_draws
    assert chisquare(observed, expected).pvalue > 1e-3


def test_sensitivity_bounds_every_support_cost_on_neighbouring_data():
    rng = np.random.default_rng(5)
    for trial in range(20):
        X, y = _data(25, 7, 2, trial)
        X2, y2 = X.copy(), y.copy()
        i = rng.integers(25)
        X2[i] = rng.uniform(-0.5, 0.5, size=7)
        y2[i] = rng.choice([-0.5, 0.5])
        _, L = brute_force_losses(X, y, 2, lam=3.0, r=1.1)
        _, L2 = brute_force_losses(X2, y2, 2, lam=3.0, r=1.1)
        bound = sensitivity(n=25, s=2, x_bound=0.5, y_bound=0.5, radius=1.1)
        assert np.abs(L - L2).max() <= bound


def test_top_r_output_probabilities_change_by_at_most_e_to_the_epsilon():
    """Exact probabilities of every support on neighbouring data sets (one row replaced):
    |log P(S)/Q(S)| ≤ (ε/Δ)·max_S |u(S) − u'(S)| ≤ ε, u(S) = min(L(S), L_R) the utility
    the mechanism uses (the exponential mechanism's bound, with the observed change)."""
    rng = np.random.default_rng(2)
    eps = 1.0
    checked = 0
    for trial in range(12):
        X, y = _data(20, 7, 2, 10 + trial, snr=2.0)
        X2, y2 = X.copy(), y.copy()
        i = int(rng.integers(20))
        X2[i] = -np.sign(X[i]) * 0.5
        y2[i] = -np.sign(y[i]) * 0.5
        d = sensitivity(n=20, s=2, x_bound=0.5, y_bound=0.5, radius=1.1)
        nb1 = neighbourhood(X, y, 2, lam=1.0, r=1.1)
        nb2 = neighbourhood(X2, y2, 2, lam=1.0, r=1.1)
        if not (nb1.certified and nb2.certified):
            continue
        checked += 1
        _supports, L1 = brute_force_losses(X, y, 2, lam=1.0, r=1.1)
        _, L2 = brute_force_losses(X2, y2, 2, lam=1.0, r=1.1)
        R = 2 * 5 + 2
        u1 = np.minimum(L1, np.sort(L1)[R - 1])
        u2 = np.minimum(L2, np.sort(L2)[R - 1])
        change = np.abs(u1 - u2).max()
        assert change <= d
        P = exact_distribution(nb1, mechanism="top-r", epsilon=eps, sensitivity=d)
        Q = exact_distribution(nb2, mechanism="top-r", epsilon=eps, sensitivity=d)
        worst = max(abs(math.log(P[S] / Q[S])) for S in P)
        assert worst <= eps * change / d + 1e-9 <= eps + 1e-9
    assert checked >= 3


def test_one_swaps_are_all_distinct_neighbours():
    from dpbss.select import one_swaps

    sw = one_swaps(np.array([1, 4, 6]), 8)
    assert len({tuple(r) for r in sw}) == 3 * 5
    assert all(len(set(r) & {1, 4, 6}) == 2 for r in sw)
    assert list(itertools.chain.from_iterable(sw)) and sw.shape == (15, 3)


@pytest.mark.parametrize("seed", range(4))
def test_mistakes_branch_and_bound_matches_brute_force(seed):
    from dpbss.loss import SquaredCost
    from dpbss.mistakes import best_with_mistakes

    p, s = (10, 12)[seed % 2], 3
    X, y = _data(80, p, s, seed, snr=0.5)
    supports, losses = brute_force_losses(X, y, s, lam=3.0, r=1.1)
    reference = supports[np.argsort(losses)[seed]]  # not always the optimum
    mistakes = np.array([len(set(S) - set(reference)) for S in supports])
    cost = SquaredCost(X, y, 3.0, 1.1)
    for j in range(0, s + 1):
        res = best_with_mistakes(cost, reference, j, gap=1e-12)
        assert res.status == "optimal"
        assert res.value == pytest.approx(losses[mistakes >= j].min(), rel=1e-10)
        assert len(set(res.support) - set(reference)) >= j
        assert res.lower_bound <= losses[mistakes >= j].min() * (1 + 1e-12)
