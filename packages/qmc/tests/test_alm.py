import numpy as np
import pytest
from qmc.alm import (
    ALMConfig,
    ALMState,
    ObservedLevels,
    difference_norm,
    initial_state,
    lambda_max,
    nuclear_norm_of_product,
    objective,
    optimality_certificate,
    prox_entries,
    solve_alm,
)
from qmc.baselines import prox_grad_mle
from qmc.data import synthetic
from qmc.likelihood import OrdinalLikelihood

from labcore.errors import LabcoreError


def small_problem(n_levels=5, observed=0.5, m=30, n=25, seed=0):
    d = synthetic(m=m, n=n, rank=2, n_levels=n_levels, observed=observed, seed=seed)
    return d, ObservedLevels.from_matrix(d.Y, d.mask)


def cvxpy_optimum(data: ObservedLevels, model: OrdinalLikelihood, lam: float) -> float:
    """The convex problem, written for cvxpy with the logistic link: −log(σ(u) − σ(v)) =
    log(1 + e^{−u}) + log(1 + e^{v}) − log(1 − e^{−(u − v)}), the last term constant in x."""
    cp = pytest.importorskip("cvxpy")
    Z = cp.Variable(data.shape)
    z = Z[data.rows, data.cols]
    s = model.scale
    edges = np.concatenate([[-np.inf], model.thresholds, [np.inf]])
    a, b = edges[data.levels - 1], edges[data.levels]
    fa, fb = np.isfinite(a), np.isfinite(b)
    loss = cp.sum(cp.logistic((z[fb] - b[fb]) / s)) + cp.sum(cp.logistic((a[fa] - z[fa]) / s))
    both = fa & fb
    const = -np.sum(np.log1p(-np.exp(-(b[both] - a[both]) / s)))
    problem = cp.Problem(cp.Minimize(loss + lam * cp.normNuc(Z)))
    problem.solve(solver=cp.CLARABEL)
    return float(problem.value + const)


@pytest.mark.parametrize("n_levels", [2, 5])
def test_alm_agrees_with_cvxpy_and_certifies_optimality(n_levels):
    d, data = small_problem(n_levels=n_levels)
    lam = 2.0
    res = solve_alm(data, d.likelihood, lam, rank=25, config=ALMConfig(tol=1e-8, max_iter=5000))
    assert res.converged
    assert res.primal_residual < 1e-8 and res.dual_residual < 1e-8
    reference = cvxpy_optimum(data, d.likelihood, lam)
    assert res.objective == pytest.approx(reference, rel=1e-5)
    cert = optimality_certificate(res.state.U, res.state.V, data, d.likelihood, lam)
    assert cert["spectral_ratio"] <= 1 + 1e-4
    assert abs(cert["alignment"]) < 1e-4
    # The objective recomputed from the factors matches the recorded one.
    assert objective(res.state.U, res.state.V, data, d.likelihood, lam) == pytest.approx(
        res.objective, rel=1e-12
    )


def test_rank_cap_below_the_optimum_is_flagged_by_the_certificate():
    d, data = small_problem()
    lam = 0.5  # small λ: the optimum has high rank
    res = solve_alm(data, d.likelihood, lam, rank=2, config=ALMConfig(tol=1e-7, max_iter=3000))
    cert = optimality_certificate(res.state.U, res.state.V, data, d.likelihood, lam)
    assert cert["spectral_ratio"] > 1.05


def test_prox_grad_reaches_the_same_optimum():
    d, data = small_problem()
    lam = 2.0
    alm = solve_alm(data, d.likelihood, lam, rank=25, config=ALMConfig(tol=1e-8, max_iter=5000))
    pg = prox_grad_mle(data, d.likelihood, lam, rank=25, max_iter=5000, tol=1e-10)
    assert pg.objective == pytest.approx(alm.objective, rel=1e-5)
    np.testing.assert_allclose(pg.Z, alm.state.U @ alm.state.V.T, atol=2e-2)


def _dense_alm_iteration(U, V, X, Lam, data, model, lam, mu):
    """One ALM iteration with everything dense (m×n X and Λ), as written in the paper."""
    mask = np.zeros(data.shape, dtype=bool)
    mask[data.rows, data.cols] = True
    Z = U @ V.T
    X = Z - Lam / mu  # off Ω: closed form
    centre = Z[data.rows, data.cols] - Lam[data.rows, data.cols] / mu
    X[data.rows, data.cols] = prox_entries(
        model, data.levels, centre, mu, centre.copy(), tol=1e-14, max_iter=200
    )
    k = U.shape[1]
    M = mu * X + Lam
    U_new = np.linalg.solve(mu * V.T @ V + lam * np.eye(k), (M @ V).T).T
    V_new = np.linalg.solve(mu * U_new.T @ U_new + lam * np.eye(k), (M.T @ U_new).T).T
    Lam = Lam + mu * (X - U_new @ V_new.T)
    return U_new, V_new, X, Lam


def test_low_rank_plus_sparse_iteration_equals_the_dense_alm():
    d, data = small_problem(m=12, n=9, observed=0.4)
    model, lam = d.likelihood, 0.7
    # Fixed μ (kappa = 1) so the efficient solver and the dense reference use the same μ.
    config = ALMConfig(
        mu0=0.5, kappa=1.0, max_iter=1, tol=1e-300, newton_tol=1e-14, newton_max_iter=200
    )
    mu = 0.5 * model.curvature_bound
    state = initial_state(data, model, 4, random_state=0)
    U, V = state.U.copy(), state.V.copy()
    Lam = np.zeros(data.shape)
    X = U @ V.T
    for _ in range(6):
        res = solve_alm(data, model, lam, rank=4, state=state, config=config)
        state = res.state
        U, V, X, Lam = _dense_alm_iteration(U, V, X, Lam, data, model, lam, mu)
        np.testing.assert_allclose(state.U @ state.V.T, U @ V.T, atol=1e-9)
        np.testing.assert_allclose(state.multiplier, Lam[data.rows, data.cols], atol=1e-9)


def test_fully_observed_fine_levels_recover_the_latent_matrix():
    rng = np.random.default_rng(3)
    m, n, n_levels = 40, 30, 60
    X = 30.5 + 8 * (rng.standard_normal((m, 2)) @ rng.standard_normal((2, n))) / np.sqrt(2)
    noise = 0.1
    model = OrdinalLikelihood.uniform(n_levels, scale=noise)
    Y = np.clip(np.ceil(X + rng.logistic(0, noise, X.shape) - 0.5), 1, n_levels).astype(int)
    data = ObservedLevels.from_matrix(Y, np.ones_like(Y, dtype=bool))
    res = solve_alm(data, model, 1.0, rank=10, config=ALMConfig(tol=1e-6, max_iter=3000))
    Z = res.state.U @ res.state.V.T
    assert np.linalg.norm(Z - X) / np.linalg.norm(X) < 0.01


def test_one_bit_completion_beats_chance_and_converges():
    d = synthetic(m=80, n=80, rank=2, n_levels=2, observed=0.4, noise=0.3, seed=4)
    data = ObservedLevels.from_matrix(d.Y, d.mask)
    model = OrdinalLikelihood(np.array([0.0]), scale=0.3)  # 1-bit: the sign of X + noise
    lam = 0.2 * lambda_max(data, model)
    res = solve_alm(data, model, lam, rank=10, config=ALMConfig(tol=1e-6, max_iter=3000))
    assert res.converged
    Z = res.state.U @ res.state.V.T
    hidden = ~d.mask
    predicted = np.where(Z[hidden] > 0, 2, 1)
    assert np.mean(predicted == d.levels[hidden]) > 0.65  # chance is 0.5


def test_lambda_max_gives_the_zero_solution():
    d, data = small_problem()
    top = lambda_max(data, d.likelihood)
    res = solve_alm(data, d.likelihood, 1.01 * top, rank=5, config=ALMConfig(max_iter=3000))
    assert nuclear_norm_of_product(res.state.U, res.state.V) < 1e-3 * np.sqrt(data.n_observed)


def test_warm_start_from_factors_and_residual_helpers():
    d, data = small_problem()
    cold = solve_alm(data, d.likelihood, 2.0, rank=8, config=ALMConfig(tol=1e-7))
    warm = solve_alm(
        data,
        d.likelihood,
        2.0,
        rank=8,
        state=ALMState.from_factors(cold.state.U, cold.state.V, data),
        config=ALMConfig(tol=1e-7),
    )
    assert warm.n_iter < cold.n_iter
    U, V = cold.state.U, cold.state.V
    U2 = U + 0.01
    assert difference_norm(U2, V, U, V) == pytest.approx(np.linalg.norm(U2 @ V.T - U @ V.T))


def test_observed_levels_reject_bad_input():
    Y = np.array([[1, 2], [3, 1]])
    with pytest.raises(LabcoreError, match="empty"):
        ObservedLevels.from_matrix(Y, np.zeros((2, 2), dtype=bool))
    with pytest.raises(LabcoreError, match="shape"):
        ObservedLevels.from_matrix(Y, np.ones((3, 2), dtype=bool))
    with pytest.raises(LabcoreError, match="NaN"):
        ObservedLevels.from_matrix(np.array([[1.0, np.nan]]), np.array([[True, True]]))
    with pytest.raises(LabcoreError, match="integer"):
        ObservedLevels.from_matrix(np.array([[1.5, 2.0]]), np.array([[True, True]]))
    with pytest.raises(LabcoreError, match=">= 1"):
        ObservedLevels.from_matrix(np.array([[0, 2]]), np.array([[True, True]]))
    with pytest.raises(LabcoreError, match="2-D"):
        ObservedLevels.from_matrix(np.array([1, 2]), np.array([True, True]))
    with pytest.raises(LabcoreError, match="mu_min"):
        ALMConfig(mu0=1e-9)
