import numpy as np
import pytest
from samstats import MercerProblem, SpectralKernelRegression

from labcore import LabcoreError


def _fit(**kw):
    kw = {"n": 60, "noise": 0.5, "frequencies": 40, **kw}
    return MercerProblem(**kw).sample(seed=3).regression()


@pytest.mark.parametrize("rho_units", [0.0, 0.5, 3.0])
def test_unnormalized_sam_path_matches_its_closed_form(rho_units):
    fit = _fit()
    eta = 0.2 / fit.s_max
    rho = rho_units / fit.s_max
    path = fit.path("sam", rho=rho, eta=eta, n_steps=400, record_every=7)
    exact = fit.closed_form_path(path.steps, rho=rho, eta=eta)
    assert np.allclose(path.coefs, exact, rtol=1e-10, atol=1e-12)
    assert path.steps[-1] == 400


def test_contraction_factor_per_eigendirection():
    fit = _fit()
    eta, rho = 0.3 / fit.s_max, 2.0 / fit.s_max
    path = fit.path("sam", rho=rho, eta=eta, n_steps=2)
    before, after = path.coefs[1] - fit.y_tilde, path.coefs[2] - fit.y_tilde
    expected = 1 - eta * fit.s * (1 + rho * fit.s)
    assert np.allclose(after / before, expected, rtol=1e-9)


@pytest.mark.parametrize("method", ["sam", "sam-normalized"])
def test_sam_with_zero_rho_is_gradient_descent_exactly(method):
    fit = _fit()
    gd = fit.path("gd", n_steps=300)
    sam = fit.path(method, rho=0.0, n_steps=300)
    assert np.array_equal(gd.coefs, sam.coefs)
    assert np.array_equal(gd.train_loss, sam.train_loss)


def test_normalized_sam_differs_and_uses_the_rkhs_gradient_norm():
    fit = _fit()
    eta, rho = 0.5 / fit.s_max, 0.05
    path = fit.path("sam-normalized", rho=rho, eta=eta, n_steps=1)
    # One step by hand: gradient at f + ρ ∇L/‖∇L‖ in the RKHS.
    r = -fit.y_tilde
    norm = np.sqrt(np.sum(fit.s * r**2) / fit.n)
    expected = -eta * fit.s * (r + rho * fit.s * r / norm)
    assert np.allclose(path.coefs[1], expected, rtol=1e-12)
    assert not np.allclose(path.coefs[1], fit.path("gd", eta=eta, n_steps=1).coefs[1])


def test_population_risk_formula_matches_monte_carlo():
    problem = MercerProblem(n=50, noise=0.3, frequencies=30, smoothness=1.0)
    data = problem.sample(seed=1)
    fit = data.regression()
    path = fit.path("sam", rho=0.5 / fit.s_max, n_steps=200, record_every=50)
    exact = fit.risk_path(path.coefs)
    x = np.random.default_rng(7).random(200_000)
    pred = fit.predict(path.coefs, problem.kernel(x, data.x))
    sq = (pred - problem.features(x) @ data.theta) ** 2
    mc, se = sq.mean(1), sq.std(1) / np.sqrt(x.size)
    assert np.all(np.abs(mc - exact) <= 4 * se + 1e-9)
    assert exact[0] == pytest.approx(1.0)  # f̂ = 0 at the start, and ‖f*‖ = 1


def test_features_are_orthonormal_and_the_kernel_is_their_expansion():
    problem = MercerProblem(frequencies=8)
    grid = np.arange(64) / 64  # exact quadrature for trigonometric polynomials of degree < 64
    phi = problem.features(grid)
    assert np.allclose(phi.T @ phi / 64, np.eye(problem.dim), atol=1e-12)
    x1, x2 = np.array([0.1, 0.7]), np.array([0.3])
    mu = problem.eigenvalues()
    k = 1 + sum(2 * mu[2 * j - 1] * np.cos(2 * np.pi * j * (x1[:, None] - x2)) for j in range(1, 9))
    assert np.allclose(problem.kernel(x1, x2), k)


@pytest.mark.parametrize("method,rho", [("gd", 0.0), ("sam", 0.8)])
def test_noiseless_risk_and_training_loss_fall_monotonically(method, rho):
    fit = _fit(noise=0.0)
    path = fit.path(method, rho=rho / fit.s_max, eta=0.1 / fit.s_max, n_steps=500)
    assert np.all(np.diff(fit.risk_path(path.coefs)) <= 1e-12)
    assert np.all(np.diff(path.train_loss) <= 1e-15)


def test_ridge_path_equals_scikit_learn_kernel_ridge():
    from sklearn.kernel_ridge import KernelRidge

    problem = MercerProblem(n=40, frequencies=25)
    data = problem.sample(seed=0)
    fit = data.regression()
    x_test = np.linspace(0, 1, 17)
    for lam in (1e-3, 0.1):
        ours = fit.predict(fit.ridge_path([lam]), problem.kernel(x_test, data.x))[0]
        ref = KernelRidge(alpha=fit.n * lam, kernel="precomputed")
        ref.fit(problem.kernel(data.x, data.x), data.y)
        assert np.allclose(ours, ref.predict(problem.kernel(x_test, data.x)), atol=1e-8)


def test_sharpness_matches_brute_force_on_the_sphere():
    # Rank-2 problem: the trust-region maximum is found by a fine grid on the circle.
    rng = np.random.default_rng(0)
    z = rng.normal(size=(6, 2)) * [2.0, 0.7]
    fit = SpectralKernelRegression(z @ z.T, rng.normal(size=6))
    assert fit.rank == 2
    angles = np.linspace(0, 2 * np.pi, 200_001)
    for coefs in (np.zeros(2), fit.y_tilde * [0.9, 0.2], fit.y_tilde.copy()):
        for radius in (0.05, 1.0):
            g = np.sqrt(fit.s / fit.n) * (coefs - fit.y_tilde)
            e = radius * np.stack([np.cos(angles), np.sin(angles)], 1)
            brute = np.max(e @ g + 0.5 * (e**2) @ fit.s)
            assert fit.sharpness(coefs, radius)[0] == pytest.approx(brute, rel=1e-6, abs=1e-12)
            # Never below the curvature term along the top eigenvector.
            assert fit.sharpness(coefs, radius)[0] >= 0.5 * fit.s_max * radius**2 - 1e-15


def test_sharpness_hard_and_near_hard_cases_are_finite_and_exact():
    fit = _fit()
    radius = 10.0
    # Near-hard: the gradient is below the ulp of λ_max/r (once gave inf).
    c = fit.y_tilde.copy()
    c[0] = np.nextafter(c[0], np.inf)
    value = fit.sharpness(c, radius)[0]
    assert np.isfinite(value) and value == pytest.approx(0.5 * fit.s_max * radius**2, rel=1e-9)
    # Hard case: no gradient along the top direction, some elsewhere.
    c = fit.y_tilde.copy()
    c[3] += 1e-3
    g = np.sqrt(fit.s / fit.n) * (c - fit.y_tilde)
    e = np.zeros_like(g)
    e[3] = g[3] / (fit.s_max - fit.s[3])
    e[0] = np.sqrt(radius**2 - e[3] ** 2)
    expected = g @ e + 0.5 * np.sum(fit.s * e**2)
    assert fit.sharpness(c, radius)[0] == pytest.approx(expected, rel=1e-9)


def test_normalized_sam_late_oscillation_is_dynamics_not_rounding():
    fit = _fit(noise=0.3)
    path = fit.path("sam-normalized", rho=10.0, eta=0.1 / fit.s_max, n_steps=3000)
    # The effective step η·s(1 + ρs/‖∇L‖) of the top direction exceeds 2 once the gradient
    # is small, so the training loss rises again: the docstring's warning. GD's never does.
    assert np.any(np.diff(path.train_loss) > 1e-12)
    gd = fit.path("gd", eta=0.1 / fit.s_max, n_steps=3000)
    assert np.all(np.diff(gd.train_loss) <= 1e-15)


def test_unstable_step_is_refused_with_the_reason():
    fit = _fit()
    with pytest.raises(LabcoreError, match="diverges"):
        fit.path("sam", rho=5 / fit.s_max, eta=0.5 / fit.s_max)
    with pytest.raises(LabcoreError, match="diverges"):
        fit.path("gd", eta=2.5 / fit.s_max)


@pytest.mark.parametrize(
    "K,y,match",
    [
        (np.ones((3, 4)), np.zeros(3), "square"),
        (np.eye(3), np.zeros(4), "3 labels|4 labels"),
        (np.eye(3), np.array([0.0, np.nan, 1.0]), "NaN"),
        (np.array([[1.0, 2.0], [0.0, 1.0]]), np.zeros(2), "symmetric"),
        (np.array([[1.0, 2.0], [2.0, 1.0]]), np.zeros(2), "positive semidefinite"),
        (np.zeros((2, 2)), np.zeros(2), "zero"),
    ],
)
def test_bad_training_problems(K, y, match):
    with pytest.raises(LabcoreError, match=match):
        SpectralKernelRegression(K, y)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"spectrum": "cubic"}, "spectrum"),
        ({"noise": -1.0}, "noise"),
        ({"n": 1}, "n must"),
        ({"decay": float("nan")}, "decay"),
    ],
)
def test_bad_problems(kwargs, match):
    with pytest.raises(LabcoreError, match=match):
        MercerProblem(**kwargs)


def test_bad_path_arguments():
    fit = _fit()
    with pytest.raises(LabcoreError, match="method"):
        fit.path("adam")
    with pytest.raises(LabcoreError, match="rho"):
        fit.path("sam", rho=-0.1)
    with pytest.raises(LabcoreError, match="columns"):
        fit.predict(fit.y_tilde, np.ones((2, 3)))
    plain = SpectralKernelRegression(np.eye(3), np.ones(3))
    with pytest.raises(LabcoreError, match="population risk"):
        plain.risk_path(np.zeros(3))
