import numpy as np
import pytest
from archetypal_nmf.baselines import fit_aa, fit_nmf_l1, fit_pcha, fit_saa
from archetypal_nmf.bench import METHODS, _run_method, synthetic_table
from archetypal_nmf.data import planted

from labcore.bench import Row


@pytest.mark.parametrize("method", METHODS)
def test_every_bench_method_returns_factors_of_the_right_shape(method):
    data = planted(m=20, k=3, n=8, density=0.5, noise=0.05, mixing="dirichlet", seed=0)
    fit = _run_method(method, data.X, 3, data.n_nonzero, 0, {"max_cuts": 2})
    assert fit.H.shape == (3, 8) and fit.W.shape == (20, 3)
    assert np.isfinite(fit.H).all() and fit.time_s >= 0
    if method.startswith("saa"):
        assert np.count_nonzero(fit.H) <= data.n_nonzero
        assert np.allclose(fit.W.sum(1), 1)


def test_nmf_rescaling_makes_weights_nearly_stochastic():
    data = planted(m=30, k=3, n=10, density=1.0, noise=0.0, mixing="dirichlet", seed=1)
    fit = fit_nmf_l1(data.X, 3, alpha=0.0)
    # Exact NMF of convex mixtures: some rescaling makes W's rows sum to one.
    assert np.abs(fit.W.sum(1) - 1).max() < 0.05
    assert np.linalg.norm(data.X - fit.W @ fit.H) / np.linalg.norm(data.X) < 0.05


def test_pcha_leaves_numpy_and_its_random_state_alone():
    state = np.random.get_state()[1].copy()
    had = hasattr(np, "mat")
    fit_pcha(planted(m=15, k=2, n=5, seed=0).X, 2, seed=3)
    assert hasattr(np, "mat") == had
    assert np.array_equal(np.random.get_state()[1], state)


def test_aa_and_saa_archetypes_lie_near_the_data():
    data = planted(
        m=40, k=3, n=6, density=1.0, noise=0.0, mixing="dirichlet", pure_points=True, seed=2
    )
    for fit in (fit_aa(data.X, 3), fit_saa(data.X, 3, 18, lam=1.0)):
        # every archetype is close to some data point
        d = ((fit.H[:, None, :] - data.X[None]) ** 2).sum(-1).min(1)
        assert d.max() < 0.05 * np.mean(np.sum(data.X**2, 1))


def test_synthetic_table_renders_one_line_per_cell_over_seeds():
    def row(seed, strong, weak):
        metrics = {
            "strong": strong,
            "weak": weak,
            "support_f1": 0.5,
            "rel_error": 0.3,
            "density_H": 0.4,
        }
        params = {"regime": "demo", "density": 0.4, "noise": 0.1}
        return Row("saa-spa", params, "planted", seed, metrics, 1.5)

    rows = [row(0, 0.09, 0.2), row(1, 0.11, 0.2), Row.skipped("aa", {}, "planted", "no peer")]
    table = synthetic_table(rows)
    # the mean over seeds ± its standard error (0.02 / sqrt(2) / sqrt(2) = 0.01)
    assert table.count("\n") == 3 and "| demo | 0.4 | 0.1 | saa-spa | 0.1000 ± 0.0100" in table
    assert "| 0.2000 | 0.500 |" in table  # no ± where the seeds agree
